//! What a handler sees of one call ([`Request`] with its [`Context`]) and what it
//! returns ([`Response`]).

use std::time::{Duration, SystemTime};

use lapin::types::FieldTable;

/// Per-call metadata: correlation id, deadline, reply address, headers.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The caller's correlation id, copied into the reply.
    pub correlation_id: Option<String>,
    /// Absolute deadline (`x-deadline`), if the caller sent one.
    pub deadline: Option<SystemTime>,
    /// Where the reply goes; `None` for a one-way call.
    pub reply_to: Option<String>,
    /// Whether the broker delivered this request before (at-least-once delivery).
    pub redelivered: bool,
    /// All request headers.
    pub headers: FieldTable,
}

impl Context {
    /// Time left before the deadline (`None` without a deadline, zero once past it).
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline.map(|d| {
            d.duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO)
        })
    }

    /// Whether the deadline has passed.
    pub fn is_expired(&self) -> bool {
        self.remaining() == Some(Duration::ZERO)
    }
}

/// One incoming call.
#[derive(Debug, Clone)]
pub struct Request {
    /// Call metadata.
    pub context: Context,
    /// The request body.
    pub body: Vec<u8>,
    /// `content_type` of the body, if the caller set one.
    pub content_type: Option<String>,
    /// The AMQP `type` property: the method a typed call names (SPEC v2), if any.
    pub method: Option<String>,
}

/// A successful reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The reply body.
    pub body: Vec<u8>,
    /// Its `content_type`.
    pub content_type: Option<String>,
}

impl Response {
    /// A `text/plain` reply.
    pub fn text(body: impl Into<String>) -> Self {
        Response {
            body: body.into().into_bytes(),
            content_type: Some("text/plain".to_owned()),
        }
    }

    /// An opaque-bytes reply with no content type.
    pub fn bytes(body: impl Into<Vec<u8>>) -> Self {
        Response {
            body: body.into(),
            content_type: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_deadline_math() {
        let mut c = Context::default();
        assert_eq!(c.remaining(), None);
        assert!(!c.is_expired());
        c.deadline = Some(SystemTime::now() - Duration::from_secs(1));
        assert!(c.is_expired());
        c.deadline = Some(SystemTime::now() + Duration::from_secs(60));
        assert!(c.remaining().is_some_and(|r| r > Duration::from_secs(50)));
    }
}
