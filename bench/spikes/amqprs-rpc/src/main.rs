//! Spike: the RPC loop `warren bench` runs (echo worker with manual acks, client with
//! publisher confirms, `mandatory`, direct reply-to), written on amqprs, reporting CPU
//! per call for the client and the worker (each on its own named tokio runtime, summed
//! from /proc/self/task/*/stat) and for a broker process (`--broker-pid`).
//!
//! Usage: amqprs-rpc-spike HOST:PORT IN_FLIGHT SECONDS [BROKER_PID]
//! Prints one JSON line. Bounded by SECONDS and by 10 million calls.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use amqprs::callbacks::ChannelCallback;
use amqprs::channel::{
    BasicAckArguments, BasicConsumeArguments, BasicPublishArguments, BasicQosArguments, Channel,
    ConfirmSelectArguments, QueueDeclareArguments,
};
use amqprs::connection::{Connection, OpenConnectionArguments};
use amqprs::error::Error as AmqpError;
use amqprs::{Ack, BasicProperties, Cancel, CloseChannel, Nack, Return};
use tokio::sync::oneshot;

const MAX_CALLS: u64 = 10_000_000;
const REPLY_TO: &str = "amq.rabbitmq.reply-to";

type Result<T> = std::result::Result<T, AmqpError>;
type Waiters = Arc<Mutex<BTreeMap<u64, oneshot::Sender<bool>>>>;

/// Resolves publisher confirms by delivery tag (and `multiple`).
struct Confirms(Waiters);

impl Confirms {
    fn settle(&self, tag: u64, multiple: bool, ok: bool) {
        let mut w = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let tags: Vec<u64> = if multiple {
            w.range(..=tag).map(|(t, _)| *t).collect()
        } else {
            vec![tag]
        };
        for t in tags {
            if let Some(tx) = w.remove(&t) {
                let _ = tx.send(ok);
            }
        }
    }
}

#[async_trait::async_trait]
impl ChannelCallback for Confirms {
    async fn close(&mut self, _: &Channel, _: CloseChannel) -> Result<()> {
        Ok(())
    }
    async fn cancel(&mut self, _: &Channel, _: Cancel) -> Result<()> {
        Ok(())
    }
    async fn flow(&mut self, _: &Channel, active: bool) -> Result<bool> {
        Ok(active)
    }
    async fn publish_ack(&mut self, _: &Channel, ack: Ack) {
        self.settle(ack.delivery_tag(), ack.mutiple(), true);
    }
    async fn publish_nack(&mut self, _: &Channel, nack: Nack) {
        self.settle(nack.delivery_tag(), nack.multiple(), false);
    }
    async fn publish_return(&mut self, _: &Channel, _: Return, _: BasicProperties, _: Vec<u8>) {}
}

fn cpu_by_thread_prefix() -> HashMap<String, u64> {
    let mut out = HashMap::new();
    for e in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let path = e.path().join("stat");
        let Ok(s) = std::fs::read_to_string(path) else {
            continue;
        };
        let (Some(o), Some(c)) = (s.find('('), s.rfind(')')) else {
            continue;
        };
        let name = s[o + 1..c].split('-').take(2).collect::<Vec<_>>().join("-");
        let f: Vec<&str> = s[c + 1..].split_whitespace().collect();
        let t = f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
            + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        *out.entry(name).or_default() += t;
    }
    out
}

fn proc_ticks(pid: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let f: Vec<&str> = s
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

async fn open(host: &str, port: u16) -> Connection {
    Connection::open(&OpenConnectionArguments::new(host, port, "guest", "guest"))
        .await
        .expect("connect")
}

/// The echo worker: prefetch 64, manual ack, one task per request (as Warren's server).
async fn worker(host: String, port: u16, queue: String) -> (Connection, Channel) {
    let conn = open(&host, port).await;
    let ch = conn.open_channel(None).await.expect("channel");
    ch.queue_declare(QueueDeclareArguments::transient_autodelete(&queue))
        .await
        .expect("declare");
    ch.basic_qos(BasicQosArguments::new(0, 64, false))
        .await
        .expect("qos");
    let (_tag, mut rx) = ch
        .basic_consume_rx(
            BasicConsumeArguments::new(&queue, "")
                .manual_ack(true)
                .finish(),
        )
        .await
        .expect("consume");
    let chan = ch.clone();
    tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            let chan = chan.clone();
            tokio::spawn(async move {
                let (Some(d), Some(p), Some(body)) = (m.deliver, m.basic_properties, m.content)
                else {
                    return;
                };
                let mut props = BasicProperties::default();
                if let Some(c) = p.correlation_id() {
                    props.with_correlation_id(c);
                }
                if let Some(r) = p.reply_to() {
                    let _ = chan
                        .basic_publish(props.finish(), body, BasicPublishArguments::new("", r))
                        .await;
                }
                let _ = chan
                    .basic_ack(BasicAckArguments::new(d.delivery_tag(), false))
                    .await;
            });
        }
    });
    (conn, ch)
}

struct Client {
    ch: Channel,
    publish: tokio::sync::Mutex<u64>,
    confirms: Waiters,
    replies: Arc<Mutex<HashMap<u64, oneshot::Sender<Vec<u8>>>>>,
    seq: AtomicU64,
}

async fn client(host: String, port: u16) -> (Connection, Arc<Client>) {
    let conn = open(&host, port).await;
    let ch = conn.open_channel(None).await.expect("channel");
    let confirms: Waiters = Arc::default();
    ch.register_callback(Confirms(Arc::clone(&confirms)))
        .await
        .expect("callback");
    ch.confirm_select(ConfirmSelectArguments::default())
        .await
        .expect("confirm");
    let (_tag, mut rx) = ch
        .basic_consume_rx(
            BasicConsumeArguments::new(REPLY_TO, "")
                .auto_ack(true)
                .finish(),
        )
        .await
        .expect("reply consumer");
    let c = Arc::new(Client {
        ch,
        publish: tokio::sync::Mutex::new(0),
        confirms,
        replies: Arc::default(),
        seq: AtomicU64::new(0),
    });
    let replies = Arc::clone(&c.replies);
    tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            let id = m
                .basic_properties
                .as_ref()
                .and_then(|p| p.correlation_id())
                .and_then(|c| c.parse::<u64>().ok());
            let tx = id.and_then(|id| {
                replies
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id)
            });
            if let (Some(tx), Some(body)) = (tx, m.content) {
                let _ = tx.send(body);
            }
        }
    });
    (conn, c)
}

impl Client {
    async fn call(&self, queue: &str, body: &[u8]) -> bool {
        let id = self.seq.fetch_add(1, Ordering::Relaxed);
        let (rtx, rrx) = oneshot::channel();
        self.replies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, rtx);
        let (ctx, crx) = oneshot::channel();
        let mut props = BasicProperties::default();
        props
            .with_correlation_id(&id.to_string())
            .with_reply_to(REPLY_TO)
            .with_expiration("10000");
        let mut args = BasicPublishArguments::new("", queue);
        args.mandatory = true;
        {
            // Delivery tags count publishes on the channel: take the next one and send
            // in the same order.
            let mut tag = self.publish.lock().await;
            *tag += 1;
            self.confirms
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(*tag, ctx);
            if self
                .ch
                .basic_publish(props.finish(), body.to_vec(), args)
                .await
                .is_err()
            {
                return false;
            }
        }
        matches!(crx.await, Ok(true)) && rrx.await.is_ok()
    }
}

fn runtime(name: &str) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .thread_name(name)
        .enable_all()
        .build()
        .expect("runtime")
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let addr = a.get(1).cloned().unwrap_or_else(|| "127.0.0.1:5672".into());
    let in_flight: usize = a.get(2).and_then(|v| v.parse().ok()).unwrap_or(64);
    let secs: u64 = a.get(3).and_then(|v| v.parse().ok()).unwrap_or(5);
    let broker_pid = a.get(4).cloned();
    let (host, port) = addr.rsplit_once(':').expect("HOST:PORT");
    let (host, port) = (host.to_owned(), port.parse::<u16>().expect("port"));
    let (wrt, crt) = (runtime("spike-worker"), runtime("spike-client"));
    let queue = format!("amqprs-spike-{}", std::process::id());
    let (wconn, _wch) = wrt.block_on(worker(host.clone(), port, queue.clone()));
    let (cconn, c) = crt.block_on(client(host, port));
    let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).unwrap_or(100);
    let before = cpu_by_thread_prefix();
    let b0 = broker_pid.as_deref().map(proc_ticks);
    let start = Instant::now();
    let stop = start + Duration::from_secs(secs);
    let issued = Arc::new(AtomicU64::new(0));
    let lat = Arc::new(Mutex::new(Vec::<u32>::new()));
    let tasks: Vec<_> = (0..in_flight)
        .map(|_| {
            let (c, q, issued, lat) = (
                Arc::clone(&c),
                queue.clone(),
                Arc::clone(&issued),
                Arc::clone(&lat),
            );
            crt.spawn(async move {
                let body = [b'x'; 16];
                let mut mine = Vec::new();
                while Instant::now() < stop && issued.fetch_add(1, Ordering::Relaxed) < MAX_CALLS {
                    let t0 = Instant::now();
                    if c.call(&q, &body).await {
                        mine.push(u32::try_from(t0.elapsed().as_micros()).unwrap_or(u32::MAX));
                    }
                }
                lat.lock().unwrap_or_else(|p| p.into_inner()).extend(mine);
            })
        })
        .collect();
    crt.block_on(async {
        for t in tasks {
            let _ = t.await;
        }
    });
    let elapsed = start.elapsed().as_secs_f64();
    let after = cpu_by_thread_prefix();
    let b1 = broker_pid.as_deref().map(proc_ticks);
    let mut lat = lat.lock().unwrap_or_else(|p| p.into_inner()).clone();
    lat.sort_unstable();
    let n = lat.len().max(1) as f64;
    let per = |ticks: u64| ticks as f64 * 1e6 / hz as f64 / n;
    let role = |name: &str| {
        per(after
            .get(name)
            .copied()
            .unwrap_or(0)
            .saturating_sub(before.get(name).copied().unwrap_or(0)))
    };
    let broker = match (b0, b1) {
        (Some(x), Some(y)) => format!("{:.2}", per(y.saturating_sub(x))),
        _ => "null".into(),
    };
    let q = |f: f64| {
        lat.get(((lat.len() as f64 * f) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    println!(
        "{{\"mode\":\"amqprs-spike\",\"in_flight\":{in_flight},\"calls_ok\":{},\"calls_per_sec\":{:.1},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"max_ms\":{:.3},\"cpu_us_per_call\":{{\"client\":{:.2},\"worker\":{:.2},\"broker\":{broker}}}}}",
        lat.len(),
        lat.len() as f64 / elapsed,
        q(0.5),
        q(0.99),
        lat.last().copied().unwrap_or(0) as f64 / 1000.0,
        role("spike-client"),
        role("spike-worker"),
    );
    crt.block_on(async {
        let _ = cconn.close().await;
    });
    wrt.block_on(async {
        let _ = wconn.close().await;
    });
    crt.shutdown_background();
    wrt.shutdown_background();
}
