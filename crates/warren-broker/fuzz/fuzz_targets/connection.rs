//! Feeds arbitrary bytes to a live broker over loopback. The first input
//! byte chooses whether a valid handshake is sent first, so the fuzzer also
//! reaches the channel state machine. A panic in any broker task aborts the
//! process (libFuzzer's panic hook), which is what the fuzzer reports.
//!
//! Run with `cargo fuzz run connection` from `crates/warren-broker`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Env {
    rt: tokio::runtime::Runtime,
    addr: SocketAddr,
    _broker: warren_broker::BrokerHandle,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let broker = rt
            .block_on(
                warren_broker::Broker::builder()
                    .listen(SocketAddr::from(([127, 0, 0, 1], 0)))
                    .heartbeat(0)
                    .start(),
            )
            .expect("broker");
        let addr = broker.local_addr();
        Env {
            rt,
            addr,
            _broker: broker,
        }
    })
}

/// Protocol header, start-ok (PLAIN guest/guest), tune-ok, open "/".
const HANDSHAKE: &[u8] = &[
    b'A', b'M', b'Q', b'P', 0, 0, 9, 1, // header
    // connection.start-ok: client-properties {}, "PLAIN", "\0guest\0guest", "en_US"
    1, 0, 0, 0, 0, 0, 36, 0, 10, 0, 11, 0, 0, 0, 0, 5, b'P', b'L', b'A', b'I', b'N', 0, 0, 0, 12, 0,
    b'g', b'u', b'e', b's', b't', 0, b'g', b'u', b'e', b's', b't', 5, b'e', b'n', b'_', b'U', b'S',
    0xCE, // connection.tune-ok: channel_max 16, frame_max 4096, heartbeat 0
    1, 0, 0, 0, 0, 0, 12, 0, 10, 0, 31, 0, 16, 0, 0, 16, 0, 0, 0, 0xCE,
    // connection.open "/"
    1, 0, 0, 0, 0, 0, 8, 0, 10, 0, 40, 1, b'/', 0, 0, 0xCE,
];

fuzz_target!(|data: &[u8]| {
    let env = env();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    env.rt.block_on(async {
        let Ok(mut s) = tokio::net::TcpStream::connect(env.addr).await else {
            panic!("broker stopped accepting connections");
        };
        if mode & 1 == 1 {
            let _ = s.write_all(HANDSHAKE).await;
        }
        let _ = s.write_all(rest).await;
        let mut buf = vec![0u8; 65536];
        let deadline = tokio::time::Instant::now() + Duration::from_millis(5);
        while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            if n == 0 {
                break;
            }
        }
    });
});
