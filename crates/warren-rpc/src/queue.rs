//! [`QueueSpec`]: how a server declares the queue it serves.

use crate::amqp::DeclareFlags;

use crate::headers::Headers;

/// The declaration of a request queue.
///
/// Start from [`QueueSpec::tutorial`] or [`QueueSpec::quorum`] and change what differs:
///
/// ```
/// use warren_rpc::QueueSpec;
///
/// let spec = QueueSpec::tutorial("jobs")
///     .durable(true)
///     .argument("x-message-ttl", 60_000);
/// assert!(spec.durable);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct QueueSpec {
    /// Queue name (the routing key callers use).
    pub name: String,
    /// Survives a broker restart.
    pub durable: bool,
    /// Deleted when its last consumer goes away.
    pub auto_delete: bool,
    /// Extra arguments (`x-queue-type`, `x-message-ttl`, ...).
    pub arguments: Headers,
}

impl QueueSpec {
    /// Declared as RabbitMQ's tutorial declares `rpc_queue`: non-durable, not
    /// exclusive, not auto-delete, no arguments.
    pub fn tutorial(name: impl Into<String>) -> Self {
        QueueSpec {
            name: name.into(),
            durable: false,
            auto_delete: false,
            arguments: Headers::new(),
        }
    }

    /// A durable quorum queue (`x-queue-type: quorum`), replicated across a
    /// RabbitMQ cluster so requests survive the loss of a node.
    pub fn quorum(name: impl Into<String>) -> Self {
        QueueSpec::tutorial(name)
            .durable(true)
            .argument("x-queue-type", "quorum")
    }

    /// Whether the queue survives a broker restart.
    #[must_use]
    pub fn durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }

    /// Whether the queue is deleted when its last consumer goes away.
    #[must_use]
    pub fn auto_delete(mut self, auto_delete: bool) -> Self {
        self.auto_delete = auto_delete;
        self
    }

    /// Sets the queue argument `name` (e.g. `x-max-length`) to `value`.
    #[must_use]
    pub fn argument(
        mut self,
        name: impl Into<String>,
        value: impl Into<crate::HeaderValue>,
    ) -> Self {
        self.arguments.insert(name, value);
        self
    }

    pub(crate) fn declare_options(&self) -> DeclareFlags {
        DeclareFlags {
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
        assert!(!t.durable && !t.auto_delete && t.arguments.is_empty());
        let q = QueueSpec::quorum("rpc_queue");
        assert!(q.durable);
        assert!(q.arguments.contains_key("x-queue-type"));
        assert!(q.declare_options().durable);
    }
}
