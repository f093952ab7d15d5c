//! Queue declare / redeclare / purge / delete, exclusivity, auto-delete and consumer cancel notification.

use crate::common::*;
use crate::helpers::*;
use lapin::options::*;
use lapin::types::FieldTable;
use std::time::Duration;

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
