//! Exit codes (one per kind of failure, so scripts can tell them apart), the
//! [`Failure`]s commands return, and the hints the CLI adds to the library's error
//! messages, in the CLI's own terms (flags, environment, subcommands).

use warren_rpc::{Code, Error, TlsFailure};

/// Anything not listed below.
pub const INTERNAL: u8 = 1;
// 2 is clap's code for a usage error.
/// The server answered with an error status (`x-status`).
pub const REMOTE: u8 = 3;
/// Connected and sent the request, but no reply before the deadline.
pub const TIMEOUT: u8 = 4;
/// No queue to route the call to.
pub const NO_ROUTE: u8 = 5;
/// No broker at the address, no connection within the deadline (nothing was sent),
/// or the connection was lost.
pub const UNAVAILABLE: u8 = 6;
/// The broker refused the credentials (user name, password or virtual host).
pub const ACCESS_REFUSED: u8 = 7;

/// `warren serve`: the request queue cannot be declared as asked (it exists with other
/// arguments, or the broker has no quorum queues for `--quorum`).
pub const QUEUE_DECLARATION: u8 = 8;

/// TLS failed: the broker's certificate did not pass a check (unknown CA, expired,
/// host-name mismatch) or the TLS handshake failed.
pub const TLS: u8 = 9;

/// `warren queues|connections|status`: the management API answered, but not with what
/// was asked (an HTTP error other than 401, or no JSON).
pub const MANAGEMENT_API: u8 = 10;

/// The help text listing the codes of `warren queues`, `connections` and `status`.
pub const INSPECT_EXIT_CODES: &str = "\
Exit codes:
  0  printed
  1  internal error
  2  usage error (bad arguments)
  6  no management API at --management-url (refused, unreachable, timed out)
  7  the API refused --user/--password (401), or the user has no management tag
  10 the API answered with another HTTP error, or not with JSON";

/// The help text listing the codes of `warren serve`.
pub const SERVE_EXIT_CODES: &str = "\
Exit codes:
  0  stopped by SIGINT/SIGTERM after finishing the calls in flight
  1  internal error
  2  usage error (bad arguments)
  6  broker unavailable (connection refused or lost, not connected in time)
  7  the broker refused the credentials (user, password or vhost in the URL)
  8  the queue cannot be declared as asked: it exists with other arguments
     (durable, x-queue-type, ...), or --quorum on a broker without quorum queues
  9  TLS failed: the broker's certificate failed a check, or the handshake failed";

/// The help text listing the codes of `warren call`.
pub const CALL_EXIT_CODES: &str = "\
Exit codes:
  0  the reply was printed on stdout
  1  internal error
  2  usage error (bad arguments)
  3  the server answered with an error status (x-status), printed on stderr
  4  timeout: the request was sent but no reply came before the deadline
     (a slow worker, or a broker that stalls mid-call)
  5  no route: no queue by that name (is a server running?)
  6  broker unavailable: connection refused, not connected within the timeout
     (TCP connect, AMQP handshake or channel setup stalled; nothing was sent),
     or the connection was lost
  7  the broker refused the credentials (user, password or vhost in the URL)
  9  TLS failed: the broker's certificate failed a check (unknown CA, expired,
     host name), or the TLS handshake failed";

/// Why a command failed.
pub enum Failure {
    /// An RPC error, with its own exit code.
    Rpc(Error),
    /// The request queue cannot be declared as asked ([`QUEUE_DECLARATION`]).
    QueueDeclaration(String),
    /// The management HTTP API failed (`warren queues`, `connections`, `status`).
    Management(crate::cmd::mgmt_client::MgmtError),
    /// Anything else, described for a person.
    Other(String),
}

impl Failure {
    /// The exit code for this failure.
    pub fn code(&self) -> u8 {
        match self {
            Failure::Rpc(e) => code_of(e),
            Failure::QueueDeclaration(_) => QUEUE_DECLARATION,
            Failure::Management(e) => {
                use crate::cmd::mgmt_client::MgmtError as M;
                match e {
                    M::Unavailable { .. } => UNAVAILABLE,
                    M::Refused { .. } => ACCESS_REFUSED,
                    M::Bad { .. } => MANAGEMENT_API,
                }
            }
            Failure::Other(_) => INTERNAL,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Rpc(e) => f.write_str(&describe(e)),
            Failure::QueueDeclaration(text) | Failure::Other(text) => f.write_str(text),
            Failure::Management(e) => write!(f, "{e}. {}", management_hint(e)),
        }
    }
}

/// The exit code for `error`.
pub fn code_of(error: &Error) -> u8 {
    match error {
        Error::Remote(_) => REMOTE,
        Error::Timeout { .. } => TIMEOUT,
        Error::NoRoute { .. } => NO_ROUTE,
        Error::AccessRefused { .. } => ACCESS_REFUSED,
        Error::Tls { .. } => TLS,
        Error::Connect { .. } | Error::ConnectTimeout { .. } | Error::Unavailable { .. } => {
            UNAVAILABLE
        }
        other if other.code() == Code::Unavailable => UNAVAILABLE,
        _ => INTERNAL,
    }
}

/// What a user of the `warren` command can do about `error`, in the command's terms;
/// `None` when the library's message says enough.
pub fn hint(error: &Error) -> Option<String> {
    match error {
        Error::Connect { .. } | Error::ConnectTimeout { .. } => {
            Some("Pass --url or set AMQP_URL (amqp://USER:PASSWORD@HOST:PORT/VHOST)".to_owned())
        }
        Error::AccessRefused { .. } => {
            Some("Check the user, password and vhost in --url or AMQP_URL".to_owned())
        }
        Error::Tls {
            failure: TlsFailure::ClientCertificateRefused(_) | TlsFailure::ClosedAfterHandshake(_),
            ..
        } => Some(
            "Give a client certificate the broker trusts with --tls-cert and --tls-key".to_owned(),
        ),
        Error::Tls { .. } => Some(
            "Give the CA that signed the broker's certificate with --tls-ca, and use the \
             host name the certificate was issued for in --url"
                .to_owned(),
        ),
        Error::NoRoute { queue, .. } => Some(format!(
            "Start one with `warren serve fib --queue {queue}` (or `warren serve calc`)"
        )),
        // 406 PRECONDITION_FAILED on a declare: the queue exists with other arguments.
        Error::Amqp(e) if e.reply_code() == Some(PRECONDITION_FAILED) => Some(
            "If the queue exists with other arguments (durable, x-queue-type), serve it as it \
             was declared (with or without --quorum) or delete it first \
             (rabbitmqctl delete_queue NAME)"
                .to_owned(),
        ),
        _ => None,
    }
}

/// What to do about a failed management API request, in the command's terms.
fn management_hint(e: &crate::cmd::mgmt_client::MgmtError) -> &'static str {
    use crate::cmd::mgmt_client::MgmtError as M;
    match e {
        M::Unavailable { .. } => {
            "Pass --management-url (RabbitMQ: enable rabbitmq_management; warren broker: \
             --management-listen)"
        }
        M::Refused { .. } => "Check --user and --password (the user needs a management tag)",
        M::Bad { .. } => "Is --management-url the base URL of a management API?",
    }
}

/// AMQP's reply code for a declaration that clashes with what exists.
const PRECONDITION_FAILED: u16 = 406;

/// The line the CLI prints for `error` (after `warren: `): the library's message, then
/// the CLI's hint.
pub fn describe(error: &Error) -> String {
    let message = error.to_string();
    match hint(error) {
        Some(hint) => {
            let end = if message.ends_with(['.', '?', '!']) {
                ""
            } else {
                "."
            };
            format!("{message}{end} {hint}")
        }
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_follow_the_library_message_on_one_line() {
        let e = Error::NoRoute {
            queue: "jobs".into(),
            reply_code: 312,
            reply_text: "NO_ROUTE".into(),
        };
        let line = describe(&e);
        assert!(line.starts_with(&e.to_string()), "{line}");
        assert!(line.contains("warren serve fib --queue jobs"), "{line}");
        assert!(!line.contains('\n'), "{line}");
        assert_eq!(
            describe(&Error::InvalidArgument("x".into())),
            "invalid argument: x"
        );
    }
}
