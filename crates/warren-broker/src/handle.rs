//! [`BrokerHandle`]: what [`BrokerBuilder::start`](crate::BrokerBuilder::start) returns:
//! the running broker's address, stats, user store, and its graceful shutdown.

use crate::definitions::{apply, DefinitionsError};
use crate::shared::Shared;
use crate::{shutdown, stats, url, AccessControl, BrokerError, Definitions};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// A running broker. Dropping the handle without calling
/// [`BrokerHandle::shutdown`] also stops it, without waiting.
#[derive(Debug)]
pub struct BrokerHandle {
    /// The plain listener's address, if it is on.
    pub(crate) plain_addr: Option<SocketAddr>,
    /// The TLS listener's address, if any.
    pub(crate) tls_addr: Option<SocketAddr>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) notify: Arc<shutdown::Notifier>,
    pub(crate) done_rx: mpsc::Receiver<()>,
    pub(crate) accept: tokio::task::JoinHandle<()>,
    pub(crate) management_addr: Option<SocketAddr>,
}

impl BrokerHandle {
    /// Where the management HTTP API listens (None: not enabled).
    pub fn management_addr(&self) -> Option<SocketAddr> {
        self.management_addr
    }

    /// The address the broker listens on: the plain listener's, or the TLS
    /// listener's when the plain one is off.
    pub fn local_addr(&self) -> SocketAddr {
        match (self.plain_addr, self.tls_addr) {
            (Some(addr), _) | (None, Some(addr)) => addr,
            // start() refuses a broker without a listener.
            (None, None) => self.shared.config.listen,
        }
    }

    /// The TLS listener's address (None: no TLS listener).
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// A handle that reads the broker's stats: totals, rates, queues,
    /// connections (see [`stats`](crate::stats)).
    pub fn stats(&self) -> stats::Stats {
        stats::Stats::new(self.shared.clone())
    }

    /// The memory high watermark in bytes (`None`: no limit), as resolved on this
    /// machine.
    pub fn memory_limit(&self) -> Option<usize> {
        self.shared.memory.limit()
    }

    /// A copy of the user store (users, vhosts, permissions) as it is now.
    pub fn access_control(&self) -> AccessControl {
        match self.shared.access.read() {
            Ok(a) => a.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Change the user store; logins from then on see the change (open
    /// connections keep the permissions they were granted). Vhosts the change adds
    /// are opened (a durable one recovers its log, blocking while it is read), and
    /// vhosts it removes are deleted with their queues and messages, their
    /// connections closed (320). The error is a vhost whose log cannot be opened.
    pub fn update_access_control<R>(
        &self,
        f: impl FnOnce(&mut AccessControl) -> R,
    ) -> Result<R, BrokerError> {
        let r = self.shared.with_access(f);
        self.shared.sync_vhosts()?;
        Ok(r)
    }

    /// Everything the broker holds as definitions, in RabbitMQ's format (the keys
    /// of `rabbitmqctl export_definitions`): users, vhosts, permissions, and the
    /// exchanges, queues (not exclusive ones) and bindings of every vhost.
    pub fn export_definitions(&self) -> Definitions {
        let mut d = Definitions::from_access_control(&self.access_control());
        apply::topology(&self.stats(), &mut d);
        d
    }

    /// Load definitions into the running broker, as RabbitMQ's import: users,
    /// vhosts and permissions join the store (vhosts are opened), then exchanges,
    /// queues and bindings are declared. Blocks while a new durable vhost's log is
    /// opened.
    pub fn import_definitions(&self, definitions: &Definitions) -> Result<(), DefinitionsError> {
        self.shared.with_access(|a| definitions.add_to(a))?;
        self.shared
            .sync_vhosts()
            .map_err(|e| DefinitionsError::Declare {
                what: "vhosts".into(),
                vhost: String::new(),
                reason: e.to_string(),
            })?;
        apply::declare(&self.shared.vhosts, definitions)
    }

    /// An AMQP URL for clients, e.g. `amqp://guest:guest@127.0.0.1:5672/%2f`: the
    /// plain listener's, or [`amqps_url`](Self::amqps_url) when the plain one is off.
    pub fn amqp_url(&self) -> String {
        match (self.plain_addr, self.tls_addr) {
            (None, Some(tls)) => self.url("amqps", tls),
            _ => self.url("amqp", self.local_addr()),
        }
    }

    /// The TLS listener's URL, e.g. `amqps://guest:guest@127.0.0.1:5671/%2f` (the
    /// host is the listener's IP: a client checking the certificate's host name may
    /// need the name it was issued for instead).
    pub fn amqps_url(&self) -> Option<String> {
        self.tls_addr.map(|addr| self.url("amqps", addr))
    }

    fn url(&self, scheme: &str, addr: SocketAddr) -> String {
        let c = &self.shared.config;
        format!(
            "{scheme}://{}:{}@{addr}/{}",
            url::percent_encode(&c.username),
            url::percent_encode(&c.password),
            url::percent_encode(&c.vhost)
        )
    }

    /// Graceful shutdown: stop accepting, send connection.close (320) to
    /// every client, wait for connections to finish, flush the store.
    pub async fn shutdown(mut self) {
        self.notify.send_replace(true);
        let _ = (&mut self.accept).await;
        // Every connection task holds a sender; recv returns None when all
        // of them are gone.
        let _ = tokio::time::timeout(Duration::from_secs(5), self.done_rx.recv()).await;
        let shared = self.shared.clone();
        let _ = tokio::task::spawn_blocking(move || shared.vhosts.close_stores()).await;
        tracing::info!("warren broker stopped");
    }
}

impl Drop for BrokerHandle {
    fn drop(&mut self) {
        // Stop accepting and close connections (not awaited here).
        self.notify.send_replace(true);
    }
}
