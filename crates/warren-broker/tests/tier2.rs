//! Tier 2: exchanges and routing, queue management, exclusivity,
//! auto-delete, cancel notification, confirms, TTL, max-length, DLX.

mod common;

use common::*;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, ExchangeKind};
use std::time::Duration;

async fn bind_new_queue(
    ch: &lapin::Channel,
    exchange: &str,
    keys: &[&str],
    args: FieldTable,
) -> String {
    let q = server_named_queue(ch).await;
    for k in keys {
        ch.queue_bind(
            q.as_str().into(),
            exchange.into(),
            (*k).into(),
            QueueBindOptions::default(),
            args.clone(),
        )
        .await
        .unwrap();
    }
    q
}

async fn publish(ch: &lapin::Channel, exchange: &str, key: &str, body: &str) {
    ch.basic_publish(
        exchange.into(),
        key.into(),
        BasicPublishOptions::default(),
        body.as_bytes(),
        BasicProperties::default(),
    )
    .await
    .unwrap();
}

async fn drain(ch: &lapin::Channel, q: &str) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(m) = ch
        .basic_get(q.into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        out.push(String::from_utf8(m.delivery.data).unwrap());
    }
    out
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
async fn queue_redeclare_purge_delete() {
    bounded(async {
        let b = start().await;
        let c = connect(&b).await;
        let ch = c.create_channel().await.unwrap();
        ch.queue_declare(
            "pq".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        let e = ch
            .queue_declare(
                "pq".into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(code(&e), 406);
        let ch = c.create_channel().await.unwrap();
        for _ in 0..3 {
            publish(&ch, "", "pq", "m").await;
        }
        let q = ch
            .queue_declare(
                "pq".into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        assert_eq!(q.message_count(), 3);
        let e = ch
            .queue_delete(
                "pq".into(),
                QueueDeleteOptions {
                    if_empty: true,
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert_eq!(code(&e), 406);
        let ch = c.create_channel().await.unwrap();
        assert_eq!(
            ch.queue_purge("pq".into(), QueuePurgeOptions::default())
                .await
                .unwrap(),
            3
        );
        publish(&ch, "", "pq", "m").await;
        let _cons = consume(&ch, "pq", false).await;
        let e = ch
            .queue_delete(
                "pq".into(),
                QueueDeleteOptions {
                    if_unused: true,
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert_eq!(code(&e), 406);
        let ch = c.create_channel().await.unwrap();
        publish(&ch, "", "pq", "m2").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            ch.queue_delete("pq".into(), QueueDeleteOptions::default())
                .await
                .unwrap(),
            2
        );
        b.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn exclusive_queue_locking() {
    bounded(async {
        let b = start().await;
        let (c1, ch1) = channel(&b).await;
        ch1.queue_declare(
            "ex".into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
        let (_c2, ch2) = channel(&b).await;
        let e = ch2
            .basic_consume(
                "ex".into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(code(&e), 405);
        c1.close(200, "bye".into()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Owner gone: queue deleted, so it can be declared anew.
        let ch2 = _c2.create_channel().await.unwrap();
        let e = ch2
            .queue_declare(
                "ex".into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(code(&e), 404);
        b.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn exclusive_consumer_refused() {
    bounded(async {
        let b = start().await;
        let (c, ch) = channel(&b).await;
        ch.queue_declare(
            "ec".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        let _first = ch
            .basic_consume(
                "ec".into(),
                "".into(),
                BasicConsumeOptions {
                    exclusive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let ch2 = c.create_channel().await.unwrap();
        let e = ch2
            .basic_consume(
                "ec".into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(code(&e), 403);
        b.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn auto_delete_and_cancel_notification() {
    bounded(async {
        let b = start().await;
        let (_c, ch) = channel(&b).await;
        ch.queue_declare(
            "ad".into(),
            QueueDeclareOptions {
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
        let cons = consume(&ch, "ad", true).await;
        ch.basic_cancel(cons.tag(), BasicCancelOptions::default())
            .await
            .unwrap();
        let e = ch
            .queue_declare(
                "ad".into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(code(&e), 404);

        // Deleting a queue cancels its consumers (consumer_cancel_notify).
        let (_c2, ch2) = channel(&b).await;
        ch2.queue_declare(
            "cq".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        let mut cons = consume(&ch2, "cq", true).await;
        let (_c3, ch3) = channel(&b).await;
        ch3.queue_delete("cq".into(), QueueDeleteOptions::default())
            .await
            .unwrap();
        use futures_util::StreamExt;
        let end = tokio::time::timeout(Duration::from_secs(5), cons.next())
            .await
            .unwrap();
        assert!(
            end.is_none(),
            "consumer should end after cancel notification"
        );
        b.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn publisher_confirms() {
    bounded(async {
        let b = start().await;
        let (_c, ch) = channel(&b).await;
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        ch.queue_declare(
            "cf".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        let mut confirms = Vec::new();
        for i in 0..50 {
            confirms.push(
                ch.basic_publish(
                    "".into(),
                    "cf".into(),
                    BasicPublishOptions::default(),
                    format!("{i}").as_bytes(),
                    BasicProperties::default(),
                )
                .await
                .unwrap(),
            );
        }
        for c in confirms {
            assert!(c.await.unwrap().is_ack());
        }
        ch.wait_for_confirms().await.unwrap();
        let q = ch
            .queue_declare(
                "cf".into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        assert_eq!(q.message_count(), 50);
        b.shutdown().await;
    })
    .await;
}

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
async fn reject_publish_overflow_nacks() {
    bounded(async {
        let b = start().await;
        let (_c, ch) = channel(&b).await;
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        let mut args = FieldTable::default();
        args.insert("x-max-length".into(), AMQPValue::LongInt(1));
        args.insert(
            "x-overflow".into(),
            AMQPValue::LongString(LongString::from("reject-publish")),
        );
        ch.queue_declare("full".into(), QueueDeclareOptions::default(), args)
            .await
            .unwrap();
        let first = ch
            .basic_publish(
                "".into(),
                "full".into(),
                BasicPublishOptions::default(),
                b"1",
                BasicProperties::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(first.is_ack());
        let second = ch
            .basic_publish(
                "".into(),
                "full".into(),
                BasicPublishOptions::default(),
                b"2",
                BasicProperties::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(second.is_nack());
        assert_eq!(drain(&ch, "full").await, vec!["1"]);
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
async fn transactions_commit_and_rollback() {
    bounded(async {
        let b = start().await;
        let (_c, ch) = channel(&b).await;
        let (_c2, obs) = channel(&b).await;
        ch.queue_declare(
            "txq".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.tx_select().await.unwrap();
        publish(&ch, "", "txq", "one").await;
        publish(&ch, "", "txq", "two").await;
        let count = |obs: lapin::Channel| async move {
            obs.queue_declare(
                "txq".into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap()
            .message_count()
        };
        assert_eq!(count(obs.clone()).await, 0);
        ch.tx_commit().await.unwrap();
        assert_eq!(count(obs.clone()).await, 2);
        publish(&ch, "", "txq", "three").await;
        ch.tx_rollback().await.unwrap();
        assert_eq!(count(obs.clone()).await, 2);
        // An ack inside a transaction only takes effect at commit.
        let m = ch
            .basic_get("txq".into(), BasicGetOptions::default())
            .await
            .unwrap()
            .unwrap();
        m.delivery.ack(BasicAckOptions::default()).await.unwrap();
        ch.tx_rollback().await.unwrap();
        let m2 = ch
            .basic_get("txq".into(), BasicGetOptions::default())
            .await
            .unwrap()
            .unwrap();
        m2.delivery.ack(BasicAckOptions::default()).await.unwrap();
        m.delivery.ack(BasicAckOptions::default()).await.unwrap();
        ch.tx_commit().await.unwrap();
        assert_eq!(count(obs.clone()).await, 0);
        // Confirm mode and tx mode are exclusive.
        let e = ch
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap_err();
        assert_eq!(code(&e), 406);
        b.shutdown().await;
    })
    .await;
}

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
