//! `warren broker --max-connections / --max-pending-handshakes / --handshake-timeout`
//! reach the broker: a silent socket is closed after the handshake timeout, and an
//! authenticated client past the connection limit is refused with 530.

mod common;
use common::broker_process;

use std::time::{Duration, Instant};

use broker_process::BrokerProcess;
use lapin::{Connection, ConnectionProperties};
use tokio::io::AsyncReadExt;

#[tokio::test]
async fn limits_and_handshake_timeout_from_the_command_line() {
    let broker = BrokerProcess::start([
        "--max-connections",
        "1",
        "--max-pending-handshakes",
        "4",
        "--handshake-timeout",
        "300ms",
    ]);
    let addr = broker.addr();
    // A socket that never sends the protocol header is closed at the timeout.
    let t0 = Instant::now();
    let mut idle = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let mut sink = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut sink))
        .await
        .expect("closed within 5 s")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(
        t0.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t0.elapsed()
    );

    let url = broker.url();
    let first = Connection::connect(&url, ConnectionProperties::default())
        .await
        .expect("first client");
    let err = Connection::connect(&url, ConnectionProperties::default())
        .await
        .expect_err("a second client is over --max-connections 1");
    let code = match err.kind() {
        lapin::ErrorKind::ProtocolError(e) => e.get_id(),
        _ => 0,
    };
    assert_eq!(code, 530, "{err}");
    first.close(200, "bye".into()).await.expect("close");
}
