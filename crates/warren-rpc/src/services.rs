//! Ready-made procedures.

pub mod fib;
