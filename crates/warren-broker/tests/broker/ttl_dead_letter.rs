//! Message TTL, queue expiry, max-length and dead-lettering.

use crate::common::*;
use crate::helpers::*;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, ExchangeKind};
use std::time::Duration;

#[tokio::test]
async fn ttl_and_dead_lettering() {
    bounded(async {
        let b = start().await;
        let (_c, ch) = channel(&b).await;
        ch.exchange_declare(
            "dlx".into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.queue_declare(
            "dead".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.queue_bind(
            "dead".into(),
            "dlx".into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        let mut args = FieldTable::default();
        args.insert("x-message-ttl".into(), AMQPValue::LongInt(100));
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(LongString::from("dlx")),
        );
        ch.queue_declare("ttl".into(), QueueDeclareOptions::default(), args)
            .await
            .unwrap();
        publish(&ch, "", "ttl", "expire-me").await;
        let mut dead = consume(&ch, "dead", false).await;
        let d = next(&mut dead).await;
        assert_eq!(d.data, b"expire-me");
        let headers = d.properties.headers().clone().unwrap();
        let deaths = match headers.inner().get("x-death") {
            Some(AMQPValue::FieldArray(a)) => a.as_slice().to_vec(),
            other => panic!("no x-death: {other:?}"),
        };
        let AMQPValue::FieldTable(first) = &deaths[0] else {
            panic!()
        };
        assert_eq!(
            first.inner().get("reason"),
            Some(&AMQPValue::LongString(LongString::from("expired")))
        );
        assert_eq!(
            first.inner().get("queue"),
            Some(&AMQPValue::LongString(LongString::from("ttl")))
        );
        d.ack(BasicAckOptions::default()).await.unwrap();

        // Reject without requeue dead-letters with reason "rejected".
        let mut args = FieldTable::default();
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(LongString::from("")),
        );
        args.insert(
            "x-dead-letter-routing-key".into(),
            AMQPValue::LongString(LongString::from("dead")),
        );
        ch.queue_declare("rej".into(), QueueDeclareOptions::default(), args)
            .await
            .unwrap();
        publish(&ch, "", "rej", "reject-me").await;
        let m = ch
            .basic_get("rej".into(), BasicGetOptions::default())
            .await
            .unwrap()
            .unwrap();
        m.delivery
            .reject(BasicRejectOptions { requeue: false })
            .await
            .unwrap();
        let d = next(&mut dead).await;
        assert_eq!(d.data, b"reject-me");
        assert_eq!(d.routing_key.as_str(), "dead");
        b.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn per_message_expiration_and_max_length() {
    bounded(async {
        let b = start().await;
        let (_c, ch) = channel(&b).await;
        ch.queue_declare(
            "pm".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.basic_publish(
            "".into(),
            "pm".into(),
            BasicPublishOptions::default(),
            b"short",
            BasicProperties::default().with_expiration("50".into()),
        )
        .await
        .unwrap();
        publish(&ch, "", "pm", "keeps").await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(drain(&ch, "pm").await, vec!["keeps"]);

        let mut args = FieldTable::default();
        args.insert("x-max-length".into(), AMQPValue::LongInt(2));
        ch.queue_declare("ml".into(), QueueDeclareOptions::default(), args)
            .await
            .unwrap();
        for m in ["1", "2", "3"] {
            publish(&ch, "", "ml", m).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(drain(&ch, "ml").await, vec!["2", "3"]);
        b.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn zero_ttl_reaches_ready_consumers_only() {
    bounded(async {
        let b = start().await;
        let (_c, ch) = channel(&b).await;
        let mut args = FieldTable::default();
        args.insert("x-message-ttl".into(), AMQPValue::LongInt(0));
        ch.queue_declare("ttl0".into(), QueueDeclareOptions::default(), args)
            .await
            .unwrap();
        // No consumer: expires at once.
        publish(&ch, "", "ttl0", "lost").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(drain(&ch, "ttl0").await.is_empty());
        // A ready consumer gets it.
        let mut cons = consume(&ch, "ttl0", true).await;
        publish(&ch, "", "ttl0", "caught").await;
        assert_eq!(next(&mut cons).await.data, b"caught");
        b.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn expiry_dead_letter_cycle_is_dropped() {
    bounded(async {
        let b = start().await;
        let (_c, ch) = channel(&b).await;
        let mut args = FieldTable::default();
        args.insert("x-message-ttl".into(), AMQPValue::LongInt(30));
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(LongString::from("")),
        );
        args.insert(
            "x-dead-letter-routing-key".into(),
            AMQPValue::LongString(LongString::from("cyc")),
        );
        ch.queue_declare("cyc".into(), QueueDeclareOptions::default(), args)
            .await
            .unwrap();
        publish(&ch, "", "cyc", "loop").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        for _ in 0..5 {
            assert!(drain(&ch, "cyc").await.is_empty());
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
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
