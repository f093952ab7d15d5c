//! The channel table: channel.open / close / close-ok / flow, and closing a
//! channel on a channel-level error.

use super::Conn;
use crate::channel::Channel;
use crate::error::AmqpError;
use crate::message::short;
use amq_protocol::protocol::{channel, AMQPClass};

impl Conn {
    pub(super) fn channel_method(
        &mut self,
        ch: u16,
        m: channel::AMQPMethod,
    ) -> Result<(), AmqpError> {
        use channel::AMQPMethod as C;
        match m {
            C::Open(_) => {
                if ch > self.channel_max {
                    return Err(AmqpError::not_allowed(format!(
                        "channel {ch} exceeds channel_max {}",
                        self.channel_max
                    ))
                    .with_method(20, 10));
                }
                if self.channels.contains_key(&ch) {
                    return Err(
                        AmqpError::channel_error("second 'channel.open' seen").with_method(20, 10)
                    );
                }
                self.channels.insert(ch, Channel::new(ch));
                self.out
                    .method(ch, AMQPClass::Channel(C::OpenOk(channel::OpenOk {})));
                Ok(())
            }
            C::Close(_) => {
                let (channels, mut ctx) = self.split();
                let Some(mut chan) = channels.remove(&ch) else {
                    return Err(
                        AmqpError::channel_error("expected 'channel.open'").with_method(20, 40)
                    );
                };
                {
                    chan.release(&mut ctx);
                }
                self.out
                    .method(ch, AMQPClass::Channel(C::CloseOk(channel::CloseOk {})));
                Ok(())
            }
            C::CloseOk(_) => match self.channels.get(&ch).map(|c| c.closing) {
                Some(true) => {
                    self.channels.remove(&ch);
                    Ok(())
                }
                Some(false) => Ok(()),
                None => {
                    Err(AmqpError::channel_error("expected 'channel.open'").with_method(20, 41))
                }
            },
            C::Flow(f) => {
                let open = self.channels.get(&ch).map(|c| c.closing);
                match open {
                    None => Err(AmqpError::channel_error(format!(
                        "expected 'channel.open' on channel {ch}"
                    ))
                    .with_method(20, 20)),
                    Some(true) => Ok(()),
                    // Like RabbitMQ 3.x: consumers cannot pause delivery this way.
                    Some(false) if !f.active => {
                        Err(AmqpError::not_implemented("active=false").with_method(20, 20))
                    }
                    Some(false) => {
                        self.out.method(
                            ch,
                            AMQPClass::Channel(C::FlowOk(channel::FlowOk { active: f.active })),
                        );
                        Ok(())
                    }
                }
            }
            C::FlowOk(_) => Ok(()),
            C::OpenOk(_) => {
                Err(AmqpError::command_invalid("unexpected channel.open-ok").with_method(20, 11))
            }
        }
    }

    pub(super) fn channel_error(&mut self, ch_id: u16, e: AmqpError) {
        tracing::debug!(conn = self.id, channel = ch_id, error = %e, "channel error");
        let (channels, mut ctx) = self.split();
        if let Some(ch) = channels.get_mut(&ch_id) {
            ch.release(&mut ctx);
            ch.closing = true;
        }
        ctx.out.method(
            ch_id,
            AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
                reply_code: e.code.code(),
                reply_text: short(e.reply_text()),
                class_id: e.class_id,
                method_id: e.method_id,
            })),
        );
    }

    pub(super) fn release_channels(&mut self) {
        let (channels, mut ctx) = self.split();
        for (_, mut ch) in channels.drain() {
            ch.release(&mut ctx);
        }
    }
}
