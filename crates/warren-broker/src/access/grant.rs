//! One connection's permissions on its vhost, and RabbitMQ's 403 wording for a
//! method that needs more.

use super::{Op, Permissions};
use crate::error::AmqpError;

/// The kind of resource a check names in its refusal.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Queue,
    Exchange,
}

/// What an authenticated connection may do on its vhost.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    user: String,
    vhost: String,
    perms: Permissions,
}

impl Grant {
    /// The grant of `user` on `vhost`.
    pub(crate) fn new(user: &str, vhost: &str, perms: Permissions) -> Self {
        Self {
            user: user.to_owned(),
            vhost: vhost.to_owned(),
            perms,
        }
    }

    /// The user name.
    pub(crate) fn user(&self) -> &str {
        &self.user
    }

    /// Declare/delete.
    pub(crate) fn configure(&self, kind: Kind, name: &str) -> Result<(), AmqpError> {
        self.check(Op::Configure, kind, name)
    }

    /// Publish to an exchange, bind to a destination.
    pub(crate) fn write(&self, kind: Kind, name: &str) -> Result<(), AmqpError> {
        self.check(Op::Write, kind, name)
    }

    /// Consume/get/purge a queue, bind from a source exchange.
    pub(crate) fn read(&self, kind: Kind, name: &str) -> Result<(), AmqpError> {
        self.check(Op::Read, kind, name)
    }

    fn check(&self, op: Op, kind: Kind, name: &str) -> Result<(), AmqpError> {
        // The default exchange is `amq.default` for permission matching.
        let (kind_name, name) = match kind {
            Kind::Queue => ("queue", name),
            Kind::Exchange if name.is_empty() => ("exchange", "amq.default"),
            Kind::Exchange => ("exchange", name),
        };
        if self.perms.allows(op, name) {
            return Ok(());
        }
        Err(AmqpError::access_refused(format!(
            "access to {kind_name} '{name}' in vhost '{}' refused for user '{}'",
            self.vhost, self.user
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_exchange_matches_as_amq_default_and_refusal_is_worded_as_rabbitmq() {
        let p = Permissions::new("^cfg", "^amq\\.default$", "").unwrap();
        let g = Grant::new("u", "/", p);
        assert!(g.write(Kind::Exchange, "").is_ok());
        assert!(g.configure(Kind::Queue, "cfg.q").is_ok());
        let e = g.read(Kind::Queue, "q").unwrap_err();
        assert_eq!(
            e.text,
            "access to queue 'q' in vhost '/' refused for user 'u'"
        );
        assert_eq!(e.code.code(), 403);
        // Unanchored, as re:run.
        assert!(g.configure(Kind::Exchange, "x.cfg").is_err());
        assert!(
            Grant::new("u", "/", Permissions::new("cfg", "", "").unwrap())
                .configure(Kind::Exchange, "x.cfg")
                .is_ok()
        );
    }
}
