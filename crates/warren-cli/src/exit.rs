//! Exit codes: one per kind of failure, so scripts can tell them apart.

use warren_rpc::{Code, Error};

/// Anything not listed below.
pub const INTERNAL: u8 = 1;
// 2 is clap's code for a usage error.
/// The server answered with an error status (`x-status`).
pub const REMOTE: u8 = 3;
/// No reply before the deadline.
pub const TIMEOUT: u8 = 4;
/// No queue to route the call to.
pub const NO_ROUTE: u8 = 5;
/// No broker at the address, or the connection was lost.
pub const UNAVAILABLE: u8 = 6;

/// The help text listing the codes of `warren call`.
pub const CALL_EXIT_CODES: &str = "\
Exit codes:
  0  the reply was printed on stdout
  1  internal error
  2  usage error (bad arguments)
  3  the server answered with an error status (x-status), printed on stderr
  4  timeout: no reply before the deadline
  5  no route: no queue by that name (is a server running?)
  6  broker unavailable: cannot connect, or the connection was lost";

/// The exit code for `error`.
pub fn code_of(error: &Error) -> u8 {
    match error {
        Error::Remote(_) => REMOTE,
        Error::Timeout { .. } => TIMEOUT,
        Error::NoRoute { .. } => NO_ROUTE,
        Error::Connect { .. } | Error::Unavailable { .. } => UNAVAILABLE,
        other if other.code() == Code::Unavailable => UNAVAILABLE,
        _ => INTERNAL,
    }
}
