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

/// Set if any broker task panicked (panics are caught by tokio, so a
/// healthy broker alone would not reveal them).
static BROKER_PANICKED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn assert_no_broker_panic() {
    assert!(
        !BROKER_PANICKED.load(std::sync::atomic::Ordering::SeqCst),
        "a broker task panicked (see stderr)"
    );
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().name() == Some("warren-fuzz-rt") {
                BROKER_PANICKED.store(true, std::sync::atomic::Ordering::SeqCst);
            }
            default_hook(info);
        }));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .thread_name("warren-fuzz-rt")
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

/// The handshake prefix of `valid_stream` (up to and including connection.open).
fn handshake_bytes() -> Vec<u8> {
    let all = valid_stream();
    // header (8) + start-ok + tune-ok + open: find the end of the third frame.
    let mut pos = 8;
    for _ in 0..3 {
        let size =
            u32::from_be_bytes([all[pos + 3], all[pos + 4], all[pos + 5], all[pos + 6]]) as usize;
        pos += 7 + size + 1;
    }
    all[..pos].to_vec()
}

/// One protocol-valid frame drawn from a small vocabulary, with random
/// channel ids, names, tags and flags, so the sequence exercises the channel
/// state machine in arbitrary orders.
fn arb_frame() -> impl Strategy<Value = Vec<u8>> {
    let ch = 0u16..4;
    let name = prop::sample::select(vec![
        "",
        "fq",
        "fq2",
        "amq.rabbitmq.reply-to",
        "amq.direct",
        "fx",
    ]);
    let kind = prop::sample::select(vec!["direct", "fanout", "topic", "headers", "bogus"]);
    let m = |ch: u16, c: AMQPClass| encode(&AMQPFrame::Method(ch, c));
    prop_oneof![
        ch.clone().prop_map(move |c| m(
            c,
            AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {}))
        )),
        ch.clone().prop_map(move |c| m(
            c,
            AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
                reply_code: 200,
                reply_text: "".into(),
                class_id: 0,
                method_id: 0,
            }))
        )),
        ch.clone().prop_map(move |c| m(
            c,
            AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {}))
        )),
        (ch.clone(), name.clone(), any::<[bool; 4]>()).prop_map(move |(c, n, f)| m(
            c,
            AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
                queue: n.into(),
                passive: f[0],
                durable: f[1],
                exclusive: f[2],
                auto_delete: f[3],
                nowait: false,
                arguments: FieldTable::default(),
            }))
        )),
        (ch.clone(), name.clone(), kind).prop_map(move |(c, n, k)| m(
            c,
            AMQPClass::Exchange(amq_protocol::protocol::exchange::AMQPMethod::Declare(
                amq_protocol::protocol::exchange::Declare {
                    exchange: n.into(),
                    kind: k.into(),
                    passive: false,
                    durable: false,
                    auto_delete: false,
                    internal: false,
                    nowait: false,
                    arguments: FieldTable::default(),
                }
            ))
        )),
        (ch.clone(), name.clone(), name.clone()).prop_map(move |(c, q, x)| m(
            c,
            AMQPClass::Queue(queue::AMQPMethod::Bind(queue::Bind {
                queue: q.into(),
                exchange: x.into(),
                routing_key: "k".into(),
                nowait: false,
                arguments: FieldTable::default(),
            }))
        )),
        (ch.clone(), name.clone(), any::<[bool; 2]>()).prop_map(move |(c, n, f)| m(
            c,
            AMQPClass::Queue(queue::AMQPMethod::Delete(queue::Delete {
                queue: n.into(),
                if_unused: f[0],
                if_empty: f[1],
                nowait: false,
            }))
        )),
        (ch.clone(), name.clone(), any::<[bool; 2]>()).prop_map(move |(c, n, f)| m(
            c,
            AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
                queue: n.into(),
                consumer_tag: if f[1] { "t".into() } else { "".into() },
                no_local: false,
                no_ack: f[0],
                exclusive: false,
                nowait: false,
                arguments: FieldTable::default(),
            }))
        )),
        ch.clone().prop_map(move |c| m(
            c,
            AMQPClass::Basic(basic::AMQPMethod::Cancel(basic::Cancel {
                consumer_tag: "t".into(),
                nowait: false
            }))
        )),
        (ch.clone(), 0u64..4, any::<[bool; 3]>()).prop_map(move |(c, t, f)| {
            let meth = match (f[0], f[1]) {
                (true, _) => basic::AMQPMethod::Ack(basic::Ack {
                    delivery_tag: t,
                    multiple: f[2],
                }),
                (false, true) => basic::AMQPMethod::Nack(basic::Nack {
                    delivery_tag: t,
                    multiple: f[2],
                    requeue: f[2],
                }),
                (false, false) => basic::AMQPMethod::Reject(basic::Reject {
                    delivery_tag: t,
                    requeue: f[2],
                }),
            };
            m(c, AMQPClass::Basic(meth))
        }),
        (ch.clone(), 0u16..3, any::<bool>()).prop_map(move |(c, n, g)| m(
            c,
            AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
                prefetch_count: n,
                global: g
            }))
        )),
        (ch.clone(), name.clone(), any::<bool>()).prop_map(move |(c, n, a)| m(
            c,
            AMQPClass::Basic(basic::AMQPMethod::Get(basic::Get {
                queue: n.into(),
                no_ack: a
            }))
        )),
        ch.clone().prop_map(move |c| m(
            c,
            AMQPClass::Basic(basic::AMQPMethod::Recover(basic::Recover { requeue: true }))
        )),
        ch.clone().prop_map(move |c| m(
            c,
            AMQPClass::Confirm(amq_protocol::protocol::confirm::AMQPMethod::Select(
                amq_protocol::protocol::confirm::Select { nowait: false }
            ))
        )),
        (
            ch.clone(),
            name.clone(),
            name,
            any::<bool>(),
            0usize..3,
            prop::sample::select(vec!["", "amq.rabbitmq.reply-to", "1", "bad"])
        )
            .prop_map(move |(c, x, rk, mandatory, parts, special)| {
                let mut out = m(
                    c,
                    AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
                        exchange: x.into(),
                        routing_key: rk.into(),
                        mandatory,
                        immediate: false,
                    })),
                );
                let props = match special {
                    "" => basic::AMQPProperties::default(),
                    "amq.rabbitmq.reply-to" => {
                        basic::AMQPProperties::default().with_reply_to(special.into())
                    }
                    e => basic::AMQPProperties::default().with_expiration(e.into()),
                };
                out.extend(encode(&AMQPFrame::Header(
                    c,
                    amq_protocol::frame::AMQPContentHeader {
                        class_id: 60,
                        body_size: parts as u64 * 3,
                        properties: props,
                    },
                )));
                for _ in 0..parts {
                    out.extend(encode(&AMQPFrame::Body(c, b"abc".to_vec())));
                }
                out
            }),
        Just(encode(&AMQPFrame::Heartbeat)),
        (ch.clone(), 0u8..3).prop_map(move |(c, k)| {
            use amq_protocol::protocol::tx;
            let meth = match k {
                0 => tx::AMQPMethod::Select(tx::Select {}),
                1 => tx::AMQPMethod::Commit(tx::Commit {}),
                _ => tx::AMQPMethod::Rollback(tx::Rollback {}),
            };
            m(c, AMQPClass::Tx(meth))
        }),
        (ch.clone(), any::<bool>()).prop_map(move |(c, a)| m(
            c,
            AMQPClass::Channel(channel::AMQPMethod::Flow(channel::Flow { active: a }))
        )),
        ch.prop_map(move |c| m(
            c,
            AMQPClass::Exchange(amq_protocol::protocol::exchange::AMQPMethod::Bind(
                amq_protocol::protocol::exchange::Bind {
                    destination: "fx".into(),
                    source: "amq.direct".into(),
                    routing_key: "k".into(),
                    nowait: false,
                    arguments: FieldTable::default(),
                }
            ))
        )),
    ]
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
        assert_no_broker_panic();
    }

    #[test]
    fn random_frame_sequences_never_break_the_broker(
        frames in prop::collection::vec(arb_frame(), 0..24),
        chunk in 1usize..2048,
    ) {
        let env = env();
        let mut data = handshake_bytes();
        for f in frames {
            data.extend(f);
        }
        env.rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), async {
                throw(env.addr, &data, chunk).await;
                healthy(env.addr).await;
            }).await.expect("bounded");
        });
        assert_no_broker_panic();
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
        assert_no_broker_panic();
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
    assert_no_broker_panic();
}
