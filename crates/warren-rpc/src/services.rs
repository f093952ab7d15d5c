//! Ready-made procedures.

pub mod fib;
pub mod sleep;
pub mod calc;
