//! `warren broker --max-connections / --max-pending-handshakes / --handshake-timeout`
//! reach the broker: a silent socket is closed after the handshake timeout, and an
//! authenticated client past the connection limit is refused with 530.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lapin::{Connection, ConnectionProperties};
use tokio::io::AsyncReadExt;

const WARREN: &str = env!("CARGO_BIN_EXE_warren");

/// Kills the broker when the test ends, however it ends.
struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `warren broker` on a free port with `flags`; returns it and its address.
fn start(flags: &[&str]) -> (Broker, String) {
    let mut child = Command::new(WARREN)
        .args(["broker", "--listen", "127.0.0.1:0"])
        .args(flags)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("warren broker starts");
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    let broker = Broker(child);
    let addr = line
        .split_whitespace()
        .find(|a| a.starts_with("127.0.0.1:"))
        .unwrap_or_else(|| panic!("broker ready line: {line:?}"))
        .to_owned();
    (broker, addr)
}

#[tokio::test]
async fn limits_and_handshake_timeout_from_the_command_line() {
    let (_broker, addr) = start(&[
        "--max-connections",
        "1",
        "--max-pending-handshakes",
        "4",
        "--handshake-timeout",
        "300ms",
    ]);
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

    let url = format!("amqp://guest:guest@{addr}/%2f");
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
