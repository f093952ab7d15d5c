//! The table of open connections the management API lists and closes: each
//! connection registers once it is open and is removed when its [`Registered`]
//! guard drops. Cold path only (open, close, a snapshot).

use super::info::ArgValue;
use crate::event::{ConnEvent, Inbox};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

/// What the registry knows of one open connection.
#[derive(Debug)]
pub(crate) struct ConnEntry {
    pub(crate) id: u64,
    pub(crate) peer: SocketAddr,
    pub(crate) local: SocketAddr,
    pub(crate) user: String,
    pub(crate) vhost: String,
    pub(crate) connected_at: SystemTime,
    pub(crate) frame_max: u32,
    pub(crate) channel_max: u16,
    pub(crate) heartbeat: u16,
    pub(crate) client_properties: Vec<(String, ArgValue)>,
    /// The connection's inbox, for describe and close requests.
    pub(crate) inbox: Inbox,
}

impl ConnEntry {
    /// RabbitMQ's connection name: `"peer -> local"`.
    pub(crate) fn name(&self) -> String {
        format!("{} -> {}", self.peer, self.local)
    }
}

/// Open connections by id.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    conns: Arc<Mutex<BTreeMap<u64, Arc<ConnEntry>>>>,
}

/// Removes its connection from the registry when dropped.
#[derive(Debug)]
pub(crate) struct Registered {
    id: u64,
    conns: Arc<Mutex<BTreeMap<u64, Arc<ConnEntry>>>>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        lock(&self.conns).remove(&self.id);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl Registry {
    /// Add an open connection; it stays listed while the guard lives.
    pub(crate) fn register(&self, entry: ConnEntry) -> Registered {
        let id = entry.id;
        lock(&self.conns).insert(id, Arc::new(entry));
        Registered {
            id,
            conns: self.conns.clone(),
        }
    }

    /// All open connections, by id.
    pub(crate) fn list(&self) -> Vec<Arc<ConnEntry>> {
        lock(&self.conns).values().cloned().collect()
    }

    /// How many are open.
    pub(crate) fn len(&self) -> usize {
        lock(&self.conns).len()
    }

    /// Ask the connection named `name` (or with id `name`) to close with
    /// `reason`; false if there is none.
    pub(crate) fn close(&self, name: &str, reason: &str) -> bool {
        let found = lock(&self.conns)
            .values()
            .find(|e| e.name() == name || e.id.to_string() == name)
            .cloned();
        match found {
            Some(e) => e.inbox.send(ConnEvent::Close(reason.to_owned())).is_ok(),
            None => false,
        }
    }

    /// Ask every connection on `vhost` to close with `reason`.
    pub(crate) fn close_vhost(&self, vhost: &str, reason: &str) {
        let on: Vec<Arc<ConnEntry>> = lock(&self.conns)
            .values()
            .filter(|e| e.vhost == vhost)
            .cloned()
            .collect();
        for e in on {
            let _ = e.inbox.send(ConnEvent::Close(reason.to_owned()));
        }
    }
}
