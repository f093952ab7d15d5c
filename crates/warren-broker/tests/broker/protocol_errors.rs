//! Protocol errors answered as RabbitMQ does, never taking the broker down.

use crate::common::raw::{encode, Raw};
use crate::common::*;
use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::basic::{self, AMQPProperties};
use amq_protocol::protocol::{channel, queue, AMQPClass};
use amq_protocol::types::{FieldTable, LongString};
use lapin::options::*;

#[tokio::test]
async fn wrong_protocol_header_gets_ours_back() {
    bounded(async {
        let b = start().await;
        let mut r = Raw::open(b.local_addr()).await;
        r.send_bytes(b"AMQP\x00\x00\x08\x00").await;
        let got = r.read_all().await;
        assert_eq!(got, b"AMQP\x00\x00\x09\x01");
        let mut r = Raw::open(b.local_addr()).await;
        r.send_bytes(b"GET / HTTP/1.1\r\n\r\n").await;
        assert_eq!(r.read_all().await, b"AMQP\x00\x00\x09\x01");
        // Still serving.
        let (_c, _ch) = channel(&b).await;
        b.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn frame_on_unopened_channel_is_504() {
    bounded(async {
        let b = start().await;
        let mut r = Raw::connect(b.local_addr(), 4096).await;
        r.method(
            5,
            AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
                prefetch_count: 1,
                global: false,
            })),
        )
        .await;
        assert_eq!(r.expect_connection_close().await, 504);
        assert!(r.closed().await);
        b.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn oversized_frame_is_501() {
    bounded(async {
        let b = start().await;
        let mut r = Raw::connect(b.local_addr(), 4096).await;
        r.open_channel(1).await;
        let big = AMQPFrame::Body(1, vec![0u8; 8000]);
        r.send_bytes(&encode(&big)).await;
        assert_eq!(r.expect_connection_close().await, 501);
        assert!(r.closed().await);
        b.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn unexpected_content_is_505_and_garbage_is_501() {
    bounded(async {
        let b = start().await;
        let mut r = Raw::connect(b.local_addr(), 4096).await;
        r.open_channel(1).await;
        r.send_bytes(&encode(&AMQPFrame::Body(1, b"orphan".to_vec())))
            .await;
        assert_eq!(r.expect_connection_close().await, 505);

        let mut r = Raw::connect(b.local_addr(), 4096).await;
        r.send_bytes(&[0x55; 64]).await;
        assert_eq!(r.expect_connection_close().await, 501);
        assert!(r.closed().await);

        // Unknown class id -> 503.
        let mut r = Raw::connect(b.local_addr(), 4096).await;
        r.send_bytes(&[1, 0, 0, 0, 0, 0, 4, 0x03, 0xE7, 0, 10, 0xCE])
            .await;
        assert_eq!(r.expect_connection_close().await, 503);
        let (_c, _ch) = channel(&b).await;
        b.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn channel_error_leaves_connection_usable() {
    bounded(async {
        let b = start().await;
        let (c, ch) = channel(&b).await;
        let e = ch
            .queue_declare(
                "nope".into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                lapin::types::FieldTable::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(code(&e), 404);
        let ch2 = c.create_channel().await.unwrap();
        ch2.queue_declare(
            "yes".into(),
            QueueDeclareOptions::default(),
            lapin::types::FieldTable::default(),
        )
        .await
        .unwrap();

        // Same at the raw level: channel.close carries class/method ids.
        let mut r = Raw::connect(b.local_addr(), 4096).await;
        r.open_channel(1).await;
        r.method(
            1,
            raw::declare(queue::Declare {
                passive: true,
                ..raw::queue_declare("missing")
            }),
        )
        .await;
        match r.recv().await {
            Some(AMQPFrame::Method(1, AMQPClass::Channel(channel::AMQPMethod::Close(c)))) => {
                assert_eq!((c.reply_code, c.class_id, c.method_id), (404, 50, 10));
            }
            other => panic!("expected channel.close, got {other:?}"),
        }
        r.method(
            1,
            AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
        )
        .await;
        r.open_channel(1).await;
        b.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn channel_zero_prefetch_size_and_tune_limits() {
    bounded(async {
        let b = start().await;
        // A channel-class method on channel 0 -> 504.
        let mut r = Raw::connect(b.local_addr(), 4096).await;
        r.method(
            0,
            raw::declare(queue::Declare {
                exclusive: true,
                ..raw::queue_declare("")
            }),
        )
        .await;
        assert_eq!(r.expect_connection_close().await, 504);

        // basic.qos with prefetch-size != 0 -> 540 (hand-encoded: amq-protocol drops the field).
        let mut r = Raw::connect(b.local_addr(), 4096).await;
        r.open_channel(1).await;
        r.send_bytes(&[
            1, 0, 1, 0, 0, 0, 11, 0, 60, 0, 10, 0, 0, 3, 232, 0, 0, 0, 0xCE,
        ])
        .await;
        assert_eq!(r.expect_connection_close().await, 540);

        // tune-ok with frame_max above the server's -> 530, never open-ok.
        let mut r = Raw::open(b.local_addr()).await;
        r.send_bytes(b"AMQP\x00\x00\x09\x01").await;
        let _start = r.recv().await;
        r.method(
            0,
            AMQPClass::Connection(amq_protocol::protocol::connection::AMQPMethod::StartOk(
                amq_protocol::protocol::connection::StartOk {
                    client_properties: FieldTable::default(),
                    mechanism: "PLAIN".into(),
                    response: LongString::from("\0guest\0guest"),
                    locale: "en_US".into(),
                },
            )),
        )
        .await;
        let _tune = r.recv().await;
        r.method(
            0,
            AMQPClass::Connection(amq_protocol::protocol::connection::AMQPMethod::TuneOk(
                amq_protocol::protocol::connection::TuneOk {
                    channel_max: 16,
                    frame_max: 10_000_000,
                    heartbeat: 0,
                },
            )),
        )
        .await;
        assert_eq!(r.expect_connection_close().await, 530);
        b.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn oversized_message_is_a_channel_error() {
    bounded(async {
        let b = start().await;
        let mut r = Raw::connect(b.local_addr(), 4096).await;
        r.open_channel(1).await;
        r.method(
            1,
            AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
                exchange: "".into(),
                routing_key: "x".into(),
                mandatory: false,
                immediate: false,
            })),
        )
        .await;
        r.send_bytes(&encode(&AMQPFrame::Header(
            1,
            amq_protocol::frame::AMQPContentHeader {
                class_id: 60,
                body_size: 1 << 40,
                properties: AMQPProperties::default(),
            },
        )))
        .await;
        // Body frames that follow are discarded with the closing channel.
        r.send_bytes(&encode(&AMQPFrame::Body(1, vec![0u8; 100])))
            .await;
        match r.recv().await {
            Some(AMQPFrame::Method(1, AMQPClass::Channel(channel::AMQPMethod::Close(c)))) => {
                assert_eq!(c.reply_code, 406);
            }
            other => panic!("expected channel.close, got {other:?}"),
        }
        r.method(
            1,
            AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
        )
        .await;
        r.open_channel(2).await;
        b.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn channel_flow() {
    bounded(async {
        let b = start().await;
        let mut r = Raw::connect(b.local_addr(), 4096).await;
        r.open_channel(1).await;
        r.method(
            1,
            AMQPClass::Channel(channel::AMQPMethod::Flow(channel::Flow { active: true })),
        )
        .await;
        match r.recv().await {
            Some(AMQPFrame::Method(1, AMQPClass::Channel(channel::AMQPMethod::FlowOk(f)))) => {
                assert!(f.active)
            }
            other => panic!("expected flow-ok, got {other:?}"),
        }
        // RabbitMQ does not implement active=false.
        r.method(
            1,
            AMQPClass::Channel(channel::AMQPMethod::Flow(channel::Flow { active: false })),
        )
        .await;
        assert_eq!(r.expect_connection_close().await, 540);
        b.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn rabbitmq_answers_for_odd_requests() {
    bounded(async {
        let b = start().await;
        // basic.recover requeue=false -> 540.
        let mut r = Raw::connect(b.local_addr(), 4096).await;
        r.open_channel(1).await;
        r.method(
            1,
            AMQPClass::Basic(basic::AMQPMethod::Recover(basic::Recover {
                requeue: false,
            })),
        )
        .await;
        assert_eq!(r.expect_connection_close().await, 540);
        // channel.close on a channel that was never opened -> 504.
        let mut r = Raw::connect(b.local_addr(), 4096).await;
        r.method(
            7,
            AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
                reply_code: 200,
                reply_text: "".into(),
                class_id: 0,
                method_id: 0,
            })),
        )
        .await;
        assert_eq!(r.expect_connection_close().await, 504);
        // A content header on channel 0 -> 505.
        let mut r = Raw::connect(b.local_addr(), 4096).await;
        r.send_bytes(&encode(&AMQPFrame::Header(
            0,
            amq_protocol::frame::AMQPContentHeader {
                class_id: 60,
                body_size: 1,
                properties: AMQPProperties::default(),
            },
        )))
        .await;
        assert_eq!(r.expect_connection_close().await, 505);
        b.shutdown().await;
    })
    .await;
}
