//! The broker's behaviour as clients see it (lapin, and raw frames where a client
//! library would not send what a test needs), one module per subject.

/// The broker's test helpers (the workspace's test-support crate).
mod common {
    pub use warren_test_support::broker::*;
}

mod confirms_and_tx;
mod consuming;
mod direct_reply_to;
mod handshake;
mod helpers;
mod priorities;
mod properties;
mod protocol_errors;
mod queue_lifecycle;
mod queue_stats;
mod routing;
mod ttl_dead_letter;
