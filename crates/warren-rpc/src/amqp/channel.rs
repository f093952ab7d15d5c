//! The handle callers use on an open channel ([`Channel`]: synchronous methods,
//! publish, ack), and [`Connection::open_channel`].

use amq_protocol::protocol::basic::{self, AMQPProperties, Cancel, Consume, Qos};
use amq_protocol::protocol::channel::{self, Close, Open};
use amq_protocol::protocol::confirm::{self, Select};
use amq_protocol::protocol::queue::{self, Declare};
use amq_protocol::protocol::AMQPClass;
use amq_protocol::types::FieldTable;
use tokio::sync::oneshot;

use super::cmd::{Cmd, Sink};
use super::conn::Connection;
use super::handshake::unexpected;
use super::writer::{fits_one_frame, FrameBuf, OWN_PART};
use super::RawError;

/// The flags of `queue.declare`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct DeclareFlags {
    pub(crate) passive: bool,
    pub(crate) durable: bool,
    pub(crate) exclusive: bool,
    pub(crate) auto_delete: bool,
}

/// A handle on an open channel.
#[derive(Clone, Debug)]
pub(crate) struct Channel {
    id: u16,
    conn: Connection,
}

impl Connection {
    /// Opens a channel.
    pub(crate) async fn open_channel(&self) -> Result<Channel, RawError> {
        let id = self.next_channel()?;
        let ch = Channel {
            id,
            conn: self.clone(),
        };
        match ch
            .call(AMQPClass::Channel(channel::AMQPMethod::Open(Open {})), None)
            .await?
        {
            AMQPClass::Channel(channel::AMQPMethod::OpenOk(_)) => Ok(ch),
            other => Err(unexpected("channel.open-ok", &other)),
        }
    }
}

impl Channel {
    async fn call(
        &self,
        method: AMQPClass,
        sink: Option<Box<dyn Sink>>,
    ) -> Result<AMQPClass, RawError> {
        let (reply, rx) = oneshot::channel();
        self.conn.send(Cmd::Sync {
            channel: self.id,
            method,
            reply,
            sink,
        })?;
        rx.await.unwrap_or_else(|_| Err(self.conn.failure()))
    }

    /// `basic.qos` with a per-consumer prefetch count.
    pub(crate) async fn qos(&self, prefetch_count: u16) -> Result<(), RawError> {
        let qos = Qos {
            prefetch_count,
            global: false,
        };
        match self
            .call(AMQPClass::Basic(basic::AMQPMethod::Qos(qos)), None)
            .await?
        {
            AMQPClass::Basic(basic::AMQPMethod::QosOk(_)) => Ok(()),
            other => Err(unexpected("basic.qos-ok", &other)),
        }
    }

    /// Puts the channel in confirm mode.
    pub(crate) async fn confirm_select(&self) -> Result<(), RawError> {
        let select = AMQPClass::Confirm(confirm::AMQPMethod::Select(Select { nowait: false }));
        match self.call(select, None).await? {
            AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(_)) => Ok(()),
            other => Err(unexpected("confirm.select-ok", &other)),
        }
    }

    /// Declares a queue (empty `name`: the broker names it); returns its name.
    pub(crate) async fn queue_declare(
        &self,
        name: &str,
        flags: DeclareFlags,
        arguments: FieldTable,
    ) -> Result<String, RawError> {
        let declare = Declare {
            queue: name.into(),
            passive: flags.passive,
            durable: flags.durable,
            exclusive: flags.exclusive,
            auto_delete: flags.auto_delete,
            nowait: false,
            arguments,
        };
        match self
            .call(AMQPClass::Queue(queue::AMQPMethod::Declare(declare)), None)
            .await?
        {
            AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok)) => Ok(ok.queue.to_string()),
            other => Err(unexpected("queue.declare-ok", &other)),
        }
    }

    /// Starts a consumer on `queue` whose messages (and this channel's returns) go to
    /// `sink`; returns its tag.
    pub(crate) async fn consume(
        &self,
        queue: &str,
        no_ack: bool,
        sink: Box<dyn Sink>,
    ) -> Result<String, RawError> {
        let consume = Consume {
            queue: queue.into(),
            no_ack,
            ..Consume::default()
        };
        match self
            .call(
                AMQPClass::Basic(basic::AMQPMethod::Consume(consume)),
                Some(sink),
            )
            .await?
        {
            AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(ok)) => Ok(ok.consumer_tag.to_string()),
            other => Err(unexpected("basic.consume-ok", &other)),
        }
    }

    /// Cancels the consumer `tag`; its sink ends once the broker confirms.
    pub(crate) async fn cancel(&self, tag: &str) -> Result<(), RawError> {
        let cancel = Cancel {
            consumer_tag: tag.into(),
            nowait: false,
        };
        match self
            .call(AMQPClass::Basic(basic::AMQPMethod::Cancel(cancel)), None)
            .await?
        {
            AMQPClass::Basic(basic::AMQPMethod::CancelOk(_)) => Ok(()),
            other => Err(unexpected("basic.cancel-ok", &other)),
        }
    }

    /// Closes the channel.
    pub(crate) async fn close(&self, code: u16, text: &str) -> Result<(), RawError> {
        let close = Close {
            reply_code: code,
            reply_text: text.into(),
            class_id: 0,
            method_id: 0,
        };
        match self
            .call(AMQPClass::Channel(channel::AMQPMethod::Close(close)), None)
            .await?
        {
            AMQPClass::Channel(channel::AMQPMethod::CloseOk(_)) => Ok(()),
            other => Err(unexpected("channel.close-ok", &other)),
        }
    }

    /// Publishes `body` to the default exchange with `routing_key`. With `confirm`,
    /// returns the receiver of the broker's ack (`true`) or nack (`false`).
    pub(crate) fn publish(
        &self,
        routing_key: &str,
        mandatory: bool,
        props: &AMQPProperties,
        body: &[u8],
        confirm: bool,
    ) -> Result<Option<oneshot::Receiver<Result<bool, RawError>>>, RawError> {
        let mut out = FrameBuf::with_capacity(self.conn.shared.tuned.frame_max, body.len() + 256);
        out.publish_to(self.id, routing_key, mandatory, props, body)?;
        self.send_publish(out.take(), None, confirm)
    }

    /// [`publish`](Self::publish) with a body the caller gives up: a large one that fits
    /// one frame is written as it is, not copied into the publish's frames.
    pub(crate) fn publish_owned(
        &self,
        routing_key: &str,
        mandatory: bool,
        props: &AMQPProperties,
        body: Vec<u8>,
        confirm: bool,
    ) -> Result<Option<oneshot::Receiver<Result<bool, RawError>>>, RawError> {
        let frame_max = self.conn.shared.tuned.frame_max;
        if body.len() < OWN_PART || !fits_one_frame(frame_max, body.len()) {
            return self.publish(routing_key, mandatory, props, &body, confirm);
        }
        let mut out = FrameBuf::with_capacity(frame_max, 256);
        out.publish_to_before_body(self.id, routing_key, mandatory, props, body.len())?;
        self.send_publish(out.take(), Some(body), confirm)
    }

    fn send_publish(
        &self,
        frames: Vec<u8>,
        body: Option<Vec<u8>>,
        confirm: bool,
    ) -> Result<Option<oneshot::Receiver<Result<bool, RawError>>>, RawError> {
        let (tx, rx) = match confirm {
            true => {
                let (tx, rx) = oneshot::channel();
                (Some(tx), Some(rx))
            }
            false => (None, None),
        };
        self.conn.send(Cmd::Publish {
            channel: self.id,
            frames,
            body,
            confirm: tx,
        })?;
        Ok(rx)
    }

    /// `basic.ack` (with `multiple`: every tag up to `tag`).
    pub(crate) fn ack(&self, tag: u64, multiple: bool) -> Result<(), RawError> {
        let mut out = FrameBuf::with_capacity(0, 32);
        out.ack(self.id, tag, multiple);
        self.conn.send(Cmd::Frames(out.take()))
    }
}
