//! One connection's worth of client state (a [`Session`]) and the supervisor that
//! replaces it when the connection is lost: it fails the calls in flight on the old
//! session at once, reconnects with backoff (trying every address in order) and
//! re-declares the reply consumer.
//!
//! Setting a session up (connect, handshake, channel, consumer) ends within the connect
//! timeout, and a session given up on is closed within the close timeout and has its
//! socket shut down, so no stalled connection lingers.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, Consumer};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::pending::{CorrelationIds, Pending};
use super::{Reply, ReplyMode};
use crate::connect::{self, Backoff, CutOnDrop, Dial};
use crate::error::{Error, Result};
use crate::headers;
use crate::wire;

/// A live connection with its confirm-mode channel and reply address.
pub(crate) struct Session {
    pub(crate) generation: u64,
    pub(crate) connection: Connection,
    pub(crate) channel: Channel,
    pub(crate) reply_to: String,
    /// Shuts the socket down when the session is dropped or given up on.
    pub(crate) cut: CutOnDrop,
}

/// What the supervisor needs to (re)build sessions.
pub(crate) struct Settings {
    pub(crate) urls: Vec<String>,
    pub(crate) reply_mode: ReplyMode,
    pub(crate) connect_timeout: Duration,
    pub(crate) dial: Dial,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) backoff: Backoff,
}

/// Connects and sets up a session within the connect timeout; returns it with its
/// reply consumer.
pub(crate) async fn establish(settings: &Settings, generation: u64) -> Result<(Session, Consumer)> {
    let deadline = Instant::now() + settings.connect_timeout;
    let link = connect::open_any(&settings.urls, deadline, &settings.dial).await?;
    let setup = reply_consumer(&link.connection, settings.reply_mode);
    let (channel, consumer, reply_to) =
        connect::set_up(&link, deadline, settings.connect_timeout, setup).await?;
    debug!(generation, reply_to, "client session ready");
    Ok((
        Session {
            generation,
            connection: link.connection,
            channel,
            reply_to,
            cut: link.cut,
        },
        consumer,
    ))
}

/// The confirm-mode channel, the reply consumer and the reply address.
async fn reply_consumer(
    connection: &Connection,
    mode: ReplyMode,
) -> Result<(Channel, Consumer, String)> {
    match mode {
        ReplyMode::DirectReplyTo => match direct_reply_to(connection).await {
            Ok(parts) => Ok(parts),
            Err(e) => {
                warn!(error = %e, "direct reply-to refused; using an exclusive reply queue");
                exclusive_reply_queue(connection).await
            }
        },
        ReplyMode::ExclusiveQueue => exclusive_reply_queue(connection).await,
    }
}

/// Closes a session that is no longer used, in the background, within `timeout`.
fn retire(session: Arc<Session>, timeout: Duration) {
    tokio::spawn(async move {
        let closed =
            connect::close(&session.connection, &session.cut, timeout, "reconnecting").await;
        if let Err(e) = closed {
            debug!(error = %e, "closing a lost session");
        }
    });
}

async fn confirm_channel(connection: &Connection) -> Result<Channel> {
    let channel = connection.create_channel().await.map_err(Error::amqp)?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(Error::amqp)?;
    Ok(channel)
}

async fn consume_no_ack(channel: &Channel, queue: &str) -> Result<Consumer> {
    let opts = BasicConsumeOptions {
        no_ack: true,
        ..Default::default()
    };
    channel
        .basic_consume(queue.into(), "".into(), opts, FieldTable::default())
        .await
        .map_err(Error::amqp)
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
        .await
        .map_err(Error::amqp)?;
    let name = queue.name().as_str().to_owned();
    let consumer = consume_no_ack(&channel, &name).await?;
    Ok((channel, consumer, name))
}

/// Hands each reply to its waiting call and drops replies nobody waits for. Returns
/// why the consumer ended (the connection or channel is gone).
async fn read_replies(mut consumer: Consumer, pending: &Pending, ids: &CorrelationIds) -> String {
    loop {
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
                        headers: props
                            .headers()
                            .as_ref()
                            .map(headers::from_field_table)
                            .unwrap_or_default(),
                        body: delivery.data,
                        correlation_id: cid,
                    }),
                    Err(status) => Err(Error::Remote(status)),
                };
                if !pending.complete(seq, outcome) {
                    debug!(seq, "dropping reply to a call that is no longer waiting");
                }
            }
            Some(Err(e)) => return format!("the connection to the broker was lost: {e}"),
            None => return "the broker cancelled the reply consumer".to_owned(),
        }
    }
}

/// Runs sessions one after another until the client is dropped: reads replies,
/// and on loss fails the session's calls, then reconnects with backoff.
pub(crate) async fn supervise(
    settings: Settings,
    mut consumer: Consumer,
    first_generation: u64,
    pending: Arc<Pending>,
    ids: CorrelationIds,
    sessions: watch::Sender<Option<Arc<Session>>>,
    observer: crate::telemetry::Observer,
) {
    let mut generation = first_generation;
    loop {
        let reason = read_replies(consumer, &pending, &ids).await;
        if let Some(lost) = sessions.send_replace(None) {
            retire(lost, settings.shutdown_timeout);
        }
        if pending.session_lost(generation, &reason) {
            warn!(
                reason,
                "client lost its connection; calls in flight failed, reconnecting"
            );
        }
        let mut attempt = 0u32;
        consumer = loop {
            if sessions.is_closed() {
                return;
            }
            tokio::time::sleep(settings.backoff.delay(attempt)).await;
            attempt = attempt.saturating_add(1);
            match establish(&settings, generation + 1).await {
                Ok((session, consumer)) => {
                    generation += 1;
                    info!(generation, attempt, "client reconnected");
                    observer.reconnected(crate::telemetry::Side::Client);
                    pending.session_up(generation);
                    sessions.send_replace(Some(Arc::new(session)));
                    break consumer;
                }
                Err(e) => debug!(attempt, error = %e, "reconnection failed"),
            }
        };
    }
}
