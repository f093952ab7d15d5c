//! Frame dispatch: each decoded frame goes to the connection (class 10), the
//! channel table (class 20) or the channel it names, and errors are scoped to the
//! channel or the connection.

use super::Conn;
use crate::channel::{Channel, ConnCtx};
use crate::error::AmqpError;
use crate::frame::InFrame;
use amq_protocol::protocol::{basic, connection, AMQPClass};

impl Conn {
    pub(super) fn handle_frame(&mut self, f: InFrame) -> Result<(), AmqpError> {
        if let InFrame::Method(ch, m) = &f {
            tracing::debug!(conn = self.id, channel = ch, method = ?m, "received method");
        }
        if let Some(_deadline) = self.closing {
            // Only close / close-ok matter now.
            match f {
                InFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::CloseOk(_))) => {
                    self.done = true;
                }
                InFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Close(_))) => {
                    self.out.method(
                        0,
                        AMQPClass::Connection(connection::AMQPMethod::CloseOk(
                            connection::CloseOk {},
                        )),
                    );
                    self.done = true;
                }
                _ => {}
            }
            return Ok(());
        }
        match f {
            InFrame::Heartbeat => Ok(()),
            InFrame::Method(0, AMQPClass::Connection(m)) => match m {
                connection::AMQPMethod::Close(c) => {
                    tracing::debug!(conn = self.id, code = c.reply_code, text = %c.reply_text, "client closed connection");
                    self.release_channels();
                    // The slot is free once the client reads close-ok, so a client
                    // that reconnects right away is not refused by this one.
                    self.permit = None;
                    self.out.method(
                        0,
                        AMQPClass::Connection(connection::AMQPMethod::CloseOk(
                            connection::CloseOk {},
                        )),
                    );
                    self.done = true;
                    Ok(())
                }
                connection::AMQPMethod::Blocked(_) | connection::AMQPMethod::Unblocked(_) => Ok(()),
                connection::AMQPMethod::UpdateSecret(_) => {
                    self.out.method(
                        0,
                        AMQPClass::Connection(connection::AMQPMethod::UpdateSecretOk(
                            connection::UpdateSecretOk {},
                        )),
                    );
                    Ok(())
                }
                other => Err(AmqpError::command_invalid("unexpected connection method")
                    .with_method(10, other_method_id(&other))),
            },
            InFrame::Method(0, c) => Err(AmqpError::channel_error(
                "expected 'channel.open' on channel 0",
            )
            .with_method(c.get_amqp_class_id(), c.get_amqp_method_id())),
            InFrame::Method(_, AMQPClass::Connection(m)) => Err(AmqpError::command_invalid(
                "connection method on a non-zero channel",
            )
            .with_method(10, other_method_id(&m))),
            InFrame::Method(ch, AMQPClass::Channel(m)) => self.channel_method(ch, m),
            InFrame::Method(ch, class) => {
                if matches!(class, AMQPClass::Basic(basic::AMQPMethod::Publish(_))) {
                    self.block.published(&mut self.out);
                }
                let ids = (class.get_amqp_class_id(), class.get_amqp_method_id());
                let r = self.with_channel(ch, |chan, ctx| chan.handle_method(ctx, class));
                self.scoped(ch, r.map_err(|e| e.with_method(ids.0, ids.1)))
            }
            InFrame::Header { channel: 0, .. } | InFrame::Body(0, _) => {
                Err(AmqpError::unexpected_frame("content frame on channel 0"))
            }
            InFrame::Header {
                channel,
                class_id,
                body_size,
                props,
                raw_props,
            } => {
                let alarmed = self.block.alarmed();
                let r = self.with_channel(channel, |chan, ctx| {
                    chan.handle_header(ctx, class_id, body_size, props, raw_props)
                });
                self.block.content_read(alarmed && body_size == 0);
                self.scoped(channel, r)
            }
            InFrame::Body(channel, data) => {
                let alarmed = self.block.alarmed();
                let r = self.with_channel(channel, |chan, ctx| chan.handle_body(ctx, data));
                let complete = self
                    .channels
                    .get(&channel)
                    .is_none_or(|c| !c.receiving_content());
                self.block.content_read(alarmed && complete);
                self.scoped(channel, r)
            }
        }
    }

    /// Turn a channel-level error into channel.close; pass others up.
    fn scoped(&mut self, ch: u16, r: Result<(), AmqpError>) -> Result<(), AmqpError> {
        match r {
            Err(e) if !e.is_connection_level() => {
                self.channel_error(ch, e);
                Ok(())
            }
            other => other,
        }
    }

    /// Run `f` on an open channel (504 if not open; ignored while closing).
    fn with_channel(
        &mut self,
        ch_id: u16,
        f: impl FnOnce(&mut Channel, &mut ConnCtx<'_>) -> Result<(), AmqpError>,
    ) -> Result<(), AmqpError> {
        let (channels, mut ctx) = self.split();
        let Some(chan) = channels.get_mut(&ch_id) else {
            return Err(AmqpError::channel_error(format!(
                "expected 'channel.open' on channel {ch_id}"
            )));
        };
        if chan.closing {
            return Ok(());
        }
        f(chan, &mut ctx)
    }
}

fn other_method_id(m: &connection::AMQPMethod) -> u16 {
    AMQPClass::Connection(m.clone()).get_amqp_method_id()
}
