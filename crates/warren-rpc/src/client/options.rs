//! What one call and one client are given: [`CallOptions`], [`ReplyMode`], [`WhenFull`],
//! and what a call returns, [`Reply`].

use std::time::{Duration, SystemTime};

use crate::error::{Error, Result};
use crate::headers::Headers;

/// Where replies come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ReplyMode {
    /// RabbitMQ's direct reply-to (`amq.rabbitmq.reply-to`): no queue to declare.
    /// Falls back to [`ReplyMode::ExclusiveQueue`] if the broker refuses it.
    #[default]
    DirectReplyTo,
    /// An exclusive, auto-delete, server-named queue declared once per connection.
    ExclusiveQueue,
}

/// What a call does when the client already has `max_in_flight` calls waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WhenFull {
    /// Wait for a slot, within the call's deadline.
    #[default]
    Wait,
    /// Fail at once with [`Error::ResourceExhausted`].
    FailFast,
}

/// A reply to a call.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Reply {
    /// The reply body.
    pub body: Vec<u8>,
    /// The reply's `content_type`, if set.
    pub content_type: Option<String>,
    /// The correlation id of the call it answers.
    pub correlation_id: String,
    /// Reply headers.
    pub headers: Headers,
}

impl Reply {
    /// The body as UTF-8 text.
    pub fn text(&self) -> Result<&str> {
        std::str::from_utf8(&self.body)
            .map_err(|e| Error::InvalidArgument(format!("reply body is not UTF-8: {e}")))
    }
}

/// Options of one call.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct CallOptions {
    pub(crate) timeout: Option<Duration>,
    pub(crate) content_type: Option<String>,
    pub(crate) persistent: bool,
    pub(crate) idempotent: bool,
    pub(crate) headers: Option<Headers>,
    /// An absolute deadline the call may not outlive (nested calls inherit it).
    pub(crate) deadline: Option<SystemTime>,
    /// The AMQP `type` property: the method of a typed service (SPEC v2).
    pub(crate) method: Option<String>,
}

impl CallOptions {
    /// Default options: the client's default timeout, transient, not idempotent.
    pub fn new() -> Self {
        Self::default()
    }

    /// The call's deadline, relative to now. Also sent as `expiration` and `x-deadline`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The body's `content_type`.
    pub fn content_type(mut self, content_type: impl Into<String>) -> Self {
        self.content_type = Some(content_type.into());
        self
    }

    /// Publish the request as persistent (`delivery_mode` 2).
    pub fn persistent(mut self, persistent: bool) -> Self {
        self.persistent = persistent;
        self
    }

    /// The call may safely run more than once: if the connection is lost while it is
    /// in flight, it is sent again (within its deadline) instead of failing.
    pub fn idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = idempotent;
        self
    }

    /// Extra request headers (names at most 255 bytes; a longer one fails the call
    /// with [`Error::InvalidArgument`]).
    pub fn headers(mut self, headers: Headers) -> Self {
        self.headers = Some(headers);
        self
    }

    /// An absolute deadline: the call's timeout is cut to the time left before it,
    /// and a call whose deadline has passed fails with [`Error::Timeout`] unsent.
    /// [`CallOptions::from_context`] sets it from the request being served.
    pub fn deadline(mut self, deadline: SystemTime) -> Self {
        self.deadline = Some(match self.deadline {
            Some(earlier) => earlier.min(deadline),
            None => deadline,
        });
        self
    }

    /// The method to call on a typed service, sent as the AMQP `type` property.
    pub fn method(mut self, method: impl Into<String>) -> Self {
        self.method = Some(method.into());
        self
    }
}
