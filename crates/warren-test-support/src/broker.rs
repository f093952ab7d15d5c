//! Helpers for the broker's own tests: a broker on a free port, lapin connections,
//! channels and consumers, and a raw-frame client ([`raw`]).

pub mod raw;

use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, Consumer};
use std::time::Duration;
use warren_broker::{Broker, BrokerHandle};

/// Default per-test time bound.
pub const LIMIT: Duration = Duration::from_secs(20);

/// Start a broker on an ephemeral port.
pub async fn start() -> BrokerHandle {
    Broker::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .start()
        .await
        .unwrap()
}

/// Connect a lapin client.
pub async fn connect(b: &BrokerHandle) -> Connection {
    Connection::connect(&b.amqp_url(), ConnectionProperties::default())
        .await
        .unwrap()
}

/// Connect and open one channel.
pub async fn channel(b: &BrokerHandle) -> (Connection, Channel) {
    let c = connect(b).await;
    let ch = c.create_channel().await.unwrap();
    (c, ch)
}

/// Start a consumer with an auto-generated tag.
pub async fn consume(ch: &Channel, queue: &str, no_ack: bool) -> Consumer {
    ch.basic_consume(
        queue.into(),
        "".into(),
        BasicConsumeOptions {
            no_ack,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap()
}

/// Declare an exclusive, server-named queue; returns its name.
pub async fn server_named_queue(ch: &Channel) -> String {
    let opts = QueueDeclareOptions {
        exclusive: true,
        ..Default::default()
    };
    ch.queue_declare("".into(), opts, FieldTable::default())
        .await
        .unwrap()
        .name()
        .to_string()
}

/// Next delivery within 5 s.
pub async fn next(c: &mut Consumer) -> lapin::message::Delivery {
    tokio::time::timeout(Duration::from_secs(5), c.next())
        .await
        .expect("timed out waiting for delivery")
        .expect("consumer ended")
        .expect("delivery error")
}

/// Assert no delivery arrives within `ms`.
pub async fn nothing(c: &mut Consumer, ms: u64) {
    if let Ok(Some(d)) = tokio::time::timeout(Duration::from_millis(ms), c.next()).await {
        panic!("unexpected delivery: {:?}", d.map(|d| d.data));
    }
}

/// Run a test body under the global time limit.
pub async fn bounded<F: std::future::Future<Output = ()>>(f: F) {
    crate::within(LIMIT, f).await
}

/// The AMQP reply code carried by a lapin error (0 if none).
pub fn code(err: &lapin::Error) -> u16 {
    match err.kind() {
        lapin::ErrorKind::ProtocolError(e) => e.get_id(),
        _ => 0,
    }
}
