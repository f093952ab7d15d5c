//! Nested calls (SPEC v2): a call made while serving a request, with that request's
//! [`Context`], carries a deadline no later than the request's own, so a chain
//! A -> B -> C shares one budget and C never works for a caller that gave up.
//!
//! The context is passed explicitly (`CallOptions::from_context(ctx)`) rather than
//! found in a task-local: it survives `tokio::spawn`, shows in the handler's
//! signature, and a call made without it is visibly a fresh call.

use crate::client::CallOptions;
use crate::context::Context;
use crate::error::Error;
use crate::status::Status;

impl CallOptions {
    /// Options for a call made while serving the request `ctx` belongs to: its
    /// deadline is the request's (`x-deadline`), or earlier if a
    /// [`timeout`](CallOptions::timeout) set on the result ends sooner. A request
    /// without a deadline passes none on (the client's default timeout applies).
    ///
    /// ```
    /// use warren_rpc::{CallOptions, Context};
    /// # fn demo(ctx: &Context) {
    /// let options = CallOptions::from_context(ctx).idempotent(true);
    /// # }
    /// ```
    pub fn from_context(ctx: &Context) -> CallOptions {
        let options = CallOptions::new();
        match ctx.deadline {
            Some(deadline) => options.deadline(deadline),
            None => options,
        }
    }
}

/// A failed nested call, as the status of the request that made it: the error's
/// [`code`](Error::code) (a timeout is `deadline_exceeded`) and its message. Lets a
/// handler pass a nested call's failure on with `?`.
impl From<Error> for Status {
    fn from(error: Error) -> Status {
        Status::new(error.code(), error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    #[test]
    fn from_context_without_a_deadline_is_default() {
        let ctx = Context::default();
        let options = CallOptions::from_context(&ctx);
        assert_eq!(format!("{options:?}"), format!("{:?}", CallOptions::new()));
    }

    #[test]
    fn errors_become_statuses_with_their_code() {
        let status = Status::from(Error::Timeout {
            queue: "b".into(),
            timeout: Duration::from_millis(5),
        });
        assert_eq!(status.code(), crate::Code::DeadlineExceeded);
        assert!(status.message().contains("`b`"), "{}", status.message());
    }

    #[test]
    fn from_context_keeps_the_request_deadline() {
        let deadline = SystemTime::now() + Duration::from_secs(5);
        let ctx = Context {
            deadline: Some(deadline),
            ..Context::default()
        };
        let options = CallOptions::from_context(&ctx).deadline(deadline + Duration::from_secs(60));
        assert!(format!("{options:?}").contains(&format!("{:?}", Some(deadline))));
    }
}
