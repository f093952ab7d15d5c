//! What every connection task shares: the broker's configuration, the vhost and
//! the resource alarms. Built once by [`crate::BrokerBuilder::start`].

use crate::access::AccessControl;
use crate::alarm::Alarms;
use crate::memory::{Counting, MemoryLimit};
use crate::stats::rates::Rates;
use crate::stats::registry::Registry;
use crate::tls::TlsOptions;
use crate::vhost::VHost;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Broker configuration (built by [`crate::BrokerBuilder`]).
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) listen: SocketAddr,
    /// Serve plain AMQP on `listen` (off: only the TLS listener).
    pub(crate) plain: bool,
    /// The TLS listener: its address and options.
    pub(crate) tls: Option<(SocketAddr, TlsOptions)>,
    pub(crate) username: String,
    pub(crate) password: String,
    pub(crate) vhost: String,
    /// The user store given to the builder; `None`: only the simple user.
    pub(crate) access: Option<AccessControl>,
    /// Add the simple user (`username`/`password`, full permissions on `vhost`).
    pub(crate) simple_user: bool,
    /// Users that may only log in from a loopback address (RabbitMQ's `loopback_users`).
    pub(crate) loopback_users: Vec<String>,
    pub(crate) data_dir: Option<PathBuf>,
    pub(crate) frame_max: u32,
    pub(crate) channel_max: u16,
    pub(crate) heartbeat: u16,
    pub(crate) max_connections: usize,
    pub(crate) max_pending_handshakes: usize,
    pub(crate) handshake_timeout: Duration,
    pub(crate) disk_free_limit: u64,
    pub(crate) memory_limit: MemoryLimit,
    pub(crate) memory_counting: Counting,
}

/// State shared by all connections.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) vhost: Arc<VHost>,
    /// The resource alarms that block publishers (memory, disk).
    pub(crate) alarms: Arc<Alarms>,
    /// Open connections, for the management API.
    pub(crate) connections: Registry,
    /// Sampled message rates.
    pub(crate) rates: Rates,
    /// When the broker started.
    pub(crate) started: std::time::SystemTime,
    /// Users, vhosts and permissions (read at each login).
    pub(crate) access: std::sync::RwLock<AccessControl>,
}

impl Config {
    /// The user store to start with: the builder's, plus the simple user with full
    /// permissions on the served vhost, which always exists.
    pub(crate) fn access_store(&self) -> Result<AccessControl, crate::BrokerError> {
        let mut access = self.access.clone().unwrap_or_default();
        access.add_vhost(&self.vhost);
        if self.simple_user {
            access.add_user(&self.username, &self.password, &["administrator"]);
            access
                .set_permissions(
                    &self.username,
                    &self.vhost,
                    crate::access::Permissions::full(),
                )
                .map_err(|e| crate::BrokerError::Config(e.to_string()))?;
        }
        Ok(access)
    }
}
