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
    /// The embedded broker, kept running for the test's duration.
    pub embedded: Option<warren_broker::BrokerHandle>,
}

impl Target {
    /// A fresh embedded broker on a free loopback port.
    pub async fn embedded() -> Target {
        let broker = warren_broker::Broker::builder()
            .listen(([127, 0, 0, 1], 0).into())
            .start()
            .await
            .expect("the embedded broker starts");
        Target {
            name: "embedded",
            url: broker.amqp_url(),
            embedded: Some(broker),
        }
    }

    /// RabbitMQ at `WARREN_RABBITMQ_URL`. Unset: `None` locally, a failure in CI.
    pub fn rabbitmq() -> Option<Target> {
        let url = required_env(
            "WARREN_RABBITMQ_URL",
            "set it to amqp://guest:guest@127.0.0.1:5672/%2f to run against RabbitMQ",
        )?;
        Some(Target {
            name: "rabbitmq",
            url,
            embedded: None,
        })
    }
}

/// The value of `var`, which points a test at an external service. Unset: `None` (the
/// test skips, saying `how` to run it) locally, a failure when `CI` is set, since CI
/// must never pass by skipping.
pub fn required_env(var: &str, how: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) => Some(value),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("CI is set but {var} is not: these tests must not be skipped in CI ({how})")
        }
        Err(_) => {
            eprintln!("skipped: {var} is not set; {how}");
            None
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
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let t = $crate::common::Target::embedded().await;
                    $crate::common::bounded(60, super::$name(t)).await;
                }
            )*
        }
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
