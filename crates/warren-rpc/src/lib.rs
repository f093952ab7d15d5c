//! # warren-rpc
//!
//! Remote procedure calls over AMQP 0-9-1: RabbitMQ's request/reply pattern
//! (`reply_to` + `correlation_id`), done properly. One [`RpcClient`] connection carries
//! any number of concurrent calls; each call has a deadline, fails at once when no
//! queue would receive it, and returns remote errors as typed [`Status`]es. An
//! [`RpcServer`] consumes with a prefetch limit, replies before it acks, turns bad
//! input and handler panics into error replies, and drains on shutdown.
//!
//! The wire contract is in `docs/SPEC.md`; plain AMQP clients and servers written from
//! RabbitMQ's tutorial interoperate with Warren both ways.
//!
//! ```no_run
//! use warren_rpc::{services::fib, RpcClient, RpcServer};
//!
//! # async fn demo() -> warren_rpc::Result<()> {
//! let url = "amqp://guest:guest@127.0.0.1:5672/%2f";
//! let server = RpcServer::new().route(fib::QUEUE, fib::handle).start(url).await?;
//! let client = RpcClient::connect(url).await?;
//! let reply = client.call(fib::QUEUE, "30").await?;
//! assert_eq!(reply.text()?, "832040");
//! server.shutdown().await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

// Lets the code `#[service]` generates name `::warren_rpc` inside this crate too.
extern crate self as warren_rpc;

pub mod blocking;
mod client;
pub mod codec;
mod connect;
mod context;
mod error;
mod handler;
mod nested;
mod queue;
mod server;
pub mod services;
pub mod shutdown;
mod status;
pub mod typed;
pub mod wire;

pub use client::{
    CallOptions, ClientBuilder, Reply, ReplyMode, RpcClient, WhenFull, DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_TIMEOUT,
};
pub use connect::Backoff;
pub use context::{Context, Request, Response};
pub use error::{Error, Result};
pub use handler::{Handler, HandlerFuture};
pub use queue::QueueSpec;
pub use server::{RpcServer, ServerHandle, DEFAULT_CONCURRENCY};
pub use status::{Code, Status};

pub use codec::{Codec, CodecError};
/// Makes a trait of `async fn`s a typed service: see the crate docs.
pub use warren_macros::service;
/// The serde typed services use; `#[service]`'s generated code derives through it,
/// so a crate using the macro needs no serde dependency of its own for it.
pub use serde;

/// Re-exported AMQP types used in Warren's API (header tables and values).
pub mod types {
    pub use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
}

/// Internals exposed only for the criterion benchmarks in `benches/`; not a stable API.
#[doc(hidden)]
pub mod __bench {
    pub use crate::client::pending::{CorrelationIds, Pending};
}

/// The default broker address: `$AMQP_URL` in the CLI, else this.
pub const DEFAULT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
