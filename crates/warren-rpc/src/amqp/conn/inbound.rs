//! The connection task's read side: every frame that came from the broker, handled on
//! the task (deliveries and returns to their consumer's sink, confirms, the broker's
//! closes and cancels, `connection.blocked`, sync replies).

use amq_protocol::protocol::basic;
use amq_protocol::protocol::channel::{self, CloseOk, FlowOk};
use amq_protocol::protocol::connection::{self, CloseOk as ConnCloseOk};
use amq_protocol::protocol::AMQPClass;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{debug, info, warn};

use super::Task;
use crate::amqp::cmd::{Ended, Inbound};
use crate::amqp::content::Event;
use crate::amqp::RawError;

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Task<S> {
    /// Handles every whole frame buffered; `true` once our close is confirmed.
    pub(super) fn handle_frames(&mut self) -> Result<bool, RawError> {
        while let Some(frame) = self.reader.next_frame()? {
            if self.ending.is_some() {
                break;
            }
            let Some(event) = self.asm.push(frame)? else {
                continue;
            };
            match event {
                Event::Deliver {
                    channel,
                    delivery_tag,
                    redelivered,
                    props,
                    body,
                } => {
                    if let Some(sink) = self
                        .chans
                        .get_mut(&channel)
                        .and_then(|c| c.consumer.as_mut())
                    {
                        self.turn += 1;
                        sink.message(Inbound::Deliver {
                            delivery_tag,
                            redelivered,
                            props,
                            body,
                        });
                    }
                }
                Event::Return {
                    channel,
                    reply_code,
                    reply_text,
                    routing_key,
                    props,
                } => {
                    if let Some(sink) = self
                        .chans
                        .get_mut(&channel)
                        .and_then(|c| c.consumer.as_mut())
                    {
                        sink.message(Inbound::Return {
                            reply_code,
                            reply_text,
                            routing_key,
                            props,
                        });
                    }
                }
                Event::Heartbeat => {}
                Event::Method(0, class) => {
                    if self.connection_method(class)? {
                        return Ok(true);
                    }
                }
                Event::Method(channel, class) => self.channel_method(channel, class),
            }
        }
        Ok(false)
    }

    /// A method on channel 0; `true` once our close is confirmed.
    fn connection_method(&mut self, class: AMQPClass) -> Result<bool, RawError> {
        match class {
            AMQPClass::Connection(connection::AMQPMethod::Close(c)) => {
                let _ = self.out.method(
                    0,
                    &AMQPClass::Connection(connection::AMQPMethod::CloseOk(ConnCloseOk {})),
                );
                // Ends the loop once the close-ok is written.
                self.ending = Some(RawError::Closed {
                    what: "the connection",
                    code: c.reply_code,
                    text: c.reply_text.to_string(),
                });
                Ok(false)
            }
            AMQPClass::Connection(connection::AMQPMethod::CloseOk(_)) => Ok(true),
            AMQPClass::Connection(connection::AMQPMethod::Blocked(b)) => {
                warn!(reason = %b.reason, "the broker blocked publishing on this connection");
                self.shared.blocked.send_replace(true);
                Ok(false)
            }
            AMQPClass::Connection(connection::AMQPMethod::Unblocked(_)) => {
                info!("the broker unblocked publishing");
                self.shared.blocked.send_replace(false);
                Ok(false)
            }
            other => {
                debug!(method = ?other, "ignoring a connection method");
                Ok(false)
            }
        }
    }

    /// A method on a channel: a confirm, the broker's close or cancel, or a sync reply.
    fn channel_method(&mut self, channel: u16, class: AMQPClass) {
        let Some(chan) = self.chans.get_mut(&channel) else {
            return;
        };
        match class {
            AMQPClass::Basic(basic::AMQPMethod::Ack(a)) => {
                chan.confirmed(a.delivery_tag, a.multiple, true)
            }
            AMQPClass::Basic(basic::AMQPMethod::Nack(n)) => {
                chan.confirmed(n.delivery_tag, n.multiple, false)
            }
            AMQPClass::Basic(basic::AMQPMethod::Cancel(c)) => {
                if let Some(mut sink) = chan.consumer.take() {
                    sink.ended(Ended::Cancelled);
                }
                if !c.nowait {
                    let ok = basic::CancelOk {
                        consumer_tag: c.consumer_tag,
                    };
                    let _ = self
                        .out
                        .method(channel, &AMQPClass::Basic(basic::AMQPMethod::CancelOk(ok)));
                }
            }
            AMQPClass::Channel(channel::AMQPMethod::Close(c)) => {
                let _ = self.out.method(
                    channel,
                    &AMQPClass::Channel(channel::AMQPMethod::CloseOk(CloseOk {})),
                );
                let err = RawError::Closed {
                    what: "a channel",
                    code: c.reply_code,
                    text: c.reply_text.to_string(),
                };
                debug!(channel, error = %err, "the broker closed a channel");
                if let Some(chan) = self.chans.remove(&channel) {
                    chan.fail(&err);
                }
            }
            AMQPClass::Channel(channel::AMQPMethod::Flow(f)) => {
                let ok = FlowOk { active: f.active };
                let _ = self.out.method(
                    channel,
                    &AMQPClass::Channel(channel::AMQPMethod::FlowOk(ok)),
                );
            }
            reply => {
                let closed = matches!(reply, AMQPClass::Channel(channel::AMQPMethod::CloseOk(_)));
                chan.replied(reply);
                if closed {
                    if let Some(chan) = self.chans.remove(&channel) {
                        chan.fail(&RawError::Gone(format!("channel {channel} was closed")));
                    }
                }
            }
        }
    }
}
