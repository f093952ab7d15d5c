//! The write side: frames are encoded with amq-protocol's `gen_frame` (methods) and
//! `gen_properties` (content headers) straight into one buffer, which is written with
//! one `write_all` however many frames it holds. Frames of [`OWN_PART`] bytes or more
//! that were encoded elsewhere (a large publish) join the batch as parts of their own,
//! not copied, and the batch is then written with vectored writes.

use amq_protocol::frame::{gen_frame, AMQPFrame, WriteContext};
use amq_protocol::protocol::basic::{gen_properties, AMQPMethod, AMQPProperties, Publish};
use amq_protocol::protocol::AMQPClass;
use std::io::IoSlice;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::RawError;

const FRAME_HEADER: u8 = 2;
const FRAME_BODY: u8 = 3;
const FRAME_HEARTBEAT: u8 = 8;
const FRAME_END: u8 = 0xCE;
/// The basic class, the only one that carries content.
const BASIC_CLASS: u16 = 60;
/// Frames encoded elsewhere of this size or more are kept as they are, not copied.
pub const OWN_PART: usize = 16 * 1024;

/// Encodes `f` at the end of `buf` (the buffer is moved through cookie-factory's
/// context and back, so nothing is copied).
fn encode(
    buf: &mut Vec<u8>,
    f: impl Fn(WriteContext<Vec<u8>>) -> amq_protocol::frame::GenResult<Vec<u8>>,
) -> Result<(), RawError> {
    let ctx = WriteContext::from(std::mem::take(buf));
    match f(ctx) {
        Ok(ctx) => {
            *buf = ctx.into_inner().0;
            Ok(())
        }
        Err(e) => Err(RawError::Encode(e.to_string())),
    }
}

/// A `basic.publish` method frame encoded once, for a load loop that publishes to the
/// same exchange and routing key over and over.
#[derive(Debug, Clone)]
pub struct PublishTemplate {
    channel: u16,
    frame: Vec<u8>,
}

impl PublishTemplate {
    /// The publish frame for `exchange` / `routing_key` on `channel`.
    pub fn new(
        channel: u16,
        exchange: &str,
        routing_key: &str,
        mandatory: bool,
    ) -> Result<Self, RawError> {
        let frame = AMQPFrame::Method(
            channel,
            AMQPClass::Basic(AMQPMethod::Publish(Publish {
                exchange: exchange.into(),
                routing_key: routing_key.into(),
                mandatory,
                immediate: false,
            })),
        );
        let mut buf = Vec::with_capacity(64);
        encode(&mut buf, gen_frame(&frame))?;
        Ok(Self {
            channel,
            frame: buf,
        })
    }
}

/// Whether a body of `body_len` bytes fits one body frame under `frame_max` (0: no
/// limit), whose frame header and end octet take 8 bytes.
pub fn fits_one_frame(frame_max: u32, body_len: usize) -> bool {
    frame_max == 0 || body_len.saturating_add(8) <= frame_max as usize
}

/// Outgoing frames, batched.
#[derive(Debug)]
pub struct FrameBuf {
    /// Finished parts that go out before `buf`, in order (large frames taken whole).
    parts: Vec<Vec<u8>>,
    /// Their total length.
    parts_len: usize,
    buf: Vec<u8>,
    /// Largest frame the peer accepts (0: no limit).
    frame_max: u32,
}

impl FrameBuf {
    /// An empty batch for a connection whose frames may be `frame_max` bytes.
    pub fn new(frame_max: u32) -> Self {
        Self {
            parts: Vec::new(),
            parts_len: 0,
            buf: Vec::with_capacity(64 * 1024),
            frame_max,
        }
    }

    /// An empty batch with room for `capacity` bytes.
    pub fn with_capacity(frame_max: u32, capacity: usize) -> Self {
        Self {
            parts: Vec::new(),
            parts_len: 0,
            buf: Vec::with_capacity(capacity),
            frame_max,
        }
    }

    /// Changes the frame size limit (after tuning).
    pub fn set_frame_max(&mut self, frame_max: u32) {
        self.frame_max = frame_max;
    }

    /// Appends a method frame.
    pub fn method(&mut self, channel: u16, class: &AMQPClass) -> Result<(), RawError> {
        // gen_frame wants an owned frame; AMQPClass is cloned only on setup paths, the
        // load loops use templates and `ack`.
        let frame = AMQPFrame::Method(channel, class.clone());
        encode(&mut self.buf, gen_frame(&frame))
    }

    /// Appends `basic.ack` (with `multiple` to cover every tag up to `tag`).
    pub fn ack(&mut self, channel: u16, tag: u64, multiple: bool) {
        let ch = channel.to_be_bytes();
        self.buf
            .extend_from_slice(&[1, ch[0], ch[1], 0, 0, 0, 13, 0, 60, 0, 80]);
        self.buf.extend_from_slice(&tag.to_be_bytes());
        self.buf.push(u8::from(multiple));
        self.buf.push(FRAME_END);
    }

    /// Appends a heartbeat frame.
    pub fn heartbeat(&mut self) {
        self.buf
            .extend_from_slice(&[FRAME_HEARTBEAT, 0, 0, 0, 0, 0, 0, FRAME_END]);
    }

    /// Appends a content-carrying method (`basic.publish`, `basic.deliver`, ...), its
    /// content header and its body, split into frames of at most `frame_max` bytes.
    pub fn content(
        &mut self,
        channel: u16,
        class: &AMQPClass,
        props: &AMQPProperties,
        body: &[u8],
    ) -> Result<(), RawError> {
        self.method(channel, class)?;
        self.header_and_body(channel, props, body)
    }

    /// Appends `basic.publish` to the default exchange with `routing_key` (at most 255
    /// bytes), then the content header and body.
    pub fn publish_to(
        &mut self,
        channel: u16,
        routing_key: &str,
        mandatory: bool,
        props: &AMQPProperties,
        body: &[u8],
    ) -> Result<(), RawError> {
        self.publish_method(channel, routing_key, mandatory)?;
        self.header_and_body(channel, props, body)
    }

    /// Appends what [`publish_to`](Self::publish_to) would, up to and including the
    /// header of one body frame of `body_len` bytes: the caller sends the body itself
    /// and then the frame-end octet. `body_len` must fit one frame (`frame_max` - 8).
    pub fn publish_to_before_body(
        &mut self,
        channel: u16,
        routing_key: &str,
        mandatory: bool,
        props: &AMQPProperties,
        body_len: usize,
    ) -> Result<(), RawError> {
        if !fits_one_frame(self.frame_max, body_len) {
            return Err(RawError::Encode("body does not fit one frame".to_owned()));
        }
        let len = u32::try_from(body_len)
            .map_err(|_| RawError::Encode("body does not fit one frame".to_owned()))?;
        self.publish_method(channel, routing_key, mandatory)?;
        self.content_header(channel, props, body_len)?;
        let ch = channel.to_be_bytes();
        self.buf.extend_from_slice(&[FRAME_BODY, ch[0], ch[1]]);
        self.buf.extend_from_slice(&len.to_be_bytes());
        Ok(())
    }

    /// `basic.publish` to the default exchange, by hand.
    fn publish_method(
        &mut self,
        channel: u16,
        routing_key: &str,
        mandatory: bool,
    ) -> Result<(), RawError> {
        let key = u8::try_from(routing_key.len())
            .map_err(|_| RawError::Encode("routing key longer than 255 bytes".to_owned()))?;
        let ch = channel.to_be_bytes();
        let size = 4 + 2 + 1 + 1 + u32::from(key) + 1;
        self.buf.extend_from_slice(&[1, ch[0], ch[1]]);
        self.buf.extend_from_slice(&size.to_be_bytes());
        // basic (60) . publish (40), reserved short, exchange "" (length 0).
        self.buf.extend_from_slice(&[0, 60, 0, 40, 0, 0, 0, key]);
        self.buf.extend_from_slice(routing_key.as_bytes());
        self.buf.push(u8::from(mandatory));
        self.buf.push(FRAME_END);
        Ok(())
    }

    /// Appends frames encoded elsewhere; [`OWN_PART`] bytes or more are kept as a part
    /// of their own instead of being copied.
    pub fn append(&mut self, frames: Vec<u8>) {
        if frames.len() < OWN_PART {
            self.buf.extend_from_slice(&frames);
            return;
        }
        if !self.buf.is_empty() {
            let room = self.buf.capacity();
            let done = std::mem::replace(&mut self.buf, Vec::with_capacity(room));
            self.parts_len += done.len();
            self.parts.push(done);
        }
        self.parts_len += frames.len();
        self.parts.push(frames);
    }

    /// Appends a body frame's payload (a part of its own from [`OWN_PART`] bytes, not
    /// copied) and its frame-end octet, after [`publish_to_before_body`](Self::publish_to_before_body).
    pub fn append_body(&mut self, body: Vec<u8>) {
        self.append(body);
        self.buf.push(FRAME_END);
    }

    /// The frame size limit.
    pub fn frame_max(&self) -> u32 {
        self.frame_max
    }

    /// Appends a publish from `template` with these properties and body.
    pub fn publish(
        &mut self,
        template: &PublishTemplate,
        props: &AMQPProperties,
        body: &[u8],
    ) -> Result<(), RawError> {
        self.buf.extend_from_slice(&template.frame);
        self.header_and_body(template.channel, props, body)
    }

    fn header_and_body(
        &mut self,
        channel: u16,
        props: &AMQPProperties,
        body: &[u8],
    ) -> Result<(), RawError> {
        self.content_header(channel, props, body.len())?;
        let ch = channel.to_be_bytes();
        let chunk = match self.frame_max {
            0 => body.len().max(1),
            max => (max as usize).saturating_sub(8).max(1),
        };
        for part in body.chunks(chunk) {
            self.buf.push(FRAME_BODY);
            self.buf.extend_from_slice(&ch);
            self.buf
                .extend_from_slice(&(part.len() as u32).to_be_bytes());
            self.buf.extend_from_slice(part);
            self.buf.push(FRAME_END);
        }
        Ok(())
    }

    fn content_header(
        &mut self,
        channel: u16,
        props: &AMQPProperties,
        body_len: usize,
    ) -> Result<(), RawError> {
        let ch = channel.to_be_bytes();
        self.buf.extend_from_slice(&[FRAME_HEADER, ch[0], ch[1]]);
        let size_at = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        self.buf.extend_from_slice(&BASIC_CLASS.to_be_bytes());
        self.buf.extend_from_slice(&0u16.to_be_bytes()); // weight
        self.buf.extend_from_slice(&(body_len as u64).to_be_bytes());
        encode(&mut self.buf, gen_properties(props))?;
        let size = u32::try_from(self.buf.len() - size_at - 4)
            .map_err(|_| RawError::Encode("content header too large".to_owned()))?;
        self.buf[size_at..size_at + 4].copy_from_slice(&size.to_be_bytes());
        self.buf.push(FRAME_END);
        Ok(())
    }

    /// Appends raw bytes (the protocol header).
    pub fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// How many bytes are pending.
    pub fn len(&self) -> usize {
        self.parts_len + self.buf.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes the pending bytes.
    pub fn take(&mut self) -> Vec<u8> {
        if self.parts.is_empty() {
            return std::mem::take(&mut self.buf);
        }
        let mut all = Vec::with_capacity(self.len());
        for part in self.parts.drain(..) {
            all.extend_from_slice(&part);
        }
        all.append(&mut self.buf);
        self.parts_len = 0;
        all
    }

    /// Writes everything pending (one `write_all`, or vectored writes when there are
    /// parts) and keeps the buffer's room.
    pub async fn flush<W: AsyncWrite + Unpin>(&mut self, w: &mut W) -> Result<(), RawError> {
        if self.is_empty() {
            return Ok(());
        }
        if self.parts.is_empty() {
            w.write_all(&self.buf).await?;
        } else {
            let mut slices: Vec<IoSlice<'_>> = self
                .parts
                .iter()
                .chain(std::iter::once(&self.buf))
                .filter(|part| !part.is_empty())
                .map(|part| IoSlice::new(part))
                .collect();
            let mut rest = &mut slices[..];
            while !rest.is_empty() {
                let n = w.write_vectored(rest).await?;
                if n == 0 {
                    return Err(std::io::Error::from(std::io::ErrorKind::WriteZero).into());
                }
                IoSlice::advance_slices(&mut rest, n);
            }
        }
        // A TLS stream keeps what it encrypted until flushed.
        w.flush().await?;
        self.parts.clear();
        self.parts_len = 0;
        self.buf.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::frame::parse_frame;

    /// A socket that takes at most 1,000 bytes a write, vectored or not.
    struct Trickle(Vec<u8>);

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            let n = buf.len().min(1000);
            self.0.extend_from_slice(&buf[..n]);
            std::task::Poll::Ready(Ok(n))
        }

        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn large_frames_are_parts_of_their_own_written_in_order() {
        let small = |b: u8| vec![b; 10];
        let big = |b: u8| vec![b; OWN_PART + 5];
        let mut out = FrameBuf::new(0);
        let mut expected = Vec::new();
        for part in [
            small(1),
            big(2),
            small(3),
            small(4),
            big(5),
            big(6),
            small(7),
        ] {
            expected.extend_from_slice(&part);
            out.append(part);
        }
        assert_eq!(out.len(), expected.len());
        let mut sock = Trickle(Vec::new());
        out.flush(&mut sock).await.unwrap();
        assert_eq!(
            sock.0, expected,
            "every byte once, in order, across partial writes"
        );
        assert!(out.is_empty());

        // take() joins them the same way.
        for part in [small(8), big(9), small(10)] {
            out.append(part);
        }
        let taken = out.take();
        assert_eq!(taken.len(), 20 + OWN_PART + 5);
        assert_eq!((taken[0], taken[10], taken[taken.len() - 1]), (8, 9, 10));
        assert!(out.is_empty());
    }

    #[test]
    fn publish_to_matches_the_codec() {
        let props = AMQPProperties::default().with_correlation_id("c.1".into());
        let mut by_hand = FrameBuf::new(4096);
        by_hand
            .publish_to(3, "rpc_queue", true, &props, b"30")
            .unwrap();
        let mut codec = FrameBuf::new(4096);
        let publish = AMQPClass::Basic(AMQPMethod::Publish(Publish {
            exchange: "".into(),
            routing_key: "rpc_queue".into(),
            mandatory: true,
            immediate: false,
        }));
        codec.content(3, &publish, &props, b"30").unwrap();
        let (by_hand, codec) = (by_hand.take(), codec.take());
        assert_eq!(by_hand, codec);
        assert!(parse_frame(by_hand.as_slice()).is_ok());
    }

    #[test]
    fn a_body_sent_as_its_own_part_makes_the_same_bytes() {
        let props = AMQPProperties::default().with_reply_to("amq.rabbitmq.reply-to".into());
        let body: Vec<u8> = (0..OWN_PART + 5).map(|i| i as u8).collect();
        let mut copied = FrameBuf::new(131_072);
        copied.publish_to(2, "q", false, &props, &body).unwrap();
        let mut owned = FrameBuf::new(131_072);
        owned.heartbeat();
        owned
            .publish_to_before_body(2, "q", false, &props, body.len())
            .unwrap();
        owned.append_body(body.clone());
        assert_eq!(owned.parts.len(), 2, "the body is a part of its own");
        let mut want = FrameBuf::new(131_072);
        want.heartbeat();
        let mut want = want.take();
        want.extend_from_slice(&copied.take());
        assert_eq!(owned.take(), want);
    }

    #[test]
    fn a_body_larger_than_one_frame_is_refused_by_the_uncopied_path() {
        let mut out = FrameBuf::new(4096);
        let props = AMQPProperties::default();
        assert!(out
            .publish_to_before_body(1, "q", false, &props, 4089)
            .is_err());
        assert!(out
            .publish_to_before_body(1, "q", false, &props, 4088)
            .is_ok());
    }
}
