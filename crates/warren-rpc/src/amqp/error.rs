//! What can go wrong on a connection of Warren's AMQP client.

use std::io;

/// A connection's or channel's failure.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RawError {
    /// The socket failed.
    #[error("socket error: {0}")]
    Io(std::sync::Arc<io::Error>),
    /// The peer closed the connection.
    #[error("the broker closed the connection")]
    Eof,
    /// The bytes did not decode as AMQP 0-9-1 frames.
    #[error("malformed frame from the broker: {0}")]
    Frame(String),
    /// A frame could not be encoded.
    #[error("cannot encode a frame: {0}")]
    Encode(String),
    /// The broker answered with something other than the method awaited.
    #[error("unexpected reply from the broker: {0}")]
    Unexpected(String),
    /// The broker closed the connection or a channel, with its reason.
    #[error("the broker closed {what}: {code} {text}")]
    Closed {
        /// `the connection` or `a channel`.
        what: &'static str,
        /// The reply code.
        code: u16,
        /// The reply text.
        text: String,
    },
    /// The URL could not be used.
    #[error("bad AMQP URL: {0}")]
    Url(String),
    /// No reply within the time allowed.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// Nothing came from the broker for two heartbeat intervals.
    #[error("the broker sent nothing for two heartbeat intervals ({0:?})")]
    MissedHeartbeats(std::time::Duration),
    /// The connection is gone (closed by this side, or failed earlier).
    #[error("the connection is closed: {0}")]
    Gone(String),
}

impl From<io::Error> for RawError {
    fn from(e: io::Error) -> Self {
        RawError::Io(std::sync::Arc::new(e))
    }
}

impl RawError {
    /// The broker's reply code, when the broker closed something.
    pub fn reply_code(&self) -> Option<u16> {
        match self {
            RawError::Closed { code, .. } => Some(*code),
            _ => None,
        }
    }
}
