//! The amqprs client works unchanged: handshake, publish/consume with
//! properties, and RPC over direct reply-to.

mod common;

use amqprs::channel::{BasicConsumeArguments, BasicPublishArguments, QueueDeclareArguments};
use amqprs::connection::{Connection, OpenConnectionArguments};
use amqprs::BasicProperties;
use common::*;
use std::time::Duration;

#[tokio::test]
async fn amqprs_publish_consume_and_direct_reply_to() {
    bounded(async {
        let b = start().await;
        let addr = b.local_addr();
        let conn = Connection::open(&OpenConnectionArguments::new(
            &addr.ip().to_string(),
            addr.port(),
            "guest",
            "guest",
        ))
        .await
        .unwrap();
        let ch = conn.open_channel(None).await.unwrap();
        let (q, _, _) = ch
            .queue_declare(QueueDeclareArguments::new("amqprs_q"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(q, "amqprs_q");
        ch.basic_publish(
            BasicProperties::default()
                .with_correlation_id("c-1")
                .with_content_type("text/plain")
                .finish(),
            b"hello amqprs".to_vec(),
            BasicPublishArguments::new("", "amqprs_q"),
        )
        .await
        .unwrap();
        let (_tag, mut rx) = ch
            .basic_consume_rx(
                BasicConsumeArguments::new("amqprs_q", "")
                    .auto_ack(true)
                    .finish(),
            )
            .await
            .unwrap();
        let m = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m.content.as_deref(), Some(&b"hello amqprs"[..]));
        let props = m.basic_properties.unwrap();
        assert_eq!(props.correlation_id().map(String::as_str), Some("c-1"));
        assert_eq!(props.content_type().map(String::as_str), Some("text/plain"));

        // Direct reply-to: the consumer's replies come back through the pseudo-queue.
        let (_rtag, mut replies) = ch
            .basic_consume_rx(
                BasicConsumeArguments::new("amq.rabbitmq.reply-to", "")
                    .auto_ack(true)
                    .finish(),
            )
            .await
            .unwrap();
        ch.basic_publish(
            BasicProperties::default()
                .with_reply_to("amq.rabbitmq.reply-to")
                .with_correlation_id("rpc-1")
                .finish(),
            b"ping".to_vec(),
            BasicPublishArguments::new("", "amqprs_q"),
        )
        .await
        .unwrap();
        let req = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        let reply_to = req.basic_properties.unwrap().reply_to().cloned().unwrap();
        assert!(reply_to.starts_with("amq.rabbitmq.reply-to."), "{reply_to}");
        ch.basic_publish(
            BasicProperties::default()
                .with_correlation_id("rpc-1")
                .finish(),
            b"pong".to_vec(),
            BasicPublishArguments::new("", &reply_to),
        )
        .await
        .unwrap();
        let rep = tokio::time::timeout(Duration::from_secs(5), replies.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rep.content.as_deref(), Some(&b"pong"[..]));
        ch.close().await.unwrap();
        conn.close().await.unwrap();
        b.shutdown().await;
    })
    .await;
}
