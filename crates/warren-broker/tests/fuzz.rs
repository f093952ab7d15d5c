//! Bounded property tests: random and mutated byte streams thrown at a live
//! broker never crash it, and it keeps serving a well-behaved client.

mod common;

use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::{basic, channel, connection, queue, AMQPClass};
use amq_protocol::types::{FieldTable, LongString};
use common::raw::encode;
use proptest::prelude::*;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Env {
    rt: tokio::runtime::Runtime,
    addr: SocketAddr,
    _handle: warren_broker::BrokerHandle,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let handle = rt.block_on(common::start());
        let addr = handle.local_addr();
        Env {
            rt,
            addr,
            _handle: handle,
        }
    })
}

/// A valid client byte stream: handshake, channel, queue, publish, consume.
fn valid_stream() -> Vec<u8> {
    let mut out = b"AMQP\x00\x00\x09\x01".to_vec();
    let m = |ch: u16, c: AMQPClass| encode(&AMQPFrame::Method(ch, c));
    out.extend(m(
        0,
        AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
            client_properties: FieldTable::default(),
            mechanism: "PLAIN".into(),
            response: LongString::from("\0guest\0guest"),
            locale: "en_US".into(),
        })),
    ));
    out.extend(m(
        0,
        AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
            channel_max: 8,
            frame_max: 4096,
            heartbeat: 0,
        })),
    ));
    out.extend(m(
        0,
        AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
            virtual_host: "/".into(),
        })),
    ));
    out.extend(m(
        1,
        AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
    ));
    out.extend(m(
        1,
        AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: "fuzz".into(),
            passive: false,
            durable: false,
            exclusive: false,
            auto_delete: true,
            nowait: false,
            arguments: FieldTable::default(),
        })),
    ));
    out.extend(m(
        1,
        AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: "".into(),
            routing_key: "fuzz".into(),
            mandatory: true,
            immediate: false,
        })),
    ));
    out.extend(encode(&AMQPFrame::Header(
        1,
        amq_protocol::frame::AMQPContentHeader {
            class_id: 60,
            body_size: 5,
            properties: basic::AMQPProperties::default()
                .with_reply_to("amq.rabbitmq.reply-to".into()),
        },
    )));
    out.extend(encode(&AMQPFrame::Body(1, b"hello".to_vec())));
    out.extend(m(
        1,
        AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
            queue: "fuzz".into(),
            consumer_tag: "".into(),
            no_local: false,
            no_ack: false,
            exclusive: false,
            nowait: false,
            arguments: FieldTable::default(),
        })),
    ));
    out.extend(m(
        1,
        AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
            delivery_tag: 1,
            multiple: true,
        })),
    ));
    out
}

/// Send bytes, read whatever comes back for a short while, hang up.
async fn throw(addr: SocketAddr, bytes: &[u8], chunk: usize) {
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        panic!("broker stopped accepting");
    };
    for part in bytes.chunks(chunk.max(1)) {
        if s.write_all(part).await.is_err() {
            break;
        }
    }
    let mut buf = vec![0u8; 65536];
    let deadline = tokio::time::Instant::now() + Duration::from_millis(50);
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
        if n == 0 {
            break;
        }
    }
}

/// A well-behaved client still works.
async fn healthy(addr: SocketAddr) {
    let url = format!("amqp://guest:guest@{addr}/%2f");
    let c = tokio::time::timeout(
        Duration::from_secs(5),
        lapin::Connection::connect(&url, lapin::ConnectionProperties::default()),
    )
    .await
    .expect("connect timed out")
    .expect("connect failed");
    let ch = c.create_channel().await.unwrap();
    ch.queue_declare(
        "health".into(),
        lapin::options::QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let _ = c.close(200, "ok".into()).await;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_break_the_broker(
        with_header in any::<bool>(),
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        chunk in 1usize..64,
    ) {
        let env = env();
        let mut data = if with_header { b"AMQP\x00\x00\x09\x01".to_vec() } else { Vec::new() };
        data.extend_from_slice(&bytes);
        env.rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), async {
                throw(env.addr, &data, chunk).await;
                healthy(env.addr).await;
            }).await.expect("bounded");
        });
    }

    #[test]
    fn mutated_frame_sequences_never_break_the_broker(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
        chunk in 1usize..512,
    ) {
        let env = env();
        let mut data = valid_stream();
        for (idx, byte) in flips {
            let i = idx.index(data.len());
            data[i] = byte;
        }
        if truncate {
            let n = cut.index(data.len());
            data.truncate(n);
        }
        env.rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), async {
                throw(env.addr, &data, chunk).await;
                healthy(env.addr).await;
            }).await.expect("bounded");
        });
    }
}

#[test]
fn many_half_frames_do_not_stall_others() {
    let env = env();
    env.rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(20), async {
            // Slow peers that send half a frame and go silent.
            let mut idle = Vec::new();
            for _ in 0..20 {
                let mut s = tokio::net::TcpStream::connect(env.addr).await.unwrap();
                let mut data = valid_stream();
                data.truncate(40);
                s.write_all(&data).await.unwrap();
                idle.push(s);
            }
            healthy(env.addr).await;
            drop(idle);
        })
        .await
        .expect("bounded");
    });
}
