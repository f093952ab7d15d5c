//! Hand parsers for the hottest incoming frames, `basic.publish` and a content
//! header without properties, so the publish path does not go through nom (and
//! `AMQPFlags`, which allocates a `String` per flag name). Anything they do not take
//! falls through to amq-protocol's parsers, which also produce the errors.

use amq_protocol::protocol::basic::{AMQPProperties, Publish};
use amq_protocol::types::ShortString;

/// `basic.publish` from a method frame's payload (class and method ids first), or
/// `None` if the payload is not a well-formed `basic.publish`. Bytes after the flags
/// are ignored, as amq-protocol's parser ignores them.
pub(crate) fn parse_publish(payload: &[u8]) -> Option<Publish> {
    let rest = payload.strip_prefix(&[0, 60, 0, 40])?;
    let rest = rest.get(2..)?; // reserved-1 (ticket)
    let (exchange, rest) = short_string(rest)?;
    let (routing_key, rest) = short_string(rest)?;
    let flags = *rest.first()?;
    Some(Publish {
        exchange,
        routing_key,
        mandatory: flags & 1 != 0,
        immediate: flags & 2 != 0,
    })
}

/// A short string (length octet, UTF-8 bytes) and what follows it.
fn short_string(b: &[u8]) -> Option<(ShortString, &[u8])> {
    let (&len, rest) = b.split_first()?;
    let len = usize::from(len);
    if rest.len() < len {
        return None;
    }
    let s = std::str::from_utf8(&rest[..len]).ok()?;
    Some((ShortString::from(s), &rest[len..]))
}

/// A content header's class id, body size and properties when it carries no
/// properties at all (property flags 0 and nothing after them, as a publish without
/// properties sends), or `None` for any other header.
pub(crate) fn parse_bare_header(payload: &[u8]) -> Option<(u16, u64, AMQPProperties)> {
    if payload.len() != 14 || payload[12..14] != [0, 0] {
        return None;
    }
    let class_id = u16::from_be_bytes([payload[0], payload[1]]);
    let mut size = [0u8; 8];
    size.copy_from_slice(&payload[4..12]);
    Some((
        class_id,
        u64::from_be_bytes(size),
        AMQPProperties::default(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::frame::parsing::parse_content_header;
    use amq_protocol::protocol::{basic, parse_class, AMQPClass};
    use proptest::prelude::*;

    /// A publish payload with these fields (short strings given as raw bytes, so
    /// invalid UTF-8 and short lengths are covered), then `tail`.
    fn publish_bytes(exchange: &[u8], key: &[u8], flags: &[u8], tail: &[u8]) -> Vec<u8> {
        let mut b = vec![0, 60, 0, 40, 0, 0];
        for s in [exchange, key] {
            b.push(s.len().min(255) as u8);
            b.extend_from_slice(s);
        }
        b.extend_from_slice(flags);
        b.extend_from_slice(tail);
        b
    }

    /// What amq-protocol makes of `payload`, if it is a basic.publish.
    fn by_codec(payload: &[u8]) -> Option<Publish> {
        match parse_class(payload) {
            Ok((_, AMQPClass::Basic(basic::AMQPMethod::Publish(p)))) => Some(p),
            _ => None,
        }
    }

    proptest! {
        #[test]
        fn the_hand_parser_agrees_with_amq_protocol_on_arbitrary_bytes(
            bytes in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut payload = vec![0, 60, 0, 40];
            payload.extend_from_slice(&bytes);
            prop_assert_eq!(parse_publish(&payload), by_codec(&payload));
            prop_assert_eq!(parse_publish(&bytes), by_codec(&bytes));
        }

        #[test]
        fn the_hand_parser_agrees_on_publishes_of_any_shape(
            exchange in proptest::collection::vec(any::<u8>(), 0..40),
            key in proptest::collection::vec(any::<u8>(), 0..40),
            flags in proptest::collection::vec(any::<u8>(), 0..2),
            tail in proptest::collection::vec(any::<u8>(), 0..4),
            cut in 0usize..100,
        ) {
            let payload = publish_bytes(&exchange, &key, &flags, &tail);
            prop_assert_eq!(parse_publish(&payload), by_codec(&payload));
            let cut = cut.min(payload.len());
            prop_assert_eq!(parse_publish(&payload[..cut]), by_codec(&payload[..cut]));
        }

        #[test]
        fn a_bare_header_parses_as_amq_protocol_parses_it(
            class_id in any::<u16>(),
            size in any::<u64>(),
            tail in proptest::collection::vec(any::<u8>(), 0..8),
        ) {
            let mut payload = class_id.to_be_bytes().to_vec();
            payload.extend_from_slice(&[0, 0]);
            payload.extend_from_slice(&size.to_be_bytes());
            payload.extend_from_slice(&[0, 0]);
            let (c, s, p) = parse_bare_header(&payload).expect("flags 0 is a bare header");
            let (_, h) = parse_content_header(&payload[..]).expect("the codec parses it");
            prop_assert_eq!((c, s, p), (h.class_id, h.body_size, h.properties));
            // Anything after the flags is left to the codec path (kept byte-exact there).
            payload.extend_from_slice(&tail);
            prop_assert_eq!(parse_bare_header(&payload).is_none(), !tail.is_empty());
        }
    }

    #[test]
    fn a_publish_parses_as_the_codec_parses_it() {
        let payload = publish_bytes(b"amq.direct", b"rk", &[3], &[]);
        let p = parse_publish(&payload).expect("a well-formed publish");
        assert_eq!(
            (
                p.exchange.as_str(),
                p.routing_key.as_str(),
                p.mandatory,
                p.immediate
            ),
            ("amq.direct", "rk", true, true)
        );
        assert_eq!(Some(p), by_codec(&payload));
        assert!(parse_bare_header(&[0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0x80, 0]).is_none());
    }
}
