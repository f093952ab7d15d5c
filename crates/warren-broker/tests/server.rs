//! Server-level behaviour: heartbeats, connection limit, graceful shutdown.

mod common;

use amq_protocol::frame::AMQPFrame;
use common::raw::Raw;
use common::*;
use std::time::{Duration, Instant};
use warren_broker::Broker;

#[tokio::test]
async fn heartbeats_sent_and_silent_peer_closed() {
    bounded(async {
        let b = start().await;
        let mut r = Raw::connect_hb(b.local_addr(), 4096, 1).await;
        let t0 = Instant::now();
        // The broker sends heartbeats (every half interval).
        match r.recv().await {
            Some(AMQPFrame::Heartbeat) => {}
            other => panic!("expected heartbeat, got {other:?}"),
        }
        // We stay silent: the broker hangs up after ~2 intervals.
        assert!(r.closed().await);
        let waited = t0.elapsed();
        assert!(
            waited >= Duration::from_millis(1500) && waited < Duration::from_secs(5),
            "{waited:?}"
        );
        b.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn connection_limit() {
    bounded(async {
        let b = Broker::builder()
            .listen("127.0.0.1:0".parse().unwrap())
            .max_connections(1)
            .start()
            .await
            .unwrap();
        let _c1 = connect(&b).await;
        let r = tokio::time::timeout(
            Duration::from_secs(5),
            lapin::Connection::connect(&b.amqp_url(), lapin::ConnectionProperties::default()),
        )
        .await
        .unwrap();
        assert!(r.is_err());
        b.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn shutdown_sends_connection_forced() {
    bounded(async {
        let b = start().await;
        let mut r = Raw::connect(b.local_addr(), 4096).await;
        let addr = b.local_addr();
        let t = tokio::spawn(async move { r.expect_connection_close().await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        b.shutdown().await;
        assert_eq!(t.await.unwrap(), 320);
        // Listener is gone.
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    })
    .await;
}

#[tokio::test]
async fn amqp_url_and_custom_credentials() {
    bounded(async {
        let b = Broker::builder()
            .listen("127.0.0.1:0".parse().unwrap())
            .credentials("alice", "s3:cr@t/")
            .vhost("my vhost")
            .start()
            .await
            .unwrap();
        assert_eq!(
            b.amqp_url(),
            format!("amqp://alice:s3%3acr%40t%2f@{}/my%20vhost", b.local_addr())
        );
        let c = connect(&b).await;
        c.create_channel().await.unwrap();
        b.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn slow_no_ack_consumer_gets_backpressure() {
    use amq_protocol::frame::{AMQPContentHeader, AMQPFrame};
    use amq_protocol::protocol::{basic, AMQPClass};
    use amq_protocol::types::FieldTable;
    use common::raw::encode;
    use lapin::options::QueueDeclareOptions;
    bounded(async {
        let b = start().await;
        let (_c, ch) = channel(&b).await;
        ch.queue_declare(
            "slow".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        // A consumer that never reads its socket.
        let mut sleeper = Raw::connect(b.local_addr(), 131072).await;
        sleeper.open_channel(1).await;
        sleeper
            .method(
                1,
                AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
                    queue: "slow".into(),
                    consumer_tag: "sleepy".into(),
                    no_local: false,
                    no_ack: true,
                    exclusive: false,
                    nowait: true,
                    arguments: FieldTable::default(),
                })),
            )
            .await;
        // A fast raw publisher: 40 MiB in 1 KiB messages.
        let mut publisher = Raw::connect(b.local_addr(), 131072).await;
        publisher.open_channel(1).await;
        let mut one = encode(&AMQPFrame::Method(
            1,
            AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
                exchange: "".into(),
                routing_key: "slow".into(),
                mandatory: false,
                immediate: false,
            })),
        ));
        one.extend(encode(&AMQPFrame::Header(
            1,
            AMQPContentHeader {
                class_id: 60,
                body_size: 1024,
                properties: Default::default(),
            },
        )));
        one.extend(encode(&AMQPFrame::Body(1, vec![1u8; 1024])));
        let batch: Vec<u8> = one.iter().copied().cycle().take(one.len() * 1000).collect();
        use tokio::io::AsyncWriteExt;
        for _ in 0..40 {
            publisher.stream.write_all(&batch).await.unwrap();
        }
        // Most messages stay in the queue instead of piling up in the stalled
        // connection's buffers (without backpressure they would all leave it).
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let q = ch
                .queue_declare(
                    "slow".into(),
                    QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
                .unwrap();
            if q.message_count() > 25_000 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "only {} left in the queue",
                q.message_count()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        drop(sleeper);
        b.shutdown().await;
    })
    .await;
}
