//! Tier 4: durable queues, exchanges, bindings and persistent messages
//! survive a restart; acked messages do not come back; a torn tail is ignored.

mod common;

use common::*;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, ExchangeKind};
use std::path::PathBuf;
use std::time::Duration;
use warren_broker::{Broker, BrokerHandle};

fn temp_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let d = std::env::temp_dir().join(format!("warren-{name}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

async fn start_in(dir: &std::path::Path) -> BrokerHandle {
    Broker::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .data_dir(dir)
        .start()
        .await
        .unwrap()
}

/// Takes the next `n` messages of `queue` with basic.get and acks each.
async fn get_and_ack(ch: &lapin::Channel, queue: &str, n: usize) {
    for _ in 0..n {
        let m = ch
            .basic_get(queue.into(), BasicGetOptions::default())
            .await
            .unwrap()
            .expect("a message to ack");
        m.delivery.ack(BasicAckOptions::default()).await.unwrap();
    }
}

async fn setup_and_publish(b: &BrokerHandle, n: usize) {
    let (c, ch) = channel(b).await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    ch.exchange_declare(
        "dx".into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_declare(
        "dq".into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_declare(
        "transient".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_bind(
        "dq".into(),
        "dx".into(),
        "k".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let mut confirms = Vec::new();
    for i in 0..n {
        confirms.push(
            ch.basic_publish(
                "dx".into(),
                "k".into(),
                BasicPublishOptions::default(),
                format!("m{i}").as_bytes(),
                BasicProperties::default()
                    .with_delivery_mode(2)
                    .with_message_id(format!("id{i}").into()),
            )
            .await
            .unwrap(),
        );
    }
    // A non-persistent message is not recovered.
    confirms.push(
        ch.basic_publish(
            "dx".into(),
            "k".into(),
            BasicPublishOptions::default(),
            b"transient",
            BasicProperties::default(),
        )
        .await
        .unwrap(),
    );
    for c in confirms {
        assert!(c.await.unwrap().is_ack());
    }
    // Ack the first two.
    get_and_ack(&ch, "dq", 2).await;
    c.close(200, "bye".into()).await.unwrap();
}

async fn check_recovered(b: &BrokerHandle, n: usize) {
    let (_c, ch) = channel(b).await;
    let q = ch
        .queue_declare(
            "dq".into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    assert_eq!(q.message_count() as usize, n - 2);
    let e = ch
        .queue_declare(
            "transient".into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(code(&e), 404);
    let ch = _c.create_channel().await.unwrap();
    let mut got = Vec::new();
    while let Some(m) = ch
        .basic_get("dq".into(), BasicGetOptions::default())
        .await
        .unwrap()
    {
        assert_eq!(m.delivery.properties.delivery_mode(), &Some(2));
        got.push(String::from_utf8(m.delivery.data.clone()).unwrap());
        m.delivery.ack(BasicAckOptions::default()).await.unwrap();
    }
    let want: Vec<String> = (2..n).map(|i| format!("m{i}")).collect();
    assert_eq!(got, want);
    // The binding survived too.
    ch.basic_publish(
        "dx".into(),
        "k".into(),
        BasicPublishOptions::default(),
        b"again",
        BasicProperties::default(),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let m = ch
        .basic_get("dq".into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.delivery.data, b"again");
}

#[tokio::test]
async fn restart_recovers_confirmed_messages() {
    bounded(async {
        let dir = temp_dir("restart");
        let b = start_in(&dir).await;
        setup_and_publish(&b, 20).await;
        b.shutdown().await;
        let b = start_in(&dir).await;
        check_recovered(&b, 20).await;
        b.shutdown().await;
        // Everything was acked: a third start has an empty durable queue.
        let b = start_in(&dir).await;
        let (_c, ch) = channel(&b).await;
        let q = ch
            .queue_declare(
                "dq".into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        assert_eq!(q.message_count(), 0);
        b.shutdown().await;
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await;
}

#[tokio::test]
async fn torn_final_record_is_tolerated() {
    bounded(async {
        let dir = temp_dir("torn");
        let b = start_in(&dir).await;
        setup_and_publish(&b, 10).await;
        b.shutdown().await;
        // Simulate a crash mid-write: a partial record at the end of the log.
        let log = dir.join("warren.log");
        let mut data = std::fs::read(&log).unwrap();
        data.extend_from_slice(&[0, 0, 0, 50, 1, 2, 3, 4, 7, 0, 0]);
        std::fs::write(&log, data).unwrap();
        let b = start_in(&dir).await;
        check_recovered(&b, 10).await;
        b.shutdown().await;
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await;
}

/// The `serve` example binary, built by `cargo test` next to the test binaries.
fn serve_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?.parent()?;
    let bin = dir.join("examples").join("serve");
    bin.exists().then_some(bin)
}

/// Start the example broker in a child process; returns it and its URL.
async fn spawn_broker(
    bin: &std::path::Path,
    dir: &std::path::Path,
) -> (tokio::process::Child, String) {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(bin)
        .arg("0")
        .arg(dir)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let url = lines
        .next_line()
        .await
        .unwrap()
        .expect("broker printed its URL");
    (child, url)
}

#[tokio::test]
async fn kill_9_loses_nothing_confirmed() {
    bounded(async {
        let Some(bin) = serve_binary() else {
            eprintln!("serve example not built; skipping");
            return;
        };
        let dir = temp_dir("kill9");
        let (mut child, url) = spawn_broker(&bin, &dir).await;
        let c = lapin::Connection::connect(&url, lapin::ConnectionProperties::default())
            .await
            .unwrap();
        let ch = c.create_channel().await.unwrap();
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        ch.queue_declare(
            "k9".into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
        let mut confirms = Vec::new();
        for i in 0..300 {
            confirms.push(
                ch.basic_publish(
                    "".into(),
                    "k9".into(),
                    BasicPublishOptions::default(),
                    format!("{i}").as_bytes(),
                    BasicProperties::default().with_delivery_mode(2),
                )
                .await
                .unwrap(),
            );
        }
        for c in confirms {
            assert!(c.await.unwrap().is_ack());
        }
        // Ack 100 of them. Acks are logged in order but not fsynced one by one: a
        // confirmed persistent publish after them is the barrier that covers them.
        get_and_ack(&ch, "k9", 100).await;
        ch.queue_declare(
            "k9-barrier".into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
        let barrier = ch
            .basic_publish(
                "".into(),
                "k9-barrier".into(),
                BasicPublishOptions::default(),
                b"barrier",
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .unwrap();
        assert!(barrier.await.unwrap().is_ack());
        child.kill().await.unwrap(); // SIGKILL
        drop(c);
        let (_child, url) = spawn_broker(&bin, &dir).await;
        let c = lapin::Connection::connect(&url, lapin::ConnectionProperties::default())
            .await
            .unwrap();
        let ch = c.create_channel().await.unwrap();
        let mut got = Vec::new();
        while let Some(m) = ch
            .basic_get("k9".into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
        {
            got.push(String::from_utf8(m.delivery.data).unwrap());
        }
        let want: Vec<String> = (100..300).map(|i| i.to_string()).collect();
        assert_eq!(got, want);
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await;
}

#[tokio::test]
async fn drop_then_restart_recovers() {
    bounded(async {
        let dir = temp_dir("drop");
        let b = start_in(&dir).await;
        let addr = b.local_addr();
        setup_and_publish(&b, 5).await;
        drop(b);
        // The listener goes away and the port can be reused.
        let mut tries = 0;
        let b = loop {
            match Broker::builder().listen(addr).data_dir(&dir).start().await {
                Ok(b) => break b,
                Err(e) if tries < 50 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("restart failed: {e}"),
            }
        };
        check_recovered(&b, 5).await;
        b.shutdown().await;
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await;
}

/// A persistent message its durable queue drops as it arrives (`x-max-length` 0, no
/// dead-letter exchange) is gone for good: its `Remove` record follows its `Publish`
/// in the log (the store logs a message before any queue can deliver, drop or
/// dead-letter it), so a restart does not bring it back.
#[tokio::test]
async fn messages_dropped_on_arrival_do_not_come_back_after_a_restart() {
    const N: usize = 20;
    bounded(async {
        let dir = temp_dir("dropped");
        let b = start_in(&dir).await;
        let (c, ch) = channel(&b).await;
        let mut args = FieldTable::default();
        args.insert(
            "x-max-length".into(),
            lapin::types::AMQPValue::LongLongInt(0),
        );
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        ch.queue_declare("zq".into(), durable, args).await.unwrap();
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        let persistent = BasicProperties::default().with_delivery_mode(2);
        for i in 0..N {
            let confirm = ch
                .basic_publish(
                    "".into(),
                    "zq".into(),
                    BasicPublishOptions::default(),
                    format!("{i}").as_bytes(),
                    persistent.clone(),
                )
                .await
                .unwrap()
                .await
                .unwrap();
            assert!(confirm.is_ack(), "publish {i} confirmed");
        }
        let _ = c.close(200, "done".into()).await;
        b.shutdown().await;
        let b = start_in(&dir).await;
        let (_c, ch) = channel(&b).await;
        let q = ch
            .queue_declare(
                "zq".into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        assert_eq!(q.message_count(), 0, "dropped messages came back");
        b.shutdown().await;
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await;
}
