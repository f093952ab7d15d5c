//! Test targets: the same tests run against the embedded broker and, when asked
//! for with `WARREN_RABBITMQ_URL`, a real RabbitMQ.
#![allow(dead_code)]

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A broker a test runs against.
pub struct Target {
    pub name: &'static str,
    pub url: String,
}

impl Target {
    /// RabbitMQ at `WARREN_RABBITMQ_URL`. Unset: `None` locally, a failure in CI.
    pub fn rabbitmq() -> Option<Target> {
        match std::env::var("WARREN_RABBITMQ_URL") {
            Ok(url) => Some(Target {
                name: "rabbitmq",
                url,
            }),
            Err(_) if std::env::var_os("CI").is_some() => {
                panic!("CI is set but WARREN_RABBITMQ_URL is not: RabbitMQ tests must not be skipped in CI")
            }
            Err(_) => {
                eprintln!("skipped: set WARREN_RABBITMQ_URL=amqp://guest:guest@127.0.0.1:5672/%2f to run against RabbitMQ");
                None
            }
        }
    }
}

/// A queue name no other test uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs a test body with an overall time bound.
pub async fn bounded<F: Future<Output = ()>>(secs: u64, body: F) {
    tokio::time::timeout(Duration::from_secs(secs), body)
        .await
        .expect("test exceeded its time bound");
}

/// Declares one test per target for each listed `async fn name(t: Target)`.
#[macro_export]
macro_rules! broker_tests {
    ($($name:ident),* $(,)?) => {
        mod rabbitmq {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(t) = $crate::common::Target::rabbitmq() {
                        $crate::common::bounded(60, super::$name(t)).await;
                    }
                }
            )*
        }
    };
}
