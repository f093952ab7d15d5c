//! Status codes carried in the `x-status` reply header, and the [`Status`] a handler
//! returns (or a client receives) when a call fails on the server.
//!
//! The names are gRPC's, in snake case, so that anyone who knows tonic or gRPC knows
//! what each one means.

use std::fmt;

/// The outcome class of a call, as written in the `x-status` reply header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// Success (`ok`, or no `x-status` header at all).
    Ok,
    /// The request could not be decoded or its arguments are out of range.
    InvalidArgument,
    /// The procedure or an entity it names does not exist.
    NotFound,
    /// The call's deadline passed before it completed.
    DeadlineExceeded,
    /// The service is temporarily unable to answer; retrying may help.
    Unavailable,
    /// The handler failed or panicked.
    Internal,
    /// The server does not implement the requested operation.
    Unimplemented,
    /// A limit was hit (calls in flight, memory, quota).
    ResourceExhausted,
    /// The caller's credentials were refused (gRPC's `unauthenticated`).
    Unauthenticated,
    /// A status this version of Warren does not know.
    Unknown,
}

impl Code {
    /// The wire name of this code (the value of the `x-status` header).
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Ok => "ok",
            Code::InvalidArgument => "invalid_argument",
            Code::NotFound => "not_found",
            Code::DeadlineExceeded => "deadline_exceeded",
            Code::Unavailable => "unavailable",
            Code::Internal => "internal",
            Code::Unimplemented => "unimplemented",
            Code::ResourceExhausted => "resource_exhausted",
            Code::Unauthenticated => "unauthenticated",
            Code::Unknown => "unknown",
        }
    }

    /// Parses a wire name; names this version does not know map to [`Code::Unknown`].
    pub fn from_wire(name: &str) -> Code {
        match name {
            "ok" | "" => Code::Ok,
            "invalid_argument" => Code::InvalidArgument,
            "not_found" => Code::NotFound,
            "deadline_exceeded" => Code::DeadlineExceeded,
            "unavailable" => Code::Unavailable,
            "internal" => Code::Internal,
            "unimplemented" => Code::Unimplemented,
            "resource_exhausted" => Code::ResourceExhausted,
            "unauthenticated" => Code::Unauthenticated,
            _ => Code::Unknown,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed call: a [`Code`] and a message a person can read.
///
/// Handlers return it to fail a call; clients receive it inside
/// [`Error::Remote`](crate::Error::Remote).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    code: Code,
    message: String,
}

impl Status {
    /// A status with the given code and message.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Status {
            code,
            message: message.into(),
        }
    }

    /// `invalid_argument`: the request was malformed or out of range.
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Status::new(Code::InvalidArgument, message)
    }

    /// `internal`: the handler failed.
    pub fn internal(message: impl Into<String>) -> Self {
        Status::new(Code::Internal, message)
    }

    /// `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Status::new(Code::NotFound, message)
    }

    /// `unavailable`: retrying later may succeed.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Status::new(Code::Unavailable, message)
    }

    /// `unimplemented`.
    pub fn unimplemented(message: impl Into<String>) -> Self {
        Status::new(Code::Unimplemented, message)
    }

    /// The status code.
    pub fn code(&self) -> Code {
        self.code
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Status {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_its_wire_name() {
        for code in [
            Code::Ok,
            Code::InvalidArgument,
            Code::NotFound,
            Code::DeadlineExceeded,
            Code::Unavailable,
            Code::Internal,
            Code::Unimplemented,
            Code::ResourceExhausted,
            Code::Unauthenticated,
            Code::Unknown,
        ] {
            assert_eq!(Code::from_wire(code.as_str()), code);
        }
    }

    #[test]
    fn unknown_names_and_empty_header_are_handled() {
        assert_eq!(Code::from_wire("teapot"), Code::Unknown);
        assert_eq!(Code::from_wire(""), Code::Ok);
    }

    #[test]
    fn status_displays_code_and_message() {
        let s = Status::invalid_argument("n must be >= 0");
        assert_eq!(s.to_string(), "invalid_argument: n must be >= 0");
        assert_eq!(s.code(), Code::InvalidArgument);
    }
}
