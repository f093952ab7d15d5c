//! The read side's framing, apart from any protocol logic (as mini-redis does): bytes
//! from the socket go into one buffer, and whole frames are cut from its front and
//! decoded with amq-protocol's `parse_frame`. A frame split over several reads stays in
//! the buffer until its last byte arrives, except a large body frame: once its header
//! is in, the rest of its payload is read straight into the body's own vector, so the
//! body is not copied out of the buffer afterwards.

use amq_protocol::frame::{parse_frame, AMQPFrame};
use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::RawError;

/// Frame type (1), channel (2) and payload size (4) come before the payload.
const FRAME_HEADER_LEN: usize = 7;
/// The frame type of a content body frame.
const FRAME_BODY: u8 = 3;
/// The frame-end octet that closes every frame.
const FRAME_END: u8 = 0xCE;
/// A frame larger than this is refused before it is buffered, whatever the peer says.
const MAX_FRAME: usize = 16 << 20;
/// How much room a read is given.
const READ_CHUNK: usize = 64 * 1024;
/// Body frames with at least this many payload bytes, not yet whole in the buffer, are
/// read into a vector of their own.
const DIRECT_BODY: usize = 16 * 1024;
/// Room a direct read has past the body's end, for the frames after it (moved to the
/// buffer), so that finishing a body does not take a read of its own.
const DIRECT_SPILL: usize = 4 * 1024;

/// A large body frame being read into its own vector.
#[derive(Debug)]
struct DirectBody {
    channel: u16,
    /// Its payload so far; its capacity is the payload's size and [`DIRECT_SPILL`].
    body: Vec<u8>,
    size: usize,
}

impl DirectBody {
    fn missing(&self) -> usize {
        self.size - self.body.len()
    }
}

/// Buffered frames of one connection's read side.
#[derive(Debug)]
pub struct FrameReader {
    buf: BytesMut,
    /// Whether any byte has come from the peer yet.
    heard: bool,
    /// The large body frame in progress; while its payload is short, `buf` is empty.
    direct: Option<DirectBody>,
    /// The smallest payload read directly.
    direct_from: usize,
}

impl Default for FrameReader {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameReader {
    /// An empty reader.
    pub fn new() -> Self {
        Self {
            buf: BytesMut::with_capacity(READ_CHUNK),
            heard: false,
            direct: None,
            direct_from: DIRECT_BODY,
        }
    }

    /// A reader that reads body payloads of `direct_from` bytes or more directly (tests).
    #[cfg(test)]
    fn with_direct_from(direct_from: usize) -> Self {
        Self {
            direct_from,
            ..Self::new()
        }
    }

    /// Whether the peer has sent anything yet (a refusal before the first byte is
    /// told apart from one after the AMQP handshake began).
    pub fn heard_from_peer(&self) -> bool {
        self.heard
    }

    /// Appends bytes that were read by other means (tests, a first read).
    pub fn extend(&mut self, mut bytes: &[u8]) {
        if let Some(d) = &mut self.direct {
            let n = d.missing().min(bytes.len());
            d.body.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame at the front of the buffer, if one is there.
    pub fn next_frame(&mut self) -> Result<Option<AMQPFrame>, RawError> {
        if let Some(d) = &self.direct {
            // Its payload is whole once `fill` stops reading into it; then the frame-end
            // octet is the first byte of the buffer.
            if d.missing() > 0 || self.buf.is_empty() {
                return Ok(None);
            }
            if self.buf[0] != FRAME_END {
                return Err(RawError::Frame("missing frame-end octet".to_owned()));
            }
            self.buf.advance(1);
            return Ok(self
                .direct
                .take()
                .map(|d| AMQPFrame::Body(d.channel, d.body)));
        }
        if self.buf.len() < FRAME_HEADER_LEN {
            return Ok(None);
        }
        let size = u32::from_be_bytes([self.buf[3], self.buf[4], self.buf[5], self.buf[6]]);
        let total = FRAME_HEADER_LEN + size as usize + 1;
        if total > MAX_FRAME {
            return Err(RawError::Frame(format!("frame of {total} bytes")));
        }
        if self.buf.len() < total {
            let payload = size as usize;
            if self.buf[0] == FRAME_BODY && payload >= self.direct_from {
                // The buffer holds this frame's start and nothing after it.
                let mut body = Vec::with_capacity(payload + DIRECT_SPILL);
                body.extend_from_slice(&self.buf[FRAME_HEADER_LEN..]);
                self.direct = Some(DirectBody {
                    channel: u16::from_be_bytes([self.buf[1], self.buf[2]]),
                    body,
                    size: payload,
                });
                self.buf.clear();
                return self.next_frame();
            }
            self.buf.reserve(total - self.buf.len());
            return Ok(None);
        }
        if self.buf[total - 1] != FRAME_END {
            return Err(RawError::Frame("missing frame-end octet".to_owned()));
        }
        // Body frames are bytes as they are: cut them out with one copy (parse_frame
        // collects a body byte by byte).
        if self.buf[0] == FRAME_BODY {
            let channel = u16::from_be_bytes([self.buf[1], self.buf[2]]);
            let body = self.buf[FRAME_HEADER_LEN..total - 1].to_vec();
            self.buf.advance(total);
            return Ok(Some(AMQPFrame::Body(channel, body)));
        }
        let frame = match parse_frame(&self.buf[..total]) {
            Ok(([], frame)) => frame,
            Ok(_) => return Err(RawError::Frame("trailing bytes in a frame".to_owned())),
            Err(e) => return Err(RawError::Frame(e.to_string())),
        };
        self.buf.advance(total);
        Ok(Some(frame))
    }

    /// Reads once from `r` (whatever it has, up to the buffer's free room).
    pub async fn fill<R: AsyncRead + Unpin>(&mut self, r: &mut R) -> Result<(), RawError> {
        if let Some(d) = self.direct.as_mut().filter(|d| d.missing() > 0) {
            // The rest of the payload and what follows it, which goes to the buffer.
            let room = d.missing() + DIRECT_SPILL;
            if r.read_buf(&mut (&mut d.body).limit(room)).await? == 0 {
                return Err(RawError::Eof);
            }
            if d.body.len() > d.size {
                self.buf.extend_from_slice(&d.body[d.size..]);
                d.body.truncate(d.size);
            }
            return Ok(());
        }
        if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
            self.buf.reserve(READ_CHUNK);
        }
        match r.read_buf(&mut self.buf).await? {
            0 => Err(RawError::Eof),
            _ => {
                self.heard = true;
                Ok(())
            }
        }
    }

    /// Reads until a whole frame is buffered and returns it.
    pub async fn read_frame<R: AsyncRead + Unpin>(
        &mut self,
        r: &mut R,
    ) -> Result<AMQPFrame, RawError> {
        loop {
            if let Some(frame) = self.next_frame()? {
                return Ok(frame);
            }
            self.fill(r).await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amqp::writer::FrameBuf;
    use amq_protocol::protocol::basic::{AMQPMethod, AMQPProperties, Ack, Deliver};
    use amq_protocol::protocol::AMQPClass;
    use proptest::prelude::*;

    /// Frames of every kind the client reads: methods, content headers, bodies (split
    /// by a small frame_max) and heartbeats.
    fn encoded(bodies: &[Vec<u8>]) -> (Vec<u8>, usize) {
        let mut out = FrameBuf::new(64);
        let mut frames = 0;
        for (i, body) in bodies.iter().enumerate() {
            let deliver = AMQPClass::Basic(AMQPMethod::Deliver(Deliver {
                consumer_tag: "ctag".into(),
                delivery_tag: i as u64 + 1,
                redelivered: false,
                exchange: "".into(),
                routing_key: "q".into(),
            }));
            let props = AMQPProperties::default().with_correlation_id(format!("{i}").into());
            out.content(1, &deliver, &props, body).ok();
            frames += 2 + body.len().div_ceil(56);
            out.method(
                1,
                &AMQPClass::Basic(AMQPMethod::Ack(Ack {
                    delivery_tag: i as u64,
                    multiple: true,
                })),
            )
            .ok();
            out.heartbeat();
            frames += 2;
        }
        (out.take(), frames)
    }

    /// The frames of `bytes`, all buffered at once.
    fn cut_whole(bytes: &[u8]) -> Result<Vec<AMQPFrame>, TestCaseError> {
        let mut whole = FrameReader::new();
        whole.extend(bytes);
        let mut frames = Vec::new();
        while let Some(f) = whole
            .next_frame()
            .map_err(|e| TestCaseError::fail(e.to_string()))?
        {
            frames.push(f);
        }
        Ok(frames)
    }

    proptest! {
        #[test]
        fn frames_survive_reads_split_anywhere(
            bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 1..8),
            cuts in proptest::collection::vec(1usize..64, 1..64),
        ) {
            let (bytes, expected) = encoded(&bodies);
            let want = cut_whole(&bytes)?;
            prop_assert_eq!(want.len(), expected);
            let mut split = FrameReader::with_direct_from(8);
            let mut got = Vec::new();
            let (mut at, mut i) = (0, 0);
            while at < bytes.len() {
                let end = (at + cuts[i % cuts.len()]).min(bytes.len());
                split.extend(&bytes[at..end]);
                while let Some(f) = split.next_frame().map_err(|e| TestCaseError::fail(e.to_string()))? {
                    got.push(f);
                }
                at = end;
                i += 1;
            }
            prop_assert_eq!(got, want);
        }
    }

    /// Frames read from a socket-like stream that hands out at most `chunk` bytes a
    /// read, with body payloads of `direct_from` bytes or more read directly.
    fn read_through(
        bytes: Vec<u8>,
        frames: usize,
        chunk: usize,
        direct_from: usize,
    ) -> Result<Vec<AMQPFrame>, RawError> {
        let rt = tokio::runtime::Builder::new_current_thread().build()?;
        rt.block_on(async move {
            let (mut tx, mut rx) = tokio::io::duplex(chunk);
            let writer = tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                tx.write_all(&bytes).await
            });
            let mut reader = FrameReader::with_direct_from(direct_from);
            let mut got = Vec::new();
            while got.len() < frames {
                while let Some(f) = reader.next_frame()? {
                    got.push(f);
                }
                if got.len() < frames {
                    reader.fill(&mut rx).await?;
                }
            }
            let _ = writer.await;
            Ok(got)
        })
    }

    proptest! {
        #[test]
        fn bodies_read_directly_come_out_as_the_buffer_would_cut_them(
            bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 1..8),
            chunk in 1usize..100,
            direct_from in 1usize..60,
        ) {
            let (bytes, expected) = encoded(&bodies);
            let want = cut_whole(&bytes)?;
            let got = read_through(bytes, expected, chunk, direct_from)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn a_large_body_is_read_into_its_own_vector_and_its_end_octet_checked() {
        let mut r = FrameReader::with_direct_from(4);
        // A body frame of 6 bytes on channel 1, in two pieces, with a bad end octet.
        r.extend(&[3, 0, 1, 0, 0, 0, 6, b'a', b'b']);
        assert!(r.next_frame().unwrap().is_none());
        assert!(
            r.buf.is_empty(),
            "the payload went to the body's own vector"
        );
        r.extend(&[b'c', b'd', b'e', b'f', 0x00]);
        assert!(matches!(r.next_frame(), Err(RawError::Frame(_))));
    }

    #[test]
    fn a_frame_without_its_end_octet_is_refused() {
        let mut r = FrameReader::new();
        r.extend(&[8, 0, 0, 0, 0, 0, 0, 0x00]);
        assert!(matches!(r.next_frame(), Err(RawError::Frame(_))));
    }
}
