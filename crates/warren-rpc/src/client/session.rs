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

use amq_protocol::types::FieldTable;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::pending::{CorrelationIds, Pending};
use super::{Reply, ReplyMode};
use crate::amqp::{Channel, Connection, DeclareFlags, Ended, Inbound, Sink};
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

/// Says why a session's reply consumer ended.
pub(crate) type Lost = oneshot::Receiver<String>;

/// Connects and sets up a session within the connect timeout; returns it with the
/// receiver of why its reply consumer ended.
pub(crate) async fn establish(
    settings: &Settings,
    generation: u64,
    pending: &Arc<Pending>,
    ids: &CorrelationIds,
) -> Result<(Session, Lost)> {
    let deadline = Instant::now() + settings.connect_timeout;
    let link = connect::open_any(&settings.urls, deadline, &settings.dial).await?;
    let setup = reply_consumer(&link.connection, settings.reply_mode, pending, ids);
    let (channel, reply_to, lost) =
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
        lost,
    ))
}

/// The confirm-mode channel with the reply consumer on it, the reply address, and the
/// receiver of why the consumer ended.
async fn reply_consumer(
    connection: &Connection,
    mode: ReplyMode,
    pending: &Arc<Pending>,
    ids: &CorrelationIds,
) -> Result<(Channel, String, Lost)> {
    if mode == ReplyMode::DirectReplyTo {
        let channel = confirm_channel(connection).await?;
        let (sink, lost) = ReplySink::new(pending, ids);
        match channel
            .consume(wire::DIRECT_REPLY_TO, true, Box::new(sink))
            .await
        {
            Ok(_) => return Ok((channel, wire::DIRECT_REPLY_TO.to_owned(), lost)),
            Err(e) => {
                warn!(error = %e, "direct reply-to refused; using an exclusive reply queue")
            }
        }
    }
    let channel = confirm_channel(connection).await?;
    let flags = DeclareFlags {
        exclusive: true,
        auto_delete: true,
        ..Default::default()
    };
    let name = channel
        .queue_declare("", flags, FieldTable::default())
        .await
        .map_err(Error::amqp)?;
    let (sink, lost) = ReplySink::new(pending, ids);
    channel
        .consume(&name, true, Box::new(sink))
        .await
        .map_err(Error::amqp)?;
    Ok((channel, name, lost))
}

async fn confirm_channel(connection: &Connection) -> Result<Channel> {
    let channel = connection.open_channel().await.map_err(Error::amqp)?;
    channel.confirm_select().await.map_err(Error::amqp)?;
    Ok(channel)
}

/// Hands each reply to its waiting call, on the connection task, and drops replies
/// nobody waits for; a returned request fails its call with `NoRoute`.
struct ReplySink {
    pending: Arc<Pending>,
    ids: CorrelationIds,
    /// Why the consumer ended, for the supervisor.
    lost: Option<oneshot::Sender<String>>,
}

impl ReplySink {
    fn new(pending: &Arc<Pending>, ids: &CorrelationIds) -> (Self, Lost) {
        let (tx, rx) = oneshot::channel();
        let sink = ReplySink {
            pending: Arc::clone(pending),
            ids: ids.clone(),
            lost: Some(tx),
        };
        (sink, rx)
    }
}

impl Sink for ReplySink {
    fn message(&mut self, m: Inbound) {
        match m {
            Inbound::Deliver { props, body, .. } => {
                let cid = props
                    .correlation_id()
                    .as_ref()
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default();
                let Some(seq) = self.ids.parse(&cid) else {
                    debug!(
                        correlation_id = cid,
                        "dropping reply with unknown correlation id"
                    );
                    return;
                };
                let outcome = match wire::reply_status(&props, &body) {
                    Ok(()) => Ok(Reply {
                        content_type: props.content_type().as_ref().map(|s| s.to_string()),
                        headers: props
                            .headers()
                            .as_ref()
                            .map(headers::from_field_table)
                            .unwrap_or_default(),
                        body,
                        correlation_id: cid,
                    }),
                    Err(status) => Err(Error::Remote(status)),
                };
                if !self.pending.complete(seq, outcome) {
                    debug!(seq, "dropping reply to a call that is no longer waiting");
                }
            }
            Inbound::Return {
                reply_code,
                reply_text,
                routing_key,
                props,
            } => {
                let seq = props
                    .correlation_id()
                    .as_ref()
                    .and_then(|c| self.ids.parse(c.as_str()));
                if let Some(seq) = seq {
                    self.pending.complete(
                        seq,
                        Err(Error::NoRoute {
                            queue: routing_key,
                            reply_code,
                            reply_text,
                        }),
                    );
                }
            }
            Inbound::Ended(why) => self.ended(why),
        }
    }

    fn ended(&mut self, why: Ended) {
        let reason = match why {
            Ended::Cancelled => "the broker cancelled the reply consumer".to_owned(),
            Ended::CancelOk => "the reply consumer was cancelled".to_owned(),
            Ended::Failed(e) => format!("the connection to the broker was lost: {e}"),
        };
        if let Some(tx) = self.lost.take() {
            let _ = tx.send(reason);
        }
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

/// Runs sessions one after another until the client is dropped: reads replies,
/// and on loss fails the session's calls, then reconnects with backoff.
pub(crate) async fn supervise(
    settings: Settings,
    mut lost: Lost,
    first_generation: u64,
    pending: Arc<Pending>,
    ids: CorrelationIds,
    sessions: watch::Sender<Option<Arc<Session>>>,
    observer: crate::telemetry::Observer,
) {
    let mut generation = first_generation;
    loop {
        let reason = lost
            .await
            .unwrap_or_else(|_| "the connection to the broker was lost".to_owned());
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
        lost = loop {
            if sessions.is_closed() {
                return;
            }
            tokio::time::sleep(settings.backoff.delay(attempt)).await;
            attempt = attempt.saturating_add(1);
            match establish(&settings, generation + 1, &pending, &ids).await {
                Ok((session, lost)) => {
                    generation += 1;
                    info!(generation, attempt, "client reconnected");
                    observer.reconnected(crate::telemetry::Side::Client);
                    pending.session_up(generation);
                    sessions.send_replace(Some(Arc::new(session)));
                    break lost;
                }
                Err(e) => debug!(attempt, error = %e, "reconnection failed"),
            }
        };
    }
}
