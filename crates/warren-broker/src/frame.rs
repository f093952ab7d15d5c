//! Frame boundaries on top of the `amq-protocol` codec: splitting the read
//! buffer into frames (with size limits checked before buffering a frame),
//! and batching outgoing frames into one write buffer.

use crate::error::AmqpError;
use amq_protocol::frame::parsing::parse_content_header;
use amq_protocol::frame::{gen_frame, AMQPFrame, WriteContext};
use amq_protocol::protocol::basic::AMQPProperties;
use amq_protocol::protocol::{parse_class, AMQPClass};
use bytes::{Bytes, BytesMut};

/// The AMQP 0-9-1 protocol header.
pub(crate) const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";

const FRAME_METHOD: u8 = 1;
const FRAME_HEADER: u8 = 2;
const FRAME_BODY: u8 = 3;
const FRAME_HEARTBEAT: u8 = 8;
const FRAME_END: u8 = 0xCE;
/// The largest frame accepted when frame_max is 0 ("unlimited").
const UNLIMITED_FRAME_MAX: u64 = 256 << 20;

/// A decoded incoming frame.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // short-lived, moved once per frame
pub(crate) enum InFrame {
    /// A method frame.
    Method(u16, AMQPClass),
    /// A content header frame.
    Header {
        /// Channel id.
        channel: u16,
        /// Class id (must be 60, basic).
        class_id: u16,
        /// Announced body size.
        body_size: u64,
        /// Parsed properties.
        props: AMQPProperties,
        /// Raw property bytes, byte-exact.
        raw_props: Bytes,
    },
    /// A content body frame.
    Body(u16, Bytes),
    /// A heartbeat frame.
    Heartbeat,
}

/// Whether a class id belongs to AMQP 0-9-1 (as RabbitMQ implements it).
fn known_class(class_id: u16) -> bool {
    matches!(class_id, 10 | 20 | 30 | 40 | 50 | 60 | 85 | 90)
}

/// Try to decode one frame from the front of `buf`.
///
/// Returns `Ok(None)` if more bytes are needed. `frame_max` of 0 means no
/// limit. Errors are connection-level (501 or 503).
pub(crate) fn decode(buf: &mut BytesMut, frame_max: u32) -> Result<Option<InFrame>, AmqpError> {
    if buf.len() < 7 {
        return Ok(None);
    }
    let ftype = buf[0];
    let channel = u16::from_be_bytes([buf[1], buf[2]]);
    let size = u32::from_be_bytes([buf[3], buf[4], buf[5], buf[6]]) as usize;
    if !matches!(
        ftype,
        FRAME_METHOD | FRAME_HEADER | FRAME_BODY | FRAME_HEARTBEAT
    ) {
        return Err(AmqpError::frame_error(format!(
            "unknown frame type {ftype}"
        )));
    }
    // frame_max 0 means "no limit" in the protocol; we still refuse frames
    // no message could need.
    let limit = if frame_max == 0 {
        UNLIMITED_FRAME_MAX
    } else {
        u64::from(frame_max)
    };
    if size as u64 + 8 > limit {
        return Err(AmqpError::frame_error(format!(
            "frame size {} exceeds frame_max {frame_max}",
            size + 8
        )));
    }
    let total = 7 + size + 1;
    if buf.len() < total {
        // Grow towards the frame size, but never trust a peer's length for a
        // large up-front allocation.
        buf.reserve((total - buf.len()).min(64 * 1024));
        return Ok(None);
    }
    if buf[total - 1] != FRAME_END {
        return Err(AmqpError::frame_error("missing frame end octet"));
    }
    let frame = buf.split_to(total).freeze();
    let payload = frame.slice(7..total - 1);
    match ftype {
        FRAME_METHOD => {
            if payload.len() < 4 {
                return Err(AmqpError::frame_error("method frame too short"));
            }
            let class_id = u16::from_be_bytes([payload[0], payload[1]]);
            let method_id = u16::from_be_bytes([payload[2], payload[3]]);
            // amq-protocol drops basic.qos prefetch-size; RabbitMQ refuses a
            // non-zero one with 540, so look at the raw field.
            if (class_id, method_id) == (60, 10)
                && payload.len() >= 8
                && payload[4..8] != [0, 0, 0, 0]
            {
                return Err(
                    AmqpError::not_implemented("prefetch_size!=0").with_method(class_id, method_id)
                );
            }
            match parse_class(&payload[..]) {
                Ok((_, class)) => Ok(Some(InFrame::Method(channel, class))),
                Err(_) if !known_class(class_id) => Err(AmqpError::command_invalid(format!(
                    "unknown method {class_id}/{method_id}"
                ))
                .with_method(class_id, method_id)),
                Err(_) => Err(AmqpError::frame_error(format!(
                    "cannot decode method frame {class_id}/{method_id}"
                ))
                .with_method(class_id, method_id)),
            }
        }
        FRAME_HEADER => match parse_content_header(&payload[..]) {
            Ok((_, h)) if payload.len() >= 14 => Ok(Some(InFrame::Header {
                channel,
                class_id: h.class_id,
                body_size: h.body_size,
                props: h.properties,
                // A copy: a slice would keep the whole read buffer it came in alive
                // for as long as the message is held.
                raw_props: Bytes::copy_from_slice(&payload[12..]),
            })),
            _ => Err(AmqpError::frame_error("cannot decode content header")),
        },
        FRAME_BODY => Ok(Some(InFrame::Body(channel, payload))),
        _ => {
            if channel != 0 {
                Err(AmqpError::frame_error("heartbeat on non-zero channel"))
            } else {
                Ok(Some(InFrame::Heartbeat))
            }
        }
    }
}

/// Outgoing frames batched into a single buffer, flushed once per batch.
#[derive(Debug)]
pub(crate) struct Out {
    /// Pending bytes.
    pub(crate) buf: Vec<u8>,
    /// Negotiated frame_max (0 = unlimited).
    pub(crate) frame_max: u32,
    /// Where method frames are encoded before they join `buf`.
    scratch: Vec<u8>,
}

impl Out {
    /// An empty batch.
    pub(crate) fn new(frame_max: u32) -> Self {
        Self {
            buf: Vec::with_capacity(8192),
            frame_max,
            scratch: Vec::with_capacity(256),
        }
    }

    /// Append a method frame.
    pub(crate) fn method(&mut self, channel: u16, class: AMQPClass) {
        let frame = AMQPFrame::Method(channel, class);
        // Encoded into a scratch buffer kept between frames (no allocation per frame),
        // so that a frame that cannot be encoded leaves the batch as it was.
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let res = gen_frame(&frame)(WriteContext::from(scratch));
        match res {
            Ok(ctx) => {
                let scratch = ctx.into_inner().0;
                self.buf.extend_from_slice(&scratch);
                self.scratch = scratch;
            }
            Err(e) => tracing::warn!(error = %e, "failed to encode method frame"),
        }
    }

    /// Append `basic.deliver` and its content, the method frame written by hand (the
    /// hottest frame the broker sends: no `AMQPClass`, no short-string copies).
    /// `consumer_tag`, `exchange` and `routing_key` came in as short strings.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn deliver(
        &mut self,
        channel: u16,
        consumer_tag: &str,
        delivery_tag: u64,
        redelivered: bool,
        exchange: &str,
        routing_key: &str,
        raw_props: &[u8],
        body: &[u8],
    ) {
        let shorts = [consumer_tag, exchange, routing_key];
        if shorts.iter().any(|s| s.len() > 255) {
            tracing::warn!("delivery with a name over 255 bytes not sent");
            return;
        }
        let size = 4 + 3 + shorts.iter().map(|s| s.len()).sum::<usize>() + 8 + 1;
        self.buf.push(FRAME_METHOD);
        self.buf.extend_from_slice(&channel.to_be_bytes());
        self.buf.extend_from_slice(&(size as u32).to_be_bytes());
        self.buf.extend_from_slice(&[0, 60, 0, 60]); // basic.deliver
        self.buf.push(consumer_tag.len() as u8);
        self.buf.extend_from_slice(consumer_tag.as_bytes());
        self.buf.extend_from_slice(&delivery_tag.to_be_bytes());
        self.buf.push(u8::from(redelivered));
        for s in [exchange, routing_key] {
            self.buf.push(s.len() as u8);
            self.buf.extend_from_slice(s.as_bytes());
        }
        self.buf.push(FRAME_END);
        self.header_and_body(channel, raw_props, body);
    }

    /// Append a heartbeat frame.
    pub(crate) fn heartbeat(&mut self) {
        self.buf
            .extend_from_slice(&[FRAME_HEARTBEAT, 0, 0, 0, 0, 0, 0, FRAME_END]);
    }

    /// Append a method carrying content (deliver, get-ok, return) followed by
    /// its header and body frames, splitting the body by frame_max.
    pub(crate) fn content(
        &mut self,
        channel: u16,
        class: AMQPClass,
        raw_props: &[u8],
        body: &[u8],
    ) {
        self.method(channel, class);
        self.header_and_body(channel, raw_props, body);
    }

    /// Append a content header (its properties byte-exact) and the body frames.
    fn header_and_body(&mut self, channel: u16, raw_props: &[u8], body: &[u8]) {
        let ch = channel.to_be_bytes();
        let header_len = (12 + raw_props.len()) as u32;
        self.buf.push(FRAME_HEADER);
        self.buf.extend_from_slice(&ch);
        self.buf.extend_from_slice(&header_len.to_be_bytes());
        self.buf.extend_from_slice(&60u16.to_be_bytes());
        self.buf.extend_from_slice(&0u16.to_be_bytes());
        self.buf
            .extend_from_slice(&(body.len() as u64).to_be_bytes());
        self.buf.extend_from_slice(raw_props);
        self.buf.push(FRAME_END);
        let chunk = if self.frame_max == 0 {
            body.len().max(1)
        } else {
            (self.frame_max as usize).saturating_sub(8).max(1)
        };
        for part in body.chunks(chunk) {
            self.buf.push(FRAME_BODY);
            self.buf.extend_from_slice(&ch);
            self.buf
                .extend_from_slice(&(part.len() as u32).to_be_bytes());
            self.buf.extend_from_slice(part);
            self.buf.push(FRAME_END);
        }
    }

    /// Whether nothing is pending.
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Take the pending bytes.
    pub(crate) fn take(&mut self) -> Vec<u8> {
        std::mem::replace(&mut self.buf, Vec::with_capacity(8192))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::protocol::basic;

    #[test]
    fn a_hand_written_deliver_is_what_the_codec_writes() {
        let (props, body) = ([0x80, 0, 4, b't', b'e', b'x', b't'], [7u8; 300]);
        let mut by_hand = Out::new(128);
        by_hand.deliver(3, "ctag-1", 42, true, "amq.direct", "rk", &props, &body);
        let mut by_codec = Out::new(128);
        let deliver = basic::Deliver {
            consumer_tag: "ctag-1".into(),
            delivery_tag: 42,
            redelivered: true,
            exchange: "amq.direct".into(),
            routing_key: "rk".into(),
        };
        let class = AMQPClass::Basic(basic::AMQPMethod::Deliver(deliver));
        by_codec.content(3, class, &props, &body);
        assert_eq!(by_hand.take(), by_codec.take());
    }

    #[test]
    fn methods_append_to_the_batch() {
        let mut out = Out::new(0);
        out.heartbeat();
        let class = AMQPClass::Basic(basic::AMQPMethod::QosOk(basic::QosOk {}));
        out.method(1, class);
        let bytes = out.take();
        assert_eq!(&bytes[..8], &[8, 0, 0, 0, 0, 0, 0, 0xCE]);
        assert_eq!(&bytes[8..], &[1, 0, 1, 0, 0, 0, 4, 0, 60, 0, 11, 0xCE]);
    }
}
