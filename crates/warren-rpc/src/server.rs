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

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{Channel, Connection, Consumer};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tracing::{debug, info, warn};

mod acks;

use self::acks::Acks;
use crate::connect::{
    self, Backoff, CutOnDrop, Dial, DEFAULT_CONNECT_TIMEOUT, DEFAULT_HEARTBEAT,
    DEFAULT_SHUTDOWN_TIMEOUT,
};
use crate::context::{Context, Request, Response};
use crate::error::{Error, Result};
use crate::handler::Handler;
use crate::headers;
use crate::queue::QueueSpec;
use crate::status::{Code, Status};
use crate::telemetry::{Observer, Side};
use crate::wire;

/// Default number of requests a server works on at once per queue (its prefetch).
pub const DEFAULT_CONCURRENCY: u16 = 32;

/// How long shutdown waits for deliveries still on the wire after cancelling.
const CANCEL_GRACE: Duration = Duration::from_secs(2);

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
    queues: Vec<(Channel, Consumer, Arc<dyn Handler>)>,
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
                let (channel, consumer) =
                    subscribe(&link.connection, &route.queue, settings.concurrency).await?;
                info!(
                    queue = route.queue.name,
                    prefetch = settings.concurrency,
                    "serving"
                );
                queues.push((channel, consumer, Arc::clone(&route.handler)));
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
        let (blocked_tx, blocked) = watch::channel(false);
        let events = tokio::spawn(watch_blocked(self.connection.events_listener(), blocked_tx));
        let mut queues = JoinSet::new();
        for (channel, consumer, handler) in self.queues {
            queues.spawn(serve_queue(
                channel,
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
        events.abort();
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

/// Mirrors the broker's `connection.blocked` / `unblocked` into `blocked`.
async fn watch_blocked(
    events: impl futures_util::Stream<Item = lapin::Event>,
    blocked: watch::Sender<bool>,
) {
    futures_util::pin_mut!(events);
    while let Some(event) = events.next().await {
        match event {
            lapin::Event::ConnectionBlocked(reason) => {
                warn!(reason, "the broker blocked publishing; replies wait");
                blocked.send_replace(true);
            }
            lapin::Event::ConnectionUnblocked => {
                info!("the broker unblocked publishing");
                blocked.send_replace(false);
            }
            _ => {}
        }
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

async fn subscribe(
    connection: &Connection,
    queue: &QueueSpec,
    prefetch: u16,
) -> Result<(Channel, Consumer)> {
    let arguments = headers::to_field_table(&queue.arguments).map_err(|e| {
        Error::InvalidArgument(format!("the arguments of queue `{}`: {e}", queue.name))
    })?;
    let name = ShortString::try_new(queue.name.as_str()).map_err(|_| {
        Error::InvalidArgument(format!(
            "queue name is longer than 255 bytes: {:.40}...",
            queue.name
        ))
    })?;
    let channel = connection.create_channel().await.map_err(Error::amqp)?;
    channel
        .queue_declare(name.clone(), queue.declare_options(), arguments)
        .await
        .map_err(Error::amqp)?;
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await
        .map_err(Error::amqp)?;
    let consumer = channel
        .basic_consume(
            name,
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(Error::amqp)?;
    Ok((channel, consumer))
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

async fn serve_queue(
    channel: Channel,
    mut consumer: Consumer,
    handler: Arc<dyn Handler>,
    mut stop: watch::Receiver<bool>,
    blocked: watch::Receiver<bool>,
    observer: Observer,
) -> Result<()> {
    let queue: Arc<str> = consumer.queue().as_str().into();
    let mut in_flight = JoinSet::new();
    let acks = Acks::new(channel.clone());
    let spawn = |in_flight: &mut JoinSet<()>, delivery: Delivery| {
        acks.received(delivery.delivery_tag);
        in_flight.spawn(process(
            channel.clone(),
            Arc::clone(&handler),
            delivery,
            blocked.clone(),
            acks.clone(),
            (observer.clone(), Arc::clone(&queue)),
        ));
    };
    let outcome = loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break Ok(()),
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            next = consumer.next() => match next {
                Some(Ok(delivery)) => spawn(&mut in_flight, delivery),
                Some(Err(e)) => break Err(Error::amqp(e)),
                None => break Err(Error::Unavailable {
                    reason: format!("the broker cancelled the consumer of `{}`", consumer.queue()),
                }),
            }
        }
    };
    // Whether the broker still answers: once it misses the cancel's bound, the
    // channel's close is not waited for either.
    let mut answering = outcome.is_ok();
    if answering {
        // Stop new deliveries; take those already on the wire, then drain.
        let tag = consumer.tag();
        let cancel = channel.basic_cancel(tag, BasicCancelOptions::default());
        match tokio::time::timeout(DEFAULT_SHUTDOWN_TIMEOUT, cancel).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => debug!(error = %e, "cancelling the consumer"),
            Err(_) => {
                warn!("the broker did not confirm the consumer's cancel in time");
                answering = false;
            }
        }
        if answering {
            while let Ok(Some(Ok(delivery))) =
                tokio::time::timeout(CANCEL_GRACE, consumer.next()).await
            {
                spawn(&mut in_flight, delivery);
            }
        }
    }
    while in_flight.join_next().await.is_some() {}
    if answering {
        // Close the channel ourselves before the connection goes, so no channel is
        // left closing while the connection closes.
        let close = channel.close(200, "server shutting down".into());
        match tokio::time::timeout(DEFAULT_SHUTDOWN_TIMEOUT, close).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => debug!(error = %e, "closing the channel"),
            Err(_) => debug!("the broker did not confirm the channel's close in time"),
        }
    }
    outcome
}

fn request_of(delivery: &mut Delivery) -> Request {
    let props = &delivery.properties;
    Request {
        context: Context {
            correlation_id: props.correlation_id().as_ref().map(|s| s.to_string()),
            deadline: wire::deadline_of(props),
            reply_to: props.reply_to().as_ref().map(|s| s.to_string()),
            redelivered: delivery.redelivered,
            headers: props
                .headers()
                .as_ref()
                .map(headers::from_field_table)
                .unwrap_or_default(),
        },
        body: std::mem::take(&mut delivery.data),
        content_type: props.content_type().as_ref().map(|s| s.to_string()),
        method: props.kind().as_ref().map(|s| s.to_string()),
    }
}

/// Runs the handler, turning a panic or a deadline overrun into an error status.
async fn run_handler(handler: &dyn Handler, request: Request) -> Result<Response, Status> {
    let remaining = request.context.remaining();
    let work = AssertUnwindSafe(handler.call(request)).catch_unwind();
    let outcome = match remaining {
        Some(left) => match tokio::time::timeout(left, work).await {
            Ok(res) => res,
            Err(_) => {
                return Err(Status::new(
                    Code::DeadlineExceeded,
                    "the call's deadline passed while the server worked on it",
                ))
            }
        },
        None => work.await,
    };
    outcome.unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        warn!(panic = what, "handler panicked");
        Err(Status::internal(format!("the handler panicked: {what}")))
    })
}

async fn process(
    channel: Channel,
    handler: Arc<dyn Handler>,
    mut delivery: Delivery,
    mut blocked: watch::Receiver<bool>,
    acks: Acks,
    (observer, queue): (Observer, Arc<str>),
) {
    let request = request_of(&mut delivery);
    let reply_to = request.context.reply_to.clone();
    if request.context.is_expired() {
        observer.request_expired(&queue, request.context.correlation_id.as_deref());
    } else {
        let headers = delivery.properties.headers().as_ref();
        let scope = observer.serve(&queue, request.method.as_deref(), headers);
        if let Some(id) = &request.context.correlation_id {
            scope.correlation_id(id);
        }
        let correlation_id = request.context.correlation_id.clone();
        let result = scope
            .in_context(run_handler(handler.as_ref(), request))
            .await;
        let code = match &result {
            Ok(_) => Code::Ok,
            Err(status) => status.code(),
        };
        scope.finish(&code, correlation_id.as_deref());
        if let Some(reply_to) = reply_to {
            let (body, content_type, code) = match result {
                Ok(resp) => (resp.body, resp.content_type, Code::Ok),
                Err(status) => {
                    debug!(%status, "replying with an error");
                    (
                        status.message().as_bytes().to_vec(),
                        Some("text/plain".to_owned()),
                        status.code(),
                    )
                }
            };
            let props = wire::reply_properties(&delivery.properties, content_type.as_deref(), code);
            // Honour connection.blocked: hold the reply until the broker unblocks us.
            let _ = blocked.wait_for(|b| !*b).await;
            // Queue the reply's frames and go on to the ack without waiting for lapin's
            // I/O thread to say they were written: that wait cost the worker a wake-up
            // per call (about 16% of its CPU per call, bench/PROFILE.md). The ack is
            // queued behind the reply on the same channel, so a reply that cannot be
            // written leaves its request unacked too, and a channel that is already
            // closed fails here, on the first poll.
            let publish =
                channel.basic_publish("".into(), reply_to.into(), Default::default(), &body, props);
            if let Some(Err(e)) = publish.now_or_never() {
                // Leave the request unacked: the broker redelivers it once this channel closes.
                warn!(error = %e, "could not publish a reply; the request will be redelivered");
                return;
            }
        }
    }
    acks.done(delivery.delivery_tag).await;
}
