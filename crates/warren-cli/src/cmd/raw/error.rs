//! What can go wrong on the raw client's connection.

use std::io;

/// A raw connection's failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RawError {
    /// The socket failed.
    #[error("socket error: {0}")]
    Io(#[from] io::Error),
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
        /// `connection` or `channel`.
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
}
