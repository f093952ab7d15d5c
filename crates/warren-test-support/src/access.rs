//! Access-control test helpers shared by the broker's and the CLI's tests:
//! a table of AMQP operations, each expected to
//! succeed or to be refused with a reply code and text, run against any broker
//! ([`run_table`]); the reply code and text of a lapin error; and the throw-away
//! RabbitMQ node of the `rabbitmq_access` tests (`WARREN_ACCESS_RABBITMQ_URL`,
//! `WARREN_ACCESS_NODE`) driven with `rabbitmqctl`.

use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use std::time::Duration;

/// How long one connect or operation may take.
pub const STEP_LIMIT: Duration = Duration::from_secs(10);

/// The reply code and text of a lapin error (0 and "" if it carries none).
pub fn refusal(err: &lapin::Error) -> (u16, String) {
    match err.kind() {
        lapin::ErrorKind::ProtocolError(e) => (e.get_id(), e.get_message().to_string()),
        _ => (0, String::new()),
    }
}

/// Connect (bounded) and open a channel.
pub async fn open(url: &str) -> (Connection, Channel) {
    let c = connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"));
    let ch = c.create_channel().await.expect("open a channel");
    (c, ch)
}

/// Connect (bounded); a timeout is an error with no reply code.
pub async fn connect(url: &str) -> Result<Connection, lapin::Error> {
    tokio::time::timeout(
        STEP_LIMIT,
        Connection::connect(url, ConnectionProperties::default()),
    )
    .await
    .unwrap_or_else(|_| panic!("connect {url}: no answer in {STEP_LIMIT:?}"))
}

/// One AMQP operation on a channel.
#[derive(Debug, Clone, Copy)]
pub enum Op {
    /// queue.declare (not durable, not exclusive).
    DeclareQueue(&'static str),
    /// queue.declare, passive.
    CheckQueue(&'static str),
    /// exchange.declare of a direct exchange.
    DeclareExchange(&'static str),
    /// queue.delete.
    DeleteQueue(&'static str),
    /// exchange.delete.
    DeleteExchange(&'static str),
    /// basic.publish in confirm mode to (exchange, routing key), waiting for the ack.
    Publish(&'static str, &'static str),
    /// basic.consume.
    Consume(&'static str),
    /// basic.get.
    Get(&'static str),
    /// queue.purge.
    Purge(&'static str),
    /// queue.bind (queue, exchange) with key `k`.
    BindQueue(&'static str, &'static str),
    /// exchange.bind (destination, source) with key `k`.
    BindExchange(&'static str, &'static str),
}

/// What an operation must do.
#[derive(Debug, Clone)]
pub enum Expect {
    /// Succeed.
    Ok,
    /// Fail with this reply code and a reply text starting with this.
    Refused(u16, String),
}

/// RabbitMQ's 403 for a user refused access to `what` (e.g. "queue 'q'").
pub fn access_refused(what: &str, vhost: &str, user: &str) -> Expect {
    Expect::Refused(
        403,
        format!("ACCESS_REFUSED - access to {what} in vhost '{vhost}' refused for user '{user}'"),
    )
}

/// Run `op` on `ch`; the error if the broker refused it.
pub async fn run(ch: &Channel, op: Op) -> Result<(), lapin::Error> {
    let q = QueueDeclareOptions::default();
    let t = FieldTable::default;
    match op {
        Op::DeclareQueue(n) => ch.queue_declare(n.into(), q, t()).await.map(drop),
        Op::CheckQueue(n) => {
            let passive = QueueDeclareOptions { passive: true, ..q };
            ch.queue_declare(n.into(), passive, t()).await.map(drop)
        }
        Op::DeclareExchange(n) => {
            let o = ExchangeDeclareOptions::default();
            ch.exchange_declare(n.into(), ExchangeKind::Direct, o, t())
                .await
        }
        Op::DeleteQueue(n) => ch
            .queue_delete(n.into(), QueueDeleteOptions::default())
            .await
            .map(drop),
        Op::DeleteExchange(n) => {
            ch.exchange_delete(n.into(), ExchangeDeleteOptions::default())
                .await
        }
        Op::Publish(x, k) => {
            ch.confirm_select(ConfirmSelectOptions::default()).await?;
            let props = BasicProperties::default();
            ch.basic_publish(x.into(), k.into(), Default::default(), b"m", props)
                .await?
                .await
                .map(drop)
        }
        Op::Consume(n) => ch
            .basic_consume(n.into(), "".into(), BasicConsumeOptions::default(), t())
            .await
            .map(drop),
        Op::Get(n) => ch
            .basic_get(n.into(), BasicGetOptions { no_ack: true })
            .await
            .map(drop),
        Op::Purge(n) => ch
            .queue_purge(n.into(), QueuePurgeOptions::default())
            .await
            .map(drop),
        Op::BindQueue(n, x) => {
            ch.queue_bind(n.into(), x.into(), "k".into(), Default::default(), t())
                .await
        }
        Op::BindExchange(d, s) => {
            ch.exchange_bind(d.into(), s.into(), "k".into(), Default::default(), t())
                .await
        }
    }
}

/// Run each (operation, expectation) as the user of `url`, in order. A refusal
/// closes the channel (or the connection), so the next row gets a new connection.
pub async fn run_table(url: &str, table: &[(Op, Expect)]) {
    let mut conn = None;
    for (op, expect) in table {
        let (c, ch) = match conn.take() {
            Some(open) => open,
            None => open(url).await,
        };
        let r = tokio::time::timeout(STEP_LIMIT, run(&ch, *op))
            .await
            .unwrap_or_else(|_| panic!("{op:?}: no answer in {STEP_LIMIT:?}"));
        match (expect, r) {
            (Expect::Ok, Ok(())) => conn = Some((c, ch)),
            (Expect::Ok, Err(e)) => panic!("{op:?} on {url}: expected success, got {e}"),
            (Expect::Refused(code, _), Ok(())) => {
                panic!("{op:?} on {url}: expected {code}, it succeeded")
            }
            (Expect::Refused(code, text), Err(e)) => {
                let (got, message) = refusal(&e);
                assert_eq!(got, *code, "{op:?} on {url}: {e}");
                assert!(
                    message.starts_with(text.as_str()),
                    "{op:?} on {url}: reply text {message:?}, expected {text:?}..."
                );
            }
        }
    }
}

/// The throw-away RabbitMQ node: (node name for `rabbitmqctl -n`, `host:port`).
pub fn access_node() -> (String, String) {
    let url = std::env::var("WARREN_ACCESS_RABBITMQ_URL").expect("WARREN_ACCESS_RABBITMQ_URL");
    // host:port of `amqp://[user:pass@]host:port[/vhost]`.
    let rest = url.trim_start_matches("amqp://");
    let rest = rest.rsplit('@').next().unwrap_or(rest);
    let host = rest.split('/').next().unwrap_or(rest).to_owned();
    let node =
        std::env::var("WARREN_ACCESS_NODE").unwrap_or_else(|_| "warren-access@localhost".into());
    (node, host)
}

/// `rabbitmqctl -n NODE ARGS`, which must succeed; its output.
pub fn ctl(node: &str, args: &[&str]) -> String {
    let out = std::process::Command::new("rabbitmqctl")
        .arg("-n")
        .arg(node)
        .args(args)
        .output()
        .expect("run rabbitmqctl");
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `rabbitmqctl -n NODE ARGS` whose failure does not matter (deleting what may
/// not exist).
pub fn ctl_quiet(node: &str, args: &[&str]) {
    let _ = std::process::Command::new("rabbitmqctl")
        .arg("-n")
        .arg(node)
        .args(args)
        .output();
}

/// Create a vhost afresh on the node.
pub fn fresh_vhost(node: &str, vhost: &str) {
    ctl_quiet(node, &["delete_vhost", vhost]);
    ctl(node, &["add_vhost", vhost]);
}

/// Create a user afresh on the node.
pub fn fresh_user(node: &str, user: &str, pass: &str) {
    ctl_quiet(node, &["delete_user", user]);
    ctl(node, &["add_user", user, pass]);
}
