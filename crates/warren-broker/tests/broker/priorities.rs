//! Priority queues, consumer priorities and single active consumer.

use crate::common::*;
use crate::helpers::*;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::BasicProperties;
use std::time::Duration;

#[tokio::test]
async fn priority_queue_and_argument_validation() {
    bounded(async {
        let b = start().await;
        let (c, ch) = channel(&b).await;
        let mut args = FieldTable::default();
        args.insert("x-max-priority".into(), AMQPValue::ShortShortUInt(10));
        ch.queue_declare("prio".into(), QueueDeclareOptions::default(), args)
            .await
            .unwrap();
        for (p, body) in [
            (Some(1), "1"),
            (Some(5), "5a"),
            (None, "none"),
            (Some(9), "9"),
            (Some(5), "5b"),
            (Some(200), "200"),
        ] {
            let props = match p {
                Some(p) => BasicProperties::default().with_priority(p),
                None => BasicProperties::default(),
            };
            ch.basic_publish(
                "".into(),
                "prio".into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                props,
            )
            .await
            .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            drain(&ch, "prio").await,
            vec!["200", "9", "5a", "5b", "1", "none"]
        );

        let mut bad = FieldTable::default();
        bad.insert(
            "x-dead-letter-routing-key".into(),
            AMQPValue::LongString(LongString::from("k")),
        );
        let e = ch
            .queue_declare("bad".into(), QueueDeclareOptions::default(), bad)
            .await
            .unwrap_err();
        assert_eq!(code(&e), 406);
        let ch = c.create_channel().await.unwrap();
        let mut bad = FieldTable::default();
        bad.insert(
            "x-message-ttl".into(),
            AMQPValue::LongString(LongString::from("1000")),
        );
        let e = ch
            .queue_declare("bad".into(), QueueDeclareOptions::default(), bad)
            .await
            .unwrap_err();
        assert_eq!(code(&e), 406);
        b.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn consumer_priorities_and_single_active_consumer() {
    bounded(async {
        let b = start().await;
        let (_c, ch) = channel(&b).await;
        ch.queue_declare(
            "cp".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        let mut hi_args = FieldTable::default();
        hi_args.insert("x-priority".into(), AMQPValue::LongInt(10));
        let mut low = consume(&ch, "cp", true).await;
        let mut high = ch
            .basic_consume(
                "cp".into(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                hi_args,
            )
            .await
            .unwrap();
        for i in 0..3 {
            publish(&ch, "", "cp", &format!("m{i}")).await;
        }
        for i in 0..3 {
            assert_eq!(next(&mut high).await.data, format!("m{i}").as_bytes());
        }
        nothing(&mut low, 200).await;

        let mut args = FieldTable::default();
        args.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
        ch.queue_declare("sac".into(), QueueDeclareOptions::default(), args)
            .await
            .unwrap();
        let mut first = consume(&ch, "sac", true).await;
        let mut second = consume(&ch, "sac", true).await;
        for i in 0..3 {
            publish(&ch, "", "sac", &format!("s{i}")).await;
        }
        for i in 0..3 {
            assert_eq!(next(&mut first).await.data, format!("s{i}").as_bytes());
        }
        nothing(&mut second, 200).await;
        ch.basic_cancel(first.tag(), BasicCancelOptions::default())
            .await
            .unwrap();
        publish(&ch, "", "sac", "after").await;
        assert_eq!(next(&mut second).await.data, b"after");
        b.shutdown().await;
    })
    .await;
}
