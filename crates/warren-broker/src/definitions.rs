//! Definitions in RabbitMQ's JSON (what `rabbitmqctl export_definitions` writes in
//! 3.10, with the same keys): [`Definitions`] parses and writes it; users, vhosts
//! and permissions convert to and from an [`AccessControl`]; queues, exchanges and
//! bindings are declared in a running broker and read back from it by `apply.rs`
//! ([`BrokerBuilder::definitions`](crate::BrokerBuilder::definitions),
//! [`BrokerHandle::export_definitions`](crate::BrokerHandle::export_definitions)).
//! Policies, parameters and topic permissions are kept and written back, not applied.

use crate::access::{AccessControl, AccessError, Permissions, SHA256_ALGORITHM};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub(crate) mod apply;

/// A definitions file. Unknown top-level keys are ignored on import.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Definitions {
    /// The version of the broker that wrote the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rabbit_version: Option<String>,
    /// The same, under its newer key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rabbitmq_version: Option<String>,
    /// The broker product (`RabbitMQ`, `Warren`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_name: Option<String>,
    /// The product's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_version: Option<String>,
    /// Users.
    #[serde(default)]
    pub users: Vec<UserDef>,
    /// Virtual hosts.
    #[serde(default)]
    pub vhosts: Vec<VhostDef>,
    /// Permissions.
    #[serde(default)]
    pub permissions: Vec<PermissionDef>,
    /// Topic permissions (kept, not applied).
    #[serde(default)]
    pub topic_permissions: Vec<Value>,
    /// Runtime parameters (kept, not applied).
    #[serde(default)]
    pub parameters: Vec<Value>,
    /// Global parameters (kept, not applied).
    #[serde(default)]
    pub global_parameters: Vec<Value>,
    /// Policies (kept, not applied).
    #[serde(default)]
    pub policies: Vec<Value>,
    /// Queues.
    #[serde(default)]
    pub queues: Vec<QueueDef>,
    /// Exchanges.
    #[serde(default)]
    pub exchanges: Vec<ExchangeDef>,
    /// Bindings.
    #[serde(default)]
    pub bindings: Vec<BindingDef>,
}

fn slash() -> String {
    "/".to_owned()
}

fn yes() -> bool {
    true
}

/// One queue (classic; `x-queue-type: classic` is accepted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct QueueDef {
    /// Name.
    pub name: String,
    /// Its vhost (`/` when the file has none).
    #[serde(default = "slash")]
    pub vhost: String,
    /// Durable.
    #[serde(default = "yes")]
    pub durable: bool,
    /// Auto-delete.
    #[serde(default)]
    pub auto_delete: bool,
    /// Arguments (`x-message-ttl`, `x-max-length`, `x-dead-letter-exchange`, ...).
    #[serde(default)]
    pub arguments: Map<String, Value>,
}

/// One exchange.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ExchangeDef {
    /// Name.
    pub name: String,
    /// Its vhost.
    #[serde(default = "slash")]
    pub vhost: String,
    /// `direct`, `fanout`, `topic` or `headers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Durable.
    #[serde(default = "yes")]
    pub durable: bool,
    /// Auto-delete.
    #[serde(default)]
    pub auto_delete: bool,
    /// Internal (no publishing to it).
    #[serde(default)]
    pub internal: bool,
    /// Arguments (`alternate-exchange`, ...).
    #[serde(default)]
    pub arguments: Map<String, Value>,
}

/// One binding from an exchange to a queue or an exchange.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BindingDef {
    /// The source exchange.
    pub source: String,
    /// Its vhost.
    #[serde(default = "slash")]
    pub vhost: String,
    /// The destination queue or exchange.
    pub destination: String,
    /// `queue` or `exchange`.
    pub destination_type: String,
    /// Routing key.
    #[serde(default)]
    pub routing_key: String,
    /// Arguments (for headers exchanges, `x-match` and the headers).
    #[serde(default)]
    pub arguments: Map<String, Value>,
}

/// Tags: a list (3.9+) or a comma-separated string (older exports).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Tags {
    /// `["administrator"]`.
    List(Vec<String>),
    /// `"administrator,management"`.
    Text(String),
}

impl Tags {
    fn to_vec(&self) -> Vec<String> {
        match self {
            Tags::List(v) => v.clone(),
            Tags::Text(s) => s
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }
}

/// One user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserDef {
    /// Name.
    pub name: String,
    /// Base64 salted hash.
    pub password_hash: String,
    /// `rabbit_password_hashing_sha256` (the only one Warren verifies).
    #[serde(default = "default_algorithm")]
    pub hashing_algorithm: String,
    /// Tags.
    pub tags: Tags,
    /// Per-user limits (kept, not applied).
    #[serde(default)]
    pub limits: Map<String, Value>,
}

fn default_algorithm() -> String {
    SHA256_ALGORITHM.to_owned()
}

/// One vhost.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VhostDef {
    /// Name.
    pub name: String,
    /// Limits (kept, not applied).
    #[serde(default)]
    pub limits: Vec<Value>,
    /// Description and tags.
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

/// One user's permissions on one vhost.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PermissionDef {
    /// User name.
    pub user: String,
    /// Vhost name.
    pub vhost: String,
    /// Configure regex.
    pub configure: String,
    /// Write regex.
    pub write: String,
    /// Read regex.
    pub read: String,
}

/// What can go wrong importing definitions.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DefinitionsError {
    /// Not RabbitMQ definitions JSON.
    #[error("definitions are not valid JSON of the expected shape: {0}")]
    Json(#[from] serde_json::Error),
    /// A user hashed with an algorithm Warren does not verify.
    #[error(
        "user '{user}' uses hashing algorithm '{algorithm}'; only {SHA256_ALGORITHM} is supported"
    )]
    Algorithm {
        /// The user.
        user: String,
        /// Its algorithm.
        algorithm: String,
    },
    /// A bad permission or one naming a missing user or vhost.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// A queue, exchange or binding the broker refused to declare.
    #[error("cannot declare {what} in vhost '{vhost}': {reason}")]
    Declare {
        /// What it was (`queue 'q'`, `binding of ...`).
        what: String,
        /// Its vhost.
        vhost: String,
        /// The broker's refusal, as a client would see it.
        reason: String,
    },
}

impl Definitions {
    /// Parse definitions JSON.
    pub fn from_json(text: &str) -> Result<Self, DefinitionsError> {
        Ok(serde_json::from_str(text)?)
    }

    /// Write definitions JSON (pretty-printed).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|_| unreachable!("plain data serializes"))
    }

    /// The users, vhosts and permissions as a user store.
    pub fn access_control(&self) -> Result<AccessControl, DefinitionsError> {
        let mut a = AccessControl::new();
        self.add_to(&mut a)?;
        Ok(a)
    }

    /// Add the users, vhosts and permissions to a user store (replacing users and
    /// permissions of the same names), as RabbitMQ's import does.
    pub fn add_to(&self, a: &mut AccessControl) -> Result<(), DefinitionsError> {
        for u in &self.users {
            if u.hashing_algorithm != SHA256_ALGORITHM {
                return Err(DefinitionsError::Algorithm {
                    user: u.name.clone(),
                    algorithm: u.hashing_algorithm.clone(),
                });
            }
            a.add_user_with_hash(&u.name, &u.password_hash, u.tags.to_vec());
        }
        for v in &self.vhosts {
            a.add_vhost(&v.name);
        }
        for p in &self.permissions {
            a.set_permissions(
                &p.user,
                &p.vhost,
                Permissions::new(&p.configure, &p.write, &p.read)?,
            )?;
        }
        Ok(())
    }

    /// Definitions holding a user store's users, vhosts and permissions.
    pub fn from_access_control(a: &AccessControl) -> Self {
        Self {
            users: a
                .users()
                .map(|u| UserDef {
                    name: u.name.clone(),
                    password_hash: u.password_hash.clone(),
                    hashing_algorithm: default_algorithm(),
                    tags: Tags::List(u.tags.clone()),
                    limits: Map::new(),
                })
                .collect(),
            vhosts: a
                .vhosts()
                .map(|v| VhostDef {
                    name: v.to_owned(),
                    limits: Vec::new(),
                    metadata: serde_json::from_value(
                        serde_json::json!({"description": "", "tags": []}),
                    )
                    .unwrap_or_default(),
                })
                .collect(),
            permissions: a
                .all_permissions()
                .map(|(u, v, p)| PermissionDef {
                    user: u.to_owned(),
                    vhost: v.to_owned(),
                    configure: p.configure.clone(),
                    write: p.write.clone(),
                    read: p.read.clone(),
                })
                .collect(),
            rabbit_version: Some(env!("CARGO_PKG_VERSION").into()),
            rabbitmq_version: Some(env!("CARGO_PKG_VERSION").into()),
            ..Self::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rabbitmq_export_round_trips() {
        let json = r#"{"rabbit_version":"3.10.8","users":[{"name":"guest",
            "password_hash":"BMfxN8drrYcIqXZMr+pWTpDT0nMcOagMduLX0bjr4jwud/pN",
            "hashing_algorithm":"rabbit_password_hashing_sha256","tags":["administrator"],
            "limits":{}}],"vhosts":[{"name":"/","limits":[],"metadata":{}}],
            "permissions":[{"user":"guest","vhost":"/","configure":".*","write":".*","read":".*"}],
            "queues":[],"exchanges":[],"bindings":[]}"#;
        let d = Definitions::from_json(json).unwrap();
        let a = d.access_control().unwrap();
        assert!(a.authenticate("guest", "guest").is_some());
        assert!(a.authenticate("guest", "nope").is_none());
        let again = Definitions::from_json(&Definitions::from_access_control(&a).to_json())
            .unwrap()
            .access_control()
            .unwrap();
        assert_eq!(again, a);
    }
}
