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
        /// Whether the broker delivered it before.
        redelivered: bool,
        /// Its properties.
        props: AMQPProperties,
        /// Its body.
        body: Vec<u8>,
    },
    /// A `mandatory` publish that no queue took.
    Return {
        /// The channel it came on.
        channel: u16,
        /// The broker's reply code (312: no route).
        reply_code: u16,
        /// The broker's reply text.
        reply_text: String,
        /// The routing key it was published with.
        routing_key: String,
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
    Deliver(u64, bool),
    Return(u16, String, String),
}

/// A content-carrying method in progress: its channel, what it is, its header (body
/// size and properties) once it came, and the body so far.
type Pending = (u16, Head, Option<(u64, AMQPProperties)>, Vec<u8>);

/// Content in progress on one connection, per channel (a channel's content frames
/// come in order; another channel's frames may come in between).
#[derive(Debug, Default)]
pub struct Assembler {
    pending: Vec<Pending>,
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
                if self.slot(channel).is_some() {
                    return Err(RawError::Frame("method frame inside content".to_owned()));
                }
                let head = match &class {
                    AMQPClass::Basic(AMQPMethod::Deliver(d)) => {
                        Head::Deliver(d.delivery_tag, d.redelivered)
                    }
                    AMQPClass::Basic(AMQPMethod::Return(r)) => Head::Return(
                        r.reply_code,
                        r.reply_text.to_string(),
                        r.routing_key.to_string(),
                    ),
                    _ => return Ok(Some(Event::Method(channel, class))),
                };
                self.pending.push((channel, head, None, Vec::new()));
                Ok(None)
            }
            AMQPFrame::Header(channel, header) => match self.slot(channel) {
                Some(i) if self.pending[i].2.is_none() => {
                    self.pending[i].2 = Some((header.body_size, header.properties));
                    self.complete(i)
                }
                _ => Err(RawError::Frame("unexpected content header".to_owned())),
            },
            AMQPFrame::Body(channel, bytes) => match self.slot(channel) {
                Some(i) if self.pending[i].2.is_some() => {
                    let body = &mut self.pending[i].3;
                    if body.is_empty() {
                        *body = bytes;
                    } else {
                        body.extend_from_slice(&bytes);
                    }
                    self.complete(i)
                }
                _ => Err(RawError::Frame("unexpected body frame".to_owned())),
            },
            AMQPFrame::Heartbeat => Ok(Some(Event::Heartbeat)),
            other => Err(RawError::Frame(format!("unexpected {other}"))),
        }
    }

    /// Where `channel`'s content in progress is kept, if it has any.
    fn slot(&self, channel: u16) -> Option<usize> {
        self.pending.iter().position(|p| p.0 == channel)
    }

    /// Content `i` as an event, if its body is whole.
    fn complete(&mut self, i: usize) -> Result<Option<Event>, RawError> {
        let done =
            matches!(&self.pending[i], (_, _, Some((size, _)), body) if body.len() as u64 >= *size);
        if !done {
            return Ok(None);
        }
        let (channel, head, Some((size, props)), body) = self.pending.swap_remove(i) else {
            return Ok(None);
        };
        if body.len() as u64 != size {
            return Err(RawError::Frame("body longer than announced".to_owned()));
        }
        Ok(Some(match head {
            Head::Deliver(delivery_tag, redelivered) => Event::Deliver {
                channel,
                delivery_tag,
                redelivered,
                props,
                body,
            },
            Head::Return(reply_code, reply_text, routing_key) => Event::Return {
                channel,
                reply_code,
                reply_text,
                routing_key,
                props,
            },
        }))
    }
}
