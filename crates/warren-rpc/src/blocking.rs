//! A blocking wrapper around [`crate::RpcClient`] for scripts and tests that do not
//! run an async runtime.

use std::time::Duration;

use crate::client::{CallOptions, Reply, RpcClient as AsyncClient};
use crate::error::{Error, Result};

/// A blocking RPC client with its own single-threaded runtime.
///
/// ```no_run
/// let client = warren_rpc::blocking::RpcClient::connect("amqp://127.0.0.1:5672/%2f")?;
/// let reply = client.call("rpc_queue", "30")?;
/// println!("{}", reply.text()?);
/// # Ok::<(), warren_rpc::Error>(())
/// ```
#[derive(Debug)]
pub struct RpcClient {
    runtime: tokio::runtime::Runtime,
    client: AsyncClient,
}

impl RpcClient {
    /// Connects with default settings.
    pub fn connect(url: &str) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| Error::Unavailable {
                reason: format!("cannot start a runtime for the blocking client: {e}"),
            })?;
        let client = runtime.block_on(AsyncClient::connect(url))?;
        Ok(RpcClient { runtime, client })
    }

    /// Calls `queue` with `body`.
    pub fn call(&self, queue: &str, body: impl AsRef<[u8]>) -> Result<Reply> {
        self.runtime.block_on(self.client.call(queue, body))
    }

    /// Calls `queue` with `body` and a timeout.
    pub fn call_timeout(
        &self,
        queue: &str,
        body: impl AsRef<[u8]>,
        timeout: Duration,
    ) -> Result<Reply> {
        self.runtime.block_on(self.client.call_with(
            queue,
            body,
            CallOptions::new().timeout(timeout),
        ))
    }
}
