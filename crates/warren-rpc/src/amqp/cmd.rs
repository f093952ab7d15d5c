//! What passes between the handles and a connection's task: the commands a handle
//! sends ([`Cmd`]) with the senders that get their answers ([`SyncReply`], [`Confirm`]),
//! and what a consumer receives ([`Inbound`], through a [`Sink`]). The lowest layer of
//! the client: it names neither the task nor the handles.

use amq_protocol::protocol::basic::AMQPProperties;
use amq_protocol::protocol::AMQPClass;
use tokio::sync::{mpsc, oneshot};

use super::RawError;

/// The reply to a synchronous method, or why none came.
pub(crate) type SyncReply = oneshot::Sender<Result<AMQPClass, RawError>>;
/// A publish's confirm: `true` for ack, `false` for nack.
pub(crate) type Confirm = oneshot::Sender<Result<bool, RawError>>;

/// Who waits for a `connection.close-ok`.
pub(crate) type CloseReply = oneshot::Sender<Result<(), RawError>>;

/// What a handle asks of the connection task.
pub(crate) enum Cmd {
    /// A synchronous method on `channel`; `sink` receives the deliveries of a consume.
    Sync {
        channel: u16,
        method: AMQPClass,
        reply: SyncReply,
        sink: Option<Box<dyn Sink>>,
    },
    /// A publish's frames (its sequence number counts in confirm mode).
    Publish {
        channel: u16,
        frames: Vec<u8>,
        /// A large body that goes out as it is after `frames`, which then end with its
        /// body frame's header (the task adds the frame-end octet).
        body: Option<Vec<u8>>,
        confirm: Option<Confirm>,
    },
    /// Other asynchronous frames (acks).
    Frames(Vec<u8>),
    /// Close the connection; `reply` gets the `close-ok`.
    Close {
        code: u16,
        text: String,
        reply: oneshot::Sender<Result<(), RawError>>,
    },
}

/// A message for a consumer.
#[derive(Debug)]
pub(crate) enum Inbound {
    /// A delivery.
    Deliver {
        delivery_tag: u64,
        redelivered: bool,
        props: AMQPProperties,
        body: Vec<u8>,
    },
    /// A `mandatory` publish on this channel that no queue took.
    Return {
        reply_code: u16,
        reply_text: String,
        routing_key: String,
        props: AMQPProperties,
    },
    /// The consumer ended: no more messages come.
    Ended(Ended),
}

/// Why a consumer ended.
#[derive(Debug, Clone)]
pub(crate) enum Ended {
    /// The broker cancelled it (its queue was deleted, a node went down).
    Cancelled,
    /// This side cancelled it (`basic.cancel-ok`).
    CancelOk,
    /// The channel or connection failed.
    Failed(RawError),
}

/// Where the connection task hands a consumer's messages. Called on the task: it must
/// not block.
pub(crate) trait Sink: Send + 'static {
    /// A message arrived.
    fn message(&mut self, m: Inbound);
    /// The consumer ended; called once, last.
    fn ended(&mut self, why: Ended) {
        self.message(Inbound::Ended(why));
    }
}

impl Sink for mpsc::UnboundedSender<Inbound> {
    fn message(&mut self, m: Inbound) {
        let _ = self.send(m);
    }
}
