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
use lapin::options::{BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, Consumer};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::client::{open_connection, DEFAULT_CONNECT_TIMEOUT};
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

    /// Connects, declares the queues and starts consuming. Returns once every queue
    /// has its consumer, so calls made after this returns are served.
    pub async fn start(self, url: &str) -> Result<ServerHandle> {
        if self.routes.is_empty() {
            return Err(Error::InvalidArgument(
                "a server needs at least one route".to_owned(),
            ));
        }
        let connection = open_connection(url, DEFAULT_CONNECT_TIMEOUT, "warren-server").await?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut queues = JoinSet::new();
        for route in self.routes {
            let (channel, consumer) =
                subscribe(&connection, &route.queue, self.concurrency).await?;
            info!(
                queue = route.queue.name,
                prefetch = self.concurrency,
                "serving"
            );
            queues.spawn(serve_queue(
                channel,
                consumer,
                route.handler,
                stop_rx.clone(),
            ));
        }
        Ok(ServerHandle {
            connection,
            stop: stop_tx,
            queues,
        })
    }

    /// Serves until `signal` resolves, then shuts down gracefully.
    pub async fn serve_with_shutdown(
        self,
        url: &str,
        signal: impl std::future::Future<Output = ()>,
    ) -> Result<()> {
        let mut handle = self.start(url).await?;
        tokio::select! {
            _ = signal => handle.shutdown().await,
            res = handle.wait_failure() => res,
        }
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
pub struct ServerHandle {
    connection: Connection,
    stop: watch::Sender<bool>,
    queues: JoinSet<Result<()>>,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("queues", &self.queues.len())
            .finish()
    }
}

impl ServerHandle {
    /// Graceful shutdown: stop consuming, finish the calls already started, reply to
    /// them and ack them, then close the connection. Requests not yet delivered stay
    /// in their queue for other workers.
    pub async fn shutdown(mut self) -> Result<()> {
        let _ = self.stop.send(true);
        let mut first_error = None;
        while let Some(res) = self.queues.join_next().await {
            if let Err(e) = flatten(res) {
                first_error.get_or_insert(e);
            }
        }
        if let Err(e) = self
            .connection
            .close(200, "server shutting down".into())
            .await
        {
            debug!(error = %e, "closing the server connection");
        }
        info!("server stopped");
        first_error.map_or(Ok(()), Err)
    }

    /// Resolves when a queue's consumer stops on its own (connection lost, queue
    /// deleted), with the error that stopped it.
    async fn wait_failure(&mut self) -> Result<()> {
        match self.queues.join_next().await {
            Some(res) => flatten(res).and(Err(Error::Unavailable {
                reason: "the broker cancelled a request consumer".to_owned(),
            })),
            None => Ok(()),
        }
    }
}

fn flatten(res: std::result::Result<Result<()>, tokio::task::JoinError>) -> Result<()> {
    res.map_err(|e| Error::Unavailable {
        reason: format!("a queue task failed: {e}"),
    })?
}

async fn serve_queue(
    channel: Channel,
    mut consumer: Consumer,
    handler: Arc<dyn Handler>,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    let mut in_flight = JoinSet::new();
    let outcome = loop {
        tokio::select! {
            _ = stop.changed() => break Ok(()),
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            next = consumer.next() => match next {
                Some(Ok(delivery)) => {
                    in_flight.spawn(process(channel.clone(), Arc::clone(&handler), delivery));
                }
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
            in_flight.spawn(process(channel.clone(), Arc::clone(&handler), delivery));
        }
    }
    while in_flight.join_next().await.is_some() {}
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

async fn process(channel: Channel, handler: Arc<dyn Handler>, mut delivery: Delivery) {
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
    if let Err(e) = delivery.acker.ack(BasicAckOptions::default()).await {
        warn!(error = %e, "could not ack a request");
    }
}
