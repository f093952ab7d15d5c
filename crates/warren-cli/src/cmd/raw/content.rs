//! Deliveries and returns put back together: a `basic.deliver` (or `basic.return`)
//! method frame, then its content header, then body frames until the announced size.
//! Every other frame passes through as it came.

use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::basic::{AMQPMethod, AMQPProperties};
use amq_protocol::protocol::AMQPClass;

use super::RawError;

/// What the connection received, content assembled.
#[derive(Debug)]
pub enum Event {
    /// A message from a consumer.
    Deliver {
        /// The channel it came on.
        channel: u16,
        /// Its delivery tag.
        delivery_tag: u64,
        /// Its properties.
        props: AMQPProperties,
        /// Its body.
        body: Vec<u8>,
    },
    /// A `mandatory` publish that no queue took.
    Return {
        /// The broker's reply code (312: no route).
        reply_code: u16,
        /// Its properties.
        props: AMQPProperties,
    },
    /// Any other method.
    Method(u16, AMQPClass),
    /// A heartbeat.
    Heartbeat,
}

/// Which content-carrying method is waiting for its header and body.
#[derive(Debug)]
enum Head {
    Deliver(u64),
    Return(u16),
}

/// A content-carrying method in progress: its channel, what it is, its header (body
/// size and properties) once it came, and the body so far.
type Pending = (u16, Head, Option<(u64, AMQPProperties)>, Vec<u8>);

/// Content in progress on one connection (the bench uses one channel per connection;
/// frames of another channel in between are a protocol error here).
#[derive(Debug, Default)]
pub struct Assembler {
    pending: Option<Pending>,
}

impl Assembler {
    /// An assembler with nothing in progress.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one frame; returns an event once one is complete.
    pub fn push(&mut self, frame: AMQPFrame) -> Result<Option<Event>, RawError> {
        match frame {
            AMQPFrame::Method(channel, class) => {
                if self.pending.is_some() {
                    return Err(RawError::Frame("method frame inside content".to_owned()));
                }
                let head = match &class {
                    AMQPClass::Basic(AMQPMethod::Deliver(d)) => Head::Deliver(d.delivery_tag),
                    AMQPClass::Basic(AMQPMethod::Return(r)) => Head::Return(r.reply_code),
                    _ => return Ok(Some(Event::Method(channel, class))),
                };
                self.pending = Some((channel, head, None, Vec::new()));
                Ok(None)
            }
            AMQPFrame::Header(channel, header) => match &mut self.pending {
                Some((ch, _, slot @ None, body)) if *ch == channel => {
                    let size = header.body_size;
                    *slot = Some((size, header.properties));
                    self.complete()
                }
                _ => Err(RawError::Frame("unexpected content header".to_owned())),
            },
            AMQPFrame::Body(channel, bytes) => match &mut self.pending {
                Some((ch, _, Some(_), body)) if *ch == channel => {
                    if body.is_empty() {
                        *body = bytes;
                    } else {
                        body.extend_from_slice(&bytes);
                    }
                    self.complete()
                }
                _ => Err(RawError::Frame("unexpected body frame".to_owned())),
            },
            AMQPFrame::Heartbeat => Ok(Some(Event::Heartbeat)),
            other => Err(RawError::Frame(format!("unexpected {other}"))),
        }
    }

    /// The pending content as an event, if its body is whole.
    fn complete(&mut self) -> Result<Option<Event>, RawError> {
        let done = matches!(&self.pending, Some((_, _, Some((size, _)), body)) if body.len() as u64 >= *size);
        if !done {
            return Ok(None);
        }
        let Some((channel, head, Some((size, props)), body)) = self.pending.take() else {
            return Ok(None);
        };
        if body.len() as u64 != size {
            return Err(RawError::Frame("body longer than announced".to_owned()));
        }
        Ok(Some(match head {
            Head::Deliver(delivery_tag) => Event::Deliver {
                channel,
                delivery_tag,
                props,
                body,
            },
            Head::Return(reply_code) => Event::Return { reply_code, props },
        }))
    }
}
