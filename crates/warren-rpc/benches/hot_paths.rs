//! Micro-benchmarks of the per-call hot paths: the correlation map, correlation ids,
//! request/reply property mapping, AMQP frame encode/decode, and one full call through
//! the embedded broker. Run: `cargo bench -p warren-rpc`.

use std::time::Duration;

use amq_protocol::frame::{gen_frame, parse_frame, AMQPFrame};
use amq_protocol::protocol::{basic, AMQPClass};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use warren_rpc::__bench::{reply_properties, reply_status, request_properties};
use warren_rpc::__bench::{CorrelationIds, Pending};
use warren_rpc::{services::fib, wire, Code, RpcClient, RpcServer};

fn correlation(c: &mut Criterion) {
    let ids = CorrelationIds::new();
    c.bench_function("correlation_id format+parse", |b| {
        let mut n = 0u64;
        b.iter(|| {
            n += 1;
            let id = ids.format(n);
            std::hint::black_box(ids.parse(&id))
        })
    });
    let pending = Pending::default();
    pending.session_up(0);
    c.bench_function("pending register+complete (64 in flight)", |b| {
        b.iter_batched(
            || {
                (0..64)
                    .map(|_| pending.register(0).map(|(id, _rx)| id))
                    .collect::<Vec<_>>()
            },
            |ids| {
                for id in ids.into_iter().flatten() {
                    std::hint::black_box(
                        pending
                            .complete(id, Err(warren_rpc::Error::InvalidArgument(String::new()))),
                    );
                }
            },
            BatchSize::SmallInput,
        )
    });
}

fn properties(c: &mut Criterion) {
    c.bench_function("request properties (reply_to, ids, deadline)", |b| {
        b.iter(|| {
            request_properties(
                Some(wire::DIRECT_REPLY_TO),
                "0123456789abcdef0123456789abcdef.1f",
                Some("text/plain"),
                false,
                Duration::from_secs(5),
                None,
                |_| {},
            )
        })
    });
    let req = request_properties(
        None,
        "id.1",
        None,
        false,
        Duration::from_secs(5),
        None,
        |_| {},
    );
    c.bench_function("reply properties + status check", |b| {
        b.iter(|| {
            let reply = reply_properties(&req, Some("text/plain"), Code::Ok);
            std::hint::black_box(reply_status(&reply, b"832040"))
        })
    });
}

/// A request's properties built, encoded and parsed back, as client, broker and server
/// each do once per call, with and without a W3C `traceparent` among the headers.
fn properties_on_the_wire(c: &mut Criterion) {
    use amq_protocol::frame::WriteContext;
    use amq_protocol::protocol::basic::{gen_properties, parse_properties};
    use amq_protocol::types::{AMQPValue, FieldTable, LongString};
    let mut traced = FieldTable::default();
    traced.insert(
        "traceparent".into(),
        AMQPValue::LongString(LongString::from(
            b"00-1c2618349872b7f499c9df83e869035f-e2e8a09b0901a12a-01".to_vec(),
        )),
    );
    for (name, extra) in [("plain", None), ("with traceparent", Some(&traced))] {
        c.bench_function(
            &format!("request properties build+encode+parse, {name}"),
            |b| {
                let mut out = Vec::with_capacity(256);
                b.iter(|| {
                    let props = request_properties(
                        Some("amq.rabbitmq.reply-to.g1h2AA5yZXBseUAxMjM0NTY3OAAAAAAAAAAB"),
                        "0123456789abcdef.1f",
                        None,
                        false,
                        Duration::from_secs(5),
                        extra,
                        |_| {},
                    );
                    out.clear();
                    let ctx = WriteContext::from(std::mem::take(&mut out));
                    if let Ok(ctx) = gen_properties(&props)(ctx) {
                        out = ctx.into_inner().0;
                    }
                    std::hint::black_box(parse_properties(&out[..]).is_ok())
                })
            },
        );
    }
}

fn frames(c: &mut Criterion) {
    let publish = AMQPFrame::Method(
        1,
        AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: "".into(),
            routing_key: "rpc_queue".into(),
            mandatory: true,
            immediate: false,
        })),
    );
    let mut buf = vec![0u8; 512];
    c.bench_function("encode basic.publish frame", |b| {
        b.iter(|| {
            let out = cookie_factory::gen(gen_frame(&publish), &mut buf[..]).map(|(_, n)| n);
            std::hint::black_box(out.is_ok())
        })
    });
    let (_, len) =
        cookie_factory::gen(gen_frame(&publish), &mut buf[..]).unwrap_or((&mut [][..], 0));
    let bytes = buf[..len as usize].to_vec();
    c.bench_function("decode basic.publish frame", |b| {
        b.iter(|| std::hint::black_box(parse_frame(&bytes[..]).is_ok()))
    });
}

fn fib_and_call(c: &mut Criterion) {
    c.bench_function("fib(1000) to decimal", |b| {
        b.iter(|| fib::fib(1000).to_string())
    });
    let Ok(rt) = tokio::runtime::Runtime::new() else {
        return;
    };
    let setup = rt.block_on(async {
        let broker = warren_broker::Broker::builder()
            .listen(([127, 0, 0, 1], 0).into())
            .start()
            .await
            .ok()?;
        let url = broker.amqp_url();
        let server = RpcServer::new()
            .route("bench_fib", fib::handle)
            .start(&url)
            .await
            .ok()?;
        let client = RpcClient::connect(&url).await.ok()?;
        Some((broker, server, client))
    });
    let Some((_broker, _server, client)) = setup else {
        return;
    };
    let mut group = c.benchmark_group("end to end");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function(
        "one call, embedded broker (request dispatch + publish->deliver)",
        |b| {
            b.to_async(&rt)
                .iter(|| async { client.call("bench_fib", "30").await.is_ok() })
        },
    );
    group.finish();
}

criterion_group!(wire_props, properties_on_the_wire);
criterion_group!(benches, correlation, properties, frames, fib_and_call);
criterion_main!(benches, wire_props);
