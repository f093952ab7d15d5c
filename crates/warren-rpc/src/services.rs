//! Ready-made procedures.

pub mod calc;
pub mod fib;
pub mod sleep;
