//! [`RpcClient`]: one connection, one channel in confirm mode, one reply consumer, and
//! any number of calls in flight, matched to replies by `correlation_id`.
//!
//! The path of a call: [`RpcClient::call_with`] registers a waiter in the pending map,
//! publishes the request (`mandatory`, with `reply_to`, `correlation_id`, `expiration`
//! and `x-deadline`), waits for the broker's confirm (which carries a `basic.return` if
//! the queue does not exist) and then for the reply, which the reply task hands over.
//!
//! When the connection is lost, the session supervisor (`session.rs`) fails the calls
//! in flight on it at once with a retryable `unavailable` error (idempotent calls are
//! sent again), reconnects with backoff and re-creates the reply consumer; calls made
//! meanwhile wait for the new connection within their deadline.

pub(crate) mod pending;
mod session;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use lapin::options::BasicPublishOptions;
use lapin::types::{FieldTable, ShortString};

use crate::headers::{self, Headers};
use lapin::Confirmation;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::connect::{
    self, Backoff, DEFAULT_CONNECT_TIMEOUT, DEFAULT_HEARTBEAT, DEFAULT_SHUTDOWN_TIMEOUT,
};
use crate::error::{Error, Result};
use crate::status::Code;
use crate::telemetry::{Observer, Side};
use crate::wire;
use pending::{CorrelationIds, Pending, PendingGuard};
use session::Session;

/// Default per-call timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default bound on calls in flight per client.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 10_000;

/// Where replies come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ReplyMode {
    /// RabbitMQ's direct reply-to (`amq.rabbitmq.reply-to`): no queue to declare.
    /// Falls back to [`ReplyMode::ExclusiveQueue`] if the broker refuses it.
    #[default]
    DirectReplyTo,
    /// An exclusive, auto-delete, server-named queue declared once per connection.
    ExclusiveQueue,
}

/// What a call does when the client already has `max_in_flight` calls waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WhenFull {
    /// Wait for a slot, within the call's deadline.
    #[default]
    Wait,
    /// Fail at once with [`Error::ResourceExhausted`].
    FailFast,
}

/// A reply to a call.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Reply {
    /// The reply body.
    pub body: Vec<u8>,
    /// The reply's `content_type`, if set.
    pub content_type: Option<String>,
    /// The correlation id of the call it answers.
    pub correlation_id: String,
    /// Reply headers.
    pub headers: Headers,
}

impl Reply {
    /// The body as UTF-8 text.
    pub fn text(&self) -> Result<&str> {
        std::str::from_utf8(&self.body)
            .map_err(|e| Error::InvalidArgument(format!("reply body is not UTF-8: {e}")))
    }
}

/// Options of one call.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct CallOptions {
    timeout: Option<Duration>,
    pub(crate) content_type: Option<String>,
    persistent: bool,
    idempotent: bool,
    headers: Option<Headers>,
    /// An absolute deadline the call may not outlive (nested calls inherit it).
    deadline: Option<SystemTime>,
    /// The AMQP `type` property: the method of a typed service (SPEC v2).
    method: Option<String>,
}

impl CallOptions {
    /// Default options: the client's default timeout, transient, not idempotent.
    pub fn new() -> Self {
        Self::default()
    }

    /// The call's deadline, relative to now. Also sent as `expiration` and `x-deadline`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The body's `content_type`.
    pub fn content_type(mut self, content_type: impl Into<String>) -> Self {
        self.content_type = Some(content_type.into());
        self
    }

    /// Publish the request as persistent (`delivery_mode` 2).
    pub fn persistent(mut self, persistent: bool) -> Self {
        self.persistent = persistent;
        self
    }

    /// The call may safely run more than once: if the connection is lost while it is
    /// in flight, it is sent again (within its deadline) instead of failing.
    pub fn idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = idempotent;
        self
    }

    /// Extra request headers (names at most 255 bytes; a longer one fails the call
    /// with [`Error::InvalidArgument`]).
    pub fn headers(mut self, headers: Headers) -> Self {
        self.headers = Some(headers);
        self
    }

    /// An absolute deadline: the call's timeout is cut to the time left before it,
    /// and a call whose deadline has passed fails with [`Error::Timeout`] unsent.
    /// [`CallOptions::from_context`] sets it from the request being served.
    pub fn deadline(mut self, deadline: SystemTime) -> Self {
        self.deadline = Some(match self.deadline {
            Some(earlier) => earlier.min(deadline),
            None => deadline,
        });
        self
    }

    /// The method to call on a typed service, sent as the AMQP `type` property.
    pub fn method(mut self, method: impl Into<String>) -> Self {
        self.method = Some(method.into());
        self
    }
}

/// Builds an [`RpcClient`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    fallbacks: Vec<String>,
    reply_mode: ReplyMode,
    default_timeout: Duration,
    connect_timeout: Duration,
    heartbeat: Duration,
    shutdown_timeout: Duration,
    max_in_flight: usize,
    when_full: WhenFull,
    backoff: Backoff,
    observer: Observer,
    tls: Option<crate::TlsConfig>,
}

impl ClientBuilder {
    /// Counts this client's calls, in-flight calls, reconnects and deadline expiries
    /// into `metrics` (feature `metrics`).
    #[cfg(feature = "metrics")]
    pub fn metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.observer.metrics = Some(metrics);
        self
    }

    /// TLS options for `amqps://` addresses: CA bundle, client certificate, EXTERNAL
    /// login (default: the system's CAs, certificate and host-name checks on).
    pub fn tls(mut self, tls: crate::TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Adds a fallback broker address, tried in order after the one given to
    /// [`connect`](ClientBuilder::connect) (and after the fallbacks added before it).
    pub fn fallback_url(mut self, url: impl Into<String>) -> Self {
        self.fallbacks.push(url.into());
        self
    }

    /// How replies come back (default: direct reply-to).
    pub fn reply_mode(mut self, mode: ReplyMode) -> Self {
        self.reply_mode = mode;
        self
    }

    /// Timeout of calls that do not set their own (default 30 s).
    pub fn default_timeout(mut self, timeout: Duration) -> Self {
        self.default_timeout = timeout;
        self
    }

    /// Time allowed for each connection attempt, TCP connect, AMQP handshake and
    /// channel setup together (default 10 s). [`ClientBuilder::connect`] and every
    /// reconnection attempt end by then; with fallback addresses, each address gets an
    /// equal share of what is left. A call waiting for a reconnection waits at most
    /// until its own deadline.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Heartbeat interval asked of the broker (default 10 s; the broker may choose a
    /// shorter one; whole seconds; zero takes the broker's). A connection that hears
    /// nothing from the broker for two intervals (a stopped or unreachable broker) is
    /// torn down and replaced. An explicit `heartbeat` in the URL wins.
    pub fn heartbeat(mut self, interval: Duration) -> Self {
        self.heartbeat = interval;
        self
    }

    /// Time [`RpcClient::shutdown`] waits for the broker to confirm
    /// `connection.close` before shutting the socket down anyway (default 2 s).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Bound on calls in flight (default 10,000) and what happens past it.
    pub fn max_in_flight(mut self, limit: usize, when_full: WhenFull) -> Self {
        self.max_in_flight = limit.max(1);
        self.when_full = when_full;
        self
    }

    /// Delays between reconnection attempts and between resends of idempotent calls.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Connects to `url` (or the first fallback that answers), starts the reply
    /// consumer and the supervisor that reconnects when the connection is lost.
    pub async fn connect(self, url: &str) -> Result<RpcClient> {
        let mut urls = vec![url.to_owned()];
        urls.extend(self.fallbacks);
        let settings = session::Settings {
            urls: urls.clone(),
            reply_mode: self.reply_mode,
            connect_timeout: self.connect_timeout,
            dial: connect::Dial {
                name: "warren-client",
                heartbeat: self.heartbeat,
                tls: connect::Tls::for_urls(&urls, self.tls.as_ref())?,
            },
            shutdown_timeout: self.shutdown_timeout,
            backoff: self.backoff,
        };
        let (first, consumer) = session::establish(&settings, 0).await?;
        let pending = Arc::new(Pending::default());
        pending.session_up(0);
        let ids = CorrelationIds::new();
        let (sessions, session_rx) = watch::channel(Some(Arc::new(first)));
        let supervisor = tokio::spawn(session::supervise(
            settings,
            consumer,
            0,
            Arc::clone(&pending),
            ids.clone(),
            sessions,
            self.observer.clone(),
        ));
        Ok(RpcClient {
            inner: Arc::new(Inner {
                sessions: session_rx,
                pending,
                ids,
                default_timeout: self.default_timeout,
                slots: Arc::new(Semaphore::new(self.max_in_flight)),
                max_in_flight: self.max_in_flight,
                backoff: self.backoff,
                when_full: self.when_full,
                shutdown_timeout: self.shutdown_timeout,
                supervisor,
                observer: self.observer,
            }),
        })
    }
}

/// How far one call got, for its timeout warning and its log line.
#[derive(Default)]
struct Progress {
    /// Whether the broker confirmed the (last) request: if not by the deadline, the
    /// broker itself is stuck, which is worth saying.
    confirmed: AtomicBool,
    /// The sequence number of the latest request plus one (0: none sent yet).
    seq: AtomicU64,
}

/// Where one call goes, checked and converted once for all its attempts.
struct Target<'a> {
    queue: &'a str,
    routing_key: ShortString,
    /// The caller's extra headers, as AMQP writes them.
    extra_headers: Option<FieldTable>,
}

struct Inner {
    sessions: watch::Receiver<Option<Arc<Session>>>,
    pending: Arc<Pending>,
    ids: CorrelationIds,
    default_timeout: Duration,
    slots: Arc<Semaphore>,
    max_in_flight: usize,
    when_full: WhenFull,
    /// Delays between resends of an idempotent call (the same as between reconnections).
    backoff: Backoff,
    shutdown_timeout: Duration,
    supervisor: JoinHandle<()>,
    observer: Observer,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.supervisor.abort();
        self.pending.close("the client was dropped");
    }
}

/// An RPC client. Cheap to clone; clones share one connection and one reply consumer.
///
/// ```no_run
/// # async fn demo() -> warren_rpc::Result<()> {
/// let client = warren_rpc::RpcClient::connect("amqp://guest:guest@127.0.0.1:5672/%2f").await?;
/// let reply = client.call("rpc_queue", "30").await?;
/// assert_eq!(reply.text()?, "832040");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RpcClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcClient")
            .field("connected", &self.is_connected())
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

impl RpcClient {
    /// A builder for a client; [`ClientBuilder::connect`] takes the broker's address
    /// (add fallbacks with [`ClientBuilder::fallback_url`]).
    pub fn builder() -> ClientBuilder {
        ClientBuilder {
            fallbacks: Vec::new(),
            reply_mode: ReplyMode::default(),
            default_timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            heartbeat: DEFAULT_HEARTBEAT,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            when_full: WhenFull::default(),
            backoff: Backoff::default(),
            observer: Observer::default(),
            tls: None,
        }
    }

    /// Connects with default settings.
    pub async fn connect(url: &str) -> Result<RpcClient> {
        Self::builder().connect(url).await
    }

    /// The reply address this client puts in `reply_to` (empty while reconnecting).
    pub fn reply_to(&self) -> String {
        self.inner
            .sessions
            .borrow()
            .as_ref()
            .map(|s| s.reply_to.clone())
            .unwrap_or_default()
    }

    /// Whether the client has a live connection right now.
    pub fn is_connected(&self) -> bool {
        self.inner.sessions.borrow().is_some()
    }

    /// Calls waiting for their reply right now.
    pub fn in_flight(&self) -> usize {
        self.inner.pending.len()
    }

    /// Calls the procedure behind `queue` with `body` and the default options.
    pub async fn call(&self, queue: &str, body: impl AsRef<[u8]>) -> Result<Reply> {
        self.call_with(queue, body, CallOptions::default()).await
    }

    /// Calls the procedure behind `queue` with `body`.
    ///
    /// Fails with [`Error::NoRoute`] at once if no queue `queue` exists,
    /// [`Error::Timeout`] past the deadline, [`Error::Remote`] if the server answered
    /// with an error, [`Error::Unavailable`] if the connection is lost while the call
    /// is in flight (idempotent calls are sent again instead, within their deadline),
    /// [`Error::ResourceExhausted`] if the in-flight bound is reached with
    /// [`WhenFull::FailFast`].
    pub async fn call_with(
        &self,
        queue: &str,
        body: impl AsRef<[u8]>,
        options: CallOptions,
    ) -> Result<Reply> {
        let scope = self
            .inner
            .observer
            .call(Side::Client, queue, options.method.as_deref());
        let progress = Progress::default();
        let outcome = self
            .call_in_span(queue, body.as_ref(), options, &scope, &progress)
            .await;
        match &outcome {
            Ok(reply) => scope.finish(&Code::Ok, Some(&reply.correlation_id)),
            Err(e) => {
                let correlation_id = match progress.seq.load(Ordering::Relaxed) {
                    0 => None,
                    seq => Some(self.inner.ids.format(seq - 1)),
                };
                scope.finish(&e.code(), correlation_id.as_deref());
            }
        }
        outcome
    }

    /// [`RpcClient::call_with`], recording on the call's span (not entered: entering it on
    /// every poll cost more than its few log events gain from it).
    async fn call_in_span(
        &self,
        queue: &str,
        body: &[u8],
        options: CallOptions,
        scope: &crate::telemetry::CallScope,
        progress: &Progress,
    ) -> Result<Reply> {
        let routing_key = ShortString::try_new(queue).map_err(|_| {
            Error::InvalidArgument(format!(
                "queue name is longer than 255 bytes: {queue:.40}..."
            ))
        })?;
        if options.method.as_ref().is_some_and(|m| m.len() > 255) {
            return Err(Error::InvalidArgument(
                "method name is longer than 255 bytes".to_owned(),
            ));
        }
        let extra_headers = options
            .headers
            .as_ref()
            .map(headers::to_field_table)
            .transpose()
            .map_err(Error::InvalidArgument)?;
        #[cfg(feature = "otel")]
        let extra_headers = crate::telemetry::propagation::inject(scope.span(), extra_headers);
        let target = Target {
            queue,
            routing_key,
            extra_headers,
        };
        let mut timeout = options.timeout.unwrap_or(self.inner.default_timeout);
        if let Some(limit) = options.deadline {
            let left = limit
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO);
            if left.is_zero() {
                // The request being served has given up already: send nothing.
                return Err(Error::Timeout {
                    queue: queue.to_owned(),
                    timeout: Duration::ZERO,
                });
            }
            timeout = timeout.min(left);
        }
        let deadline = Instant::now() + timeout;
        let confirmed = &progress.confirmed;
        let attempts = async {
            let _slot = self.slot().await?;
            let mut retry = 0u32;
            loop {
                confirmed.store(false, Ordering::Relaxed);
                let outcome = self
                    .attempt(&target, body, &options, deadline, progress, scope)
                    .await;
                match outcome {
                    // Resend idempotent calls after a connection loss. Right after a
                    // reconnection the request queue may not be re-declared yet by its
                    // server, so a resend that finds no route is tried again too.
                    Err(Error::Unavailable { .. }) | Err(Error::NoRoute { .. })
                        if options.idempotent
                            && (retry > 0 || matches!(outcome, Err(Error::Unavailable { .. }))) =>
                    {
                        debug!(queue, retry, "retrying an idempotent call");
                        tokio::time::sleep(self.inner.backoff.delay(retry)).await;
                        retry = retry.saturating_add(1);
                    }
                    other => return other,
                }
            }
        };
        match tokio::time::timeout_at(deadline, attempts).await {
            // The server gave up at the same deadline: to the caller that is a timeout,
            // whichever side noticed first.
            Ok(Err(Error::Remote(status))) if status.code() == Code::DeadlineExceeded => {
                Err(Error::Timeout {
                    queue: queue.to_owned(),
                    timeout,
                })
            }
            Ok(outcome) => outcome,
            Err(_) => {
                if !confirmed.load(Ordering::Relaxed) {
                    warn!(
                        queue,
                        ?timeout,
                        "the broker did not confirm the request before the deadline: \
                         it may be stopped, overloaded or unreachable"
                    );
                }
                Err(Error::Timeout {
                    queue: queue.to_owned(),
                    timeout,
                })
            }
        }
    }

    /// A slot under the in-flight bound.
    async fn slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit> {
        let slots = Arc::clone(&self.inner.slots);
        let closed = |_| Error::Unavailable {
            reason: "the client is closed".to_owned(),
        };
        match self.inner.when_full {
            WhenFull::Wait => slots.acquire_owned().await.map_err(closed),
            WhenFull::FailFast => slots.try_acquire_owned().map_err(|e| match e {
                tokio::sync::TryAcquireError::NoPermits => Error::ResourceExhausted {
                    limit: self.inner.max_in_flight,
                },
                tokio::sync::TryAcquireError::Closed => Error::Unavailable {
                    reason: "the client is closed".to_owned(),
                },
            }),
        }
    }

    /// The live session, waiting for a reconnection if there is none right now.
    async fn session(&self) -> Result<Arc<Session>> {
        let mut sessions = self.inner.sessions.clone();
        let live = sessions
            .wait_for(|s| s.is_some())
            .await
            .map_err(|_| Error::Unavailable {
                reason: "the client is closed".to_owned(),
            })?;
        live.clone().ok_or_else(|| Error::Unavailable {
            reason: "the connection to the broker was lost".to_owned(),
        })
    }

    /// One attempt: publish on the live session, wait for the confirm, then the reply.
    async fn attempt(
        &self,
        target: &Target<'_>,
        body: &[u8],
        options: &CallOptions,
        deadline: Instant,
        progress: &Progress,
        scope: &crate::telemetry::CallScope,
    ) -> Result<Reply> {
        let queue = target.queue;
        let inner = &self.inner;
        let session = self.session().await?;
        let (seq, rx) = inner.pending.register(session.generation)?;
        let _guard = PendingGuard {
            pending: &inner.pending,
            id: seq,
        };
        let correlation_id = inner.ids.format(seq);
        progress.seq.store(seq + 1, Ordering::Relaxed);
        scope.correlation_id(&correlation_id);
        let remaining = deadline.saturating_duration_since(Instant::now());
        let props = wire::request_properties(
            Some(&session.reply_to),
            &correlation_id,
            options.content_type.as_deref(),
            options.persistent,
            remaining,
            target.extra_headers.as_ref(),
        );
        let props = match &options.method {
            Some(method) => props.with_type(method.as_str().into()),
            None => props,
        };
        let publish = BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        };
        let lost = |e: lapin::Error| Error::Unavailable {
            reason: format!("the request could not be sent: {e}"),
        };
        let confirm = session
            .channel
            .basic_publish("".into(), target.routing_key.clone(), publish, body, props)
            .await
            .map_err(lost)?;
        match confirm.await.map_err(lost)? {
            Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => {
                return Err(Error::NoRoute {
                    queue: queue.to_owned(),
                    reply_code: returned.reply_code,
                    reply_text: returned.reply_text.to_string(),
                });
            }
            Confirmation::Nack(None) => {
                return Err(Error::Unavailable {
                    reason: format!("the broker refused (nacked) the request to `{queue}`"),
                });
            }
            Confirmation::Ack(None) | Confirmation::NotRequested => {}
        }
        progress.confirmed.store(true, Ordering::Relaxed);
        rx.await.unwrap_or_else(|_| {
            Err(Error::Unavailable {
                reason: "the client's reply consumer stopped".to_owned(),
            })
        })
    }

    /// Closes the connection. Calls still in flight fail with `unavailable`. Ends
    /// within the shutdown timeout ([`ClientBuilder::shutdown_timeout`]): a broker that
    /// does not confirm the close by then has its socket shut down, and this returns
    /// [`Error::Unavailable`].
    pub async fn shutdown(&self) -> Result<()> {
        self.inner.pending.close("the client was closed");
        self.inner.slots.close();
        self.inner.supervisor.abort();
        let session = self.inner.sessions.borrow().clone();
        if let Some(session) = session {
            connect::close(
                &session.connection,
                &session.cut,
                self.inner.shutdown_timeout,
                "bye",
            )
            .await?;
        }
        Ok(())
    }
}
