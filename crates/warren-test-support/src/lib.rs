//! Warren's test support (internal, `publish = false`): what the test crates of the
//! workspace share, as a dev-dependency instead of `#[path]` includes.
//!
//! - Test targets (this module): the same tests run against the embedded broker and,
//!   when asked for with `WARREN_RABBITMQ_URL`, a real RabbitMQ ([`Target`], [`run`],
//!   [`broker_tests!`]); time bounds ([`bounded`], [`within`]).
//! - [`rabbitmqctl`]: the disruptive tests' handle on a RabbitMQ node.
//! - [`hostile`]: silent, half-open and freezable peers for deadline tests.
//! - [`pki`]: throw-away CAs and certificates (rcgen) for the TLS tests.
//! - [`figures`]: measured figures, printed and collected for `scripts/test.sh`.
//! - [`broker`]: lapin helpers and a raw-frame client for the broker's own tests.
//! - `servers` (feature `rpc`): RPC servers the tests run.
//!
//! A test leaves an external broker
//! as it found it: every queue it names with [`Target::queue`] is deleted when it
//! ends, passed or failed.
//!
//! Tests that need an external service are `#[ignore = "needs VAR ..."]`;
//! `scripts/test.sh` runs them with `--ignored` when `VAR` is set (CI sets them all),
//! and inside such a test a missing variable is a failure, never a silent pass.

pub mod access;
pub mod broker;
pub mod figures;
pub mod hostile;
pub mod pki;
pub mod rabbitmqctl;
#[cfg(feature = "rpc")]
pub mod servers;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;

/// A broker a test runs against.
pub struct Target {
    pub name: &'static str,
    pub url: String,
    /// The embedded broker, kept running for the test's duration.
    pub embedded: Option<warren_broker::BrokerHandle>,
    /// Further addresses of the same broker (cluster nodes), for the cleanup.
    fallback_urls: Vec<String>,
    declared: Declared,
}

/// The queue names a test took with [`Target::queue`]; shared with the cleanup.
#[derive(Clone, Default)]
struct Declared(Arc<Mutex<Vec<String>>>);

impl Declared {
    fn push(&self, name: String) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(name);
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
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
            fallback_urls: Vec::new(),
            declared: Declared::default(),
        }
    }

    /// RabbitMQ at `WARREN_RABBITMQ_URL`, which the test may declare queues on but
    /// not stop or reconfigure. Unset: the test fails, saying what to set.
    pub fn rabbitmq() -> Target {
        let url = required_env(
            "WARREN_RABBITMQ_URL",
            "set it to amqp://guest:guest@127.0.0.1:5672/%2f to run against RabbitMQ",
        );
        Target::external("rabbitmq", url, Vec::new())
    }

    /// A broker the test suite does not own, reached at `url` (else `fallback_urls`).
    pub fn external(name: &'static str, url: String, fallback_urls: Vec<String>) -> Target {
        Target {
            name,
            url,
            embedded: None,
            fallback_urls,
            declared: Declared::default(),
        }
    }

    /// Further addresses of the same broker (the other nodes of a cluster).
    pub fn fallback_urls(&self) -> &[String] {
        &self.fallback_urls
    }

    /// A queue name no other test uses, deleted from an external broker when the test
    /// run by [`run`] ends. Use it for every queue the test declares or lets a server
    /// declare.
    pub fn queue(&self, prefix: &str) -> String {
        let name = unique(prefix);
        if self.embedded.is_none() {
            self.declared.push(name.clone());
        }
        name
    }

    /// What the cleanup needs once the test body has consumed the target.
    fn cleanup(&self) -> Cleanup {
        let mut urls = vec![self.url.clone()];
        urls.extend(self.fallback_urls.iter().cloned());
        Cleanup {
            urls,
            declared: self.declared.clone(),
        }
    }
}

/// Deletes the queues a test declared on an external broker.
struct Cleanup {
    urls: Vec<String>,
    declared: Declared,
}

impl Cleanup {
    /// Deletes every declared queue; the error names the queues left behind.
    async fn run(self) -> Result<(), String> {
        let names = self.declared.take();
        if names.is_empty() {
            return Ok(());
        }
        let attempt = tokio::time::timeout(Duration::from_secs(20), delete(&self.urls, &names));
        match attempt.await {
            Ok(result) => result,
            Err(_) => Err(format!("deleting {names:?} took over 20 s")),
        }
    }
}

/// Deletes `names` through the first of `urls` that accepts a connection.
async fn delete(urls: &[String], names: &[String]) -> Result<(), String> {
    let mut last_error = String::from("no broker address");
    for url in urls {
        let conn = match lapin::Connection::connect(url, Default::default()).await {
            Ok(conn) => conn,
            Err(e) => {
                last_error = e.to_string();
                continue;
            }
        };
        let mut failed = Vec::new();
        for name in names {
            // A channel per queue: a failed delete closes its channel only.
            let deleted = match conn.create_channel().await {
                Ok(ch) => ch
                    .queue_delete(name.as_str().into(), Default::default())
                    .await
                    .map(drop),
                Err(e) => Err(e),
            };
            if let Err(e) = deleted {
                failed.push(format!("{name}: {e}"));
            }
        }
        let _ = conn.close(200, "test cleanup".into()).await;
        return if failed.is_empty() {
            Ok(())
        } else {
            Err(format!("could not delete {failed:?}"))
        };
    }
    Err(format!(
        "could not connect to delete {names:?}: {last_error}"
    ))
}

/// Runs a test body on `target` within `secs`, then deletes the queues it named with
/// [`Target::queue`], whether the body passed, failed or ran out of time. The
/// body's failure is reported first; a cleanup failure fails a passing test.
pub async fn run<F, Fut>(target: Target, secs: u64, body: F)
where
    F: FnOnce(Target) -> Fut,
    Fut: Future<Output = ()>,
{
    let cleanup = target.cleanup();
    let outcome = tokio::time::timeout(
        Duration::from_secs(secs),
        AssertUnwindSafe(body(target)).catch_unwind(),
    )
    .await;
    let cleaned = cleanup.run().await;
    match outcome {
        Ok(Err(panic)) => {
            if let Err(e) = cleaned {
                eprintln!("test cleanup failed too: {e}");
            }
            std::panic::resume_unwind(panic)
        }
        Err(_) => panic!("test exceeded its time bound of {secs} s (cleanup: {cleaned:?})"),
        Ok(Ok(())) => {
            if let Err(e) = cleaned {
                panic!("the test passed but left queues behind: {e}");
            }
        }
    }
}

/// The value of `var`, which points a test at an external service. Unset: a failure
/// saying `how` to set it. Tests that call this are `#[ignore = "needs VAR ..."]`, so
/// they only run when asked for (`scripts/test.sh` does when `var` is set).
pub fn required_env(var: &str, how: &str) -> String {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => value,
        _ => panic!("{var} is not set: this test needs it ({how})"),
    }
}

/// A name no other test uses, for things the test does not declare (a queue that
/// must not exist, say). Names of declared queues come from [`Target::queue`].
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs a test body with an overall time bound (for tests on embedded brokers only,
/// which declare nothing on an external one; the others use [`run`]).
pub async fn bounded<F: Future<Output = ()>>(secs: u64, body: F) {
    within(Duration::from_secs(secs), body).await
}

/// Runs a test body within `limit`, failing the test if it takes longer.
pub async fn within<F: Future<Output = ()>>(limit: Duration, body: F) {
    if tokio::time::timeout(limit, body).await.is_err() {
        panic!("test exceeded its time bound of {limit:?}");
    }
}

/// Declares one test per target for each listed `async fn name(t: Target)`: one on a
/// fresh embedded broker, always run, and one on `WARREN_RABBITMQ_URL`, ignored unless
/// asked for (`cargo test -- --ignored rabbitmq::`). The invoking crate needs tokio
/// (with its `macros` feature).
#[macro_export]
macro_rules! broker_tests {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let t = $crate::Target::embedded().await;
                    $crate::run(t, 60, super::$name).await;
                }
            )*
        }
        mod rabbitmq {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[ignore = "needs WARREN_RABBITMQ_URL (a RabbitMQ to declare queues on)"]
                async fn $name() {
                    let t = $crate::Target::rabbitmq();
                    $crate::run(t, 60, super::$name).await;
                }
            )*
        }
    };
}
