//! # warren-rpc
//!
//! Remote procedure calls over AMQP 0-9-1: RabbitMQ's request/reply pattern
//! (`reply_to` + `correlation_id`), done properly. One [`RpcClient`] connection carries
//! any number of concurrent calls; each call has a deadline, fails at once when no
//! queue would receive it, and returns remote errors as typed [`Status`]es. An
//! [`RpcServer`] consumes with a prefetch limit, replies before it acks, turns bad
//! input and handler panics into error replies, and drains on shutdown.
//!
//! ## Typed services
//!
//! Write the interface as a trait; [`#[service]`](service) generates a server adapter
//! and a client stub. Arguments and results are any serde types.
//!
//! ```no_run
//! use warren_rpc::{CallOptions, RpcClient, RpcServer, Status};
//!
//! #[warren_rpc::service]
//! trait Calc {
//!     async fn add(&self, a: i64, b: i64) -> i64;
//!     async fn fib(&self, n: u32) -> Result<String, Status>;
//! }
//!
//! struct MyCalc;
//!
//! impl Calc for MyCalc {
//!     async fn add(&self, a: i64, b: i64) -> i64 {
//!         a + b
//!     }
//!     async fn fib(&self, n: u32) -> Result<String, Status> {
//!         if n > 90 {
//!             return Err(Status::invalid_argument("n is at most 90"));
//!         }
//!         let (mut a, mut b) = (0u64, 1u64);
//!         for _ in 0..n {
//!             (a, b) = (b, a + b);
//!         }
//!         Ok(a.to_string())
//!     }
//! }
//!
//! # async fn demo() -> warren_rpc::Result<()> {
//! let url = "amqp://guest:guest@127.0.0.1:5672/%2f";
//! let server = RpcServer::new().serve(CalcServer::new(MyCalc)).start(url).await?;
//! let client = RpcClient::connect(url).await?;
//! let calc = CalcClient::new(&client);
//! assert_eq!(calc.add(2, 3).await?, 5);
//! let slow = CallOptions::new().timeout(std::time::Duration::from_secs(2));
//! assert_eq!(calc.fib_with(slow, 30).await?, "832040");
//! client.shutdown().await?;
//! server.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! On the wire ([SPEC v2][spec]) this is a call to the queue `calc` (the trait's name in
//! snake case) whose AMQP `type` is the method (`add`) and whose body is the arguments
//! as one map, `{"a":2,"b":3}`; the reply body is `5`. `content_type` picks the codec
//! ([`Codec`]): `application/json` (the default), `application/msgpack`,
//! `application/cbor`; the server answers in the request's. A body that does not
//! decode, a missing or mistyped argument gets `invalid_argument` naming the field;
//! an unknown method, `unimplemented`. Plain AMQP clients call such a service with
//! standard properties only.
//!
//! - `#[warren_rpc::service(queue = "name")]` sets the queue, `#[method(name = "name")]`
//!   on a method its wire name; `#[serde(..)]` on a parameter applies to its field.
//! - A method returns `T` or `Result<T, E>` with `E: Into<Status>`.
//! - A method may take `ctx: &Context` first (deadline, headers, correlation id; not
//!   sent on the wire). The context is an explicit parameter rather than a task-local
//!   so that it survives `tokio::spawn` and shows in the signature. Calls made with
//!   [`CallOptions::from_context`] inherit the request's deadline, so a chain of
//!   services shares one budget:
//!
//! ```no_run
//! use warren_rpc::{CallOptions, Context, Status};
//! # #[warren_rpc::service]
//! # trait Calc { async fn add(&self, a: i64, b: i64) -> i64; }
//!
//! #[warren_rpc::service(queue = "front")]
//! trait Front {
//!     async fn double_sum(&self, ctx: &Context, a: i64, b: i64) -> Result<i64, Status>;
//! }
//!
//! struct MyFront {
//!     calc: CalcClient,
//! }
//!
//! impl Front for MyFront {
//!     async fn double_sum(&self, ctx: &Context, a: i64, b: i64) -> Result<i64, Status> {
//!         // A failed call becomes a status with its code (`From<Error> for Status`).
//!         let sum = self.calc.add_with(CallOptions::from_context(ctx), a, b).await?;
//!         Ok(sum * 2)
//!     }
//! }
//! ```
//!
//! ## Raw bytes
//!
//! Underneath, a call is bytes to a queue and bytes back. A handler is any async
//! function from [`Request`] to [`Response`] or [`Status`]; plain AMQP clients and
//! servers written from RabbitMQ's tutorial interoperate with Warren both ways (the
//! wire contract is [`docs/SPEC.md`][spec]).
//!
//! ```no_run
//! use warren_rpc::{Request, Response, RpcClient, RpcServer, Status};
//!
//! async fn shout(request: Request) -> Result<Response, Status> {
//!     let text = std::str::from_utf8(&request.body)
//!         .map_err(|_| Status::invalid_argument("send UTF-8 text"))?;
//!     Ok(Response::text(text.to_uppercase()))
//! }
//!
//! # async fn demo() -> warren_rpc::Result<()> {
//! let url = "amqp://guest:guest@127.0.0.1:5672/%2f";
//! let server = RpcServer::new().route("shout", shout).start(url).await?;
//! let client = RpcClient::connect(url).await?;
//! let reply = client.call("shout", "hello").await?;
//! assert_eq!(reply.text()?, "HELLO");
//! client.shutdown().await?;
//! server.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! [`CallOptions`] set a call's timeout, headers ([`Headers`]), content type and
//! whether it may be sent again after a connection loss; [`ClientBuilder`] and
//! [`RpcServer`] take fallback broker addresses, timeouts and limits. Failures are
//! [`Error`]s, each with a [`Code`] ([`Error::code`]).
//!
//! ## Testing against the embedded broker
//!
//! The `warren-broker` crate is an AMQP 0-9-1 broker that runs inside a test: no
//! RabbitMQ to install. Add it as a dev-dependency and start one on a free loopback
//! port:
//!
//! ```
//! use warren_rpc::{Request, Response, RpcClient, RpcServer, Status};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let broker = warren_broker::Broker::builder()
//!     .listen(([127, 0, 0, 1], 0).into())
//!     .start()
//!     .await?;
//! let url = broker.amqp_url();
//!
//! let echo = |request: Request| async move {
//!     Ok::<_, Status>(Response::bytes(request.body))
//! };
//! let server = RpcServer::new().route("echo", echo).start(&url).await?;
//! let client = RpcClient::connect(&url).await?;
//! assert_eq!(client.call("echo", "ping").await?.body, b"ping");
//!
//! client.shutdown().await?;
//! server.shutdown().await?;
//! broker.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! ## Features
//!
//! - `msgpack` (default): `application/msgpack` bodies for typed services.
//! - `cbor` (default): `application/cbor` bodies for typed services.
//! - `demo-services`: the `services` module the `warren` CLI serves (Fibonacci as in
//!   RabbitMQ's tutorial, a sleeper, the typed `calc` example); pulls in `num-bigint`.
//!
//! [spec]: https://github.com/warren-rpc/warren/blob/main/docs/SPEC.md

#![warn(missing_docs)]

// Lets the code `#[service]` generates name `::warren_rpc` inside this crate too.
extern crate self as warren_rpc;

mod amqp;
pub mod blocking;
mod client;
pub mod codec;
mod connect;
mod context;
mod error;
mod handler;
mod headers;
#[cfg(feature = "metrics")]
pub mod metrics;
mod nested;
#[cfg(feature = "otel")]
pub mod otel;
mod queue;
mod server;
#[cfg(feature = "demo-services")]
pub mod services;
mod status;
mod telemetry;
mod tls;
pub mod typed;
pub mod wire;

pub use client::{
    CallOptions, ClientBuilder, Reply, ReplyMode, RpcClient, WhenFull, DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_TIMEOUT,
};
pub use connect::{Backoff, DEFAULT_CONNECT_TIMEOUT, DEFAULT_HEARTBEAT, DEFAULT_SHUTDOWN_TIMEOUT};
pub use context::{Context, Request, Response};
pub use error::{AmqpError, ConnectStep, Error, Result, TlsFailure};
pub use handler::{Handler, HandlerFuture};
pub use headers::{HeaderValue, Headers, HeadersIter, MAX_NAME_LEN as MAX_HEADER_NAME_LEN};
pub use queue::QueueSpec;
pub use server::{RpcServer, ServerHandle, DEFAULT_CONCURRENCY};
pub use status::{Code, OtherCode, Status};
pub use tls::TlsConfig;

pub use codec::{Codec, CodecError};
/// The serde typed services use; `#[service]`'s generated code derives through it,
/// so a crate using the macro needs no serde dependency of its own for it.
pub use serde;
/// Makes a trait of `async fn`s a typed service: see the crate docs.
pub use warren_macros::service;

/// Internals exposed only for the criterion benchmarks in `benches/`; not a stable API.
#[doc(hidden)]
pub mod __bench {
    pub use crate::client::pending::{CorrelationIds, Pending};
    #[cfg(all(feature = "otel", feature = "metrics"))]
    pub use crate::telemetry::BenchCalls;
    pub use crate::wire::props::{reply_properties, reply_status, request_properties};
}

/// Warren's AMQP client toolkit as `warren bench` drives it in its own loops
/// (`--raw`, `--client raw`): framing, batched writes, content assembly, the
/// handshake and a caller-driven connection. Not a stable API.
#[doc(hidden)]
pub mod __raw {
    pub use crate::amqp::conn::live_connections;
    pub use crate::amqp::{
        content, error, framing, handshake, session, writer, Assembler, Event, FrameBuf,
        PublishTemplate, RawError, Session,
    };
}

/// The default broker address: a RabbitMQ on this machine with its default user.
pub const DEFAULT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
