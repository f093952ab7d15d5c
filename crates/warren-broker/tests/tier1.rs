//! Tier 1: handshake, default exchange, work queues, acks, direct reply-to.

mod common;

use common::*;
use futures_util::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::BasicProperties;

#[tokio::test]
async fn handshake_and_close() {
    bounded(async {
        let b = start().await;
        let c = connect(&b).await;
        let ch = c.create_channel().await.unwrap();
        ch.close(200, "bye".into()).await.unwrap();
        c.close(200, "bye".into()).await.unwrap();
        b.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn wrong_credentials_refused() {
    bounded(async {
        let b = start().await;
        let url = b.amqp_url().replace("guest:guest", "guest:nope");
        let r = lapin::Connection::connect(&url, lapin::ConnectionProperties::default()).await;
        assert!(r.is_err());
        // The broker still serves others.
        let c = connect(&b).await;
        c.create_channel().await.unwrap();
        b.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn unknown_vhost_refused() {
    bounded(async {
        let b = start().await;
        let url = b.amqp_url().replace("%2f", "nope");
        let r = lapin::Connection::connect(&url, lapin::ConnectionProperties::default()).await;
        assert!(r.is_err());
        b.shutdown().await;
    })
    .await;
}

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

#[tokio::test]
async fn mandatory_unroutable_is_returned() {
    bounded(async {
        let b = start().await;
        let (_c, ch) = channel(&b).await;
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        let conf = ch
            .basic_publish(
                "".into(),
                "nowhere".into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                b"lost",
                BasicProperties::default().with_correlation_id("c1".into()),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        let ret = conf.take_message().expect("returned message");
        assert_eq!(ret.data, b"lost");
        assert_eq!(ret.reply_code, 312);
        assert_eq!(
            ret.properties.correlation_id().as_ref().unwrap().as_str(),
            "c1"
        );
        b.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn rpc_direct_reply_to() {
    bounded(async {
        let b = start().await;
        // Server side.
        let (_sc, sch) = channel(&b).await;
        sch.queue_declare(
            "rpc_queue".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        let mut requests = consume(&sch, "rpc_queue", false).await;
        let server = tokio::spawn(async move {
            while let Some(Ok(d)) = requests.next().await {
                let n: u64 = std::str::from_utf8(&d.data).unwrap().parse().unwrap();
                let reply_to = d.properties.reply_to().clone().unwrap();
                assert!(
                    reply_to.as_str().starts_with("amq.rabbitmq.reply-to."),
                    "{reply_to}"
                );
                let props = BasicProperties::default()
                    .with_correlation_id(d.properties.correlation_id().clone().unwrap());
                sch.basic_publish(
                    "".into(),
                    reply_to,
                    BasicPublishOptions::default(),
                    (n * 2).to_string().as_bytes(),
                    props,
                )
                .await
                .unwrap();
                d.ack(BasicAckOptions::default()).await.unwrap();
            }
        });
        // Client side.
        let (_cc, cch) = channel(&b).await;
        let mut replies = consume(&cch, "amq.rabbitmq.reply-to", true).await;
        for i in 0..3u64 {
            cch.basic_publish(
                "".into(),
                "rpc_queue".into(),
                BasicPublishOptions::default(),
                i.to_string().as_bytes(),
                BasicProperties::default()
                    .with_reply_to("amq.rabbitmq.reply-to".into())
                    .with_correlation_id(format!("id{i}").into()),
            )
            .await
            .unwrap();
            let d = next(&mut replies).await;
            assert_eq!(
                d.properties.correlation_id().as_ref().unwrap().as_str(),
                format!("id{i}")
            );
            assert_eq!(d.data, (i * 2).to_string().as_bytes());
        }
        server.abort();
        b.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn direct_reply_to_requires_consumer_and_no_ack() {
    bounded(async {
        let b = start().await;
        let (c, ch) = channel(&b).await;
        // Publishing with reply_to without consuming first -> 406.
        ch.basic_publish(
            "".into(),
            "whatever".into(),
            BasicPublishOptions::default(),
            b"x",
            BasicProperties::default().with_reply_to("amq.rabbitmq.reply-to".into()),
        )
        .await
        .unwrap();
        let err = ch
            .queue_declare(
                "q".into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap_err();
        // Either the 406 itself, or (if it already arrived) a closed channel.
        assert!(
            code(&err) == 406 || matches!(err.kind(), lapin::ErrorKind::InvalidChannelState(..)),
            "{err:?}"
        );
        // Consuming with acks -> 406.
        let ch2 = c.create_channel().await.unwrap();
        let err = ch2
            .basic_consume(
                "amq.rabbitmq.reply-to".into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(code(&err), 406, "{err:?}");
        // Connection still usable.
        let ch3 = c.create_channel().await.unwrap();
        ch3.queue_declare(
            "q".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        b.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn rpc_with_exclusive_reply_queue() {
    bounded(async {
        let b = start().await;
        let (_sc, sch) = channel(&b).await;
        sch.queue_declare(
            "rpc2".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        let mut requests = consume(&sch, "rpc2", false).await;
        let server = tokio::spawn(async move {
            while let Some(Ok(d)) = requests.next().await {
                let reply_to = d.properties.reply_to().clone().unwrap();
                let props = BasicProperties::default()
                    .with_correlation_id(d.properties.correlation_id().clone().unwrap());
                sch.basic_publish(
                    "".into(),
                    reply_to,
                    BasicPublishOptions::default(),
                    &d.data,
                    props,
                )
                .await
                .unwrap();
                d.ack(BasicAckOptions::default()).await.unwrap();
            }
        });
        let (_cc, cch) = channel(&b).await;
        let q = server_named_queue(&cch).await;
        let mut replies = consume(&cch, &q, true).await;
        cch.basic_publish(
            "".into(),
            "rpc2".into(),
            BasicPublishOptions::default(),
            b"ping",
            BasicProperties::default()
                .with_reply_to(q.as_str().into())
                .with_correlation_id("42".into()),
        )
        .await
        .unwrap();
        let d = next(&mut replies).await;
        assert_eq!(d.data, b"ping");
        assert_eq!(
            d.properties.correlation_id().as_ref().unwrap().as_str(),
            "42"
        );
        server.abort();
        b.shutdown().await;
    })
    .await;
}
