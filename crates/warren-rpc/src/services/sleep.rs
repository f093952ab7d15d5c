//! A procedure for tests and benchmarks: sleeps for the number of milliseconds in the
//! request body, then echoes the body. Makes slow workers and deadlines easy to show.

use std::time::Duration;

use crate::context::{Request, Response};
use crate::status::Status;

/// The longest sleep served, in milliseconds.
pub const MAX_MS: u64 = 60_000;

/// Sleeps `body` milliseconds (decimal, at most [`MAX_MS`]), then replies with `body`.
pub async fn handle(request: Request) -> Result<Response, Status> {
    let text = std::str::from_utf8(&request.body).unwrap_or("").trim();
    let ms: u64 = text
        .parse()
        .ok()
        .filter(|ms| *ms <= MAX_MS)
        .ok_or_else(|| {
            Status::invalid_argument(format!(
                "send the milliseconds to sleep as a decimal integer from 0 to {MAX_MS}"
            ))
        })?;
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Ok(Response::text(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(body: &str) -> Request {
        Request {
            context: Default::default(),
            body: body.as_bytes().to_vec(),
            content_type: None,
            method: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn sleeps_then_echoes() {
        let start = tokio::time::Instant::now();
        let reply = handle(req("250")).await.unwrap();
        assert_eq!(reply.body, b"250");
        assert!(start.elapsed() >= Duration::from_millis(250));
    }

    #[tokio::test]
    async fn rejects_bad_input() {
        for bad in ["", "x", "-1", "60001"] {
            let err = handle(req(bad)).await.unwrap_err();
            assert_eq!(err.code(), crate::Code::InvalidArgument, "{bad:?}");
        }
    }
}
