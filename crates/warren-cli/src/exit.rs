//! Exit codes: one per kind of failure, so scripts can tell them apart, and the
//! [`Failure`]s commands return.

use warren_rpc::{Code, Error};

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

/// The help text listing the codes of `warren serve`.
pub const SERVE_EXIT_CODES: &str = "\
Exit codes:
  0  stopped by SIGINT/SIGTERM after finishing the calls in flight
  1  internal error
  2  usage error (bad arguments)
  6  broker unavailable (connection refused or lost, not connected in time)
  7  the broker refused the credentials (user, password or vhost in the URL)
  8  the queue cannot be declared as asked: it exists with other arguments
     (durable, x-queue-type, ...), or --quorum on a broker without quorum queues";

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
  7  the broker refused the credentials (user, password or vhost in the URL)";

/// Why a command failed.
pub enum Failure {
    /// An RPC error, with its own exit code.
    Rpc(Error),
    /// The request queue cannot be declared as asked ([`QUEUE_DECLARATION`]).
    QueueDeclaration(String),
    /// Anything else, described for a person.
    Other(String),
}

impl Failure {
    /// The exit code for this failure.
    pub fn code(&self) -> u8 {
        match self {
            Failure::Rpc(e) => code_of(e),
            Failure::QueueDeclaration(_) => QUEUE_DECLARATION,
            Failure::Other(_) => INTERNAL,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Rpc(e) => e.fmt(f),
            Failure::QueueDeclaration(text) | Failure::Other(text) => f.write_str(text),
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
        Error::Connect { .. } | Error::ConnectTimeout { .. } | Error::Unavailable { .. } => {
            UNAVAILABLE
        }
        other if other.code() == Code::Unavailable => UNAVAILABLE,
        _ => INTERNAL,
    }
}
