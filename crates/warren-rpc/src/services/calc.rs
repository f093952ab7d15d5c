//! The typed example service (SPEC v2), served by `warren serve calc` on the queue
//! `calc`: `add(a, b)`, `fib(n)` (a decimal string), `sleep(ms)` and
//! `fail(code, message)`, which answers with that status.
//!
//! A plain AMQP client calls it with standard properties only: `type` = the method,
//! `content_type` = `application/json`, body `{"a": 2, "b": 3}`; the reply is `5`.

use std::time::Duration;

use crate::services::{fib, sleep};
use crate::{Code, Status};

/// The example service's interface.
#[crate::service]
pub trait Calc {
    /// `a + b`; `invalid_argument` if it overflows a 64-bit integer.
    async fn add(&self, a: i64, b: i64) -> Result<i64, Status>;

    /// `fib(n)` in decimal, exact (`0 <= n <= 100000`).
    async fn fib(&self, n: u32) -> Result<String, Status>;

    /// Sleeps `ms` milliseconds (at most 60,000), then returns `ms`.
    async fn sleep(&self, ms: u64) -> Result<u64, Status>;

    /// Fails with status `code` (e.g. `not_found`) and `message`.
    async fn fail(&self, code: String, message: String) -> Result<(), Status>;
}

/// The implementation `warren serve calc` serves.
#[derive(Debug, Clone, Copy, Default)]
pub struct Calculator;

impl Calc for Calculator {
    async fn add(&self, a: i64, b: i64) -> Result<i64, Status> {
        a.checked_add(b).ok_or_else(|| {
            Status::invalid_argument(format!("{a} + {b} overflows a 64-bit signed integer"))
        })
    }

    async fn fib(&self, n: u32) -> Result<String, Status> {
        if u64::from(n) > fib::MAX_N {
            return Err(Status::invalid_argument(format!(
                "n = {n} is too large: send n from 0 to {}",
                fib::MAX_N
            )));
        }
        Ok(fib::fib(u64::from(n)).to_string())
    }

    async fn sleep(&self, ms: u64) -> Result<u64, Status> {
        if ms > sleep::MAX_MS {
            return Err(Status::invalid_argument(format!(
                "ms = {ms} is too long: send ms from 0 to {}",
                sleep::MAX_MS
            )));
        }
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(ms)
    }

    async fn fail(&self, code: String, message: String) -> Result<(), Status> {
        match Code::from_wire(&code) {
            Code::Ok | Code::Other(_) => {
                let names: Vec<String> = Code::known()
                    .filter(|c| *c != Code::Ok)
                    .map(|c| c.as_str().to_owned())
                    .collect();
                Err(Status::invalid_argument(format!(
                    "code `{code}` is not an error status; send one of: {}",
                    names.join(", ")
                )))
            }
            known => Err(Status::new(known, message)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn methods_compute_and_fail_as_documented() {
        let c = Calculator;
        assert_eq!(c.add(2, 3).await, Ok(5));
        assert_eq!(
            c.add(i64::MAX, 1).await.map_err(|s| s.code()),
            Err(Code::InvalidArgument)
        );
        assert_eq!(c.fib(30).await.as_deref(), Ok("832040"));
        assert!(c.fib(100_001).await.is_err());
        let err = c.fail("not_found".into(), "gone".into()).await.unwrap_err();
        assert_eq!((err.code(), err.message()), (Code::NotFound, "gone"));
        let err = c.fail("ok".into(), "x".into()).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert_eq!(CalcClient::QUEUE, "calc");
        assert_eq!(CalcClient::METHODS, ["add", "fib", "sleep", "fail"]);
    }
}
