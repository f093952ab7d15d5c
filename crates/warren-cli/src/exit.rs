//! Exit codes: one per kind of failure, so scripts can tell them apart.

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
