//! The read side's framing, apart from any protocol logic (as mini-redis does): bytes
//! from the socket go into one buffer, and whole frames are cut from its front and
//! decoded with amq-protocol's `parse_frame`. A frame split over several reads stays in
//! the buffer until its last byte arrives.

use amq_protocol::frame::{parse_frame, AMQPFrame};
use bytes::{Buf, BytesMut};
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

/// Buffered frames of one connection's read side.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: BytesMut,
    /// Whether any byte has come from the peer yet.
    heard: bool,
}

impl FrameReader {
    /// An empty reader.
    pub fn new() -> Self {
        Self {
            buf: BytesMut::with_capacity(READ_CHUNK),
            heard: false,
        }
    }

    /// Whether the peer has sent anything yet (a refusal before the first byte is
    /// told apart from one after the AMQP handshake began).
    pub fn heard_from_peer(&self) -> bool {
        self.heard
    }

    /// Appends bytes that were read by other means (tests, a first read).
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame at the front of the buffer, if one is there.
    pub fn next_frame(&mut self) -> Result<Option<AMQPFrame>, RawError> {
        if self.buf.len() < FRAME_HEADER_LEN {
            return Ok(None);
        }
        let size = u32::from_be_bytes([self.buf[3], self.buf[4], self.buf[5], self.buf[6]]);
        let total = FRAME_HEADER_LEN + size as usize + 1;
        if total > MAX_FRAME {
            return Err(RawError::Frame(format!("frame of {total} bytes")));
        }
        if self.buf.len() < total {
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

    proptest! {
        #[test]
        fn frames_survive_reads_split_anywhere(
            bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 1..8),
            cuts in proptest::collection::vec(1usize..64, 1..64),
        ) {
            let (bytes, expected) = encoded(&bodies);
            let mut whole = FrameReader::new();
            whole.extend(&bytes);
            let mut want = Vec::new();
            while let Some(f) = whole.next_frame().map_err(|e| TestCaseError::fail(e.to_string()))? {
                want.push(f);
            }
            prop_assert_eq!(want.len(), expected);
            let mut split = FrameReader::new();
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

    #[test]
    fn a_frame_without_its_end_octet_is_refused() {
        let mut r = FrameReader::new();
        r.extend(&[8, 0, 0, 0, 0, 0, 0, 0x00]);
        assert!(matches!(r.next_frame(), Err(RawError::Frame(_))));
    }
}
