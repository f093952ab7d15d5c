//! Direct reply-to (`amq.rabbitmq.reply-to`) and RPC with an exclusive reply queue.

use crate::common::*;
use futures_util::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::BasicProperties;

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
