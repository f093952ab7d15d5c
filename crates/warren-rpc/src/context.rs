//! What a handler sees of one call ([`Request`] with its [`Context`]) and what it
//! returns ([`Response`]).

use std::time::{Duration, SystemTime};

use crate::headers::Headers;

/// Per-call metadata: correlation id, deadline, reply address, headers.
///
/// Warren fills it in for each request; to test a handler, start from
/// `Context::default()` and set the fields it reads.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
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
    pub headers: Headers,
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
///
/// To test a handler, build one with [`Request::new`] and the `with_` setters.
#[derive(Debug, Clone)]
#[non_exhaustive]
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
#[non_exhaustive]
pub struct Response {
    /// The reply body.
    pub body: Vec<u8>,
    /// Its `content_type`.
    pub content_type: Option<String>,
}

impl Request {
    /// A request with `body`, a default [`Context`], no content type and no method.
    pub fn new(body: impl Into<Vec<u8>>) -> Self {
        Request {
            context: Context::default(),
            body: body.into(),
            content_type: None,
            method: None,
        }
    }

    /// Sets the call metadata.
    #[must_use]
    pub fn with_context(mut self, context: Context) -> Self {
        self.context = context;
        self
    }

    /// Sets the body's `content_type`.
    #[must_use]
    pub fn with_content_type(mut self, content_type: impl Into<String>) -> Self {
        self.content_type = Some(content_type.into());
        self
    }

    /// Sets the method (the AMQP `type` property).
    #[must_use]
    pub fn with_method(mut self, method: impl Into<String>) -> Self {
        self.method = Some(method.into());
        self
    }
}

impl Response {
    /// A reply with `body` and `content_type` (none: opaque bytes).
    pub fn new(body: impl Into<Vec<u8>>, content_type: Option<String>) -> Self {
        Response {
            body: body.into(),
            content_type,
        }
    }

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
