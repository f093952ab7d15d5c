//! The memory high watermark: past `memory_limit`, a publishing connection is told
//! `connection.blocked` and is no longer read from, while a consuming connection goes
//! on; once consumers bring the held bytes back under the limit, the publisher is told
//! `connection.unblocked` and its publishes go through again.

mod common;

use common::*;
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use std::time::Duration;
use warren_broker::{Broker, BrokerHandle, Counting, MemoryLimit};

const LIMIT_BYTES: usize = 64 * 1024;
const BODY: usize = 16 * 1024;

/// A broker whose limit counts only the messages it holds (this test process's RSS,
/// clients included, is well over 64 KiB).
async fn start_limited() -> BrokerHandle {
    Broker::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .memory_limit(LIMIT_BYTES)
        .memory_counting(Counting::Messages)
        .start()
        .await
        .unwrap()
}

/// Publishes to `queue` on a confirm-mode channel and waits for the confirm.
async fn publish_confirmed(ch: &lapin::Channel, queue: &str, body: &[u8]) {
    let confirm = ch
        .basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirm.is_ack(), "publish to {queue} confirmed");
}

/// Waits (bounded) until `cond` holds.
async fn eventually(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..200 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}

#[tokio::test]
async fn publishers_are_blocked_past_the_watermark_and_unblocked_when_consumers_drain() {
    bounded(async {
        let b = start_limited().await;
        let publisher = Connection::connect(&b.amqp_url(), ConnectionProperties::default())
            .await
            .unwrap();
        let pch = publisher.create_channel().await.unwrap();
        pch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        pch.queue_declare("held".into(), Default::default(), FieldTable::default())
            .await
            .unwrap();
        let (_consumer, cch) = channel(&b).await;

        // Four 16 KiB messages (with their per-message overhead, about 600 bytes)
        // exceed 64 KiB: the fourth raises the alarm.
        for _ in 0..4 {
            publish_confirmed(&pch, "held", &[7u8; BODY]).await;
        }
        eventually("connection.blocked reaches the publisher", || {
            publisher.status().blocked()
        })
        .await;

        // Blocked: a further publish is held (lapin holds it, and the broker would not
        // read it), so its confirm does not come while the alarm is on.
        let late_ch = pch.clone();
        let mut late = tokio::spawn(async move {
            late_ch
                .basic_publish(
                    "".into(),
                    "held".into(),
                    BasicPublishOptions::default(),
                    b"late",
                    BasicProperties::default(),
                )
                .await?
                .await
        });
        assert!(
            tokio::time::timeout(Duration::from_millis(300), &mut late)
                .await
                .is_err(),
            "a publish was confirmed while the alarm was on"
        );

        // Another connection still consumes; draining clears the alarm.
        let mut drained = Vec::new();
        while drained
            .iter()
            .filter(|b: &&Vec<u8>| b.len() == BODY)
            .count()
            < 4
        {
            let m = cch
                .basic_get("held".into(), BasicGetOptions::default())
                .await
                .unwrap()
                .expect("the held messages are there");
            m.delivery.ack(BasicAckOptions::default()).await.unwrap();
            drained.push(m.delivery.data);
            assert!(drained.len() <= 5, "bounded");
        }
        eventually("connection.unblocked reaches the publisher", || {
            !publisher.status().blocked()
        })
        .await;

        // The held publish goes out now and is confirmed; it is in the queue (or was
        // already drained above, once the broker was under the limit again).
        tokio::time::timeout(Duration::from_secs(5), late)
            .await
            .expect("the publish held during the alarm is confirmed")
            .unwrap()
            .unwrap();
        if drained.len() == 4 {
            let m = cch
                .basic_get("held".into(), BasicGetOptions { no_ack: true })
                .await
                .unwrap()
                .expect("the late message arrived");
            drained.push(m.delivery.data);
        }
        assert_eq!(drained.last().map(|b| &b[..]), Some(&b"late"[..]));
        b.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn without_a_limit_nothing_blocks() {
    bounded(async {
        let b = start().await;
        let (c, ch) = channel(&b).await;
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        ch.queue_declare("q".into(), Default::default(), FieldTable::default())
            .await
            .unwrap();
        for _ in 0..64 {
            publish_confirmed(&ch, "q", &[1u8; BODY]).await;
        }
        assert!(!c.status().blocked());
        b.shutdown().await;
    })
    .await;
}

/// Publishes one message on channel 1 as raw frames (method, header, body in one write).
async fn raw_publish(raw: &mut raw::Raw, body: &[u8]) {
    use amq_protocol::frame::{AMQPContentHeader, AMQPFrame};
    use amq_protocol::protocol::{basic, AMQPClass};
    let mut out = raw::encode(&AMQPFrame::Method(
        1,
        AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: "".into(),
            routing_key: "held".into(),
            mandatory: false,
            immediate: false,
        })),
    ));
    out.extend(raw::encode(&AMQPFrame::Header(
        1,
        AMQPContentHeader {
            class_id: 60,
            body_size: body.len() as u64,
            properties: basic::AMQPProperties::default(),
        },
    )));
    out.extend(raw::encode(&AMQPFrame::Body(1, body.to_vec())));
    raw.send_bytes(&out).await;
}

/// The next publisher confirm's delivery tag, if one comes within `wait`.
async fn next_ack(raw: &mut raw::Raw, wait: Duration) -> Option<u64> {
    use amq_protocol::frame::AMQPFrame;
    use amq_protocol::protocol::{basic, AMQPClass};
    tokio::time::timeout(wait, async {
        loop {
            match raw.recv().await {
                Some(AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Ack(a)))) => {
                    return Some(a.delivery_tag);
                }
                Some(AMQPFrame::Heartbeat) => continue,
                Some(other) => panic!("unexpected frame {other:?}"),
                None => return None,
            }
        }
    })
    .await
    .ok()
    .flatten()
}

/// A client that ignores `connection.blocked` (here: one that never announced the
/// capability) keeps sending; the broker stops reading it, so nothing it sends while
/// the alarm is on is taken until consumers drain the held bytes.
#[tokio::test]
async fn the_broker_stops_reading_a_publisher_that_ignores_the_alarm() {
    use amq_protocol::protocol::{confirm, AMQPClass};
    bounded(async {
        let b = start_limited().await;
        let mut raw = raw::Raw::connect(b.local_addr(), 131_072).await;
        raw.open_channel(1).await;
        raw.method(
            1,
            AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select {
                nowait: false,
            })),
        )
        .await;
        raw.recv().await.expect("confirm.select-ok");
        raw.method(1, raw::declare(raw::queue_declare("held")))
            .await;
        raw.recv().await.expect("queue.declare-ok");

        // Four 16 KiB messages raise the alarm; the fifth is the publish that finds the
        // alarm on: it is taken (as RabbitMQ takes the frame that blocks a connection).
        for tag in 1..=5 {
            raw_publish(&mut raw, &[7u8; BODY]).await;
            assert_eq!(next_ack(&mut raw, Duration::from_secs(3)).await, Some(tag));
        }
        // From now on the broker does not read this connection.
        raw_publish(&mut raw, b"late").await;
        assert_eq!(next_ack(&mut raw, Duration::from_millis(300)).await, None);

        // A consuming connection is not blocked; draining clears the alarm.
        let (_c, ch) = channel(&b).await;
        // (Once under the limit the broker reads the late publish again, so the drain
        // may already find it.)
        let mut drained = Vec::new();
        while let Some(m) = ch
            .basic_get("held".into(), BasicGetOptions::default())
            .await
            .unwrap()
        {
            m.delivery.ack(BasicAckOptions::default()).await.unwrap();
            drained.push(m.delivery.data.len());
            assert!(drained.len() <= 6, "bounded");
        }
        assert_eq!(drained.iter().filter(|&&n| n == BODY).count(), 5);
        assert_eq!(next_ack(&mut raw, Duration::from_secs(3)).await, Some(6));
        b.shutdown().await;
    })
    .await;
}

/// `/proc/meminfo`'s MemTotal, capped by the cgroup memory limits that apply: the
/// roots of both hierarchies (a container's own) and this process's cgroup.
fn machine_memory() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").expect("/proc/meminfo");
    let total: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .map(|kb: u64| kb * 1024)
        .expect("MemTotal in kB");
    let mut files = vec![
        "/sys/fs/cgroup/memory.max".to_owned(),
        "/sys/fs/cgroup/memory/memory.limit_in_bytes".to_owned(),
    ];
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    for line in own.lines() {
        if let Some(path) = line.strip_prefix("0::") {
            files.push(format!("/sys/fs/cgroup{path}/memory.max"));
        } else if let Some((_, path)) = line.split_once(":memory:") {
            files.push(format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes"));
        }
    }
    files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok()?.trim().parse::<u64>().ok())
        .filter(|&n| n > 0 && n < 1 << 62)
        .fold(total, u64::min)
}

/// With no memory option, the bound is RabbitMQ's default: 0.4 of the machine's
/// memory; a fraction scales it, `Unlimited` removes it, a fraction above 1 is refused.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_default_bound_is_four_tenths_of_the_machine() {
    let builder = || Broker::builder().listen("127.0.0.1:0".parse().unwrap());
    bounded(async {
        let total = machine_memory();
        let b = start().await;
        let limit = b.memory_limit().expect("a limit by default");
        println!("default memory limit: {limit} bytes = 0.4 x {total}");
        assert_eq!(limit, (total as f64 * 0.4).round() as usize);
        b.shutdown().await;

        let half = builder()
            .memory_watermark(MemoryLimit::Relative(0.5))
            .start()
            .await
            .unwrap();
        assert_eq!(
            half.memory_limit(),
            Some((total as f64 * 0.5).round() as usize)
        );
        half.shutdown().await;

        let off = builder()
            .memory_watermark(MemoryLimit::Unlimited)
            .start()
            .await
            .unwrap();
        assert_eq!(off.memory_limit(), None);
        off.shutdown().await;

        let bad = builder()
            .memory_watermark(MemoryLimit::Relative(1.5))
            .start()
            .await;
        assert!(bad.is_err(), "a fraction above 1 is refused");
    })
    .await;
}
