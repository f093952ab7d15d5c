//! warren-cli's test helpers: the workspace's test-support crate (re-exported) and the
//! helpers that run this crate's `warren` binary or need root.
#![allow(dead_code, unused_imports)]

pub mod broker_process;
pub mod run_warren;
pub mod tmpfs;

pub use warren_test_support::*;

/// The support crate's [`warren_test_support::broker_tests!`], invoked unqualified as
/// before (`broker_tests!(a, b)` at a test file's root).
#[macro_export]
macro_rules! broker_tests {
    ($($t:tt)*) => {
        warren_test_support::broker_tests!($($t)*);
    };
}
