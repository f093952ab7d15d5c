//! Encode and decode of typed-call bodies in each codec, for a small argument map
//! (`{"a": 2, "b": 3}`) and one carrying a 64 KiB string. Run:
//! `cargo bench -p warren-rpc --bench codecs`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde::{Deserialize, Serialize};
use warren_rpc::Codec;

#[derive(Serialize, Deserialize)]
struct Small {
    a: i64,
    b: i64,
}

#[derive(Serialize, Deserialize)]
struct Large {
    name: String,
    text: String,
}

fn large() -> Large {
    // 64 KiB of printable ASCII with the odd character JSON must escape.
    let text: String = (0..64 * 1024)
        .map(|i| match i % 97 {
            0 => '"',
            1 => '\n',
            n => char::from(b' ' + (n % 90) as u8),
        })
        .collect();
    Large {
        name: "blob".into(),
        text,
    }
}

fn codecs(c: &mut Criterion) {
    let small = Small { a: 2, b: 3 };
    let large = large();
    for &codec in Codec::ALL {
        let name = format!("{codec:?}").to_lowercase();
        let mut group = c.benchmark_group(format!("codec/{name}"));
        let small_body = codec.encode(&small).unwrap_or_default();
        let large_body = codec.encode(&large).unwrap_or_default();
        group.throughput(Throughput::Elements(1));
        group.bench_function("encode small", |b| {
            b.iter(|| codec.encode(std::hint::black_box(&small)))
        });
        group.bench_function("decode small", |b| {
            b.iter(|| codec.decode::<Small>(std::hint::black_box(&small_body)))
        });
        group.throughput(Throughput::Bytes(large_body.len() as u64));
        group.bench_function("encode 64 KiB", |b| {
            b.iter(|| codec.encode(std::hint::black_box(&large)))
        });
        group.bench_function("decode 64 KiB", |b| {
            b.iter(|| codec.decode::<Large>(std::hint::black_box(&large_body)))
        });
        group.finish();
        println!(
            "{name}: small body {} bytes, large body {} bytes",
            small_body.len(),
            large_body.len()
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = codecs
}
criterion_main!(benches);
