//! Publisher confirms (with reject-publish overflow nacks) and transactions.

use crate::common::*;
use crate::helpers::*;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::BasicProperties;

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

/// As RabbitMQ: acks that are ready together go out as one basic.ack with
/// `multiple = true`, and together they cover every publish exactly up to the last.
#[tokio::test]
async fn a_burst_of_confirmed_publishes_is_acked_with_multiple() {
    use crate::common::raw::{self, Raw};
    use amq_protocol::frame::AMQPFrame;
    use amq_protocol::protocol::{basic, confirm, queue, AMQPClass};
    const BURST: u64 = 500;
    bounded(async {
        let b = start().await;
        let mut r = Raw::connect(b.local_addr(), 131_072).await;
        r.open_channel(1).await;
        r.method(1, raw::declare(raw::queue_declare("confirm-burst")))
            .await;
        assert!(matches!(
            r.recv().await,
            Some(AMQPFrame::Method(
                1,
                AMQPClass::Queue(queue::AMQPMethod::DeclareOk(_))
            ))
        ));
        r.method(
            1,
            AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select {
                nowait: false,
            })),
        )
        .await;
        assert!(matches!(
            r.recv().await,
            Some(AMQPFrame::Method(
                1,
                AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(_))
            ))
        ));
        let mut burst = Vec::new();
        for _ in 0..BURST {
            burst.extend(raw::publish(1, "confirm-burst", &[b'x'; 16]));
        }
        r.send_bytes(&burst).await;
        let (mut covered, mut frames, mut multiples) = (0u64, 0u64, 0u64);
        while covered < BURST && frames < BURST {
            match r.recv().await {
                Some(AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Ack(a)))) => {
                    assert!(a.delivery_tag > covered, "acks only move forward");
                    assert!(
                        a.multiple || a.delivery_tag == covered + 1,
                        "a single ack names the next publish: {} after {covered}",
                        a.delivery_tag
                    );
                    covered = a.delivery_tag;
                    frames += 1;
                    multiples += u64::from(a.multiple);
                }
                other => panic!("expected basic.ack, got {other:?}"),
            }
        }
        println!("{BURST} publishes confirmed by {frames} acks ({multiples} with multiple)");
        assert_eq!(covered, BURST);
        assert!(multiples > 0, "no ack had multiple = true");
        r.method(
            1,
            AMQPClass::Queue(queue::AMQPMethod::Delete(queue::Delete {
                queue: "confirm-burst".into(),
                if_unused: false,
                if_empty: false,
                nowait: false,
            })),
        )
        .await;
        b.shutdown().await;
    })
    .await;
}
