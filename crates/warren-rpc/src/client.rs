//! [`RpcClient`]: one connection, one channel in confirm mode, one reply consumer, and
//! any number of calls in flight, matched to replies by `correlation_id`.
//!
//! The path of a call: [`RpcClient::call_with`] registers a waiter in the pending map,
//! publishes the request (`mandatory`, with `reply_to`, `correlation_id`, `expiration`
//! and `x-deadline`), waits for the broker's confirm and then for the reply, which the
//! reply consumer's sink hands over on the connection task. A request no queue took
//! comes back as a `basic.return` before its confirm; the sink fails its call with
//! `NoRoute` (`session.rs`).
//!
//! When the connection is lost, the session supervisor (`session.rs`) fails the calls
//! in flight on it at once with a retryable `unavailable` error (idempotent calls are
//! sent again), reconnects with backoff and re-creates the reply consumer; calls made
//! meanwhile wait for the new connection within their deadline.

mod builder;
mod options;
pub(crate) mod pending;
mod session;

pub use builder::ClientBuilder;
pub use options::{CallOptions, Reply, ReplyMode, WhenFull};

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use amq_protocol::types::FieldTable;

use crate::headers;
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
    /// The caller's extra headers, as AMQP writes them.
    extra_headers: Option<FieldTable>,
    /// The call span's trace context, added to the headers of every attempt.
    #[cfg(feature = "otel")]
    trace: Option<crate::telemetry::propagation::TraceHeaders>,
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
        if queue.len() > 255 {
            return Err(Error::InvalidArgument(format!(
                "queue name is longer than 255 bytes: {queue:.40}..."
            )));
        }
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
        let target = Target {
            queue,
            extra_headers,
            #[cfg(feature = "otel")]
            trace: crate::telemetry::propagation::TraceHeaders::of(scope.span()),
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
        let (seq, mut rx) = inner.pending.register(session.generation)?;
        let _guard = PendingGuard {
            pending: &inner.pending,
            id: seq,
        };
        let correlation_id = inner.ids.format(seq);
        progress.seq.store(seq + 1, Ordering::Relaxed);
        scope.correlation_id(&correlation_id);
        let remaining = deadline.saturating_duration_since(Instant::now());
        let props = wire::props::request_properties(
            Some(&session.reply_to),
            &correlation_id,
            options.content_type.as_deref(),
            options.persistent,
            remaining,
            target.extra_headers.as_ref(),
            |headers| {
                #[cfg(feature = "otel")]
                if let Some(trace) = &target.trace {
                    trace.write(headers);
                }
                let _ = headers;
            },
        );
        let props = match &options.method {
            Some(method) => props.with_type(method.as_str().into()),
            None => props,
        };
        let lost = |e: crate::amqp::RawError| Error::Unavailable {
            reason: format!("the request could not be sent: {e}"),
        };
        let confirm = session
            .channel
            .publish(queue, true, &props, body, true)
            .map_err(lost)?;
        if let Some(confirm) = confirm {
            match confirm.await {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => {
                    if let Ok(Err(e @ Error::NoRoute { .. })) = rx.try_recv() {
                        return Err(e);
                    }
                    return Err(Error::Unavailable {
                        reason: format!("the broker refused (nacked) the request to `{queue}`"),
                    });
                }
                Ok(Err(e)) => return Err(lost(e)),
                Err(_) => return Err(lost(session.connection.failure())),
            }
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
