//! A minimal AMQP 0-9-1 client on amq-protocol's frame codec, for `warren bench`:
//! no I/O thread and no per-frame promises; a task owns its connection's socket, reads
//! as many frames as one read brings, and answers them with one write.
//!
//! - [`framing`]: splitting the read side into frames (no protocol logic);
//! - [`writer`]: encoding frames into one buffer per batch (many frames per write);
//! - [`content`]: putting deliveries and returns back together from their frames;
//! - [`session`]: the handshake (PLAIN) and the synchronous methods (channel, qos,
//!   declare, delete, confirm, consume) a bench needs before its load loop.
//!
//! It implements only what the bench drives: no heartbeats, reconnection, TLS,
//! flow control or blocked/unblocked handling.
#![allow(dead_code)] // a toolkit: each bench mode uses part of it

pub mod content;
pub mod error;
pub mod framing;
pub mod session;
pub mod writer;

pub use content::{Assembler, Event};
pub use error::RawError;
pub use session::Session;
pub use writer::{FrameBuf, PublishTemplate};
