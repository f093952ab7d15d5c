//! Connections: trying a list of broker addresses in order, and the capped
//! exponential backoff with jitter used between reconnection attempts.

use std::time::Duration;

use lapin::{Connection, ConnectionProperties};
use tracing::debug;

use crate::error::{redact_url, Error, Result};

/// Capped exponential backoff with full jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the first retry.
    pub initial: Duration,
    /// Largest delay between attempts.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
        }
    }
}

impl Backoff {
    /// The delay before retry number `attempt` (0-based): uniformly random in
    /// `[d/2, d]` where `d = min(max, initial * 2^attempt)`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX);
        let ceiling = self.initial.saturating_mul(factor).min(self.max);
        let half = ceiling / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

/// Opens an AMQP connection to `url` within `timeout`, naming it for the broker's UI.
pub(crate) async fn open(url: &str, timeout: Duration, name: &str) -> Result<Connection> {
    let props = ConnectionProperties::default().with_connection_name(name.into());
    match tokio::time::timeout(timeout, Connection::connect(url, props)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(source)) => Err(Error::Connect {
            url: redact_url(url),
            source,
        }),
        Err(_) => Err(Error::Unavailable {
            reason: format!(
                "no AMQP handshake from {} within {timeout:?}",
                redact_url(url)
            ),
        }),
    }
}

/// Connects to the first of `urls` that answers. Returns the error of the last one
/// tried when none does.
pub(crate) async fn open_any(urls: &[String], timeout: Duration, name: &str) -> Result<Connection> {
    let mut last = Error::InvalidArgument("no broker address given".to_owned());
    for url in urls {
        match open(url, timeout, name).await {
            Ok(conn) => return Ok(conn),
            Err(e) => {
                debug!(url = redact_url(url), error = %e, "broker did not answer");
                last = e;
            }
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let b = Backoff::default();
        for attempt in 0..40 {
            let d = b.delay(attempt);
            let ceiling = (b.initial * 2u32.saturating_pow(attempt.min(16))).min(b.max);
            assert!(d >= ceiling / 2 && d <= ceiling, "attempt {attempt}: {d:?}");
        }
        assert!(b.delay(30) <= b.max);
        let distinct: std::collections::HashSet<_> = (0..20).map(|_| b.delay(5)).collect();
        assert!(distinct.len() > 1, "jitter varies the delay");
    }

    #[tokio::test]
    async fn open_any_reports_the_last_failure() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let urls = vec![format!("amqp://u:secret@127.0.0.1:{port}/%2f")];
        let err = open_any(&urls, Duration::from_secs(2), "t")
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Connect { .. }), "{err}");
        assert!(!err.to_string().contains("secret"));
        let err = open_any(&[], Duration::from_secs(1), "t")
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)));
    }
}
