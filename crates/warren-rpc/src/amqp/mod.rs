//! Warren's own AMQP 0-9-1 client, on amq-protocol's frame codec: what Warren's RPC
//! client and server need of a connection and nothing more. One task owns each
//! connection's socket (plain TCP or TLS), reads as many frames as one read brings,
//! handles them, and writes everything due with one write; callers reach it through
//! one channel of commands. See `bench/PROFILE.md` for why it replaced lapin.
//!
//! - [`framing`]: cutting the read side into frames (no protocol logic);
//! - [`writer`]: encoding frames into one buffer per batch;
//! - [`content`]: putting deliveries and returns back together from their frames;
//! - [`handshake`]: protocol header to `connection.open-ok` (PLAIN or EXTERNAL, tune);
//! - `conn`: the connection task and its handle (close, blocked, heartbeats);
//! - `chan`: channels (sync methods, publish with confirms, ack, consumers);
//! - [`session`]: a connection driven by its caller, for `warren bench`'s own loops.

pub(crate) mod chan;
pub(crate) mod channel;
pub(crate) mod cmd;
pub(crate) mod conn;
pub mod content;
pub mod error;
pub mod framing;
pub mod handshake;
pub mod session;
pub mod writer;

pub(crate) use channel::{Channel, DeclareFlags};
pub(crate) use cmd::{Ended, Inbound, Sink};
pub(crate) use conn::Connection;
pub use content::{Assembler, Event};
pub use error::RawError;
pub use session::Session;
pub use writer::{FrameBuf, PublishTemplate};
