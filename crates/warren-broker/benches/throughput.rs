//! Throughput of the embedded broker through lapin: publish/consume, durable
//! publishes with confirms, and a raw-frame publish then drain. Prints numbers,
//! asserts nothing: `cargo bench -p warren-broker --bench throughput`.

use warren_test_support::broker as common;

use common::*;
use futures_util::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::BasicProperties;
use std::time::Instant;

async fn throughput_publish_consume() {
    let b = start().await;
    let (_c1, p) = channel(&b).await;
    let (_c2, c) = channel(&b).await;
    p.queue_declare(
        "perf".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    c.basic_qos(500, BasicQosOptions::default()).await.unwrap();
    let mut cons = consume(&c, "perf", false).await;
    const N: usize = 100_000;
    let t0 = Instant::now();
    let consumer = tokio::spawn(async move {
        let mut n = 0;
        while let Some(Ok(d)) = cons.next().await {
            n += 1;
            if n % 50 == 0 {
                d.ack(BasicAckOptions { multiple: true }).await.unwrap();
            }
            if n == N {
                d.ack(BasicAckOptions { multiple: true }).await.unwrap();
                break;
            }
        }
    });
    let body = vec![7u8; 256];
    for _ in 0..N {
        p.basic_publish(
            "".into(),
            "perf".into(),
            BasicPublishOptions::default(),
            &body,
            BasicProperties::default(),
        )
        .await
        .unwrap();
    }
    let publish_done = t0.elapsed();
    consumer.await.unwrap();
    let total = t0.elapsed();
    println!(
        "{N} msgs: publish {publish_done:?}, end-to-end {total:?} ({:.0} msg/s)",
        N as f64 / total.as_secs_f64()
    );
    b.shutdown().await;
}

async fn throughput_durable_confirms() {
    let dir = std::env::temp_dir().join(format!("warren-perf-{}", std::process::id()));
    let b = warren_broker::Broker::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .data_dir(&dir)
        .start()
        .await
        .unwrap();
    let mut tasks = Vec::new();
    const PUBS: usize = 4;
    const N: usize = 5_000;
    let t0 = Instant::now();
    for i in 0..PUBS {
        let (c, ch) = channel(&b).await;
        tasks.push(tokio::spawn(async move {
            let _c = c;
            ch.confirm_select(ConfirmSelectOptions::default())
                .await
                .unwrap();
            let q = format!("durable{i}");
            ch.queue_declare(
                q.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
            let mut confirms = Vec::with_capacity(N);
            for _ in 0..N {
                confirms.push(
                    ch.basic_publish(
                        "".into(),
                        q.as_str().into(),
                        BasicPublishOptions::default(),
                        b"persist me",
                        BasicProperties::default().with_delivery_mode(2),
                    )
                    .await
                    .unwrap(),
                );
            }
            for c in confirms {
                assert!(c.await.unwrap().is_ack());
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let total = t0.elapsed();
    println!(
        "{} confirmed persistent msgs in {total:?} ({:.0} msg/s)",
        PUBS * N,
        (PUBS * N) as f64 / total.as_secs_f64()
    );
    b.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

async fn throughput_raw_publish_then_drain() {
    use common::raw::Raw;
    use tokio::io::AsyncWriteExt;
    let b = start().await;
    let (_c, ch) = channel(&b).await;
    ch.queue_declare(
        "rawperf".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let mut r = Raw::connect(b.local_addr(), 131072).await;
    r.open_channel(1).await;
    let one = common::raw::publish(1, "rawperf", &[7u8; 256]);
    const N: usize = 200_000;
    let mut batch = Vec::new();
    for _ in 0..1000 {
        batch.extend_from_slice(&one);
    }
    let t0 = Instant::now();
    for _ in 0..N / 1000 {
        r.stream.write_all(&batch).await.unwrap();
    }
    loop {
        let q = ch
            .queue_declare(
                "rawperf".into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        if q.message_count() as usize == N {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let publish = t0.elapsed();
    let mut cons = consume(&ch, "rawperf", true).await;
    let t1 = Instant::now();
    for _ in 0..N {
        cons.next().await.unwrap().unwrap();
    }
    println!(
        "raw publish {N}: {publish:?} ({:.0} msg/s); lapin no-ack drain: {:?} ({:.0} msg/s)",
        N as f64 / publish.as_secs_f64(),
        t1.elapsed(),
        N as f64 / t1.elapsed().as_secs_f64()
    );
    b.shutdown().await;
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(throughput_publish_consume());
    rt.block_on(throughput_durable_confirms());
    rt.block_on(throughput_raw_publish_then_drain());
}
