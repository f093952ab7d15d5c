//! Work queues: consume, prefetch round-robin, acks, nack/requeue, server-named queues.

use crate::common::*;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::BasicProperties;

#[tokio::test]
async fn hello_world() {
    bounded(async {
        let b = start().await;
        let (_c, ch) = channel(&b).await;
        let q = ch
            .queue_declare(
                "hello".into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        assert_eq!(q.name().as_str(), "hello");
        ch.basic_publish(
            "".into(),
            "hello".into(),
            BasicPublishOptions::default(),
            b"Hello World!",
            BasicProperties::default(),
        )
        .await
        .unwrap();
        let mut cons = consume(&ch, "hello", true).await;
        let d = next(&mut cons).await;
        assert_eq!(d.data, b"Hello World!");
        assert!(!d.redelivered);
        assert_eq!(d.routing_key.as_str(), "hello");
        b.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn server_named_queue_and_passive() {
    bounded(async {
        let b = start().await;
        let (_c, ch) = channel(&b).await;
        let q = server_named_queue(&ch).await;
        assert!(q.starts_with("amq.gen-"));
        let p = ch
            .queue_declare(
                q.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        assert_eq!(p.message_count(), 0);
        let err = ch
            .queue_declare(
                "missing".into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(code(&err), 404, "{err:?}");
        b.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn work_queue_prefetch_one_round_robin() {
    bounded(async {
        let b = start().await;
        let (_c1, ch1) = channel(&b).await;
        let (_c2, ch2) = channel(&b).await;
        for ch in [&ch1, &ch2] {
            ch.queue_declare(
                "tasks".into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
            ch.basic_qos(1, BasicQosOptions::default()).await.unwrap();
        }
        let mut w1 = consume(&ch1, "tasks", false).await;
        let mut w2 = consume(&ch2, "tasks", false).await;
        for i in 0..4 {
            ch1.basic_publish(
                "".into(),
                "tasks".into(),
                BasicPublishOptions::default(),
                format!("task {i}").as_bytes(),
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .unwrap();
        }
        // Each worker gets exactly one (prefetch 1) until it acks.
        let d1 = next(&mut w1).await;
        let d2 = next(&mut w2).await;
        nothing(&mut w1, 200).await;
        let mut got = vec![d1.data.clone(), d2.data.clone()];
        d1.ack(BasicAckOptions::default()).await.unwrap();
        let d3 = next(&mut w1).await;
        got.push(d3.data.clone());
        d2.ack(BasicAckOptions::default()).await.unwrap();
        let d4 = next(&mut w2).await;
        got.push(d4.data.clone());
        d3.ack(BasicAckOptions::default()).await.unwrap();
        d4.ack(BasicAckOptions::default()).await.unwrap();
        got.sort();
        let want: Vec<Vec<u8>> = (0..4).map(|i| format!("task {i}").into_bytes()).collect();
        assert_eq!(got, want);
        b.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn nack_requeue_redelivers_at_head() {
    bounded(async {
        let b = start().await;
        let (_c, ch) = channel(&b).await;
        ch.queue_declare(
            "rq".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        for m in ["a", "b"] {
            ch.basic_publish(
                "".into(),
                "rq".into(),
                BasicPublishOptions::default(),
                m.as_bytes(),
                BasicProperties::default(),
            )
            .await
            .unwrap();
        }
        ch.basic_qos(1, BasicQosOptions::default()).await.unwrap();
        let mut cons = consume(&ch, "rq", false).await;
        let d = next(&mut cons).await;
        assert_eq!(d.data, b"a");
        d.nack(BasicNackOptions {
            requeue: true,
            ..Default::default()
        })
        .await
        .unwrap();
        let d = next(&mut cons).await;
        assert_eq!(d.data, b"a");
        assert!(d.redelivered);
        d.reject(BasicRejectOptions { requeue: false })
            .await
            .unwrap();
        let d = next(&mut cons).await;
        assert_eq!(d.data, b"b");
        assert!(!d.redelivered);
        d.ack(BasicAckOptions::default()).await.unwrap();
        b.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn unacked_requeued_when_channel_closes() {
    bounded(async {
        let b = start().await;
        let (_c, ch) = channel(&b).await;
        ch.queue_declare(
            "uq".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.basic_publish(
            "".into(),
            "uq".into(),
            BasicPublishOptions::default(),
            b"x",
            BasicProperties::default(),
        )
        .await
        .unwrap();
        {
            let (c2, ch2) = channel(&b).await;
            let mut cons = consume(&ch2, "uq", false).await;
            let d = next(&mut cons).await;
            assert!(!d.redelivered);
            c2.close(200, "bye".into()).await.unwrap();
        }
        let got = ch
            .basic_get("uq".into(), BasicGetOptions { no_ack: false })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.delivery.data, b"x");
        assert!(got.delivery.redelivered);
        got.delivery.ack(BasicAckOptions::default()).await.unwrap();
        assert!(ch
            .basic_get("uq".into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
            .is_none());
        b.shutdown().await;
    })
    .await;
}
