//! What every connection task shares: the broker's configuration, the user store,
//! the vhost table and the resource alarms. Built once by
//! [`crate::BrokerBuilder::start`].

use crate::access::AccessControl;
use crate::alarm::Alarms;
use crate::memory::Gauge;
use crate::memory::{Counting, MemoryLimit};
use crate::stats::rates::Rates;
use crate::stats::registry::Registry;
use crate::tls::TlsOptions;
use crate::vhosts::VHosts;
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
    /// Definitions to load at start (their users, vhosts and permissions join the
    /// store; their topology is declared once the vhosts are open).
    pub(crate) definitions: Option<crate::Definitions>,
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
    /// Makes the global allocator give freed memory back, after glibc's trim (see
    /// [`crate::BrokerBuilder::release_memory_with`]).
    pub(crate) release_memory: Option<fn()>,
}

/// State shared by all connections.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: Config,
    /// The virtual hosts, as the user store lists them.
    pub(crate) vhosts: VHosts,
    /// Bytes held by messages in every vhost, and the memory alarm.
    pub(crate) memory: Arc<Gauge>,
    /// The resource alarms that block publishers (memory, disk).
    pub(crate) alarms: Arc<Alarms>,
    /// Open connections, for the management API.
    pub(crate) connections: Registry,
    /// Sampled message rates.
    pub(crate) rates: Rates,
    /// When the broker started.
    pub(crate) started: std::time::SystemTime,
    /// Failed logins by source address (see [`crate::login_limit`]).
    pub(crate) login_limit: crate::login_limit::LoginLimit,
    /// Users, vhosts and permissions (read at each login).
    pub(crate) access: std::sync::RwLock<AccessControl>,
}

impl Config {
    /// The user store to start with: the builder's, plus `/` and the builder's
    /// vhost, which always exist, and the simple user with full permissions on the
    /// builder's vhost.
    pub(crate) fn access_store(&self) -> Result<AccessControl, crate::BrokerError> {
        let mut access = self.access.clone().unwrap_or_default();
        if let Some(d) = &self.definitions {
            d.add_to(&mut access)
                .map_err(|e| crate::BrokerError::Config(format!("definitions: {e}")))?;
        }
        access.add_vhost("/");
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

impl Shared {
    /// Run `f` on the user store.
    pub(crate) fn with_access<R>(&self, f: impl FnOnce(&mut AccessControl) -> R) -> R {
        match self.access.write() {
            Ok(mut a) => f(&mut a),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// Make the vhost table follow the user store's vhosts: open the vhosts it
    /// gained (recovering their logs), delete the ones it lost and close their
    /// connections (320, as RabbitMQ's `delete_vhost`).
    pub(crate) fn sync_vhosts(&self) -> Result<(), crate::BrokerError> {
        let wanted: Vec<String> = self.with_access(|a| a.vhosts().map(str::to_owned).collect());
        for name in &wanted {
            self.vhosts.open(name)?;
        }
        for v in self.vhosts.all() {
            if !wanted.contains(&v.name) && self.vhosts.remove(&v.name) {
                self.connections
                    .close_vhost(&v.name, &format!("vhost '{}' is deleted", v.name));
            }
        }
        Ok(())
    }
}
