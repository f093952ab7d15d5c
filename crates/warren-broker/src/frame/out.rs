//! Outgoing frames batched for one write: small frames are encoded into one buffer,
//! and a large message body joins the batch as a slice of the `Bytes` it arrived in,
//! without being copied (the batch is a list of parts, written with one vectored
//! write).

use super::{FRAME_BODY, FRAME_END, FRAME_HEADER, FRAME_HEARTBEAT, FRAME_METHOD};
use amq_protocol::frame::{gen_frame, AMQPFrame, WriteContext};
use amq_protocol::protocol::AMQPClass;
use bytes::Bytes;

/// Bodies from this size on are not copied into the batch.
const ZERO_COPY_MIN: usize = 4096;
/// The capacity a batch's buffer starts with.
const BUF_CAPACITY: usize = 8192;

/// What one batch holds, in order: encoded frames and body slices.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    /// The parts, written in this order.
    pub(crate) parts: Vec<Bytes>,
    /// Their total length.
    pub(crate) len: usize,
}

impl Batch {
    /// Append another batch's parts.
    pub(crate) fn append(&mut self, mut other: Batch) {
        self.len += other.len;
        self.parts.append(&mut other.parts);
    }
}

/// Outgoing frames batched into a single buffer, flushed once per batch.
#[derive(Debug)]
pub(crate) struct Out {
    /// Pending bytes after the last part.
    pub(crate) buf: Vec<u8>,
    /// Negotiated frame_max (0 = unlimited).
    pub(crate) frame_max: u32,
    /// Earlier parts of the batch (encoded frames, then a body slice, ...).
    parts: Vec<Bytes>,
    /// Their total length.
    parts_len: usize,
    /// Where method frames are encoded before they join `buf`.
    scratch: Vec<u8>,
}

impl Out {
    /// An empty batch.
    pub(crate) fn new(frame_max: u32) -> Self {
        Self {
            buf: Vec::with_capacity(BUF_CAPACITY),
            frame_max,
            parts: Vec::new(),
            parts_len: 0,
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
        body: &Bytes,
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
        body: &Bytes,
    ) {
        self.method(channel, class);
        self.header_and_body(channel, raw_props, body);
    }

    /// Append a content header (its properties byte-exact) and the body frames.
    fn header_and_body(&mut self, channel: u16, raw_props: &[u8], body: &Bytes) {
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
        let mut at = 0;
        while at < body.len() {
            let end = (at + chunk).min(body.len());
            self.buf.push(FRAME_BODY);
            self.buf.extend_from_slice(&ch);
            self.buf
                .extend_from_slice(&((end - at) as u32).to_be_bytes());
            if end - at >= ZERO_COPY_MIN {
                self.cut();
                self.parts_len += end - at;
                self.parts.push(body.slice(at..end));
            } else {
                self.buf.extend_from_slice(&body[at..end]);
            }
            self.buf.push(FRAME_END);
            at = end;
        }
    }

    /// End the current buffer as a part of its own.
    fn cut(&mut self) {
        if !self.buf.is_empty() {
            let buf = std::mem::replace(&mut self.buf, Vec::with_capacity(BUF_CAPACITY));
            self.parts_len += buf.len();
            self.parts.push(Bytes::from(buf));
        }
    }

    /// Whether nothing is pending.
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty() && self.parts.is_empty()
    }

    /// Bytes pending.
    pub(crate) fn len(&self) -> usize {
        self.parts_len + self.buf.len()
    }

    /// Take the pending batch.
    pub(crate) fn take(&mut self) -> Batch {
        self.cut();
        let len = std::mem::take(&mut self.parts_len);
        Batch {
            parts: std::mem::take(&mut self.parts),
            len,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::frame::AMQPContentHeader;
    use amq_protocol::protocol::basic;

    /// The batch's bytes, as the socket sees them.
    fn bytes(out: &mut Out) -> Vec<u8> {
        let batch = out.take();
        let all: Vec<u8> = batch.parts.iter().flat_map(|p| p.iter().copied()).collect();
        assert_eq!(all.len(), batch.len);
        all
    }

    #[test]
    fn a_hand_written_deliver_is_what_the_codec_writes() {
        let props = [0x80, 0, 4, b't', b'e', b'x', b't'];
        // Small bodies are copied; large ones are sliced in, split by frame_max.
        for (frame_max, len) in [(128, 300), (4096, 20_000), (0, 70_000), (131_072, 5)] {
            let body = Bytes::from(vec![7u8; len]);
            let mut by_hand = Out::new(frame_max);
            by_hand.deliver(3, "ctag-1", 42, true, "amq.direct", "rk", &props, &body);
            let mut by_codec = Out::new(frame_max);
            let deliver = basic::Deliver {
                consumer_tag: "ctag-1".into(),
                delivery_tag: 42,
                redelivered: true,
                exchange: "amq.direct".into(),
                routing_key: "rk".into(),
            };
            let class = AMQPClass::Basic(basic::AMQPMethod::Deliver(deliver));
            by_codec.content(3, class, &props, &body);
            let hand = bytes(&mut by_hand);
            assert_eq!(
                hand,
                bytes(&mut by_codec),
                "frame_max {frame_max}, body {len}"
            );
            // The header and body frames as amq-protocol encodes them.
            let props = basic::AMQPProperties::default().with_content_type("text".into());
            let header = AMQPContentHeader {
                class_id: 60,
                body_size: len as u64,
                properties: props,
            };
            let mut frames = vec![AMQPFrame::Header(3, header)];
            let chunk = if frame_max == 0 {
                len
            } else {
                frame_max as usize - 8
            };
            frames.extend(body.chunks(chunk).map(|c| AMQPFrame::Body(3, c.to_vec())));
            let mut codec = Vec::new();
            for f in &frames {
                let ctx = gen_frame(f)(WriteContext::from(Vec::new())).expect("encodes");
                codec.extend_from_slice(&ctx.into_inner().0);
            }
            assert!(hand.ends_with(&codec), "frame_max {frame_max}, body {len}");
        }
    }

    #[test]
    fn a_large_body_is_a_part_of_the_batch_not_a_copy() {
        let body = Bytes::from(vec![1u8; 65_536]);
        let mut out = Out::new(131_072);
        out.deliver(1, "c", 1, false, "", "q", &[0, 0], &body);
        out.heartbeat();
        let batch = out.take();
        assert_eq!(batch.parts.len(), 3, "frames, the body, then the rest");
        assert_eq!(
            batch.parts[1].as_ptr(),
            body.as_ptr(),
            "the body is not copied"
        );
        assert!(out.is_empty());
        assert_eq!(out.len(), 0);
    }

    #[test]
    fn methods_append_to_the_batch() {
        let mut out = Out::new(0);
        out.heartbeat();
        let class = AMQPClass::Basic(basic::AMQPMethod::QosOk(basic::QosOk {}));
        out.method(1, class);
        let bytes = bytes(&mut out);
        assert_eq!(&bytes[..8], &[8, 0, 0, 0, 0, 0, 0, 0xCE]);
        assert_eq!(&bytes[8..], &[1, 0, 1, 0, 0, 0, 4, 0, 60, 0, 11, 0xCE]);
    }
}
