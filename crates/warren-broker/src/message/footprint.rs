//! What a message held by the broker costs in memory, as charged to the memory
//! gauge ([`crate::memory::Gauge`]) when it enters the broker.

use super::{Message, QueuedMessage};

/// One heap allocation of `n` bytes as glibc's malloc lays it out: an 8-byte
/// header, rounded up to 16 bytes (nothing for 0 bytes, which Rust does not
/// allocate).
const fn heap(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        (n + 8).div_ceil(16) * 16
    }
}

/// What a message held by the broker takes in memory, from the sizes of the
/// types that hold it: its `Arc<Message>` (the struct includes the parsed
/// properties), two queue slots (a `VecDeque` is up to half empty after it
/// grows), and the heap parts: body, raw properties, exchange and routing key,
/// and the parsed properties' strings and header table (estimated at twice the
/// raw properties, plus one B-tree node for a header table).
pub(crate) fn footprint(msg: &Message) -> usize {
    use amq_protocol::types::{AMQPValue, ShortString};
    use std::mem::size_of;
    const ARC: usize = heap(size_of::<Message>() + 2 * size_of::<usize>());
    const SLOTS: usize = 2 * size_of::<QueuedMessage>();
    // A B-tree leaf holds up to 11 entries, allocated whole.
    const TABLE_NODE: usize = heap(11 * (size_of::<ShortString>() + size_of::<AMQPValue>()) + 16);
    let props = msg.raw_props.len();
    let table = if msg.props.headers().is_some() {
        TABLE_NODE
    } else {
        0
    };
    ARC + SLOTS
        + heap(msg.body.len())
        + heap(props)
        + 2 * props
        + table
        + heap(msg.exchange.len())
        + heap(msg.routing_key.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::protocol::basic::AMQPProperties;
    use bytes::Bytes;

    #[test]
    fn a_tiny_message_is_charged_its_overhead_not_only_its_payload() {
        let msg = Message::new(
            String::new(),
            "flood-16".into(),
            AMQPProperties::default(),
            Bytes::from_static(&[0, 0]),
            Bytes::from_static(&[b'x'; 16]),
        );
        let charged = footprint(&msg);
        println!(
            "footprint of a 16-byte message: {charged} bytes (Message {} B, QueuedMessage {} B)",
            std::mem::size_of::<Message>(),
            std::mem::size_of::<QueuedMessage>()
        );
        assert!(charged >= std::mem::size_of::<Message>() + 16, "{charged}");
        let big = Message::new(
            String::new(),
            "q".into(),
            AMQPProperties::default(),
            Bytes::from_static(&[0, 0]),
            Bytes::from(vec![0u8; 1 << 20]),
        );
        let over = footprint(&big) - (1 << 20);
        assert!(
            over < 1024,
            "a large message is charged about its payload: +{over}"
        );
    }
}
