//! W3C trace context in AMQP headers (feature `otel`): the client writes its call
//! span's context as `traceparent` (and `tracestate`, when it has entries); the server
//! reads them into the remote parent of its span.
//!
//! Warren writes and reads the W3C format itself (docs/SPEC.md, "Trace context") rather
//! than through OpenTelemetry's global text-map propagator: the wire contract is W3C
//! trace context whatever propagator a program installs, and the `traceparent` is
//! formatted on the stack. Nothing is written unless the call span has a valid context
//! (a tracer provider is installed, or the call continues a trace it received), so
//! headers a caller set by hand in [`CallOptions::headers`](crate::CallOptions::headers)
//! travel unchanged otherwise.

use std::str::FromStr;

use amq_protocol::types::{AMQPValue, FieldTable, LongString, ShortString};
use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

use super::CallSpan;

const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";
/// `00-` + 32 hex digits + `-` + 16 + `-` + 2.
const TRACEPARENT_LEN: usize = 55;

/// A call span's trace context, as the request's headers carry it.
#[derive(Debug)]
pub(crate) struct TraceHeaders {
    traceparent: [u8; TRACEPARENT_LEN],
    /// Empty when the trace state has no entries (then not sent).
    tracestate: String,
}

impl TraceHeaders {
    /// `span`'s context, or `None` when it has no valid one.
    pub(crate) fn of(span: &CallSpan) -> Option<TraceHeaders> {
        let cx = span.span_context().filter(|cx| cx.is_valid())?;
        Some(TraceHeaders {
            traceparent: format_traceparent(&cx),
            tracestate: cx.trace_state().header(),
        })
    }

    /// Adds `traceparent` (and `tracestate`) to `table`, over any the caller set.
    pub(crate) fn write(&self, table: &mut FieldTable) {
        table.insert(
            ShortString::from(TRACEPARENT),
            AMQPValue::LongString(LongString::from(self.traceparent.to_vec())),
        );
        if !self.tracestate.is_empty() {
            table.insert(
                ShortString::from(TRACESTATE),
                AMQPValue::LongString(LongString::from(self.tracestate.as_str())),
            );
        }
    }
}

/// The remote span context the request's `traceparent` / `tracestate` headers carry,
/// if they carry a valid one.
pub(crate) fn extract(headers: Option<&FieldTable>) -> Option<SpanContext> {
    let headers = headers?;
    let parent = parse_traceparent(header_str(headers, TRACEPARENT)?);
    if parent.is_none() {
        tracing::debug!("the request's traceparent is not a valid W3C trace context");
    }
    let (trace_id, span_id, flags) = parent?;
    let state = header_str(headers, TRACESTATE)
        .and_then(|s| TraceState::from_str(s).ok())
        .unwrap_or_default();
    Some(SpanContext::new(trace_id, span_id, flags, true, state))
}

fn header_str<'a>(headers: &'a FieldTable, key: &str) -> Option<&'a str> {
    match headers.inner().get(key)? {
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
        AMQPValue::ShortString(s) => Some(s.as_str()),
        _ => None,
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_into(out: &mut [u8], bytes: &[u8]) {
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 0xf)];
    }
}

/// `00-{trace id}-{span id}-{flags}`, on the stack. Only the `sampled` flag is written:
/// it is the only one OpenTelemetry's Rust SDK keeps.
fn format_traceparent(cx: &SpanContext) -> [u8; TRACEPARENT_LEN] {
    let mut out = *b"00-00000000000000000000000000000000-0000000000000000-00";
    hex_into(&mut out[3..35], &cx.trace_id().to_bytes());
    hex_into(&mut out[36..52], &cx.span_id().to_bytes());
    hex_into(&mut out[53..55], &[cx.trace_flags().to_u8() & 1]);
    out
}

/// Each octet's value as a lower-case hex digit (W3C: `HEXDIGLC`), or `INVALID`.
const HEX_VALUE: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};
const INVALID: u8 = 0xff;

/// `2 * N` lower-case hex digits as `N` bytes.
fn parse_hex<const N: usize>(digits: &[u8]) -> Option<[u8; N]> {
    if digits.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    let mut bad = 0u8;
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let (hi, lo) = (
            HEX_VALUE[usize::from(pair[0])],
            HEX_VALUE[usize::from(pair[1])],
        );
        bad |= hi | lo;
        *byte = hi << 4 | lo;
    }
    // Only an invalid digit has its high bit set.
    (bad & 0x80 == 0).then_some(out)
}

/// A `traceparent` value as W3C Trace Context reads it: version `00` exactly 55
/// characters, a later version at least that and `-` after them, version `ff`
/// invalid, ids not all zeros. Its flags are cut to the `sampled` bit: W3C Trace
/// Context level 2's `random` flag (`03`, which OpenTelemetry's Python SDK sends) only
/// says how the trace id was made, nothing this hop needs.
fn parse_traceparent(value: &str) -> Option<(TraceId, SpanId, TraceFlags)> {
    let b = value.trim().as_bytes();
    if b.len() < TRACEPARENT_LEN || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
        return None;
    }
    let [version] = parse_hex::<1>(&b[0..2])?;
    let too_long = b.len() > TRACEPARENT_LEN && (version == 0 || b[TRACEPARENT_LEN] != b'-');
    if version == 0xff || too_long {
        return None;
    }
    let trace_id = parse_hex::<16>(&b[3..35])?;
    let span_id = parse_hex::<8>(&b[36..52])?;
    let [flags] = parse_hex::<1>(&b[53..55])?;
    if trace_id == [0; 16] || span_id == [0; 8] {
        return None;
    }
    Some((
        TraceId::from_bytes(trace_id),
        SpanId::from_bytes(span_id),
        TraceFlags::new(flags & 1),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "00-1c2618349872b7f499c9df83e869035f-e2e8a09b0901a12a";

    #[test]
    fn a_traceparent_is_read_with_its_sampled_flag_only() {
        let (trace, span, flags) = parse_traceparent(&format!("{ID}-03")).expect("valid");
        assert_eq!(format!("{trace:032x}"), "1c2618349872b7f499c9df83e869035f");
        assert_eq!(format!("{span:016x}"), "e2e8a09b0901a12a");
        assert_eq!(flags, TraceFlags::SAMPLED);
        let (_, _, flags) = parse_traceparent(&format!("{ID}-02")).expect("valid");
        assert_eq!(flags, TraceFlags::default());
    }

    #[test]
    fn malformed_traceparents_are_refused() {
        for bad in [
            "garbage".to_owned(),
            format!("{ID}-0"),
            format!("{ID}-01-extra"),
            format!("ff{}-01", &ID[2..]),
            format!("{}-01", ID.to_uppercase()),
            "00-00000000000000000000000000000000-e2e8a09b0901a12a-01".to_owned(),
            "00-1c2618349872b7f499c9df83e869035f-0000000000000000-01".to_owned(),
            "00-+c2618349872b7f499c9df83e869035f-e2e8a09b0901a12a-01".to_owned(),
        ] {
            assert_eq!(parse_traceparent(&bad), None, "{bad}");
        }
        // A later version may carry more fields after a `-`.
        assert!(parse_traceparent(&format!("01{}-01-later", &ID[2..])).is_some());
    }

    #[test]
    fn a_written_traceparent_reads_back() {
        let cx = SpanContext::new(
            TraceId::from(0x1c26_1834_9872_b7f4_99c9_df83_e869_035f_u128),
            SpanId::from(0xe2e8_a09b_0901_a12a_u64),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        );
        let text = format_traceparent(&cx);
        assert_eq!(std::str::from_utf8(&text), Ok(&*format!("{ID}-01")));
        let mut headers = FieldTable::default();
        headers.insert(
            ShortString::from(TRACEPARENT),
            AMQPValue::LongString(LongString::from(text.to_vec())),
        );
        headers.insert(
            ShortString::from(TRACESTATE),
            AMQPValue::LongString(LongString::from("vendor=x".as_bytes().to_vec())),
        );
        let read = extract(Some(&headers)).expect("a parent");
        assert_eq!(read.trace_id(), cx.trace_id());
        assert_eq!(read.span_id(), cx.span_id());
        assert!(read.is_sampled() && read.is_remote());
        assert_eq!(read.trace_state().header(), "vendor=x");
    }

    proptest::proptest! {
        /// Any ids and flags written read back; the `sampled` bit is all that survives.
        #[test]
        fn any_written_traceparent_reads_back(trace in 1u128.., span in 1u64.., flags: u8) {
            let cx = SpanContext::new(
                TraceId::from(trace),
                SpanId::from(span),
                TraceFlags::new(flags),
                false,
                TraceState::default(),
            );
            let text = format_traceparent(&cx);
            let text = std::str::from_utf8(&text).expect("ASCII");
            let (t, s, f) = parse_traceparent(text).expect("valid");
            proptest::prop_assert_eq!(t, TraceId::from(trace));
            proptest::prop_assert_eq!(s, SpanId::from(span));
            proptest::prop_assert_eq!(f, TraceFlags::new(flags & 1));
        }

        /// The digit table agrees with the standard library on every pair of octets:
        /// lower-case hex only.
        #[test]
        fn hex_pairs_read_as_lower_case_hex(a: u8, b: u8) {
            let pair = [a, b];
            let lower = |c: u8| c.is_ascii_digit() || (b'a'..=b'f').contains(&c);
            let want = (lower(a) && lower(b))
                .then(|| std::str::from_utf8(&pair).ok())
                .flatten()
                .and_then(|s| u8::from_str_radix(s, 16).ok());
            proptest::prop_assert_eq!(parse_hex::<1>(&pair).map(|[v]| v), want);
        }

        /// Whatever arrives as a `traceparent` is read or refused without a panic.
        #[test]
        fn any_text_is_read_or_refused(text in ".{0,80}") {
            let _ = parse_traceparent(&text);
        }
    }
}
