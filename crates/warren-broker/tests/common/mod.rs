//! The broker's test helpers, from the workspace's test-support crate: a broker on a
//! free port, lapin helpers, the raw-frame client (`common::raw`), figures.
#![allow(unused_imports)]

pub use warren_test_support::broker::*;
pub use warren_test_support::{figures, within};
