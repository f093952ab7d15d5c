//! warren-rpc's test helpers: the workspace's test-support crate, re-exported, so
//! tests say `common::Target`, `common::hostile`, `common::servers` as before.
#![allow(unused_imports)]

pub use warren_test_support::*;

/// The support crate's [`warren_test_support::broker_tests!`], invoked unqualified as
/// before (`broker_tests!(a, b)` at a test file's root).
#[macro_export]
macro_rules! broker_tests {
    ($($t:tt)*) => {
        warren_test_support::broker_tests!($($t)*);
    };
}
