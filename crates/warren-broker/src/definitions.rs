//! Definitions in RabbitMQ's JSON (what `rabbitmqctl export_definitions` writes in
//! 3.10): [`Definitions`] parses and writes it; users, vhosts and permissions
//! convert to and from an [`AccessControl`]. Queues, exchanges and bindings are
//! parsed and written back unchanged (not yet declared in the broker).

use crate::access::{AccessControl, AccessError, Permissions, SHA256_ALGORITHM};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A definitions file. Unknown top-level keys are ignored on import.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Definitions {
    /// Users.
    #[serde(default)]
    pub users: Vec<UserDef>,
    /// Virtual hosts.
    #[serde(default)]
    pub vhosts: Vec<VhostDef>,
    /// Permissions.
    #[serde(default)]
    pub permissions: Vec<PermissionDef>,
    /// Queues, as RabbitMQ writes them (kept, not applied).
    #[serde(default)]
    pub queues: Vec<Value>,
    /// Exchanges, as RabbitMQ writes them (kept, not applied).
    #[serde(default)]
    pub exchanges: Vec<Value>,
    /// Bindings, as RabbitMQ writes them (kept, not applied).
    #[serde(default)]
    pub bindings: Vec<Value>,
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
}

fn default_algorithm() -> String {
    SHA256_ALGORITHM.to_owned()
}

/// One vhost.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VhostDef {
    /// Name.
    pub name: String,
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
        Ok(a)
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
                })
                .collect(),
            vhosts: a
                .vhosts()
                .map(|v| VhostDef { name: v.to_owned() })
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
