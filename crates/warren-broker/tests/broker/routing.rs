//! Exchanges and routing: direct, fanout, topic, headers, exchange-to-exchange, alternate exchange, mandatory returns, exchange errors.

use crate::common::*;
use crate::helpers::*;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, ExchangeKind};
use std::time::Duration;

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
async fn fanout_publish_subscribe() {
    bounded(async {
        let b = start().await;
        let (_c, ch) = channel(&b).await;
        ch.exchange_declare(
            "logs".into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        let q1 = bind_new_queue(&ch, "logs", &[""], FieldTable::default()).await;
        let q2 = bind_new_queue(&ch, "logs", &[""], FieldTable::default()).await;
        let mut c1 = consume(&ch, &q1, true).await;
        let mut c2 = consume(&ch, &q2, true).await;
        publish(&ch, "logs", "ignored", "hello").await;
        assert_eq!(next(&mut c1).await.data, b"hello");
        assert_eq!(next(&mut c2).await.data, b"hello");
        b.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn direct_routing() {
    bounded(async {
        let b = start().await;
        let (_c, ch) = channel(&b).await;
        ch.exchange_declare(
            "direct_logs".into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        let errors = bind_new_queue(&ch, "direct_logs", &["error"], FieldTable::default()).await;
        let all = bind_new_queue(
            &ch,
            "direct_logs",
            &["info", "warning", "error"],
            FieldTable::default(),
        )
        .await;
        for (k, m) in [
            ("info", "i"),
            ("warning", "w"),
            ("error", "e"),
            ("debug", "d"),
        ] {
            publish(&ch, "direct_logs", k, m).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(drain(&ch, &errors).await, vec!["e"]);
        assert_eq!(drain(&ch, &all).await, vec!["i", "w", "e"]);
        // Unbind and publish again.
        ch.queue_unbind(
            all.as_str().into(),
            "direct_logs".into(),
            "info".into(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        publish(&ch, "direct_logs", "info", "i2").await;
        publish(&ch, "amq.direct", "x", "nothing").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(drain(&ch, &all).await.is_empty());
        b.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn topic_routing() {
    bounded(async {
        let b = start().await;
        let (_c, ch) = channel(&b).await;
        ch.exchange_declare(
            "topic_logs".into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        let q1 = bind_new_queue(&ch, "topic_logs", &["*.orange.*"], FieldTable::default()).await;
        let q2 = bind_new_queue(
            &ch,
            "topic_logs",
            &["*.*.rabbit", "lazy.#"],
            FieldTable::default(),
        )
        .await;
        for k in [
            "quick.orange.rabbit",
            "lazy.orange.elephant",
            "quick.orange.fox",
            "lazy.brown.fox",
            "lazy.pink.rabbit",
            "quick.brown.fox",
            "orange",
            "quick.orange.male.rabbit",
            "lazy.orange.male.rabbit",
        ] {
            publish(&ch, "topic_logs", k, k).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            drain(&ch, &q1).await,
            vec![
                "quick.orange.rabbit",
                "lazy.orange.elephant",
                "quick.orange.fox"
            ]
        );
        assert_eq!(
            drain(&ch, &q2).await,
            vec![
                "quick.orange.rabbit",
                "lazy.orange.elephant",
                "lazy.brown.fox",
                "lazy.pink.rabbit",
                "lazy.orange.male.rabbit"
            ]
        );
        b.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn headers_routing() {
    bounded(async {
        let b = start().await;
        let (_c, ch) = channel(&b).await;
        let mut all = FieldTable::default();
        all.insert(
            "x-match".into(),
            AMQPValue::LongString(LongString::from("all")),
        );
        all.insert(
            "format".into(),
            AMQPValue::LongString(LongString::from("pdf")),
        );
        all.insert(
            "type".into(),
            AMQPValue::LongString(LongString::from("report")),
        );
        let mut any = all.clone();
        any.insert(
            "x-match".into(),
            AMQPValue::LongString(LongString::from("any")),
        );
        let qa = bind_new_queue(&ch, "amq.headers", &[""], all).await;
        let qn = bind_new_queue(&ch, "amq.match", &[""], any.clone()).await;
        let q_any_headers = bind_new_queue(&ch, "amq.headers", &[""], any).await;
        let send = |fmt: &'static str, ty: &'static str, body: &'static str| {
            let ch = ch.clone();
            async move {
                let mut h = FieldTable::default();
                h.insert(
                    "format".into(),
                    AMQPValue::LongString(LongString::from(fmt)),
                );
                h.insert("type".into(), AMQPValue::LongString(LongString::from(ty)));
                ch.basic_publish(
                    "amq.headers".into(),
                    "".into(),
                    BasicPublishOptions::default(),
                    body.as_bytes(),
                    BasicProperties::default().with_headers(h),
                )
                .await
                .unwrap();
            }
        };
        send("pdf", "report", "both").await;
        send("pdf", "log", "one").await;
        send("zip", "log", "none").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(drain(&ch, &qa).await, vec!["both"]);
        assert!(drain(&ch, &qn).await.is_empty());
        assert_eq!(drain(&ch, &q_any_headers).await, vec!["both", "one"]);
        b.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn exchange_errors() {
    bounded(async {
        let b = start().await;
        let c = connect(&b).await;
        let ch = c.create_channel().await.unwrap();
        let e = ch
            .exchange_declare(
                "amq.custom".into(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(code(&e), 403);
        let ch = c.create_channel().await.unwrap();
        ch.exchange_declare(
            "x1".into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        let e = ch
            .exchange_declare(
                "x1".into(),
                ExchangeKind::Fanout,
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(code(&e), 406);
        let ch = c.create_channel().await.unwrap();
        let e = ch
            .exchange_declare(
                "nope".into(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(code(&e), 404);
        let ch = c.create_channel().await.unwrap();
        ch.queue_declare(
            "bq".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        let e = ch
            .queue_bind(
                "bq".into(),
                "nope".into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(code(&e), 404);
        let ch = c.create_channel().await.unwrap();
        let e = ch
            .queue_bind(
                "nope".into(),
                "amq.direct".into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(code(&e), 404);
        // Publishing to a missing exchange closes the channel with 404.
        let ch = c.create_channel().await.unwrap();
        publish(&ch, "missing-exchange", "k", "x").await;
        let e = ch
            .basic_qos(1, BasicQosOptions::default())
            .await
            .unwrap_err();
        // Either the 404 itself, or (if it already arrived) a closed channel.
        assert!(
            code(&e) == 404 || matches!(e.kind(), lapin::ErrorKind::InvalidChannelState(..)),
            "{e:?}"
        );
        // Redeclaring amq.direct with the same type is fine, deleting it is not.
        let ch = c.create_channel().await.unwrap();
        ch.exchange_declare(
            "amq.direct".into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.exchange_delete("x1".into(), ExchangeDeleteOptions::default())
            .await
            .unwrap();
        b.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn exchange_to_exchange_bindings() {
    bounded(async {
        let b = start().await;
        let (_c, ch) = channel(&b).await;
        ch.exchange_declare(
            "src".into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.exchange_declare(
            "dst".into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.exchange_bind(
            "dst".into(),
            "src".into(),
            "a.*".into(),
            ExchangeBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        // A cycle must not loop forever.
        ch.exchange_bind(
            "src".into(),
            "dst".into(),
            "".into(),
            ExchangeBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        let q = bind_new_queue(&ch, "dst", &[""], FieldTable::default()).await;
        publish(&ch, "src", "a.b", "yes").await;
        publish(&ch, "src", "b.b", "no").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(drain(&ch, &q).await, vec!["yes"]);
        ch.exchange_unbind(
            "dst".into(),
            "src".into(),
            "a.*".into(),
            ExchangeUnbindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        publish(&ch, "src", "a.b", "gone").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(drain(&ch, &q).await.is_empty());
        b.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn alternate_exchange_takes_unroutable_messages() {
    bounded(async {
        let b = start().await;
        let (_c, ch) = channel(&b).await;
        ch.exchange_declare(
            "ae".into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        let mut args = FieldTable::default();
        args.insert(
            "alternate-exchange".into(),
            AMQPValue::LongString(LongString::from("ae")),
        );
        ch.exchange_declare(
            "main".into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            args,
        )
        .await
        .unwrap();
        let routed = bind_new_queue(&ch, "main", &["k"], FieldTable::default()).await;
        let unrouted = bind_new_queue(&ch, "ae", &[""], FieldTable::default()).await;
        publish(&ch, "main", "k", "routed").await;
        publish(&ch, "main", "other", "fallback").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(drain(&ch, &routed).await, vec!["routed"]);
        assert_eq!(drain(&ch, &unrouted).await, vec!["fallback"]);
        b.shutdown().await;
    })
    .await;
}
