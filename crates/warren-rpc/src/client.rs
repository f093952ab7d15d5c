//! [`RpcClient`]: one connection, one channel in confirm mode, one reply consumer, and
//! any number of calls in flight, matched to replies by `correlation_id`.
//!
//! The path of a call: [`RpcClient::call_with`] registers a waiter in the pending map,
//! publishes the request (`mandatory`, with `reply_to`, `correlation_id`, `expiration`
//! and `x-deadline`), waits for the broker's confirm (which carries a `basic.return` if
//! the queue does not exist) and then for the reply, which the reply task hands over.

mod pending;

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{FieldTable, ShortString};
use lapin::{Channel, Confirmation, Connection, ConnectionProperties, Consumer};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::error::{redact_url, Error, Result};
use crate::wire;
use pending::{CorrelationIds, Pending, PendingGuard};

/// Default per-call timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time allowed to establish the connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where replies come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplyMode {
    /// RabbitMQ's direct reply-to (`amq.rabbitmq.reply-to`): no queue to declare.
    /// Falls back to [`ReplyMode::ExclusiveQueue`] if the broker refuses it.
    #[default]
    DirectReplyTo,
    /// An exclusive, auto-delete, server-named queue declared once per client.
    ExclusiveQueue,
}

/// A reply to a call.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The reply body.
    pub body: Vec<u8>,
    /// The reply's `content_type`, if set.
    pub content_type: Option<String>,
    /// The correlation id of the call it answers.
    pub correlation_id: String,
    /// Reply headers.
    pub headers: FieldTable,
}

impl Reply {
    /// The body as UTF-8 text.
    pub fn text(&self) -> Result<&str> {
        std::str::from_utf8(&self.body)
            .map_err(|e| Error::InvalidArgument(format!("reply body is not UTF-8: {e}")))
    }
}

/// Options of one call.
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    timeout: Option<Duration>,
    content_type: Option<String>,
    persistent: bool,
    headers: Option<FieldTable>,
}

impl CallOptions {
    /// Default options: the client's default timeout, transient, no content type.
    pub fn new() -> Self {
        Self::default()
    }

    /// The call's deadline, relative to now. Also sent as `expiration` and `x-deadline`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The body's `content_type`.
    pub fn content_type(mut self, content_type: impl Into<String>) -> Self {
        self.content_type = Some(content_type.into());
        self
    }

    /// Publish the request as persistent (`delivery_mode` 2).
    pub fn persistent(mut self, persistent: bool) -> Self {
        self.persistent = persistent;
        self
    }

    /// Extra request headers.
    pub fn headers(mut self, headers: FieldTable) -> Self {
        self.headers = Some(headers);
        self
    }
}

/// Builds an [`RpcClient`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    url: String,
    reply_mode: ReplyMode,
    default_timeout: Duration,
    connect_timeout: Duration,
}

impl ClientBuilder {
    /// How replies come back (default: direct reply-to).
    pub fn reply_mode(mut self, mode: ReplyMode) -> Self {
        self.reply_mode = mode;
        self
    }

    /// Timeout of calls that do not set their own (default 30 s).
    pub fn default_timeout(mut self, timeout: Duration) -> Self {
        self.default_timeout = timeout;
        self
    }

    /// Time allowed to connect (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Connects, opens the channel and starts the reply consumer.
    pub async fn connect(self) -> Result<RpcClient> {
        let connection = open_connection(&self.url, self.connect_timeout, "warren-client").await?;
        let (channel, consumer, reply_to) = match self.reply_mode {
            ReplyMode::DirectReplyTo => match direct_reply_to(&connection).await {
                Ok(parts) => parts,
                Err(e) => {
                    warn!(error = %e, "direct reply-to refused; using an exclusive reply queue");
                    exclusive_reply_queue(&connection).await?
                }
            },
            ReplyMode::ExclusiveQueue => exclusive_reply_queue(&connection).await?,
        };
        let pending = Arc::new(Pending::default());
        let ids = CorrelationIds::new();
        let reader = tokio::spawn(read_replies(consumer, Arc::clone(&pending), ids.clone()));
        debug!(reply_to, "client ready");
        Ok(RpcClient {
            inner: Arc::new(Inner {
                connection,
                channel,
                reply_to,
                pending,
                ids,
                default_timeout: self.default_timeout,
                reader,
            }),
        })
    }
}

/// Opens an AMQP connection within `timeout`, naming it for the broker's UI.
pub(crate) async fn open_connection(
    url: &str,
    timeout: Duration,
    name: &str,
) -> Result<Connection> {
    let props = ConnectionProperties::default().with_connection_name(name.into());
    match tokio::time::timeout(timeout, Connection::connect(url, props)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(source)) => Err(Error::Connect {
            url: redact_url(url),
            source,
        }),
        Err(_) => Err(Error::Unavailable {
            reason: format!(
                "no AMQP handshake from {} within {timeout:?}",
                redact_url(url)
            ),
        }),
    }
}

async fn confirm_channel(connection: &Connection) -> Result<Channel> {
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok(channel)
}

async fn consume_no_ack(channel: &Channel, queue: &str) -> Result<Consumer> {
    let opts = BasicConsumeOptions {
        no_ack: true,
        ..Default::default()
    };
    Ok(channel
        .basic_consume(queue.into(), "".into(), opts, FieldTable::default())
        .await?)
}

async fn direct_reply_to(connection: &Connection) -> Result<(Channel, Consumer, String)> {
    let channel = confirm_channel(connection).await?;
    let consumer = consume_no_ack(&channel, wire::DIRECT_REPLY_TO).await?;
    Ok((channel, consumer, wire::DIRECT_REPLY_TO.to_owned()))
}

async fn exclusive_reply_queue(connection: &Connection) -> Result<(Channel, Consumer, String)> {
    let channel = confirm_channel(connection).await?;
    let opts = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..Default::default()
    };
    let queue = channel
        .queue_declare("".into(), opts, FieldTable::default())
        .await?;
    let name = queue.name().as_str().to_owned();
    let consumer = consume_no_ack(&channel, &name).await?;
    Ok((channel, consumer, name))
}

/// Hands each reply to its waiting call; drops replies nobody waits for. When the
/// consumer ends (connection or channel lost), fails every waiting call.
async fn read_replies(mut consumer: Consumer, pending: Arc<Pending>, ids: CorrelationIds) {
    let reason = loop {
        match consumer.next().await {
            Some(Ok(delivery)) => {
                let props = &delivery.properties;
                let cid = props
                    .correlation_id()
                    .as_ref()
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default();
                let Some(seq) = ids.parse(&cid) else {
                    debug!(
                        correlation_id = cid,
                        "dropping reply with unknown correlation id"
                    );
                    continue;
                };
                let outcome = match wire::reply_status(props, &delivery.data) {
                    Ok(()) => Ok(Reply {
                        content_type: props.content_type().as_ref().map(|s| s.to_string()),
                        headers: props.headers().clone().unwrap_or_default(),
                        body: delivery.data,
                        correlation_id: cid,
                    }),
                    Err(status) => Err(Error::Remote(status)),
                };
                if !pending.complete(seq, outcome) {
                    debug!(seq, "dropping reply to a call that is no longer waiting");
                }
            }
            Some(Err(e)) => break format!("reply consumer failed: {e}"),
            None => break "reply consumer was cancelled by the broker".to_owned(),
        }
    };
    if pending.fail_all(&reason) {
        warn!(
            reason,
            "client lost its reply consumer; failing calls in flight"
        );
    }
}

struct Inner {
    connection: Connection,
    channel: Channel,
    reply_to: String,
    pending: Arc<Pending>,
    ids: CorrelationIds,
    default_timeout: Duration,
    reader: JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.reader.abort();
        self.pending.fail_all("the client was dropped");
    }
}

/// An RPC client. Cheap to clone; clones share one connection and one reply consumer.
///
/// ```no_run
/// # async fn demo() -> warren_rpc::Result<()> {
/// let client = warren_rpc::RpcClient::connect("amqp://guest:guest@127.0.0.1:5672/%2f").await?;
/// let reply = client.call("rpc_queue", "30").await?;
/// assert_eq!(reply.text()?, "832040");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RpcClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcClient")
            .field("reply_to", &self.inner.reply_to)
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

impl RpcClient {
    /// A builder for a client connecting to `url`.
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            url: url.into(),
            reply_mode: ReplyMode::default(),
            default_timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }

    /// Connects with default settings.
    pub async fn connect(url: &str) -> Result<RpcClient> {
        Self::builder(url).connect().await
    }

    /// The reply address this client puts in `reply_to`.
    pub fn reply_to(&self) -> &str {
        &self.inner.reply_to
    }

    /// Calls waiting for their reply right now.
    pub fn in_flight(&self) -> usize {
        self.inner.pending.len()
    }

    /// Calls the procedure behind `queue` with `body` and the default options.
    pub async fn call(&self, queue: &str, body: impl AsRef<[u8]>) -> Result<Reply> {
        self.call_with(queue, body, CallOptions::default()).await
    }

    /// Calls the procedure behind `queue` with `body`.
    ///
    /// Fails with [`Error::NoRoute`] at once if no queue `queue` exists,
    /// [`Error::Timeout`] past the deadline, [`Error::Remote`] if the server answered
    /// with an error, [`Error::Unavailable`] if the connection is lost.
    pub async fn call_with(
        &self,
        queue: &str,
        body: impl AsRef<[u8]>,
        options: CallOptions,
    ) -> Result<Reply> {
        let routing_key = ShortString::try_new(queue).map_err(|_| {
            Error::InvalidArgument(format!(
                "queue name is longer than 255 bytes: {queue:.40}..."
            ))
        })?;
        let timeout = options.timeout.unwrap_or(self.inner.default_timeout);
        let deadline = Instant::now() + timeout;
        let inner = &self.inner;
        let (seq, rx) = inner.pending.register()?;
        let _guard = PendingGuard {
            pending: &inner.pending,
            id: seq,
        };
        let correlation_id = inner.ids.format(seq);
        let props = wire::request_properties(
            Some(&inner.reply_to),
            &correlation_id,
            options.content_type.as_deref(),
            options.persistent,
            timeout,
            options.headers.as_ref(),
        );
        let exchange_call = async {
            let publish = BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            };
            let confirm = inner
                .channel
                .basic_publish("".into(), routing_key, publish, body.as_ref(), props)
                .await?;
            match confirm.await? {
                Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => {
                    return Err(Error::NoRoute {
                        queue: queue.to_owned(),
                        reply_code: returned.reply_code,
                        reply_text: returned.reply_text.to_string(),
                    });
                }
                Confirmation::Nack(None) => {
                    return Err(Error::Unavailable {
                        reason: format!("the broker refused (nacked) the request to `{queue}`"),
                    });
                }
                Confirmation::Ack(None) | Confirmation::NotRequested => {}
            }
            rx.await.unwrap_or_else(|_| {
                Err(Error::Unavailable {
                    reason: "the client's reply consumer stopped".to_owned(),
                })
            })
        };
        match tokio::time::timeout_at(deadline, exchange_call).await {
            Ok(outcome) => outcome,
            Err(_) => Err(Error::Timeout {
                queue: queue.to_owned(),
                timeout,
            }),
        }
    }

    /// Closes the connection. Calls still in flight fail with `unavailable`.
    pub async fn close(&self) -> Result<()> {
        self.inner.pending.fail_all("the client was closed");
        self.inner.connection.close(200, "bye".into()).await?;
        Ok(())
    }
}
