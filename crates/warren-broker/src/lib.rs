//! Warren broker: an embedded AMQP 0-9-1 broker that real clients (lapin,
//! pika, amqprs, ...) talk to unchanged, behaving like RabbitMQ 3.x for the
//! features RabbitMQ's tutorials and RPC libraries use: the default and
//! `amq.*` exchanges, direct/fanout/topic/headers routing, queues with
//! prefetch, acks, TTL, max-length and dead-lettering, publisher confirms,
//! direct reply-to, and optional durability to an append-only log.
//!
//! Frames are encoded and decoded with the `amq-protocol` crate.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), warren_broker::BrokerError> {
//! use warren_broker::Broker;
//!
//! let handle = Broker::builder()
//!     .listen("127.0.0.1:0".parse().unwrap())
//!     .credentials("guest", "guest")
//!     .start()
//!     .await?;
//! assert!(handle.amqp_url().starts_with("amqp://guest:guest@127.0.0.1:"));
//! println!("broker listening on {}", handle.local_addr());
//! handle.shutdown().await;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub mod access;
mod admission;
mod alarm;
mod channel;
mod connection;
mod deadline;
pub mod definitions;
mod disk;
mod error;
mod event;
mod exchange;
mod fd_limit;
mod frame;
mod handle;
mod login_limit;
#[cfg(feature = "management")]
mod management;
mod memory;
mod message;
pub mod prometheus;
mod queue;
mod reply_to;
mod server;
mod shared;
mod shutdown;
pub mod stats;
mod store;
mod tls;
mod url;
mod vhost;
mod vhosts;

pub use access::{AccessControl, AccessError, Permissions, User};
pub use definitions::Definitions;
pub use error::BrokerError;
pub use fd_limit::raise_fd_limit;
pub use handle::BrokerHandle;
pub use memory::{Counting, MemoryLimit};
pub use tls::{TlsError, TlsOptions};

use shared::{Config, Shared};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Entry point: `Broker::builder()`.
#[derive(Debug)]
pub struct Broker;

impl Broker {
    /// A builder with RabbitMQ-like defaults: `127.0.0.1:5672`, guest/guest,
    /// vhost `/`, frame_max 131072, channel_max 2047, heartbeat 60 s, memory high
    /// watermark 0.4 of the machine's memory.
    pub fn builder() -> BrokerBuilder {
        BrokerBuilder {
            config: Config {
                listen: SocketAddr::from(([127, 0, 0, 1], 5672)),
                plain: true,
                tls: None,
                username: "guest".into(),
                password: "guest".into(),
                vhost: "/".into(),
                access: None,
                definitions: None,
                simple_user: true,
                loopback_users: vec!["guest".into()],
                data_dir: None,
                frame_max: 131_072,
                channel_max: 2047,
                heartbeat: 60,
                max_connections: 1024,
                max_pending_handshakes: 512,
                handshake_timeout: Duration::from_secs(5),
                disk_free_limit: disk::DEFAULT_LIMIT,
                memory_limit: MemoryLimit::default(),
                memory_counting: Counting::default(),
                release_memory: None,
            },
            management: None,
        }
    }
}

/// Configures and starts a broker.
#[derive(Debug, Clone)]
pub struct BrokerBuilder {
    config: Config,
    /// Where the management HTTP API listens, if anywhere.
    management: Option<SocketAddr>,
}

impl BrokerBuilder {
    /// Address to listen on (port 0 picks a free port).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.config.listen = addr;
        self
    }

    /// Also listen for TLS (`amqps://`) on `addr` (RabbitMQ's `listeners.ssl`; 5671
    /// by convention), with the certificate and peer checks of `tls`. From accept to
    /// `connection.open`, TLS handshake included, a client has the
    /// [`handshake_timeout`](Self::handshake_timeout).
    pub fn tls_listen(mut self, addr: SocketAddr, tls: TlsOptions) -> Self {
        self.config.tls = Some((addr, tls));
        self
    }

    /// Whether to serve plain AMQP on [`listen`](Self::listen)'s address (default
    /// true); `false` with [`tls_listen`](Self::tls_listen) serves TLS only.
    pub fn plain_listener(mut self, on: bool) -> Self {
        self.config.plain = on;
        self
    }

    /// The simple user's credentials (default guest/guest): an `administrator`
    /// with full permissions on [`vhost`](Self::vhost), added to any
    /// [`access_control`](Self::access_control) store.
    pub fn credentials(mut self, user: impl Into<String>, pass: impl Into<String>) -> Self {
        self.config.username = user.into();
        self.config.password = pass.into();
        self.config.simple_user = true;
        self
    }

    /// The virtual host served (default `/`).
    pub fn vhost(mut self, vhost: impl Into<String>) -> Self {
        self.config.vhost = vhost.into();
        self
    }

    /// Users, vhosts and permissions (RabbitMQ's internal backend). Replaces the
    /// default guest user unless [`credentials`](Self::credentials) is called after.
    pub fn access_control(mut self, access: AccessControl) -> Self {
        self.config.access = Some(access);
        self.config.simple_user = false;
        self
    }

    /// Definitions to load at start, in RabbitMQ's format (what `rabbitmqctl
    /// export_definitions` writes): their users, vhosts and permissions join the
    /// user store, then their exchanges, queues and bindings are declared before
    /// the listener accepts clients. Like [`access_control`](Self::access_control),
    /// the default guest user is left out unless [`credentials`](Self::credentials)
    /// is called after.
    pub fn definitions(mut self, definitions: Definitions) -> Self {
        self.config.definitions = Some(definitions);
        self.config.simple_user = false;
        self
    }

    /// Users that may only log in from a loopback address (RabbitMQ's
    /// `loopback_users`; default `["guest"]`, empty to allow guest from anywhere).
    pub fn loopback_users<S: Into<String>>(mut self, users: impl IntoIterator<Item = S>) -> Self {
        self.config.loopback_users = users.into_iter().map(Into::into).collect();
        self
    }

    /// Directory for the durable store; enables durability.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.data_dir = Some(dir.into());
        self
    }

    /// Maximum frame size offered to clients (0 = unlimited, else >= 4096).
    pub fn frame_max(mut self, frame_max: u32) -> Self {
        self.config.frame_max = frame_max;
        self
    }

    /// Maximum channel number offered to clients.
    pub fn channel_max(mut self, channel_max: u16) -> Self {
        self.config.channel_max = channel_max;
        self
    }

    /// Heartbeat interval in seconds offered to clients (0 disables).
    pub fn heartbeat(mut self, seconds: u16) -> Self {
        self.config.heartbeat = seconds;
        self
    }

    /// Memory high watermark in bytes: once the broker uses more (see
    /// [`BrokerBuilder::memory_counting`]), publishers are blocked
    /// (`connection.blocked` to clients that support it, and no more reads from a
    /// connection that publishes) until consumers bring it back under. Same as
    /// `memory_watermark(MemoryLimit::Absolute(bytes))`.
    pub fn memory_limit(mut self, bytes: usize) -> Self {
        self.config.memory_limit = MemoryLimit::Absolute(bytes);
        self
    }

    /// Memory high watermark as a size, a fraction of the machine's memory, or
    /// none. Default: [`MemoryLimit::Relative`]`(0.4)`, RabbitMQ's default.
    pub fn memory_watermark(mut self, limit: MemoryLimit) -> Self {
        self.config.memory_limit = limit;
        self
    }

    /// What the memory high watermark counts: the whole process (default) or only
    /// the messages the broker holds (for a broker embedded in a larger process).
    pub fn memory_counting(mut self, counting: Counting) -> Self {
        self.config.memory_counting = counting;
        self
    }

    /// A call that makes the process's global allocator give freed memory back to
    /// the system, for a process whose allocator is not glibc's malloc.
    ///
    /// After big frees (a queue drained or deleted) the memory sampler calls glibc's
    /// `malloc_trim` (where the allocator is glibc's) and then `release`, on a
    /// blocking thread, at most once a second, so that the process's memory, which
    /// the high watermark counts, falls again and blocked publishers are let go. An
    /// allocator that keeps freed pages for reuse (mimalloc, jemalloc) otherwise
    /// keeps the process over its limit.
    ///
    /// ```
    /// # fn collect() {}
    /// // with mimalloc, for example: `|| unsafe { libmimalloc_sys::mi_collect(true) }`
    /// let builder = warren_broker::Broker::builder().release_memory_with(collect);
    /// ```
    pub fn release_memory_with(mut self, release: fn()) -> Self {
        self.config.release_memory = Some(release);
        self
    }

    /// Free-disk limit (RabbitMQ's `disk_free_limit`): while the disk holding the
    /// data directory has less than `bytes` available, publishers are blocked as by
    /// the memory alarm, until space is freed. Checked every second; only with a
    /// [`data_dir`](Self::data_dir). Default 50 MB; 0 turns the alarm off.
    pub fn disk_free_limit(mut self, bytes: u64) -> Self {
        self.config.disk_free_limit = bytes;
        self
    }

    /// Maximum number of simultaneous authenticated client connections (default
    /// 1024). Sockets still in the handshake do not count: they have their own budget,
    /// [`max_pending_handshakes`](Self::max_pending_handshakes). A client that
    /// authenticates while all are taken is refused with 530 (not-allowed).
    pub fn max_connections(mut self, n: usize) -> Self {
        self.config.max_connections = n;
        self
    }

    /// Maximum number of sockets in the handshake at once, from accept until they
    /// authenticate (default 512). When all are taken, a new socket evicts the
    /// pending handshake that has gone longest without completing a step, so sockets
    /// that never finish (idle, slow-loris) cannot keep real clients out.
    pub fn max_pending_handshakes(mut self, n: usize) -> Self {
        self.config.max_pending_handshakes = n;
        self
    }

    /// Time a socket has from accept to `connection.open` (default 5 s; RabbitMQ's
    /// `handshake_timeout` is 10 s). Past it the broker closes the socket.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.config.handshake_timeout = timeout;
        self
    }

    /// Serve RabbitMQ's management HTTP API on `addr` (feature
    /// `management`), with Basic auth by the broker's users (management tags).
    #[cfg(feature = "management")]
    pub fn management_listen(mut self, addr: SocketAddr) -> Self {
        self.management = Some(addr);
        self
    }

    /// Bind the listener, recover durable state and start serving.
    pub async fn start(self) -> Result<BrokerHandle, BrokerError> {
        let config = self.config;
        let management = match self.management {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|source| BrokerError::Bind { addr, source })?,
            ),
            None => None,
        };
        if config.frame_max != 0 && config.frame_max < 4096 {
            return Err(BrokerError::Config("frame_max must be 0 or >= 4096".into()));
        }
        if config.max_connections == 0 {
            return Err(BrokerError::Config("max_connections must be > 0".into()));
        }
        if config.max_pending_handshakes == 0 {
            return Err(BrokerError::Config(
                "max_pending_handshakes must be > 0".into(),
            ));
        }
        if !config.plain && config.tls.is_none() {
            return Err(BrokerError::Config(
                "no listener: keep the plain listener or add a TLS one".into(),
            ));
        }
        let tls = match &config.tls {
            Some((addr, options)) => Some((*addr, options.acceptor()?)),
            None => None,
        };
        if config.handshake_timeout.is_zero() {
            return Err(BrokerError::Config("handshake_timeout must be > 0".into()));
        }
        if let MemoryLimit::Relative(x) = config.memory_limit {
            if !(x > 0.0 && x <= 1.0) {
                return Err(BrokerError::Config(format!(
                    "a relative memory limit must be a fraction in (0, 1], not {x}"
                )));
            }
        }
        if let Some(dir) = &config.data_dir {
            std::fs::create_dir_all(dir)?;
        }
        let alarms = alarm::Alarms::new();
        let memory = memory::Gauge::counting(
            config.memory_limit.resolve(),
            config.memory_counting,
            config.release_memory,
        );
        tracing::info!(
            limit = ?memory.limit(),
            setting = %config.memory_limit,
            counting = ?config.memory_counting,
            "memory high watermark"
        );
        memory.report_to(alarms.clone());
        let disk = match &config.data_dir {
            Some(dir) if config.disk_free_limit > 0 => {
                let mut m = disk::Monitor::new(dir.clone(), config.disk_free_limit, alarms.clone());
                m.check();
                Some(m)
            }
            _ => None,
        };
        let plain = config.plain.then_some(config.listen);
        let listeners = server::Listeners::bind(plain, tls)?;
        let (plain_addr, tls_addr) = (listeners.plain_addr(), listeners.tls_addr());
        let mut access = config.access_store()?;
        // A watch channel: tasks that first run after `shutdown()` still see it.
        let notify = Arc::new(watch::Sender::new(false));
        let vhosts = vhosts::VHosts::new(memory.clone(), config.data_dir.clone(), notify.clone());
        for name in vhosts.on_disk() {
            access.add_vhost(&name);
        }
        let shared = Arc::new(Shared {
            access: std::sync::RwLock::new(access),
            config,
            vhosts,
            memory,
            alarms,
            connections: Default::default(),
            rates: Default::default(),
            login_limit: Default::default(),
            started: std::time::SystemTime::now(),
        });
        {
            // Open every vhost, recovering their durable logs (blocking reads).
            let shared = shared.clone();
            tokio::task::spawn_blocking(move || shared.sync_vhosts())
                .await
                .map_err(|e| BrokerError::Store(e.to_string()))??;
        }
        if let Some(d) = &shared.config.definitions {
            definitions::apply::declare(&shared.vhosts, d)
                .map_err(|e| BrokerError::Config(format!("definitions: {e}")))?;
        }
        let (done_tx, done_rx) = mpsc::channel(1);
        let accept = tokio::spawn(server::accept_loops(
            listeners,
            shared.clone(),
            notify.clone(),
            done_tx,
        ));
        tokio::spawn(stats::sampler(
            shared.clone(),
            shutdown::Shutdown::new(&notify),
        ));
        tokio::spawn(server::memory_sampler(
            shared.clone(),
            shutdown::Shutdown::new(&notify),
        ));
        if let Some(m) = disk {
            tokio::spawn(m.run(shutdown::Shutdown::new(&notify)));
        }
        let management_addr = management.as_ref().and_then(|l| l.local_addr().ok());
        #[cfg(feature = "management")]
        if let Some(l) = management {
            tracing::info!(addr = ?management_addr, "management API listening");
            tokio::spawn(management::serve(
                l,
                shared.clone(),
                shutdown::Shutdown::new(&notify),
            ));
        }
        tracing::info!(plain = ?plain_addr, tls = ?tls_addr, "warren broker started");
        Ok(BrokerHandle {
            plain_addr,
            tls_addr,
            shared,
            notify,
            done_rx,
            accept,
            management_addr,
        })
    }
}
