//! The typed error every Warren call and connection returns.
//!
//! Each variant says what went wrong and what to do about it; [`Error::code`] maps it
//! onto the shared [`Code`] vocabulary so callers can branch on the kind. Messages
//! say nothing of how a program was started (flags, environment): a CLI adds its own
//! hints.

use std::time::Duration;

use crate::status::{Code, Status};

/// What can go wrong when connecting, calling or serving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No broker answered at the given address (or the address is not an AMQP URL).
    #[error("cannot connect to the AMQP broker at {url}: {source}. Is the broker running?")]
    Connect {
        /// The address tried (credentials removed).
        url: String,
        /// The underlying AMQP or socket error.
        #[source]
        source: AmqpError,
    },

    /// The TLS handshake with the broker failed: its certificate was refused (unknown
    /// CA, expired, wrong host name) or the handshake broke off. Retrying does not help
    /// until the certificates or the TLS options change.
    #[error("TLS with the AMQP broker at {url} failed: {failure}")]
    Tls {
        /// The address tried (credentials removed).
        url: String,
        /// Which check or step failed.
        failure: TlsFailure,
    },

    /// The broker refused the login: wrong user name or password, or the user may not
    /// use the virtual host. Retrying with the same credentials fails again.
    #[error("the broker at {url} refused the credentials for user {user} ({reply_text})")]
    AccessRefused {
        /// The address tried (credentials removed).
        url: String,
        /// The user name that was refused.
        user: String,
        /// The broker's reply text (e.g. `ACCESS_REFUSED - Login was refused ...`).
        reply_text: String,
    },

    /// Connecting did not finish in time: the broker, or whatever listens at its
    /// address, accepted the attempt and then stalled (or the network dropped it).
    /// Nothing was sent, so no call ran; retrying later is safe.
    #[error(
        "no connection to the AMQP broker at {url}: {step} did not finish within {timeout:?}. \
         Nothing was sent. Is the broker stopped or overloaded, or is something other than an \
         AMQP broker listening at that address?"
    )]
    ConnectTimeout {
        /// The address tried (credentials removed).
        url: String,
        /// The step that was still in progress when the time ran out.
        step: ConnectStep,
        /// The time the attempt had.
        timeout: Duration,
    },

    /// The request had no route: no queue by that name exists, so nobody can answer.
    #[error(
        "no route to queue `{queue}`: the broker returned the call ({reply_code} {reply_text}). \
         Is a server running for it?"
    )]
    NoRoute {
        /// The queue (routing key) that was called.
        queue: String,
        /// The broker's reply code (312 NO_ROUTE).
        reply_code: u16,
        /// The broker's reply text.
        reply_text: String,
    },

    /// No reply came before the call's deadline.
    #[error(
        "call to `{queue}` timed out after {timeout:?} with no reply. \
         Is a worker consuming `{queue}` and keeping up? Raise the timeout if the work is slow"
    )]
    Timeout {
        /// The queue that was called.
        queue: String,
        /// The deadline the call had.
        timeout: Duration,
    },

    /// The server answered with an error status.
    #[error("the server answered with an error: {0}")]
    Remote(Status),

    /// The connection to the broker was lost or refused the call; the call may or may not
    /// have run. Retrying is safe for idempotent calls.
    #[error(
        "broker unavailable: {reason}. The call may or may not have run; retry if it is idempotent"
    )]
    Unavailable {
        /// What happened.
        reason: String,
    },

    /// Too many calls are in flight on this client.
    #[error(
        "too many calls in flight (limit {limit}); wait for some to finish or raise the limit"
    )]
    ResourceExhausted {
        /// The configured limit.
        limit: usize,
    },

    /// A caller-supplied value cannot be used (bad queue name, bad option).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// The reply of a typed call did not decode into the method's return type: the
    /// server and the client disagree on the method's signature.
    #[error(
        "the reply of `{queue}.{method}` does not decode into the method's return type: \
         {source}. Are the client and the server built from the same service definition?"
    )]
    Decode {
        /// The queue (service) that was called.
        queue: String,
        /// The method that was called.
        method: String,
        /// What the decoder said, with the field path.
        #[source]
        source: crate::codec::CodecError,
    },

    /// Any other AMQP-level failure (a channel closed by the broker, a protocol error).
    #[error("AMQP error: {0}")]
    Amqp(AmqpError),
}

/// A failure of the AMQP layer under Warren: a socket error, or an error the broker
/// sent (with its reply code, e.g. 406 PRECONDITION_FAILED when a queue exists with
/// other arguments). The underlying error is its [`source`](std::error::Error::source).
#[derive(Debug)]
pub struct AmqpError {
    message: String,
    reply_code: Option<u16>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl AmqpError {
    /// What went wrong, as the AMQP layer said it.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The broker's reply code when the broker reported the error (channel or
    /// connection close), e.g. 404 NOT_FOUND, 406 PRECONDITION_FAILED.
    pub fn reply_code(&self) -> Option<u16> {
        self.reply_code
    }

    /// An error with `message` and no source (e.g. a URL that does not parse).
    pub(crate) fn msg(message: impl Into<String>) -> Self {
        AmqpError {
            message: message.into(),
            reply_code: None,
            source: None,
        }
    }
}

impl AmqpError {
    /// Wraps the AMQP client's error (a private source: it is not part of Warren's API).
    pub(crate) fn from_raw(error: crate::amqp::RawError) -> Self {
        let reply_code = error.reply_code();
        let message = match &error {
            crate::amqp::RawError::Closed { code, text, .. } => {
                match amq_protocol::protocol::AMQPError::from_id(*code, text.as_str().into()) {
                    Some(e) => format!("protocol error: {e}"),
                    None => error.to_string(),
                }
            }
            _ => error.to_string(),
        };
        AmqpError {
            message,
            reply_code,
            source: Some(Box::new(error)),
        }
    }
}

impl std::fmt::Display for AmqpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for AmqpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl Error {
    /// An AMQP-level failure, from the AMQP client's error (kept private as the source).
    pub(crate) fn amqp(error: crate::amqp::RawError) -> Self {
        Error::Amqp(AmqpError::from_raw(error))
    }
}

impl Error {
    /// The status code this error maps to, for callers that branch on the kind.
    pub fn code(&self) -> Code {
        match self {
            Error::Connect { .. }
            | Error::ConnectTimeout { .. }
            | Error::Unavailable { .. }
            | Error::Amqp(_) => Code::Unavailable,
            Error::NoRoute { .. } => Code::NotFound,
            Error::AccessRefused { .. } | Error::Tls { .. } => Code::Unauthenticated,
            Error::Timeout { .. } => Code::DeadlineExceeded,
            Error::Remote(status) => status.code(),
            Error::ResourceExhausted { .. } => Code::ResourceExhausted,
            Error::InvalidArgument(_) => Code::InvalidArgument,
            Error::Decode { .. } => Code::Internal,
        }
    }

    /// Whether retrying the same call later may succeed (and is safe if the call is idempotent).
    pub fn is_retryable(&self) -> bool {
        matches!(self.code(), Code::Unavailable | Code::ResourceExhausted)
    }
}

/// The steps of setting up a connection, to say which one stalled
/// ([`Error::ConnectTimeout`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectStep {
    /// Opening the TCP connection (and TLS, for `amqps`).
    TcpConnect,
    /// The AMQP handshake: protocol header, `connection.start` to `connection.open-ok`.
    AmqpHandshake,
    /// Setting up the channels after the handshake: `channel.open`, `confirm.select`,
    /// the reply consumer or request queues, `basic.qos`, `basic.consume`.
    ChannelSetup,
}

impl std::fmt::Display for ConnectStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ConnectStep::TcpConnect => "the TCP connect",
            ConnectStep::AmqpHandshake => {
                "the AMQP handshake (protocol header to connection.open-ok)"
            }
            ConnectStep::ChannelSetup => {
                "channel setup (channel.open, confirm.select, queue and consumer declarations)"
            }
        })
    }
}

/// `Result` with Warren's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Removes the password from an AMQP URL so it can be printed.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_owned(),
    }
}

/// Which part of the TLS handshake failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsFailure {
    /// The broker's certificate is not signed by a trusted CA.
    UnknownCa,
    /// The broker's certificate has expired (or is not valid yet).
    Expired,
    /// The broker's certificate is not valid for the host name connected to.
    NameMismatch,
    /// The broker's certificate was refused for another reason.
    BadCertificate(String),
    /// The broker refused this side's client certificate, or wanted one and got none.
    /// With TLS 1.3 the broker says so only after the handshake, in the alert that
    /// answers the first bytes sent, so this can come while the AMQP handshake starts.
    ClientCertificateRefused(String),
    /// The broker reset or closed the connection right after the TLS handshake,
    /// before it sent anything: what a refused (or missing) client certificate can
    /// look like when the broker's alert is lost with the reset.
    ClosedAfterHandshake(String),
    /// The handshake itself failed (a protocol error, another alert, the connection
    /// dropped during it).
    Handshake(String),
}

impl std::fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsFailure::UnknownCa => {
                f.write_str("the broker's certificate is not signed by a trusted CA")
            }
            TlsFailure::Expired => f.write_str("the broker's certificate has expired"),
            TlsFailure::NameMismatch => {
                f.write_str("the broker's certificate is not valid for this host name")
            }
            TlsFailure::BadCertificate(why) => {
                write!(f, "the broker's certificate was refused: {why}")
            }
            TlsFailure::ClientCertificateRefused(alert) => write!(
                f,
                "the broker refused the client certificate, or wanted one and got none ({alert})"
            ),
            TlsFailure::ClosedAfterHandshake(how) => write!(
                f,
                "the broker ended the connection ({how}) right after the TLS handshake, \
                 before AMQP began, as brokers do when they refuse the client certificate"
            ),
            TlsFailure::Handshake(why) => write!(f, "the TLS handshake failed: {why}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_password_only() {
        assert_eq!(
            redact_url("amqp://guest:secret@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(redact_url("amqp://127.0.0.1"), "amqp://127.0.0.1");
    }

    #[test]
    fn errors_map_to_codes() {
        let e = Error::Timeout {
            queue: "q".into(),
            timeout: Duration::from_secs(1),
        };
        assert_eq!(e.code(), Code::DeadlineExceeded);
        assert!(!e.is_retryable());
        let e = Error::Unavailable {
            reason: "gone".into(),
        };
        assert!(e.is_retryable());
        let e = Error::ConnectTimeout {
            url: "amqp://127.0.0.1:1/%2f".into(),
            step: ConnectStep::AmqpHandshake,
            timeout: Duration::from_secs(2),
        };
        assert_eq!(e.code(), Code::Unavailable);
        assert!(e.is_retryable());
        assert!(e.to_string().contains("AMQP handshake"), "{e}");
        let e = Error::Remote(Status::invalid_argument("bad"));
        assert_eq!(e.code(), Code::InvalidArgument);
    }

    #[test]
    fn messages_give_no_cli_advice() {
        let e = Error::Connect {
            url: "amqp://127.0.0.1:1/%2f".into(),
            source: AmqpError::msg("connection refused"),
        };
        let no_route = Error::NoRoute {
            queue: "q".into(),
            reply_code: 312,
            reply_text: "NO_ROUTE".into(),
        };
        for e in [e, no_route] {
            let text = e.to_string();
            assert!(!text.contains("--") && !text.contains("AMQP_URL"), "{text}");
            assert!(!text.contains("warren "), "{text}");
        }
    }

    #[test]
    fn amqp_errors_keep_their_source_and_reply_code() {
        use std::error::Error as _;
        let e = Error::amqp(crate::amqp::RawError::Eof);
        let Error::Amqp(inner) = &e else {
            panic!("not an AMQP error: {e:?}");
        };
        assert_eq!(inner.reply_code(), None);
        assert!(inner.source().is_some());
        assert!(e.to_string().starts_with("AMQP error: "), "{e}");
        let closed = Error::amqp(crate::amqp::RawError::Closed {
            what: "a channel",
            code: 406,
            text: "PRECONDITION_FAILED - inequivalent arg 'durable'".to_owned(),
        });
        let Error::Amqp(inner) = &closed else {
            panic!("not an AMQP error: {closed:?}");
        };
        assert_eq!(inner.reply_code(), Some(406));
        assert!(
            closed
                .to_string()
                .contains("PRECONDITION_FAILED - inequivalent arg"),
            "{closed}"
        );
    }
}
