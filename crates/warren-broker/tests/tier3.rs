//! Tier 3: protocol errors behave like RabbitMQ and never take the broker down.

mod common;

use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::basic::{self, AMQPProperties};
use amq_protocol::protocol::{channel, queue, AMQPClass};
use amq_protocol::types::{AMQPValue, FieldArray, FieldTable, LongString};
use common::raw::{encode, Raw};
use common::*;
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

fn all_properties() -> AMQPProperties {
    let mut inner = FieldTable::default();
    inner.insert("deep".into(), AMQPValue::LongLongInt(-5));
    inner.insert(
        "bytes".into(),
        AMQPValue::LongString(LongString::from(vec![0u8, 1, 2, 255])),
    );
    let mut headers = FieldTable::default();
    headers.insert("nested".into(), AMQPValue::FieldTable(inner.clone()));
    headers.insert(
        "array".into(),
        AMQPValue::FieldArray(FieldArray::from(vec![
            AMQPValue::Boolean(true),
            AMQPValue::FieldTable(inner),
            AMQPValue::Double(1.5),
        ])),
    );
    headers.insert("ts".into(), AMQPValue::Timestamp(1_700_000_000));
    AMQPProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("gzip".into())
        .with_headers(headers)
        .with_delivery_mode(2)
        .with_priority(7)
        .with_correlation_id("corr".into())
        .with_reply_to("replies".into())
        .with_expiration("60000".into())
        .with_message_id("mid".into())
        .with_timestamp(1_234_567)
        .with_type("kind".into())
        .with_user_id("guest".into())
        .with_app_id("app".into())
        .with_cluster_id("cluster".into())
}

#[tokio::test]
async fn properties_round_trip_byte_exact() {
    bounded(async {
        let b = start().await;
        let mut r = Raw::connect(b.local_addr(), 4096).await;
        r.open_channel(1).await;
        r.method(
            1,
            raw::declare(queue::Declare {
                nowait: true,
                ..raw::queue_declare("props")
            }),
        )
        .await;
        // Hand-build a header frame whose table keys are NOT sorted, to prove
        // the broker forwards the publisher's bytes verbatim.
        let mut props = encode(&AMQPFrame::Header(
            1,
            amq_protocol::frame::AMQPContentHeader {
                class_id: 60,
                body_size: 3,
                properties: all_properties(),
            },
        ));
        props.truncate(props.len() - 1);
        let mut payload = props[7..].to_vec();
        // Append nothing but re-frame (also checks our own framing math).
        let mut header = vec![2, 0, 1];
        header.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        header.append(&mut payload);
        header.push(0xCE);
        // Unsorted extra table: swap in a custom headers table with keys z, a.
        r.method(
            1,
            AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
                exchange: "".into(),
                routing_key: "props".into(),
                mandatory: false,
                immediate: false,
            })),
        )
        .await;
        r.send_bytes(&header).await;
        r.send_bytes(&encode(&AMQPFrame::Body(1, b"abc".to_vec())))
            .await;

        // A second message with a hand-encoded, unsorted headers table.
        let mut raw_props = vec![0x20, 0x00]; // flags: headers only
        let mut table = Vec::new();
        for (k, v) in [("zeta", b'z'), ("alpha", b'a')] {
            table.push(k.len() as u8);
            table.extend_from_slice(k.as_bytes());
            table.push(b'b'); // short-short-int
            table.push(v);
        }
        raw_props.extend_from_slice(&(table.len() as u32).to_be_bytes());
        raw_props.extend_from_slice(&table);
        let mut hp = vec![0, 60, 0, 0];
        hp.extend_from_slice(&1u64.to_be_bytes());
        hp.extend_from_slice(&raw_props);
        let mut header2 = vec![2, 0, 1];
        header2.extend_from_slice(&(hp.len() as u32).to_be_bytes());
        header2.extend_from_slice(&hp);
        header2.push(0xCE);
        r.method(
            1,
            AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
                exchange: "".into(),
                routing_key: "props".into(),
                mandatory: false,
                immediate: false,
            })),
        )
        .await;
        r.send_bytes(&header2).await;
        r.send_bytes(&encode(&AMQPFrame::Body(1, b"z".to_vec())))
            .await;

        r.method(
            1,
            AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
                queue: "props".into(),
                consumer_tag: "t".into(),
                no_local: false,
                no_ack: true,
                exclusive: false,
                nowait: false,
                arguments: FieldTable::default(),
            })),
        )
        .await;
        let mut headers_seen = Vec::new();
        while headers_seen.len() < 2 {
            let (f, raw) = r.recv_raw().await.expect("frame");
            if let AMQPFrame::Header(_, h) = &f {
                assert_eq!(
                    h.properties
                        .reply_to()
                        .as_ref()
                        .map(|s| s.as_str())
                        .unwrap_or("replies"),
                    "replies"
                );
                headers_seen.push(raw);
            }
        }
        assert_eq!(headers_seen[0], header);
        assert_eq!(headers_seen[1], header2);
        b.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn properties_round_trip_lapin_and_large_body() {
    bounded(async {
        let b = start().await;
        let (_c, ch) = channel(&b).await;
        ch.queue_declare(
            "big".into(),
            QueueDeclareOptions::default(),
            lapin::types::FieldTable::default(),
        )
        .await
        .unwrap();
        let body: Vec<u8> = (0..(1 << 20)).map(|i| (i % 251) as u8).collect();
        let props = all_properties();
        ch.basic_publish(
            "".into(),
            "big".into(),
            BasicPublishOptions::default(),
            &body,
            props.clone(),
        )
        .await
        .unwrap();
        let mut cons = consume(&ch, "big", true).await;
        let d = next(&mut cons).await;
        assert_eq!(d.data.len(), body.len());
        assert!(d.data == body);
        assert_eq!(d.properties, props);

        // At the raw level, a 1 MiB body arrives split by frame_max 4096.
        let mut r = Raw::connect(b.local_addr(), 4096).await;
        r.open_channel(1).await;
        ch.queue_declare(
            "big2".into(),
            QueueDeclareOptions::default(),
            lapin::types::FieldTable::default(),
        )
        .await
        .unwrap();
        ch.basic_publish(
            "".into(),
            "big2".into(),
            BasicPublishOptions::default(),
            &body,
            lapin::BasicProperties::default(),
        )
        .await
        .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        r.method(
            1,
            AMQPClass::Basic(basic::AMQPMethod::Get(basic::Get {
                queue: "big2".into(),
                no_ack: true,
            })),
        )
        .await;
        let mut got = Vec::new();
        let mut frames = 0;
        while got.len() < body.len() {
            match r.recv().await.expect("frame") {
                AMQPFrame::Body(_, data) => {
                    assert!(data.len() <= 4096 - 8);
                    frames += 1;
                    got.extend_from_slice(&data);
                }
                AMQPFrame::Method(_, AMQPClass::Basic(basic::AMQPMethod::GetEmpty(_))) => {
                    panic!("queue empty")
                }
                _ => {}
            }
        }
        assert!(frames > 200);
        assert!(got == body);
        b.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn huge_ttls_do_not_overflow() {
    bounded(async {
        let b = start().await;
        let (_c, ch) = channel(&b).await;
        let mut args = lapin::types::FieldTable::default();
        args.insert(
            "x-message-ttl".into(),
            lapin::types::AMQPValue::LongLongInt(i64::MAX),
        );
        args.insert(
            "x-expires".into(),
            lapin::types::AMQPValue::LongLongInt(i64::MAX),
        );
        ch.queue_declare("huge".into(), QueueDeclareOptions::default(), args)
            .await
            .unwrap();
        ch.basic_publish(
            "".into(),
            "huge".into(),
            BasicPublishOptions::default(),
            b"x",
            lapin::BasicProperties::default().with_expiration(u64::MAX.to_string().into()),
        )
        .await
        .unwrap();
        let m = ch
            .basic_get("huge".into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
            .expect("message");
        assert_eq!(m.delivery.data, b"x");
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
