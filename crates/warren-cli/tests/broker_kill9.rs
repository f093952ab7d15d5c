//! The embedded broker's durability promise, tested the hard way: a `warren broker`
//! process with a data directory is killed with SIGKILL while publishers with
//! confirms run; after a restart every confirmed persistent message is there, and
//! messages acked before the kill do not come back.

mod common;
use common::broker_process;
use common::figures;

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use broker_process::{BrokerProcess, WARREN};
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection};

const QUEUE: &str = "durable-kill9";

/// `warren broker` on `port` (0: a free one) with its data in `dir`.
fn start_broker(port: u16, dir: &Path) -> BrokerProcess {
    let listen = format!("127.0.0.1:{port}");
    BrokerProcess::start([
        OsStr::new("--listen"),
        OsStr::new(&listen),
        OsStr::new("--data-dir"),
        dir.as_os_str(),
    ])
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..Default::default()
    }
}

/// Acks are logged in order but not fsynced one by one; a confirmed persistent
/// publish on the same connection after them is the barrier that makes them durable.
async fn barrier(conn: &Connection) {
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let q = format!("{QUEUE}-barrier");
    ch.queue_declare(q.as_str().into(), durable(), FieldTable::default())
        .await
        .unwrap();
    let confirm = ch
        .basic_publish(
            "".into(),
            q.as_str().into(),
            BasicPublishOptions::default(),
            b"barrier",
            BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .unwrap();
    assert!(confirm.await.unwrap().is_ack(), "barrier confirmed");
    ch.close(200, "done".into()).await.unwrap();
}

/// Drains the queue with basic.get; returns the bodies and acks the first `ack_first`.
async fn drain(broker: &BrokerProcess, ack_first: usize) -> Vec<String> {
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare(QUEUE.into(), durable(), FieldTable::default())
        .await
        .unwrap();
    let mut bodies = Vec::new();
    while let Some(msg) = ch
        .basic_get(QUEUE.into(), BasicGetOptions::default())
        .await
        .unwrap()
    {
        bodies.push(String::from_utf8_lossy(&msg.delivery.data).into_owned());
        if bodies.len() <= ack_first {
            msg.delivery.ack(BasicAckOptions::default()).await.unwrap();
        }
        assert!(bodies.len() <= 100_000, "bounded");
    }
    if ack_first > 0 {
        barrier(&conn).await;
    }
    ch.close(200, "done".into()).await.unwrap();
    conn.close(200, "done".into()).await.unwrap();
    bodies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmed_messages_survive_kill_9() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir: PathBuf = std::env::temp_dir().join(format!("warren-kill9-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    let mut broker = start_broker(port, &dir);
    let confirmed = Arc::new(Mutex::new(BTreeSet::new()));
    let mut publishers = Vec::new();
    for p in 0..3 {
        let confirmed = Arc::clone(&confirmed);
        let conn = broker.connect().await;
        publishers.push(tokio::spawn(async move {
            let ch = conn.create_channel().await.unwrap();
            ch.confirm_select(ConfirmSelectOptions::default())
                .await
                .unwrap();
            ch.queue_declare(QUEUE.into(), durable(), FieldTable::default())
                .await
                .unwrap();
            let props = BasicProperties::default().with_delivery_mode(2);
            for i in 0..20_000u32 {
                let body = format!("{p}-{i}");
                let Ok(confirm) = ch
                    .basic_publish(
                        "".into(),
                        QUEUE.into(),
                        BasicPublishOptions::default(),
                        body.as_bytes(),
                        props.clone(),
                    )
                    .await
                else {
                    break;
                };
                match confirm.await {
                    Ok(c) if c.is_ack() => {
                        confirmed.lock().unwrap().insert(body);
                    }
                    _ => break,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    broker.kill9();
    for p in publishers {
        let _ = tokio::time::timeout(Duration::from_secs(10), p).await;
    }
    let confirmed = confirmed.lock().unwrap().clone();
    assert!(
        !confirmed.is_empty(),
        "publishers got confirms before the kill"
    );

    let mut broker = start_broker(port, &dir);
    let ack_first = confirmed.len() / 2;
    let recovered = drain(&broker, ack_first).await;
    let unique: BTreeSet<_> = recovered.iter().cloned().collect();
    assert_eq!(unique.len(), recovered.len(), "no message recovered twice");
    let lost: Vec<_> = confirmed.difference(&unique).take(5).collect();
    assert!(
        lost.is_empty(),
        "{} confirmed messages lost, e.g. {lost:?}",
        confirmed.len() - confirmed.intersection(&unique).count()
    );
    figures::report(&format!(
        "kill -9: {} confirmed, {} recovered",
        confirmed.len(),
        recovered.len()
    ));

    // Acked (and covered by a confirmed publish) before a second kill -9: must not
    // come back.
    broker.kill9();
    let mut broker = start_broker(port, &dir);
    let after = drain(&broker, 0).await;
    let acked: BTreeSet<_> = recovered[..ack_first].iter().cloned().collect();
    let back: Vec<_> = after
        .iter()
        .filter(|b| acked.contains(*b))
        .take(5)
        .collect();
    assert!(back.is_empty(), "acked messages came back: {back:?}");
    assert_eq!(
        after.len(),
        recovered.len() - ack_first,
        "the unacked ones are all still there"
    );
    broker.kill9();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Two brokers on one data directory would interleave writes to one log; the second
/// is refused with a message that names the directory, and exits non-zero.
#[test]
fn second_broker_on_the_same_data_dir_is_refused() {
    let dir: PathBuf = std::env::temp_dir().join(format!("warren-lock-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut first = start_broker(0, &dir);
    let second = Command::new(WARREN)
        .args(["broker", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&dir)
        .output()
        .expect("warren broker runs");
    first.kill9();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "second broker must not start");
    assert!(
        stderr.contains("in use by another broker") && stderr.contains(&*dir.to_string_lossy()),
        "clear error naming the directory: {stderr}"
    );
    // The kernel dropped the lock with the killed process: the directory is usable again.
    let mut again = start_broker(0, &dir);
    again.kill9();
    let _ = std::fs::remove_dir_all(&dir);
}
