//! The reference procedure: Fibonacci, as in RabbitMQ's RPC tutorial, but exact
//! (big integers) and fast (fast doubling, O(log n) big-integer multiplications).
//!
//! Request: `n` as decimal ASCII, `0 <= n <= MAX_N`. Reply: `fib(n)` as decimal ASCII.

use num_bigint::BigUint;

use crate::context::{Request, Response};
use crate::status::Status;

/// The queue the tutorial serves Fibonacci on.
pub const QUEUE: &str = "rpc_queue";

/// The largest `n` served: `fib(100000)` has 20,899 digits and takes about a
/// millisecond to compute.
pub const MAX_N: u64 = 100_000;

/// `fib(n)`, exactly, by fast doubling:
/// `F(2k) = F(k)·(2F(k+1) − F(k))`, `F(2k+1) = F(k)² + F(k+1)²`.
pub fn fib(n: u64) -> BigUint {
    let mut a = BigUint::from(0u32); // F(k)
    let mut b = BigUint::from(1u32); // F(k+1)
    for bit in (0..64 - n.leading_zeros()).rev() {
        let two_b_minus_a = (&b << 1u32) - &a;
        let c = &a * &two_b_minus_a; // F(2k)
        let d = &a * &a + &b * &b; // F(2k+1)
        if (n >> bit) & 1 == 0 {
            a = c;
            b = d;
        } else {
            b = &c + &d;
            a = d;
        }
    }
    a
}

/// Parses a request body into `n`, with an `invalid_argument` status that says what
/// is accepted when it cannot.
pub fn parse_n(body: &[u8]) -> Result<u64, Status> {
    let accepted = format!("send n as a decimal integer from 0 to {MAX_N}");
    let text = std::str::from_utf8(body)
        .map_err(|_| Status::invalid_argument(format!("body is not UTF-8 text; {accepted}")))?
        .trim();
    if text.is_empty() {
        return Err(Status::invalid_argument(format!("empty body; {accepted}")));
    }
    let shown: String = text.chars().take(40).collect();
    if let Some(rest) = text.strip_prefix('-') {
        if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Status::invalid_argument(format!(
                "n = {shown} is negative; {accepted}"
            )));
        }
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Status::invalid_argument(format!(
            "`{shown}` is not a decimal integer; {accepted}"
        )));
    }
    match text.parse::<u64>() {
        Ok(n) if n <= MAX_N => Ok(n),
        _ => Err(Status::invalid_argument(format!(
            "n = {shown} is past the limit; {accepted}"
        ))),
    }
}

/// The Fibonacci handler: decimal `n` in, decimal `fib(n)` out (`text/plain`).
pub async fn handle(request: Request) -> Result<Response, Status> {
    let n = parse_n(&request.body)?;
    let digits = if n > 10_000 {
        // Keep big computations off the async workers.
        tokio::task::spawn_blocking(move || fib(n).to_string())
            .await
            .map_err(|e| Status::internal(format!("fib({n}) failed: {e}")))?
    } else {
        fib(n).to_string()
    };
    Ok(Response::text(digits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_values_match_the_definition() {
        let mut a = BigUint::from(0u32);
        let mut b = BigUint::from(1u32);
        for n in 0..300 {
            assert_eq!(fib(n), a, "fib({n})");
            let next = &a + &b;
            a = std::mem::replace(&mut b, next);
        }
    }

    #[test]
    fn known_values() {
        assert_eq!(fib(30).to_string(), "832040");
        assert_eq!(fib(93).to_string(), "12200160415121876738");
        assert_eq!(fib(94).to_string(), "19740274219868223167");
        let f1000 = fib(1000).to_string();
        assert_eq!(f1000.len(), 209);
        assert!(f1000.starts_with("43466557686937456435688527675040625802564660517371780402481729"));
        assert_eq!(fib(MAX_N).to_string().len(), 20_899);
    }

    #[test]
    fn parse_accepts_in_range_decimal() {
        assert_eq!(parse_n(b"30"), Ok(30));
        assert_eq!(parse_n(b" 7\n"), Ok(7));
        assert_eq!(parse_n(b"0"), Ok(0));
        assert_eq!(parse_n(MAX_N.to_string().as_bytes()), Ok(MAX_N));
    }

    #[test]
    fn parse_rejects_with_clear_messages() {
        for (body, needle) in [
            (&b"-1"[..], "negative"),
            (b"abc", "not a decimal integer"),
            (b"", "empty"),
            (b"100001", "past the limit"),
            (b"99999999999999999999999", "past the limit"),
            (b"\xff\xfe", "not UTF-8"),
            (b"1.5", "not a decimal integer"),
        ] {
            let err = parse_n(body).expect_err("must be rejected");
            assert_eq!(err.code(), crate::Code::InvalidArgument);
            assert!(
                err.message().contains(needle),
                "{body:?}: {}",
                err.message()
            );
            assert!(
                err.message().contains("from 0 to 100000"),
                "{}",
                err.message()
            );
        }
    }
}
