//! The embedded broker on a full disk, tested on a real 8 MiB tmpfs that each test
//! mounts (and unmounts, also on failure): a `warren broker` process with its data
//! directory there fills it with confirmed 4 KiB persistent messages. Every publish is
//! either confirmed and then recovered after a restart (a clean stop or `kill -9`), or
//! nacked; acked messages do not come back; a restart on a still-full disk comes up,
//! serves and raises the disk alarm without destroying the log; and the disk alarm
//! blocks publishers below `--disk-free-limit` and unblocks them once space is freed.
//!
//! Mounting needs root (or CAP_SYS_ADMIN); without it these tests fail with a message
//! saying so.

mod common;
use common::broker_process;
use common::figures;
use common::tmpfs;

use std::collections::{BTreeSet, VecDeque};
use std::ffi::OsStr;
use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

use broker_process::BrokerProcess;
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::PublisherConfirm;
use lapin::{BasicProperties, Channel};
use tmpfs::Tmpfs;

const QUEUE: &str = "full-disk";
const BODY: usize = 4096;

/// `warren broker` with its data in `dir`, `--disk-free-limit` `limit`, and its
/// warnings appended to `log` (shown when it does not come up).
fn try_start(dir: &Path, limit: &str, log: &Path) -> Result<BrokerProcess, String> {
    let stderr = File::options()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| e.to_string())?;
    let mut command = BrokerProcess::command([
        OsStr::new("--data-dir"),
        dir.as_os_str(),
        OsStr::new("--disk-free-limit"),
        OsStr::new(limit),
    ]);
    command.env("WARREN_LOG", "warn").stderr(stderr);
    BrokerProcess::spawn(command).map_err(|e| {
        let log = std::fs::read_to_string(log).unwrap_or_default();
        format!("{e}; stderr:\n{log}")
    })
}

/// [`try_start`], or a panic saying why not.
fn start(dir: &Path, limit: &str, log: &Path) -> BrokerProcess {
    try_start(dir, limit, log).unwrap_or_else(|e| panic!("{e}"))
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..Default::default()
    }
}

fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2)
}

/// A 4 KiB body that starts with its id.
fn body(id: u32) -> Vec<u8> {
    let mut b = format!("m{id:07}").into_bytes();
    b.resize(BODY, b'.');
    b
}

fn id_of(body: &[u8]) -> Option<u32> {
    std::str::from_utf8(body.get(1..8)?).ok()?.parse().ok()
}

/// Confirmed and nacked message ids.
#[derive(Default, Debug)]
struct Outcome {
    confirmed: BTreeSet<u32>,
    nacked: BTreeSet<u32>,
}

async fn settle(out: &mut Outcome, id: u32, confirm: PublisherConfirm) {
    match tokio::time::timeout(Duration::from_secs(20), confirm).await {
        Ok(Ok(c)) if c.is_ack() => {
            out.confirmed.insert(id);
        }
        Ok(Ok(c)) if c.is_nack() => {
            out.nacked.insert(id);
            // A publisher backs off before it publishes again.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        other => panic!("publish {id}: no confirm or nack: {other:?}"),
    }
}

/// Publishes ids `from..` with up to 32 confirms outstanding until `enough` says so or
/// `max` publishes or 60 s; returns the outcome and the next id.
async fn publish_until(
    ch: &Channel,
    from: u32,
    max: u32,
    enough: impl Fn(&Outcome) -> bool,
) -> (Outcome, u32) {
    let mut out = Outcome::default();
    let mut window: VecDeque<(u32, PublisherConfirm)> = VecDeque::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut id = from;
    while id < from + max && Instant::now() < deadline && !enough(&out) {
        let confirm = ch
            .basic_publish(
                "".into(),
                QUEUE.into(),
                BasicPublishOptions::default(),
                &body(id),
                persistent(),
            )
            .await
            .expect("publish sent");
        window.push_back((id, confirm));
        id += 1;
        if window.len() >= 32 {
            if let Some((i, c)) = window.pop_front() {
                settle(&mut out, i, c).await;
            }
        }
    }
    while let Some((i, c)) = window.pop_front() {
        settle(&mut out, i, c).await;
    }
    (out, id)
}

/// Takes every message of `queue` with basic.get (left unacked; requeued when the
/// connection closes) and returns their ids.
async fn drain(b: &BrokerProcess, queue: &str) -> Vec<u32> {
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare(queue.into(), durable(), FieldTable::default())
        .await
        .unwrap();
    let mut ids = Vec::new();
    while let Some(msg) = ch
        .basic_get(queue.into(), BasicGetOptions::default())
        .await
        .unwrap()
    {
        ids.push(id_of(&msg.delivery.data).expect("a body with an id"));
        assert!(ids.len() <= 10_000, "bounded");
    }
    conn.close(200, "done".into()).await.unwrap();
    ids
}

/// Waits (bounded) until `cond` holds.
async fn eventually(what: &str, secs: u64, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out after {secs} s waiting for: {what}");
}

#[derive(Clone, Copy, Debug)]
enum Stop {
    Clean,
    Kill9,
}

/// Fill the disk, free space, publish more, ack some, stop, restart, count.
async fn fill_free_restart(stop: Stop) {
    let name = match stop {
        Stop::Clean => "fulldisk-clean",
        Stop::Kill9 => "fulldisk-kill9",
    };
    let fs = Tmpfs::mount(name);
    let log = std::env::temp_dir().join(format!("warren-{name}-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    // 1 MiB of ballast to free later; a limit of 0 keeps the disk alarm off, so the
    // store's own write-failure path is what is tested here.
    fs.fill(Some(1 << 20));
    let mut broker = start(&fs.data_dir(), "0", &log);
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    ch.queue_declare(QUEUE.into(), durable(), FieldTable::default())
        .await
        .unwrap();

    // Phase 1: publish until the disk is full and 100 publishes were nacked (at most
    // 3,000 publishes: 12 MiB, more than the disk holds).
    let (fill, next) = publish_until(&ch, 0, 3000, |o| o.nacked.len() >= 100).await;
    figures::report(&format!(
        "{name}: filling: confirmed {}, nacked {}, free {} bytes",
        fill.confirmed.len(),
        fill.nacked.len(),
        fs.available()
    ));

    // Free space while the broker runs; ack the 50 oldest confirmed messages on the
    // same connection, before the next confirmed publishes (which cover the acks).
    fs.free_ballast();
    let getter = conn.create_channel().await.unwrap();
    let mut acked = BTreeSet::new();
    for _ in 0..50 {
        let m = getter
            .basic_get(QUEUE.into(), BasicGetOptions::default())
            .await
            .unwrap()
            .expect("a message to ack");
        acked.insert(id_of(&m.delivery.data).expect("a body with an id"));
        m.delivery.ack(BasicAckOptions::default()).await.unwrap();
    }

    // Phase 2: publish until 150 are confirmed (the store takes persistent messages
    // again once a write succeeds), at most 1,000 publishes.
    let (after, _) = publish_until(&ch, next, 1000, |o| o.confirmed.len() >= 150).await;
    figures::report(&format!(
        "{name}: after freeing: confirmed {}, nacked {}",
        after.confirmed.len(),
        after.nacked.len()
    ));
    match stop {
        Stop::Clean => {
            let _ = conn.close(200, "done".into()).await;
            broker.stop();
        }
        Stop::Kill9 => broker.kill9(),
    }

    let confirmed: BTreeSet<u32> = fill.confirmed.union(&after.confirmed).copied().collect();
    let nacked: BTreeSet<u32> = fill.nacked.union(&after.nacked).copied().collect();
    let expected: BTreeSet<u32> = confirmed.difference(&acked).copied().collect();

    let mut broker = start(&fs.data_dir(), "0", &log);
    let back = drain(&broker, QUEUE).await;
    let recovered: BTreeSet<u32> = back.iter().copied().collect();
    let lost = expected.difference(&recovered).count();
    let acked_back = acked.intersection(&recovered).count();
    let nacked_back = nacked.intersection(&recovered).count();
    figures::report(&format!(
        "{name}: confirmed {}, nacked {}, acked {}, recovered {}, lost {lost}, \
         acked redelivered {acked_back}, nacked recovered {nacked_back}",
        confirmed.len(),
        nacked.len(),
        acked.len(),
        recovered.len(),
    ));
    assert_eq!(recovered.len(), back.len(), "no message recovered twice");
    assert_eq!(lost, 0, "confirmed messages lost (broker log: {log:?})");
    assert_eq!(acked_back, 0, "acked messages came back");
    assert_eq!(nacked_back, 0, "nacked messages came back");
    assert_eq!(
        recovered, expected,
        "exactly the confirmed, unacked messages"
    );
    assert!(
        !fill.nacked.is_empty(),
        "filling the disk must nack publishes"
    );
    assert!(
        !after.confirmed.is_empty(),
        "publishes are confirmed again once space is freed"
    );

    // Once more, after a clean stop: the restart on this (nearly full) disk destroyed
    // nothing.
    broker.stop();
    let mut broker = start(&fs.data_dir(), "0", &log);
    let again: BTreeSet<u32> = drain(&broker, QUEUE).await.into_iter().collect();
    assert_eq!(
        again, expected,
        "a second restart recovers the same messages"
    );
    broker.stop();
    let _ = std::fs::remove_file(&log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_confirmed_message_survives_a_full_disk_and_a_clean_stop() {
    fill_free_restart(Stop::Clean).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_confirmed_message_survives_a_full_disk_and_kill_9() {
    fill_free_restart(Stop::Kill9).await;
}

/// Publishes one message to `queue` and waits (bounded) for its confirm.
async fn publish_one(ch: &Channel, queue: &str, body: &[u8], props: BasicProperties) -> bool {
    let confirm = ch
        .basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            body,
            props,
        )
        .await
        .expect("publish sent");
    tokio::time::timeout(Duration::from_secs(10), confirm)
        .await
        .expect("a confirm within 10 s")
        .expect("a confirm")
        .is_ack()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_on_a_full_disk_comes_up_serves_and_raises_the_disk_alarm() {
    let name = "fulldisk-restart";
    let fs = Tmpfs::mount(name);
    let log = std::env::temp_dir().join(format!("warren-{name}-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let mut broker = start(&fs.data_dir(), "0", &log);
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    ch.queue_declare(QUEUE.into(), durable(), FieldTable::default())
        .await
        .unwrap();
    let (kept, _) = publish_until(&ch, 0, 100, |_| false).await;
    assert_eq!(kept.confirmed.len(), 100, "{kept:?}");
    let _ = conn.close(200, "done".into()).await;
    broker.stop();
    let log_file = fs.data_dir().join("warren.log");
    let before = std::fs::read(&log_file).unwrap();

    // Fill the disk to the last byte, and restart with a 512 KiB free-disk limit.
    fs.fill(None);
    assert_eq!(fs.available(), 0, "the disk is full");
    let mut broker = try_start(&fs.data_dir(), "512KiB", &log)
        .unwrap_or_else(|e| panic!("a restart on a full disk must come up: {e}"));

    // It serves: a transient publish is confirmed and another connection gets it.
    let publisher = broker.connect().await;
    let pch = publisher.create_channel().await.unwrap();
    pch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    pch.queue_declare(
        "transient".into(),
        Default::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    assert!(
        publish_one(&pch, "transient", b"hello", BasicProperties::default()).await,
        "a transient publish is confirmed on a full disk"
    );
    // The disk alarm is on: the publishing connection is told connection.blocked.
    eventually("connection.blocked reaches the publisher", 10, || {
        publisher.status().blocked()
    })
    .await;
    let getter = broker.connect().await;
    let gch = getter.create_channel().await.unwrap();
    let got = gch
        .basic_get("transient".into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("the transient message is there");
    assert_eq!(&got.delivery.data[..], b"hello");

    // A persistent publish to a durable queue cannot be made durable: nacked at once.
    let third = broker.connect().await;
    let tch = third.create_channel().await.unwrap();
    tch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    assert!(
        !publish_one(&tch, QUEUE, &body(1000), persistent()).await,
        "a persistent publish on a full disk is nacked"
    );

    // Nothing was destroyed: all 100 are there, and the log still begins with what it
    // held before.
    let back: BTreeSet<u32> = drain(&broker, QUEUE).await.into_iter().collect();
    assert_eq!(back, kept.confirmed, "every confirmed message is recovered");
    for c in [publisher, getter, third] {
        let _ = tokio::time::timeout(Duration::from_secs(2), c.close(200, "done".into())).await;
    }
    broker.stop();
    let after = std::fs::read(&log_file).unwrap();
    assert!(
        after.len() >= before.len() && after[..before.len()] == before[..],
        "the log was not rewritten or truncated on the full disk"
    );

    // With space again, a restart still finds all 100.
    fs.free_ballast();
    let mut broker = start(&fs.data_dir(), "0", &log);
    let again: BTreeSet<u32> = drain(&broker, QUEUE).await.into_iter().collect();
    assert_eq!(again, kept.confirmed);
    figures::report(&format!(
        "{name}: {} confirmed before, {} served on the full disk, {} after freeing space",
        kept.confirmed.len(),
        back.len(),
        again.len()
    ));
    broker.stop();
    let _ = std::fs::remove_file(&log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_disk_alarm_blocks_publishers_until_space_is_freed() {
    let name = "fulldisk-alarm";
    let fs = Tmpfs::mount(name);
    let log = std::env::temp_dir().join(format!("warren-{name}-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    // About 1 MiB free, under a 2 MiB limit: the alarm is on from the start.
    fs.fill(Some(7 << 20));
    let mut broker = start(&fs.data_dir(), "2MiB", &log);
    let publisher = broker.connect().await;
    let ch = publisher.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    ch.queue_declare(QUEUE.into(), durable(), FieldTable::default())
        .await
        .unwrap();
    // The publish that finds the alarm on is taken (as RabbitMQ takes the frame that
    // blocks a connection); the connection is then blocked.
    assert!(publish_one(&ch, QUEUE, &body(0), persistent()).await);
    eventually("connection.blocked reaches the publisher", 10, || {
        publisher.status().blocked()
    })
    .await;

    // A further publish is held while the alarm is on.
    let late_ch = ch.clone();
    let mut late = tokio::spawn(async move {
        late_ch
            .basic_publish(
                "".into(),
                QUEUE.into(),
                BasicPublishOptions::default(),
                &body(1),
                persistent(),
            )
            .await?
            .await
    });
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), &mut late)
            .await
            .is_err(),
        "a publish was confirmed while the disk alarm was on"
    );

    // Freeing space clears the alarm: unblocked, and the held publish is confirmed.
    let started = Instant::now();
    fs.free_ballast();
    eventually("connection.unblocked reaches the publisher", 10, || {
        !publisher.status().blocked()
    })
    .await;
    let confirm = tokio::time::timeout(Duration::from_secs(10), late)
        .await
        .expect("the held publish is confirmed once space is freed")
        .unwrap()
        .unwrap();
    assert!(confirm.is_ack(), "the held publish is acked");
    figures::report(&format!(
        "{name}: unblocked and confirmed {} ms after freeing space",
        started.elapsed().as_millis()
    ));
    let ids = drain(&broker, QUEUE).await;
    assert_eq!(ids, vec![0, 1]);
    let _ = publisher.close(200, "done".into()).await;
    broker.stop();
    let _ = std::fs::remove_file(&log);
}
