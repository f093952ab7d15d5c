//! Edits to a message's encoded basic properties (flags, then the property list, as
//! the publisher sent them) without decoding and re-encoding all of them.

use bytes::Bytes;

/// Property flag bits (AMQP 0-9-1 `basic` class), in list order.
const CONTENT_TYPE: u16 = 1 << 15;
const CONTENT_ENCODING: u16 = 1 << 14;
const HEADERS: u16 = 1 << 13;
const DELIVERY_MODE: u16 = 1 << 12;
const PRIORITY: u16 = 1 << 11;
const CORRELATION_ID: u16 = 1 << 10;
const REPLY_TO: u16 = 1 << 9;
/// Another flags word follows (not used by `basic`; such lists are left alone).
const CONTINUED: u16 = 1;

/// `raw` with its `reply_to` replaced by `reply_to`, or `None` when `raw` has no
/// `reply_to`, is not a list this can walk (a continued flags word, a field running
/// past the end), or `reply_to` does not fit a short string: the caller then encodes
/// the properties whole.
pub(crate) fn with_reply_to(raw: &[u8], reply_to: &str) -> Option<Bytes> {
    let new_len = u8::try_from(reply_to.len()).ok()?;
    let flags = u16::from_be_bytes([*raw.first()?, *raw.get(1)?]);
    if flags & REPLY_TO == 0 || flags & CONTINUED != 0 {
        return None;
    }
    let mut at = 2usize;
    let short = |at: usize| Some(1 + usize::from(*raw.get(at)?));
    for (bit, width) in [
        (CONTENT_TYPE, None),
        (CONTENT_ENCODING, None),
        (HEADERS, Some(4)),
        (DELIVERY_MODE, Some(1)),
        (PRIORITY, Some(1)),
        (CORRELATION_ID, None),
    ] {
        if flags & bit == 0 {
            continue;
        }
        at += match width {
            None => short(at)?,
            // The table: its 32-bit length, then that many octets.
            Some(4) => {
                let len = raw.get(at..at + 4)?;
                4 + usize::try_from(u32::from_be_bytes([len[0], len[1], len[2], len[3]])).ok()?
            }
            Some(n) => n,
        };
    }
    let end = at + short(at)?;
    if end > raw.len() {
        return None;
    }
    let mut out = Vec::with_capacity(raw.len() - (end - at) + 1 + reply_to.len());
    out.extend_from_slice(&raw[..at]);
    out.push(new_len);
    out.extend_from_slice(reply_to.as_bytes());
    out.extend_from_slice(&raw[end..]);
    Some(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::encode_props;
    use amq_protocol::protocol::basic::AMQPProperties;
    use amq_protocol::types::{AMQPValue, FieldTable, LongString};
    use proptest::prelude::*;

    fn props(
        content_type: Option<String>,
        headers: Option<Vec<(String, Vec<u8>)>>,
        priority: Option<u8>,
        correlation_id: Option<String>,
        reply_to: Option<String>,
        expiration: Option<String>,
    ) -> AMQPProperties {
        let mut p = AMQPProperties::default().with_delivery_mode(2);
        if let Some(v) = content_type {
            p = p.with_content_type(v.into());
        }
        if let Some(h) = headers {
            let mut table = FieldTable::default();
            for (k, v) in h {
                table.insert(k.into(), AMQPValue::LongString(LongString::from(v)));
            }
            p = p.with_headers(table);
        }
        if let Some(v) = priority {
            p = p.with_priority(v);
        }
        if let Some(v) = correlation_id {
            p = p.with_correlation_id(v.into());
        }
        if let Some(v) = reply_to {
            p = p.with_reply_to(v.into());
        }
        if let Some(v) = expiration {
            p = p.with_expiration(v.into());
        }
        p
    }

    proptest! {
        /// Editing the bytes gives exactly what encoding the edited properties gives.
        #[test]
        fn the_edit_matches_a_full_encoding(
            content_type in proptest::option::of("[a-z/]{0,20}"),
            headers in proptest::option::of(proptest::collection::vec(
                ("[a-z-]{1,12}", proptest::collection::vec(any::<u8>(), 0..60)), 0..4)),
            priority in proptest::option::of(0u8..10),
            correlation_id in proptest::option::of("[a-z0-9.]{0,40}"),
            reply_to in proptest::option::of("[a-z.-]{0,60}"),
            expiration in proptest::option::of("[0-9]{1,6}"),
            new in "[a-zA-Z0-9.-]{0,255}",
        ) {
            let before = props(content_type, headers, priority, correlation_id, reply_to, expiration);
            let raw = encode_props(&before);
            let edited = with_reply_to(&raw, &new);
            if before.reply_to().is_some() {
                let after = before.with_reply_to(new.as_str().into());
                prop_assert_eq!(edited, Some(encode_props(&after)));
            } else {
                prop_assert_eq!(edited, None);
            }
        }

        /// Arbitrary bytes are edited or refused, never read past their end.
        #[test]
        fn any_bytes_are_edited_or_refused(raw in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Some(out) = with_reply_to(&raw, "amq.rabbitmq.reply-to.x") {
                prop_assert!(out.len() <= raw.len() + 256);
            }
        }
    }
}
