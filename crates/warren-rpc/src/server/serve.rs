//! Serving one request queue: its consumer's deliveries each become a task that
//! builds the [`Request`], skips it if its deadline passed, runs the handler (a panic
//! or a deadline overrun becomes an error status), publishes the reply to `reply_to`
//! and finally acks. On shutdown the consumer is cancelled, deliveries already on the
//! wire are taken, and every request started is finished before the channel closes.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use amq_protocol::protocol::BasicProperties;
use futures_util::FutureExt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{debug, warn};

use super::acks::Acks;
use crate::amqp::{Channel, Ended, Inbound};
use crate::connect::DEFAULT_SHUTDOWN_TIMEOUT;
use crate::context::{Context, Request, Response};
use crate::error::{Error, Result};
use crate::handler::Handler;
use crate::headers;
use crate::status::{Code, Status};
use crate::telemetry::Observer;
use crate::wire;

/// How long shutdown waits for deliveries still on the wire after cancelling.
const CANCEL_GRACE: Duration = Duration::from_secs(2);

/// A queue's consumer: its channel, its tag and its deliveries.
pub(super) struct Consumer {
    pub(super) channel: Channel,
    pub(super) tag: String,
    pub(super) queue: Arc<str>,
    pub(super) deliveries: mpsc::UnboundedReceiver<Inbound>,
}

/// One request as it came off the wire.
struct Delivery {
    tag: u64,
    redelivered: bool,
    props: BasicProperties,
    body: Vec<u8>,
}

pub(super) async fn serve_queue(
    consumer: Consumer,
    handler: Arc<dyn Handler>,
    mut stop: watch::Receiver<bool>,
    blocked: watch::Receiver<bool>,
    observer: Observer,
) -> Result<()> {
    let Consumer {
        channel,
        tag,
        queue,
        mut deliveries,
    } = consumer;
    let mut in_flight = JoinSet::new();
    let acks = Acks::new(channel.clone());
    let spawn = |in_flight: &mut JoinSet<()>, delivery: Delivery| {
        acks.received(delivery.tag);
        in_flight.spawn(process(
            channel.clone(),
            Arc::clone(&handler),
            delivery,
            blocked.clone(),
            acks.clone(),
            (observer.clone(), Arc::clone(&queue)),
        ));
    };
    let cancelled = || Error::Unavailable {
        reason: format!("the broker cancelled the consumer of `{queue}`"),
    };
    let outcome = loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break Ok(()),
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            next = deliveries.recv() => match next {
                Some(Inbound::Deliver { delivery_tag, redelivered, props, body }) => {
                    spawn(&mut in_flight, Delivery { tag: delivery_tag, redelivered, props, body });
                }
                Some(Inbound::Return { .. }) => {}
                Some(Inbound::Ended(Ended::Failed(e))) => break Err(Error::amqp(e)),
                Some(Inbound::Ended(_)) | None => break Err(cancelled()),
            }
        }
    };
    // Whether the broker still answers: once it misses the cancel's bound, the
    // channel's close is not waited for either.
    let mut answering = outcome.is_ok();
    if answering {
        // Stop new deliveries; take those already on the wire, then drain.
        match tokio::time::timeout(DEFAULT_SHUTDOWN_TIMEOUT, channel.cancel(&tag)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => debug!(error = %e, "cancelling the consumer"),
            Err(_) => {
                warn!("the broker did not confirm the consumer's cancel in time");
                answering = false;
            }
        }
        if answering {
            while let Ok(Some(Inbound::Deliver {
                delivery_tag,
                redelivered,
                props,
                body,
            })) = tokio::time::timeout(CANCEL_GRACE, deliveries.recv()).await
            {
                let delivery = Delivery {
                    tag: delivery_tag,
                    redelivered,
                    props,
                    body,
                };
                spawn(&mut in_flight, delivery);
            }
        }
    }
    while in_flight.join_next().await.is_some() {}
    if answering {
        // Close the channel ourselves before the connection goes, so no channel is
        // left closing while the connection closes.
        let close = channel.close(200, "server shutting down");
        match tokio::time::timeout(DEFAULT_SHUTDOWN_TIMEOUT, close).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => debug!(error = %e, "closing the channel"),
            Err(_) => debug!("the broker did not confirm the channel's close in time"),
        }
    }
    outcome
}

fn request_of(delivery: &mut Delivery) -> Request {
    let props = &delivery.props;
    Request {
        context: Context {
            correlation_id: props.correlation_id().as_ref().map(|s| s.to_string()),
            deadline: wire::deadline_of(props),
            reply_to: props.reply_to().as_ref().map(|s| s.to_string()),
            redelivered: delivery.redelivered,
            headers: props
                .headers()
                .as_ref()
                .map(headers::from_field_table)
                .unwrap_or_default(),
        },
        body: std::mem::take(&mut delivery.body),
        content_type: props.content_type().as_ref().map(|s| s.to_string()),
        method: props.kind().as_ref().map(|s| s.to_string()),
    }
}

/// Runs the handler, turning a panic or a deadline overrun into an error status.
async fn run_handler(handler: &dyn Handler, request: Request) -> Result<Response, Status> {
    let remaining = request.context.remaining();
    let work = AssertUnwindSafe(handler.call(request)).catch_unwind();
    let outcome = match remaining {
        Some(left) => match tokio::time::timeout(left, work).await {
            Ok(res) => res,
            Err(_) => {
                return Err(Status::new(
                    Code::DeadlineExceeded,
                    "the call's deadline passed while the server worked on it",
                ))
            }
        },
        None => work.await,
    };
    outcome.unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        warn!(panic = what, "handler panicked");
        Err(Status::internal(format!("the handler panicked: {what}")))
    })
}

async fn process(
    channel: Channel,
    handler: Arc<dyn Handler>,
    mut delivery: Delivery,
    mut blocked: watch::Receiver<bool>,
    acks: Acks,
    (observer, queue): (Observer, Arc<str>),
) {
    let request = request_of(&mut delivery);
    let reply_to = request.context.reply_to.clone();
    if request.context.is_expired() {
        observer.request_expired(&queue, request.context.correlation_id.as_deref());
    } else {
        let headers = delivery.props.headers().as_ref();
        let scope = observer.serve(&queue, request.method.as_deref(), headers);
        if let Some(id) = &request.context.correlation_id {
            scope.correlation_id(id);
        }
        let correlation_id = request.context.correlation_id.clone();
        let result = scope
            .in_context(run_handler(handler.as_ref(), request))
            .await;
        let code = match &result {
            Ok(_) => Code::Ok,
            Err(status) => status.code(),
        };
        scope.finish(&code, correlation_id.as_deref());
        if let Some(reply_to) = reply_to {
            let (body, content_type, code) = match result {
                Ok(resp) => (resp.body, resp.content_type, Code::Ok),
                Err(status) => {
                    debug!(%status, "replying with an error");
                    (
                        status.message().as_bytes().to_vec(),
                        Some("text/plain".to_owned()),
                        status.code(),
                    )
                }
            };
            let props = wire::reply_properties(&delivery.props, content_type.as_deref(), code);
            // Honour connection.blocked: hold the reply until the broker unblocks us.
            let _ = blocked.wait_for(|b| !*b).await;
            // Queue the reply's frames and go on to the ack without waiting for them to
            // be written: the ack is queued behind the reply on the same channel, so a
            // reply that cannot be written leaves its request unacked too.
            if let Err(e) = channel.publish_owned(&reply_to, false, &props, body, false) {
                // Leave the request unacked: the broker redelivers it once this channel closes.
                warn!(error = %e, "could not publish a reply; the request will be redelivered");
                return;
            }
        }
    }
    acks.done(delivery.tag).await;
}
