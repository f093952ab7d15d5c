//! Access control as RabbitMQ's internal backend has it: users with password
//! hashes (`hash.rs`) and tags, virtual hosts, and per-user per-vhost
//! configure/write/read regular expressions; [`grant`] turns one user's
//! permissions on one vhost into the checks a connection runs per method.

use regex::Regex;
use std::collections::BTreeMap;

pub(crate) mod grant;
mod hash;

pub use hash::{hash_password, verify_password, SHA256_ALGORITHM};

/// A user: name, password hash (`rabbit_password_hashing_sha256` format) and tags
/// (`administrator`, `management`, `monitoring`, `policymaker`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct User {
    /// User name.
    pub name: String,
    /// `base64(salt4 ++ sha256(salt4 ++ password))`; empty: no password login.
    pub password_hash: String,
    /// Tags, as RabbitMQ's `user.tags`.
    pub tags: Vec<String>,
}

/// One user's permissions on one vhost: three regular expressions matched
/// (unanchored, as RabbitMQ's `re:run`) against resource names. An empty
/// expression matches nothing but the empty name.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Permissions {
    /// Declare and delete queues and exchanges.
    pub configure: String,
    /// Publish to exchanges, bind queues (as destination).
    pub write: String,
    /// Consume, get, purge queues; bind from exchanges (as source).
    pub read: String,
    compiled: [Regex; 3],
}

impl PartialEq for Permissions {
    fn eq(&self, other: &Self) -> bool {
        (&self.configure, &self.write, &self.read) == (&other.configure, &other.write, &other.read)
    }
}

impl Permissions {
    /// Permissions from three regular expressions (`".*"` allows everything).
    pub fn new(configure: &str, write: &str, read: &str) -> Result<Self, AccessError> {
        let compile = |re: &str| {
            let re = if re.is_empty() { "^$" } else { re };
            Regex::new(re).map_err(|e| AccessError::BadRegex {
                regex: re.to_owned(),
                reason: e.to_string(),
            })
        };
        Ok(Self {
            compiled: [compile(configure)?, compile(write)?, compile(read)?],
            configure: configure.to_owned(),
            write: write.to_owned(),
            read: read.to_owned(),
        })
    }

    /// Everything allowed (`.*` three times).
    pub fn full() -> Self {
        let all = Regex::new(".*").unwrap_or_else(|_| unreachable!(".* is a valid regex"));
        Self {
            configure: ".*".into(),
            write: ".*".into(),
            read: ".*".into(),
            compiled: [all.clone(), all.clone(), all],
        }
    }

    fn allows(&self, op: Op, name: &str) -> bool {
        self.compiled[op as usize].is_match(name)
    }
}

/// The three kinds of access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Configure = 0,
    Write = 1,
    Read = 2,
}

/// What can go wrong changing the user store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccessError {
    /// A permission expression does not compile.
    #[error("permission regex '{regex}' is invalid: {reason}")]
    BadRegex {
        /// The expression.
        regex: String,
        /// The regex crate's explanation.
        reason: String,
    },
    /// Permissions for a user that does not exist.
    #[error("no such user '{0}'")]
    NoSuchUser(String),
    /// Permissions on a vhost that does not exist.
    #[error("no such vhost '{0}'")]
    NoSuchVhost(String),
}

/// The user store: users, vhosts and permissions. Give it to
/// [`BrokerBuilder::access_control`](crate::BrokerBuilder::access_control), read it
/// back from [`BrokerHandle::access_control`](crate::BrokerHandle::access_control).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccessControl {
    users: BTreeMap<String, User>,
    vhosts: BTreeMap<String, ()>,
    permissions: BTreeMap<(String, String), Permissions>,
}

impl AccessControl {
    /// An empty store (no users, no vhosts).
    pub fn new() -> Self {
        Self::default()
    }

    /// Add or replace a user with a password (hashed here) and tags.
    pub fn add_user(&mut self, name: &str, password: &str, tags: &[&str]) {
        self.add_user_with_hash(
            name,
            &hash_password(password),
            tags.iter().map(|t| t.to_string()).collect(),
        );
    }

    /// Add or replace a user with a ready hash (`rabbit_password_hashing_sha256`).
    pub fn add_user_with_hash(&mut self, name: &str, password_hash: &str, tags: Vec<String>) {
        self.users.insert(
            name.to_owned(),
            User {
                name: name.to_owned(),
                password_hash: password_hash.to_owned(),
                tags,
            },
        );
    }

    /// Remove a user and its permissions; whether it existed.
    pub fn delete_user(&mut self, name: &str) -> bool {
        self.permissions.retain(|(u, _), _| u != name);
        self.users.remove(name).is_some()
    }

    /// Add a vhost (no-op if present).
    pub fn add_vhost(&mut self, name: &str) {
        self.vhosts.insert(name.to_owned(), ());
    }

    /// Remove a vhost and the permissions on it; whether it existed.
    pub fn delete_vhost(&mut self, name: &str) -> bool {
        self.permissions.retain(|(_, v), _| v != name);
        self.vhosts.remove(name).is_some()
    }

    /// Set a user's permissions on a vhost (both must exist).
    pub fn set_permissions(
        &mut self,
        user: &str,
        vhost: &str,
        permissions: Permissions,
    ) -> Result<(), AccessError> {
        if !self.users.contains_key(user) {
            return Err(AccessError::NoSuchUser(user.to_owned()));
        }
        if !self.vhosts.contains_key(vhost) {
            return Err(AccessError::NoSuchVhost(vhost.to_owned()));
        }
        self.permissions
            .insert((user.to_owned(), vhost.to_owned()), permissions);
        Ok(())
    }

    /// Remove a user's permissions on a vhost; whether there were any.
    pub fn clear_permissions(&mut self, user: &str, vhost: &str) -> bool {
        self.permissions
            .remove(&(user.to_owned(), vhost.to_owned()))
            .is_some()
    }

    /// A user by name.
    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.get(name)
    }

    /// All users, by name.
    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }

    /// All vhost names, sorted.
    pub fn vhosts(&self) -> impl Iterator<Item = &str> {
        self.vhosts.keys().map(String::as_str)
    }

    /// Whether a vhost exists.
    pub fn has_vhost(&self, name: &str) -> bool {
        self.vhosts.contains_key(name)
    }

    /// A user's permissions on a vhost.
    pub fn permissions(&self, user: &str, vhost: &str) -> Option<&Permissions> {
        self.permissions.get(&(user.to_owned(), vhost.to_owned()))
    }

    /// All permissions as (user, vhost, permissions).
    pub fn all_permissions(&self) -> impl Iterator<Item = (&str, &str, &Permissions)> {
        self.permissions
            .iter()
            .map(|((u, v), p)| (u.as_str(), v.as_str(), p))
    }

    /// The user if `password` is theirs.
    pub fn authenticate(&self, name: &str, password: &str) -> Option<&User> {
        self.users
            .get(name)
            .filter(|u| !u.password_hash.is_empty() && verify_password(&u.password_hash, password))
    }
}
