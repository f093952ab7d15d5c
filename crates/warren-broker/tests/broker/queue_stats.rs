//! Per-queue `message_stats` (what the management API and the web page show): each
//! queue counts its own publishes, deliveries and gets with and without ack,
//! redeliveries and acks, as RabbitMQ's queue stats do.

use crate::common::*;
use crate::helpers::publish;
use lapin::options::*;
use std::time::Duration;
use warren_broker::stats::{MessageTotals, QueueInfo};

fn queue_totals(b: &warren_broker::BrokerHandle, name: &str) -> MessageTotals {
    let queues: Vec<QueueInfo> = b.stats().queues();
    queues
        .into_iter()
        .find(|q| q.name == name)
        .map(|q| q.message_stats.totals)
        .unwrap_or_else(|| panic!("queue {name} is listed"))
}

/// Acks carry no reply: wait (bounded) until the broker has counted `acks`.
async fn totals_once_acked(
    b: &warren_broker::BrokerHandle,
    name: &str,
    acks: u64,
) -> MessageTotals {
    for _ in 0..200 {
        let t = queue_totals(b, name);
        if t.ack >= acks {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    queue_totals(b, name)
}

#[tokio::test]
async fn a_queue_counts_its_own_deliveries_gets_redeliveries_and_acks() {
    bounded(async {
        let b = start().await;
        let (_c, ch) = channel(&b).await;
        let q = server_named_queue(&ch).await;
        let other = server_named_queue(&ch).await;
        for i in 0..4 {
            publish(&ch, "", &q, &format!("m{i}")).await;
        }
        publish(&ch, "", &other, "elsewhere").await;

        let get = |no_ack| BasicGetOptions { no_ack };
        let first = ch.basic_get(q.as_str().into(), get(false)).await.unwrap();
        let first = first.expect("a message");
        first
            .delivery
            .nack(BasicNackOptions {
                requeue: true,
                ..Default::default()
            })
            .await
            .unwrap();
        let again = ch.basic_get(q.as_str().into(), get(false)).await.unwrap();
        let again = again.expect("the requeued message");
        assert!(again.delivery.redelivered);
        again
            .delivery
            .ack(BasicAckOptions::default())
            .await
            .unwrap();
        let no_ack = ch.basic_get(q.as_str().into(), get(true)).await.unwrap();
        assert!(no_ack.is_some());

        let mut consumer = consume(&ch, &q, false).await;
        for _ in 0..2 {
            next(&mut consumer)
                .await
                .ack(BasicAckOptions::default())
                .await
                .unwrap();
        }

        let t = totals_once_acked(&b, &q, 3).await;
        assert_eq!(
            (t.publish, t.get, t.get_no_ack, t.deliver, t.deliver_no_ack),
            (4, 2, 1, 2, 0),
            "{t:?}"
        );
        assert_eq!((t.redeliver, t.ack, t.deliver_get()), (1, 3, 5), "{t:?}");
        let o = queue_totals(&b, &other);
        assert_eq!((o.publish, o.deliver_get(), o.ack), (1, 0, 0), "{o:?}");
        b.shutdown().await;
    })
    .await;
}
