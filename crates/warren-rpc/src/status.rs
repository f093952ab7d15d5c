//! Status codes carried in the `x-status` reply header, and the [`Status`] a handler
//! returns (or a client receives) when a call fails on the server.
//!
//! The names are gRPC's, in snake case, so that anyone who knows tonic or gRPC knows
//! what each one means.

use std::fmt;

/// The outcome class of a call, as written in the `x-status` reply header: gRPC's 17
/// status codes with their names in snake case, plus [`Code::Other`] for a name this
/// version of Warren does not know, kept as it came so that it is passed on unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Code {
    /// Success (`ok`, or no `x-status` header at all). gRPC code 0, `ok`.
    Ok,
    /// The caller cancelled the call. gRPC code 1, `cancelled`.
    Cancelled,
    /// An error of no better-known kind (gRPC's `unknown`). gRPC code 2, `unknown`.
    Unknown,
    /// The request could not be decoded or its arguments are out of range. gRPC code 3, `invalid_argument`.
    InvalidArgument,
    /// The call's deadline passed before it completed. gRPC code 4, `deadline_exceeded`.
    DeadlineExceeded,
    /// The procedure or an entity it names does not exist. gRPC code 5, `not_found`.
    NotFound,
    /// An entity the call would create exists already. gRPC code 6, `already_exists`.
    AlreadyExists,
    /// The caller may not do this. gRPC code 7, `permission_denied`.
    PermissionDenied,
    /// A limit was hit (calls in flight, memory, quota). gRPC code 8, `resource_exhausted`.
    ResourceExhausted,
    /// The system is not in the state the call needs. gRPC code 9, `failed_precondition`.
    FailedPrecondition,
    /// The call was aborted, e.g. by a concurrency conflict. gRPC code 10, `aborted`.
    Aborted,
    /// An argument is past the valid range. gRPC code 11, `out_of_range`.
    OutOfRange,
    /// The server does not implement the requested operation. gRPC code 12, `unimplemented`.
    Unimplemented,
    /// The handler failed or panicked. gRPC code 13, `internal`.
    Internal,
    /// The service is temporarily unable to answer; retrying may help. gRPC code 14, `unavailable`.
    Unavailable,
    /// Unrecoverable data loss or corruption. gRPC code 15, `data_loss`.
    DataLoss,
    /// The caller's credentials were refused or missing. gRPC code 16, `unauthenticated`.
    Unauthenticated,
    /// A status name this version does not know (from a newer or foreign peer),
    /// carried through as it was received.
    Other(OtherCode),
}

/// The name of a status [`Code`] this version of Warren does not know.
///
/// Only [`Code::from_wire`] makes one, so a known name is never an `OtherCode`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OtherCode(Box<str>);

impl OtherCode {
    /// The name as it came on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Every known code with its wire name, in gRPC's numeric order.
const KNOWN: [(Code, &str); 17] = [
    (Code::Ok, "ok"),
    (Code::Cancelled, "cancelled"),
    (Code::Unknown, "unknown"),
    (Code::InvalidArgument, "invalid_argument"),
    (Code::DeadlineExceeded, "deadline_exceeded"),
    (Code::NotFound, "not_found"),
    (Code::AlreadyExists, "already_exists"),
    (Code::PermissionDenied, "permission_denied"),
    (Code::ResourceExhausted, "resource_exhausted"),
    (Code::FailedPrecondition, "failed_precondition"),
    (Code::Aborted, "aborted"),
    (Code::OutOfRange, "out_of_range"),
    (Code::Unimplemented, "unimplemented"),
    (Code::Internal, "internal"),
    (Code::Unavailable, "unavailable"),
    (Code::DataLoss, "data_loss"),
    (Code::Unauthenticated, "unauthenticated"),
];

impl Code {
    /// Every code this version knows, in gRPC's numeric order (`ok` = 0 to
    /// `unauthenticated` = 16).
    pub fn known() -> impl Iterator<Item = Code> {
        KNOWN.iter().map(|(code, _)| code.clone())
    }

    /// The wire name of this code (the value of the `x-status` header).
    pub fn as_str(&self) -> &str {
        match self {
            Code::Other(other) => other.as_str(),
            known => KNOWN
                .iter()
                .find(|(code, _)| code == known)
                .map_or("unknown", |(_, name)| name),
        }
    }

    /// gRPC's number for this code (`None` for [`Code::Other`]).
    pub fn number(&self) -> Option<u32> {
        KNOWN
            .iter()
            .position(|(code, _)| code == self)
            .and_then(|i| u32::try_from(i).ok())
    }

    /// The code gRPC numbers `number`, if it is one of the 17.
    pub fn from_number(number: u32) -> Option<Code> {
        let i = usize::try_from(number).ok()?;
        KNOWN.get(i).map(|(code, _)| code.clone())
    }

    /// Parses a wire name. An empty name is `ok` (no status); a name this version
    /// does not know is kept in [`Code::Other`].
    pub fn from_wire(name: &str) -> Code {
        if name.is_empty() {
            return Code::Ok;
        }
        KNOWN.iter().find(|(_, known)| *known == name).map_or_else(
            || Code::Other(OtherCode(name.into())),
            |(code, _)| code.clone(),
        )
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

    /// `deadline_exceeded`: the deadline passed before the work was done.
    pub fn deadline_exceeded(message: impl Into<String>) -> Self {
        Status::new(Code::DeadlineExceeded, message)
    }

    /// `resource_exhausted`: a limit was hit.
    pub fn resource_exhausted(message: impl Into<String>) -> Self {
        Status::new(Code::ResourceExhausted, message)
    }

    /// `permission_denied`: the caller may not do this.
    pub fn permission_denied(message: impl Into<String>) -> Self {
        Status::new(Code::PermissionDenied, message)
    }

    /// `failed_precondition`: the system is not in the state the call needs.
    pub fn failed_precondition(message: impl Into<String>) -> Self {
        Status::new(Code::FailedPrecondition, message)
    }

    /// The status code.
    pub fn code(&self) -> Code {
        self.code.clone()
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
    fn every_code_round_trips_through_its_wire_name_and_number() {
        let known: Vec<Code> = Code::known().collect();
        assert_eq!(known.len(), 17);
        for (i, code) in known.iter().enumerate() {
            assert_eq!(Code::from_wire(code.as_str()), *code, "{code}");
            let number = u32::try_from(i).unwrap();
            assert_eq!(code.number(), Some(number));
            assert_eq!(Code::from_number(number).as_ref(), Some(code));
        }
        assert_eq!(Code::from_number(17), None);
        assert_eq!(Code::Unauthenticated.number(), Some(16));
        assert_eq!(Code::DeadlineExceeded.as_str(), "deadline_exceeded");
    }

    #[test]
    fn unknown_names_are_carried_through() {
        let teapot = Code::from_wire("im_a_teapot");
        assert!(matches!(&teapot, Code::Other(o) if o.as_str() == "im_a_teapot"));
        assert_eq!(teapot.as_str(), "im_a_teapot");
        assert_eq!(teapot.number(), None);
        assert_eq!(Code::from_wire(teapot.as_str()), teapot);
        assert_eq!(Code::from_wire("unknown"), Code::Unknown);
        assert_eq!(Code::from_wire(""), Code::Ok);
    }

    #[test]
    fn status_displays_code_and_message() {
        let s = Status::invalid_argument("n must be >= 0");
        assert_eq!(s.to_string(), "invalid_argument: n must be >= 0");
        assert_eq!(s.code(), Code::InvalidArgument);
    }
}
