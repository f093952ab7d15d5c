//! The broker's virtual hosts by name: each [`VHost`] has its own exchanges, queues
//! and bindings, its own durable log when the broker has a data directory (`/` in
//! the data directory itself, as before vhosts; any other in
//! `vhosts/<hex of its name>/`), and its own expiry task. Opening a vhost recovers
//! what its log holds; removing one closes its log and deletes its directory.
//!
//! Which vhosts exist is the user store's list ([`crate::access::AccessControl`]);
//! [`crate::shared::Shared::sync_vhosts`] makes this table follow it.

use crate::error::BrokerError;
use crate::exchange::Dest;
use crate::memory::Gauge;
use crate::message::Message;
use crate::shutdown::{Notifier, Shutdown};
use crate::store::{Recovered, Store};
use crate::vhost::VHost;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The subdirectory of the data directory holding the vhosts other than `/`.
const VHOSTS_DIR: &str = "vhosts";

/// The vhost table.
#[derive(Debug)]
pub(crate) struct VHosts {
    map: RwLock<BTreeMap<String, Arc<VHost>>>,
    /// Bytes held by messages, shared by every vhost.
    memory: Arc<Gauge>,
    data_dir: Option<PathBuf>,
    /// The broker's shutdown signal, for each vhost's expiry task.
    notify: Arc<Notifier>,
    /// The runtime the broker started on, where expiry tasks run (a vhost may be
    /// opened from any thread, by `update_access_control`).
    runtime: tokio::runtime::Handle,
}

impl VHosts {
    /// An empty table (called on the broker's runtime).
    pub(crate) fn new(
        memory: Arc<Gauge>,
        data_dir: Option<PathBuf>,
        notify: Arc<Notifier>,
    ) -> Self {
        Self {
            map: RwLock::default(),
            memory,
            data_dir,
            notify,
            runtime: tokio::runtime::Handle::current(),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<String, Arc<VHost>>> {
        match self.map.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn write(&self) -> RwLockWriteGuard<'_, BTreeMap<String, Arc<VHost>>> {
        match self.map.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The vhost named `name`.
    pub(crate) fn get(&self, name: &str) -> Option<Arc<VHost>> {
        self.read().get(name).cloned()
    }

    /// Every vhost, by name.
    pub(crate) fn all(&self) -> Vec<Arc<VHost>> {
        self.read().values().cloned().collect()
    }

    /// Names of the vhosts that have a log in the data directory (other than `/`,
    /// which is always opened): vhosts added while the broker ran come back.
    pub(crate) fn on_disk(&self) -> Vec<String> {
        let Some(dir) = &self.data_dir else {
            return Vec::new();
        };
        let Ok(entries) = std::fs::read_dir(dir.join(VHOSTS_DIR)) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok()?.file_name().to_str().and_then(unhex))
            .collect()
    }

    /// Open the vhost `name` (no-op if open): recover its durable log, start its
    /// expiry task. Blocks while the log is read.
    pub(crate) fn open(&self, name: &str) -> Result<Arc<VHost>, BrokerError> {
        if let Some(v) = self.get(name) {
            return Ok(v);
        }
        let (store, recovered) = match &self.data_dir {
            Some(dir) => {
                let (s, r) = Store::open(&store_dir(dir, name))?;
                (Some(s), Some(r))
            }
            None => (None, None),
        };
        let vhost = VHost::new(name.to_owned(), store, self.memory.clone());
        if let Some(rec) = recovered {
            recover(&vhost, rec);
        }
        let mut map = self.write();
        if let Some(raced) = map.get(name) {
            return Ok(raced.clone());
        }
        map.insert(name.to_owned(), vhost.clone());
        drop(map);
        self.runtime
            .spawn(vhost.clone().run_expiry(Shutdown::new(&self.notify)));
        tracing::info!(vhost = name, "vhost opened");
        Ok(vhost)
    }

    /// Remove the vhost `name` with everything in it: its queues' consumers are
    /// cancelled, its log is closed and its directory deleted. Whether it existed.
    pub(crate) fn remove(&self, name: &str) -> bool {
        let Some(vhost) = self.write().remove(name) else {
            return false;
        };
        vhost.shut_down();
        for q in vhost.all_queues() {
            vhost.remove_queue(&q);
        }
        if let Some(store) = &vhost.store {
            store.close();
        }
        if let Some(dir) = &self.data_dir {
            let gone = if name == "/" {
                std::fs::remove_file(dir.join(crate::store::LOG_FILE))
            } else {
                std::fs::remove_dir_all(store_dir(dir, name))
            };
            if let Err(e) = gone {
                tracing::warn!(vhost = name, error = %e, "cannot delete the vhost's data");
            }
        }
        tracing::info!(vhost = name, "vhost deleted");
        true
    }

    /// Flush and close every vhost's log (at shutdown).
    pub(crate) fn close_stores(&self) {
        for v in self.all() {
            if let Some(s) = &v.store {
                s.close();
            }
        }
    }
}

/// Where the log of vhost `name` lives.
fn store_dir(data_dir: &Path, name: &str) -> PathBuf {
    if name == "/" {
        data_dir.to_path_buf()
    } else {
        let hex: String = name.bytes().map(|b| format!("{b:02x}")).collect();
        data_dir.join(VHOSTS_DIR).join(hex)
    }
}

/// The vhost name a `vhosts/` directory is named for.
fn unhex(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok().filter(|n| n != "/")
}

/// Rebuild exchanges, queues, bindings and messages from a vhost's log.
fn recover(vhost: &Arc<VHost>, rec: Recovered) {
    for (name, (kind, auto_delete, internal, args)) in rec.exchanges {
        vhost.recover_exchange(name, &kind, auto_delete, internal, args);
    }
    let mut messages = rec.messages;
    let mut n = 0usize;
    for (name, (auto_delete, args)) in rec.queues {
        let q = vhost.recover_queue(name.clone(), auto_delete, args);
        if let Some(msgs) = messages.remove(&name) {
            for (id, m) in msgs {
                let Ok((_, props)) =
                    amq_protocol::protocol::basic::parse_properties(&m.raw_props[..])
                else {
                    continue;
                };
                let msg = Message::new(m.exchange, m.routing_key, props, m.raw_props, m.body)
                    .charged_to(&vhost.memory);
                let fallout = q.enqueue(Arc::new(msg), Some(id));
                vhost.settle(&q, fallout);
                n += 1;
            }
        }
    }
    for (exchange, dest, key, args, to_exchange) in rec.bindings {
        let Some(x) = vhost.exchange(&exchange) else {
            continue;
        };
        if to_exchange {
            if vhost.exchange(&dest).is_some() {
                x.bind(Dest::Exchange(dest), &key, args);
            }
        } else if let Ok(q) = vhost.queue(&dest, 0) {
            x.bind(Dest::Queue(q), &key, args);
        }
    }
    tracing::info!(vhost = %vhost.name, messages = n, "recovered durable state");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vhost_directories_name_their_vhost() {
        let d = Path::new("/data");
        assert_eq!(store_dir(d, "/"), PathBuf::from("/data"));
        let a = store_dir(d, "a/b");
        assert_eq!(a, PathBuf::from("/data/vhosts/612f62"));
        let name = a.file_name().and_then(|n| n.to_str()).unwrap();
        assert_eq!(unhex(name).as_deref(), Some("a/b"));
        assert_eq!(unhex("2f"), None);
        assert_eq!(unhex("zz"), None);
    }
}
