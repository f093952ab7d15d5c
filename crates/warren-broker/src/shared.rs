//! What every connection task shares: the broker's configuration, the vhost and
//! the resource alarms. Built once by [`crate::BrokerBuilder::start`].

use crate::alarm::Alarms;
use crate::memory::{Counting, MemoryLimit};
use crate::stats::rates::Rates;
use crate::stats::registry::Registry;
use crate::vhost::VHost;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Broker configuration (built by [`crate::BrokerBuilder`]).
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) listen: SocketAddr,
    pub(crate) username: String,
    pub(crate) password: String,
    pub(crate) vhost: String,
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
}
