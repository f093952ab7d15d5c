//! [`ClientBuilder`]: a client's settings, and connecting with them.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Semaphore};

use super::pending::{CorrelationIds, Pending};
use super::session;
use super::{Inner, ReplyMode, RpcClient, WhenFull};
use crate::connect::{self, Backoff};
use crate::error::Result;
use crate::telemetry::Observer;

/// Builds an [`RpcClient`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    pub(super) fallbacks: Vec<String>,
    pub(super) reply_mode: ReplyMode,
    pub(super) default_timeout: Duration,
    pub(super) connect_timeout: Duration,
    pub(super) heartbeat: Duration,
    pub(super) shutdown_timeout: Duration,
    pub(super) max_in_flight: usize,
    pub(super) when_full: WhenFull,
    pub(super) backoff: Backoff,
    pub(super) observer: Observer,
    pub(super) tls: Option<crate::TlsConfig>,
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
        let pending = Arc::new(Pending::default());
        let ids = CorrelationIds::new();
        let (first, lost) = session::establish(&settings, 0, &pending, &ids).await?;
        pending.session_up(0);
        let (sessions, session_rx) = watch::channel(Some(Arc::new(first)));
        let supervisor = tokio::spawn(session::supervise(
            settings,
            lost,
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
