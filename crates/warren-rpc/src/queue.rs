//! [`QueueSpec`]: how a server declares the queue it serves.

use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable};

/// The declaration of a request queue.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueSpec {
    /// Queue name (the routing key callers use).
    pub name: String,
    /// Survives a broker restart.
    pub durable: bool,
    /// Deleted when its last consumer goes away.
    pub auto_delete: bool,
    /// Extra arguments (`x-queue-type`, `x-message-ttl`, ...).
    pub arguments: FieldTable,
}

impl QueueSpec {
    /// Declared as RabbitMQ's tutorial declares `rpc_queue`: non-durable, not
    /// exclusive, not auto-delete, no arguments.
    pub fn tutorial(name: impl Into<String>) -> Self {
        QueueSpec {
            name: name.into(),
            durable: false,
            auto_delete: false,
            arguments: FieldTable::default(),
        }
    }

    /// A durable quorum queue (`x-queue-type: quorum`), replicated across a
    /// RabbitMQ cluster so requests survive the loss of a node.
    pub fn quorum(name: impl Into<String>) -> Self {
        let mut arguments = FieldTable::default();
        arguments.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
        QueueSpec {
            name: name.into(),
            durable: true,
            auto_delete: false,
            arguments,
        }
    }

    pub(crate) fn declare_options(&self) -> QueueDeclareOptions {
        QueueDeclareOptions {
            durable: self.durable,
            auto_delete: self.auto_delete,
            ..Default::default()
        }
    }
}

impl From<&str> for QueueSpec {
    fn from(name: &str) -> Self {
        QueueSpec::tutorial(name)
    }
}

impl From<String> for QueueSpec {
    fn from(name: String) -> Self {
        QueueSpec::tutorial(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tutorial_and_quorum_declarations() {
        let t = QueueSpec::from("rpc_queue");
        assert!(!t.durable && !t.auto_delete && t.arguments.inner().is_empty());
        let q = QueueSpec::quorum("rpc_queue");
        assert!(q.durable);
        assert!(q.arguments.contains_key("x-queue-type"));
        assert!(q.declare_options().durable);
    }
}
