//! [`RpcServer`]: consumes request queues with a prefetch limit, runs the handler of
//! each request, publishes the reply (before acking the request), and drains
//! gracefully on shutdown.
//!
//! The path of a request: `serve_queue` receives a delivery and spawns `process`, which
//! builds the [`Request`], skips it if its deadline passed, runs the handler (a panic
//! or a deadline overrun becomes an error status), publishes the reply to `reply_to`
//! and finally acks. Requests are never requeued by the server: a bad request gets an
//! `invalid_argument` reply and is acked, so it cannot loop.
//!
//! Each connection attempt (TCP, handshake, queue declarations, consumers) ends within
//! the connect timeout, and shutdown's cancels and closes each within a close timeout,
//! so neither start nor shutdown hangs on a broker that stalls.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tracing::{debug, info, warn};

mod acks;
mod serve;

use self::serve::{serve_queue, Consumer};
use crate::amqp::{Connection, Inbound};
use crate::connect::{
    self, Backoff, CutOnDrop, Dial, DEFAULT_CONNECT_TIMEOUT, DEFAULT_HEARTBEAT,
    DEFAULT_SHUTDOWN_TIMEOUT,
};
use crate::error::{Error, Result};
use crate::handler::Handler;
use crate::headers;
use crate::queue::QueueSpec;
use crate::telemetry::{Observer, Side};

/// Default number of requests a server works on at once per queue (its prefetch).
pub const DEFAULT_CONCURRENCY: u16 = 32;

#[derive(Clone)]
struct Route {
    queue: QueueSpec,
    handler: Arc<dyn Handler>,
}

/// An RPC server: a set of queues, each with its handler.
///
/// ```no_run
/// use warren_rpc::{Request, Response, RpcServer, Status};
///
/// async fn echo(request: Request) -> Result<Response, Status> {
///     Ok(Response::bytes(request.body))
/// }
///
/// # async fn demo() -> warren_rpc::Result<()> {
/// let server = RpcServer::new()
///     .concurrency(8)
///     .route("echo", echo)
///     .fallback_url("amqp://guest:guest@127.0.0.2:5672/%2f")
///     .start("amqp://guest:guest@127.0.0.1:5672/%2f")
///     .await?;
/// tokio::signal::ctrl_c().await.ok();
/// server.shutdown().await?;
/// # Ok(()) }
/// ```
pub struct RpcServer {
    routes: Vec<Route>,
    concurrency: u16,
    fallbacks: Vec<String>,
    backoff: Backoff,
    connect_timeout: Duration,
    heartbeat: Duration,
    observer: Observer,
    tls: Option<crate::TlsConfig>,
}

impl Default for RpcServer {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for RpcServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let queues: Vec<_> = self.routes.iter().map(|r| r.queue.name.as_str()).collect();
        f.debug_struct("RpcServer")
            .field("queues", &queues)
            .field("concurrency", &self.concurrency)
            .finish()
    }
}

impl RpcServer {
    /// A server with no routes and the default concurrency.
    pub fn new() -> Self {
        RpcServer {
            routes: Vec::new(),
            concurrency: DEFAULT_CONCURRENCY,
            fallbacks: Vec::new(),
            backoff: Backoff::default(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            heartbeat: DEFAULT_HEARTBEAT,
            observer: Observer::default(),
            tls: None,
        }
    }

    /// Counts this server's calls, requests in flight, reconnects and deadline
    /// expiries into `metrics` (feature `metrics`).
    #[cfg(feature = "metrics")]
    pub fn metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.observer.metrics = Some(metrics);
        self
    }

    /// TLS options for `amqps://` addresses (see [`ClientBuilder::tls`](crate::ClientBuilder::tls)).
    pub fn tls(mut self, tls: crate::TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Requests worked on at once per queue: the consumer's `basic.qos` prefetch.
    /// 1 reproduces RabbitMQ's tutorial. Values below 1 are raised to 1.
    pub fn concurrency(mut self, n: u16) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Serves `queue` with `handler`. The queue is declared on start.
    pub fn route(mut self, queue: impl Into<QueueSpec>, handler: impl Handler) -> Self {
        self.routes.push(Route {
            queue: queue.into(),
            handler: Arc::new(handler),
        });
        self
    }

    /// Adds a fallback broker address, tried in order after the one given to
    /// [`start`](RpcServer::start) (and after the fallbacks added before it).
    pub fn fallback_url(mut self, url: impl Into<String>) -> Self {
        self.fallbacks.push(url.into());
        self
    }

    /// Delays between reconnection attempts.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Time allowed for each connection attempt: TCP connect, AMQP handshake, queue
    /// declarations and consumers together (default 10 s). [`RpcServer::start`] fails
    /// by then; later reconnection attempts are each bounded by it. With fallback
    /// addresses, each address gets an equal share of what is left.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Heartbeat interval asked of the broker (default 10 s; whole seconds; zero takes
    /// the broker's). A connection that hears nothing for two intervals is torn down
    /// and the server reconnects. An explicit `heartbeat` in the URL wins.
    pub fn heartbeat(mut self, interval: Duration) -> Self {
        self.heartbeat = interval;
        self
    }

    /// Connects, declares the queues and starts consuming. Returns once every queue
    /// has its consumer, so calls made after this returns are served, or fails within
    /// the connect timeout. From then on the server reconnects by itself whenever the
    /// connection is lost.
    pub async fn start(self, url: &str) -> Result<ServerHandle> {
        if self.routes.is_empty() {
            return Err(Error::InvalidArgument(
                "a server needs at least one route".to_owned(),
            ));
        }
        let mut urls = vec![url.to_owned()];
        urls.extend(self.fallbacks);
        let settings = Settings {
            urls: urls.clone(),
            routes: self.routes,
            concurrency: self.concurrency,
            backoff: self.backoff,
            connect_timeout: self.connect_timeout,
            dial: Dial {
                name: "warren-server",
                heartbeat: self.heartbeat,
                tls: connect::Tls::for_urls(&urls, self.tls.as_ref())?,
            },
            observer: self.observer,
        };
        let first = Session::open(&settings).await?;
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(supervise(settings, first, stop_rx));
        Ok(ServerHandle { stop, task })
    }

    /// Serves until `signal` resolves, then shuts down gracefully.
    pub async fn serve_with_shutdown(
        self,
        url: &str,
        signal: impl std::future::Future<Output = ()>,
    ) -> Result<()> {
        let handle = self.start(url).await?;
        signal.await;
        handle.shutdown().await
    }
}

struct Settings {
    urls: Vec<String>,
    routes: Vec<Route>,
    concurrency: u16,
    backoff: Backoff,
    connect_timeout: Duration,
    dial: Dial,
    observer: Observer,
}

/// One connection's worth of server state: a channel and consumer per route.
struct Session {
    connection: Connection,
    queues: Vec<(Consumer, Arc<dyn Handler>)>,
    observer: Observer,
    cut: CutOnDrop,
}

impl Session {
    /// Connects and subscribes every route, within the connect timeout.
    async fn open(settings: &Settings) -> Result<Session> {
        let deadline = Instant::now() + settings.connect_timeout;
        let link = connect::open_any(&settings.urls, deadline, &settings.dial).await?;
        let subscribe_all = async {
            let mut queues = Vec::with_capacity(settings.routes.len());
            for route in &settings.routes {
                let consumer =
                    subscribe(&link.connection, &route.queue, settings.concurrency).await?;
                info!(
                    queue = route.queue.name,
                    prefetch = settings.concurrency,
                    "serving"
                );
                queues.push((consumer, Arc::clone(&route.handler)));
            }
            Ok(queues)
        };
        let queues =
            connect::set_up(&link, deadline, settings.connect_timeout, subscribe_all).await?;
        Ok(Session {
            connection: link.connection,
            queues,
            observer: settings.observer.clone(),
            cut: link.cut,
        })
    }

    /// Serves until `stop` is set (returns `None`) or a consumer ends on its own
    /// (returns why). Either way, calls already started are finished first.
    async fn run(self, stop: &mut watch::Receiver<bool>) -> Option<String> {
        let (session_stop, session_stop_rx) = watch::channel(false);
        let blocked = self.connection.blocked();
        let mut queues = JoinSet::new();
        for (consumer, handler) in self.queues {
            queues.spawn(serve_queue(
                consumer,
                handler,
                session_stop_rx.clone(),
                blocked.clone(),
                self.observer.clone(),
            ));
        }
        let lost = tokio::select! {
            _ = stop.wait_for(|s| *s) => None,
            Some(res) = queues.join_next() => Some(match res {
                Ok(Err(e)) => e.to_string(),
                Ok(Ok(())) => "a request consumer stopped".to_owned(),
                Err(e) => format!("a queue task failed: {e}"),
            }),
        };
        let _ = session_stop.send(true);
        while queues.join_next().await.is_some() {}
        let closed = connect::close(
            &self.connection,
            &self.cut,
            DEFAULT_SHUTDOWN_TIMEOUT,
            "server shutting down",
        )
        .await;
        if let Err(e) = closed {
            debug!(error = %e, "closing the server connection");
        }
        lost
    }
}

/// Runs sessions until stopped, reconnecting with backoff after each loss.
async fn supervise(
    settings: Settings,
    first: Session,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    let mut session = first;
    loop {
        let Some(reason) = session.run(&mut stop).await else {
            info!("server stopped");
            return Ok(());
        };
        warn!(reason, "server lost its connection; reconnecting");
        let mut attempt = 0u32;
        session = loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return Ok(()),
                _ = tokio::time::sleep(settings.backoff.delay(attempt)) => {}
            }
            attempt = attempt.saturating_add(1);
            let opened = tokio::select! {
                _ = stop.wait_for(|s| *s) => return Ok(()),
                opened = Session::open(&settings) => opened,
            };
            match opened {
                Ok(s) => {
                    info!(attempt, "server reconnected");
                    settings.observer.reconnected(Side::Server);
                    break s;
                }
                Err(e) => debug!(attempt, error = %e, "reconnection failed"),
            }
        };
    }
}

/// Declares `queue`, sets the prefetch and starts its consumer on a channel of its own.
async fn subscribe(connection: &Connection, queue: &QueueSpec, prefetch: u16) -> Result<Consumer> {
    let arguments = headers::to_field_table(&queue.arguments).map_err(|e| {
        Error::InvalidArgument(format!("the arguments of queue `{}`: {e}", queue.name))
    })?;
    if queue.name.len() > 255 {
        return Err(Error::InvalidArgument(format!(
            "queue name is longer than 255 bytes: {:.40}...",
            queue.name
        )));
    }
    let channel = connection.open_channel().await.map_err(Error::amqp)?;
    channel
        .queue_declare(&queue.name, queue.declare_options(), arguments)
        .await
        .map_err(Error::amqp)?;
    channel.qos(prefetch).await.map_err(Error::amqp)?;
    let (tx, deliveries) = mpsc::unbounded_channel::<Inbound>();
    let tag = channel
        .consume(&queue.name, false, Box::new(tx))
        .await
        .map_err(Error::amqp)?;
    Ok(Consumer {
        channel,
        tag,
        queue: queue.name.as_str().into(),
        deliveries,
    })
}

/// A running server.
#[derive(Debug)]
pub struct ServerHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<()>>,
}

impl ServerHandle {
    /// Graceful shutdown: stop consuming, finish the calls already started, reply to
    /// them and ack them, then close the connection. Requests not yet delivered stay
    /// in their queue for other workers.
    pub async fn shutdown(self) -> Result<()> {
        let _ = self.stop.send(true);
        self.task.await.map_err(|e| Error::Unavailable {
            reason: format!("the server task failed: {e}"),
        })?
    }
}
