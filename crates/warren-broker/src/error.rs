//! Error types: the public [`BrokerError`] and the typed AMQP protocol errors
//! used internally, split into channel-level and connection-level scopes.

use std::fmt;

/// Errors returned by the public broker API.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// Binding the listening socket failed.
    #[error("failed to bind {addr}: {source}")]
    Bind {
        /// The address we tried to bind.
        addr: std::net::SocketAddr,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An I/O error (socket or data directory).
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The durable store could not be opened or recovered.
    #[error("store error: {0}")]
    Store(String),
    /// Another broker holds the data directory's lock.
    #[error(
        "the data directory {} is in use by another broker; stop it or choose another --data-dir",
        dir.display()
    )]
    DataDirLocked {
        /// The data directory.
        dir: std::path::PathBuf,
    },
    /// The builder configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The TLS listener's certificate, key or client CAs cannot be used.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

/// AMQP 0-9-1 reply codes used by the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub(crate) enum ReplyCode {
    /// 312 no-route (basic.return).
    NoRoute = 312,
    /// 320 connection-forced.
    ConnectionForced = 320,
    /// 403 access-refused.
    AccessRefused = 403,
    /// 404 not-found.
    NotFound = 404,
    /// 405 resource-locked.
    ResourceLocked = 405,
    /// 406 precondition-failed.
    PreconditionFailed = 406,
    /// 501 frame-error.
    FrameError = 501,
    /// 503 command-invalid.
    CommandInvalid = 503,
    /// 504 channel-error.
    ChannelError = 504,
    /// 505 unexpected-frame.
    UnexpectedFrame = 505,
    /// 530 not-allowed.
    NotAllowed = 530,
    /// 540 not-implemented.
    NotImplemented = 540,
}

impl ReplyCode {
    /// The numeric reply code.
    pub(crate) fn code(self) -> u16 {
        self as u16
    }

    /// The RabbitMQ-style upper-case name of the code.
    pub(crate) fn name(self) -> &'static str {
        match self {
            ReplyCode::NoRoute => "NO_ROUTE",
            ReplyCode::ConnectionForced => "CONNECTION_FORCED",
            ReplyCode::AccessRefused => "ACCESS_REFUSED",
            ReplyCode::NotFound => "NOT_FOUND",
            ReplyCode::ResourceLocked => "RESOURCE_LOCKED",
            ReplyCode::PreconditionFailed => "PRECONDITION_FAILED",
            ReplyCode::FrameError => "FRAME_ERROR",
            ReplyCode::CommandInvalid => "COMMAND_INVALID",
            ReplyCode::ChannelError => "CHANNEL_ERROR",
            ReplyCode::UnexpectedFrame => "UNEXPECTED_FRAME",
            ReplyCode::NotAllowed => "NOT_ALLOWED",
            ReplyCode::NotImplemented => "NOT_IMPLEMENTED",
        }
    }

    /// Whether the spec defines this code as a hard (connection) error.
    pub(crate) fn is_connection_level(self) -> bool {
        matches!(
            self,
            ReplyCode::ConnectionForced
                | ReplyCode::FrameError
                | ReplyCode::CommandInvalid
                | ReplyCode::ChannelError
                | ReplyCode::UnexpectedFrame
                | ReplyCode::NotAllowed
                | ReplyCode::NotImplemented
        )
    }
}

/// A protocol error raised while handling a peer's frame.
///
/// Channel-level errors close only the offending channel; connection-level
/// errors close the whole connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AmqpError {
    /// The reply code.
    pub(crate) code: ReplyCode,
    /// Human-readable text (without the code name prefix).
    pub(crate) text: String,
    /// Class id of the method that caused the error (0 if none).
    pub(crate) class_id: u16,
    /// Method id of the method that caused the error (0 if none).
    pub(crate) method_id: u16,
    /// Force connection scope even for a soft code (e.g. 403 during handshake).
    pub(crate) force_connection: bool,
}

impl AmqpError {
    /// A new error with the given code and message.
    pub(crate) fn new(code: ReplyCode, text: impl Into<String>) -> Self {
        Self {
            code,
            text: text.into(),
            class_id: 0,
            method_id: 0,
            force_connection: false,
        }
    }

    /// 404 NOT_FOUND.
    pub(crate) fn not_found(text: impl Into<String>) -> Self {
        Self::new(ReplyCode::NotFound, text)
    }

    /// 403 ACCESS_REFUSED.
    pub(crate) fn access_refused(text: impl Into<String>) -> Self {
        Self::new(ReplyCode::AccessRefused, text)
    }

    /// 405 RESOURCE_LOCKED.
    pub(crate) fn resource_locked(text: impl Into<String>) -> Self {
        Self::new(ReplyCode::ResourceLocked, text)
    }

    /// 406 PRECONDITION_FAILED.
    pub(crate) fn precondition(text: impl Into<String>) -> Self {
        Self::new(ReplyCode::PreconditionFailed, text)
    }

    /// 503 COMMAND_INVALID (connection level).
    pub(crate) fn command_invalid(text: impl Into<String>) -> Self {
        Self::new(ReplyCode::CommandInvalid, text)
    }

    /// 505 UNEXPECTED_FRAME (connection level).
    pub(crate) fn unexpected_frame(text: impl Into<String>) -> Self {
        Self::new(ReplyCode::UnexpectedFrame, text)
    }

    /// 501 FRAME_ERROR (connection level).
    pub(crate) fn frame_error(text: impl Into<String>) -> Self {
        Self::new(ReplyCode::FrameError, text)
    }

    /// 504 CHANNEL_ERROR (connection level).
    pub(crate) fn channel_error(text: impl Into<String>) -> Self {
        Self::new(ReplyCode::ChannelError, text)
    }

    /// 530 NOT_ALLOWED (connection level).
    pub(crate) fn not_allowed(text: impl Into<String>) -> Self {
        Self::new(ReplyCode::NotAllowed, text)
    }

    /// 540 NOT_IMPLEMENTED (connection level).
    pub(crate) fn not_implemented(text: impl Into<String>) -> Self {
        Self::new(ReplyCode::NotImplemented, text)
    }

    /// Attach the class/method ids of the offending method.
    pub(crate) fn with_method(mut self, class_id: u16, method_id: u16) -> Self {
        if self.class_id == 0 && self.method_id == 0 {
            self.class_id = class_id;
            self.method_id = method_id;
        }
        self
    }

    /// Make this error close the connection regardless of its code.
    pub(crate) fn connection_level(mut self) -> Self {
        self.force_connection = true;
        self
    }

    /// Whether this error closes the whole connection.
    pub(crate) fn is_connection_level(&self) -> bool {
        self.force_connection || self.code.is_connection_level()
    }

    /// The reply text as RabbitMQ formats it: `CODE_NAME - text`,
    /// truncated to fit an AMQP short string.
    pub(crate) fn reply_text(&self) -> String {
        crate::message::truncate_short(format!("{} - {}", self.code.name(), self.text))
    }
}

impl fmt::Display for AmqpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code.code(), self.reply_text())
    }
}

impl std::error::Error for AmqpError {}
