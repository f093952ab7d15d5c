//! Frame boundaries on top of the `amq-protocol` codec: splitting the read
//! buffer into frames (with size limits checked before buffering a frame), the
//! hottest frames parsed by hand (`publish.rs`), and outgoing frames batched for
//! one write (`out.rs`).

use crate::error::AmqpError;
use amq_protocol::frame::parsing::parse_content_header;
use amq_protocol::protocol::basic::{self, AMQPProperties};
use amq_protocol::protocol::{parse_class, AMQPClass};
use bytes::{Bytes, BytesMut};

mod out;
mod publish;

pub(crate) use out::{Batch, Out};

/// The AMQP 0-9-1 protocol header.
pub(crate) const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";

pub(crate) const FRAME_METHOD: u8 = 1;
pub(crate) const FRAME_HEADER: u8 = 2;
pub(crate) const FRAME_BODY: u8 = 3;
pub(crate) const FRAME_HEARTBEAT: u8 = 8;
pub(crate) const FRAME_END: u8 = 0xCE;
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
            if (class_id, method_id) == (60, 40) {
                if let Some(p) = publish::parse_publish(&payload) {
                    let class = AMQPClass::Basic(basic::AMQPMethod::Publish(p));
                    return Ok(Some(InFrame::Method(channel, class)));
                }
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
        FRAME_HEADER => match publish::parse_bare_header(&payload) {
            Some((class_id, body_size, props)) => Ok(Some(InFrame::Header {
                channel,
                class_id,
                body_size,
                props,
                raw_props: Bytes::from_static(&[0, 0]),
            })),
            None => header(channel, &payload),
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

/// A content header through amq-protocol's parser (any properties).
fn header(channel: u16, payload: &Bytes) -> Result<Option<InFrame>, AmqpError> {
    match parse_content_header(&payload[..]) {
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
    }
}
