//! [`RpcServer`]: consumes request queues with a prefetch limit, runs the handler of
//! each request, publishes the reply (before acking the request), and drains
//! gracefully on shutdown.
//!
//! The path of a request: `serve_queue` receives a delivery and spawns `process`, which
//! builds the [`Request`], skips it if its deadline passed, runs the handler (a panic
//! or a deadline overrun becomes an error status), publishes the reply to `reply_to`
//! and finally acks. Requests are never requeued by the server: a bad request gets an
//! `invalid_argument` reply and is acked, so it cannot loop.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, Consumer};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, info, warn};

mod acks;

use self::acks::Acks;
use crate::client::DEFAULT_CONNECT_TIMEOUT;
use crate::connect::{self, Backoff};
use crate::context::{Context, Request, Response};
use crate::error::{Error, Result};
use crate::handler::Handler;
use crate::queue::QueueSpec;
use crate::status::{Code, Status};
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
/// use warren_rpc::{services::fib, RpcServer};
/// # async fn demo() -> warren_rpc::Result<()> {
/// let server = RpcServer::new()
///     .concurrency(8)
///     .route(fib::QUEUE, fib::handle)
///     .start("amqp://guest:guest@127.0.0.1:5672/%2f")
///     .await?;
/// warren_rpc::shutdown::signal().await;
/// server.shutdown().await?;
/// # Ok(()) }
/// ```
pub struct RpcServer {
    routes: Vec<Route>,
    concurrency: u16,
    fallbacks: Vec<String>,
    backoff: Backoff,
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
        }
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

    /// Adds a fallback broker address, tried in order after the one given to `start`.
    pub fn fallback_url(mut self, url: impl Into<String>) -> Self {
        self.fallbacks.push(url.into());
        self
    }

    /// Delays between reconnection attempts.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Connects, declares the queues and starts consuming. Returns once every queue
    /// has its consumer, so calls made after this returns are served. From then on
    /// the server reconnects by itself whenever the connection is lost.
    pub async fn start(self, url: &str) -> Result<ServerHandle> {
        if self.routes.is_empty() {
            return Err(Error::InvalidArgument(
                "a server needs at least one route".to_owned(),
            ));
        }
        let mut urls = vec![url.to_owned()];
        urls.extend(self.fallbacks);
        let settings = Settings {
            urls,
            routes: self.routes,
            concurrency: self.concurrency,
            backoff: self.backoff,
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
}

/// One connection's worth of server state: a channel and consumer per route.
struct Session {
    connection: Connection,
    queues: Vec<(Channel, Consumer, Arc<dyn Handler>)>,
}

impl Session {
    async fn open(settings: &Settings) -> Result<Session> {
        let connection =
            connect::open_any(&settings.urls, DEFAULT_CONNECT_TIMEOUT, "warren-server").await?;
        let mut queues = Vec::with_capacity(settings.routes.len());
        for route in &settings.routes {
            let (channel, consumer) =
                subscribe(&connection, &route.queue, settings.concurrency).await?;
            info!(
                queue = route.queue.name,
                prefetch = settings.concurrency,
                "serving"
            );
            queues.push((channel, consumer, Arc::clone(&route.handler)));
        }
        Ok(Session { connection, queues })
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
        if let Err(e) = self
            .connection
            .close(200, "server shutting down".into())
            .await
        {
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
            match Session::open(&settings).await {
                Ok(s) => {
                    info!(attempt, "server reconnected");
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
    let channel = connection.create_channel().await?;
    channel
        .queue_declare(
            queue.name.as_str().into(),
            queue.declare_options(),
            queue.arguments.clone(),
        )
        .await?;
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let consumer = channel
        .basic_consume(
            queue.name.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
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
) -> Result<()> {
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
        ));
    };
    let outcome = loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break Ok(()),
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            next = consumer.next() => match next {
                Some(Ok(delivery)) => spawn(&mut in_flight, delivery),
                Some(Err(e)) => break Err(Error::from(e)),
                None => break Err(Error::Unavailable {
                    reason: format!("the broker cancelled the consumer of `{}`", consumer.queue()),
                }),
            }
        }
    };
    if outcome.is_ok() {
        // Stop new deliveries; take those already on the wire, then drain.
        let tag = consumer.tag();
        if let Err(e) = channel
            .basic_cancel(tag, BasicCancelOptions::default())
            .await
        {
            debug!(error = %e, "cancelling the consumer");
        }
        while let Ok(Some(Ok(delivery))) = tokio::time::timeout(CANCEL_GRACE, consumer.next()).await
        {
            spawn(&mut in_flight, delivery);
        }
    }
    while in_flight.join_next().await.is_some() {}
    if outcome.is_ok() {
        // Close the channel ourselves before the connection goes, so no channel is
        // left closing while the connection closes.
        if let Err(e) = channel.close(200, "server shutting down".into()).await {
            debug!(error = %e, "closing the channel");
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
            headers: props.headers().clone().unwrap_or_default(),
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
) {
    let request = request_of(&mut delivery);
    let reply_to = request.context.reply_to.clone();
    if request.context.is_expired() {
        debug!(correlation_id = ?request.context.correlation_id, "skipping a request past its deadline");
    } else {
        let result = run_handler(handler.as_ref(), request).await;
        if let Some(reply_to) = reply_to {
            let (body, content_type, code) = match result {
                Ok(resp) => (resp.body, resp.content_type, Code::Ok),
                Err(status) => {
                    debug!(%status, "call failed");
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
            let published = channel
                .basic_publish("".into(), reply_to.into(), Default::default(), &body, props)
                .await;
            if let Err(e) = published {
                // Leave the request unacked: the broker redelivers it once this channel closes.
                warn!(error = %e, "could not publish a reply; the request will be redelivered");
                return;
            }
        }
    }
    acks.done(delivery.delivery_tag).await;
}
