//! Direct reply-to (`amq.rabbitmq.reply-to`): a pseudo-queue whose
//! deliveries go straight to the consuming channel, addressed by a unique
//! `amq.rabbitmq.reply-to.<token>` routing key.

use crate::event::{ConnEvent, Inbox};
use crate::message::{random_token, Message};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// The pseudo-queue name clients consume from and put in `reply_to`.
pub(crate) const REPLY_TO: &str = "amq.rabbitmq.reply-to";
/// The prefix of per-channel reply addresses.
pub(crate) const REPLY_TO_PREFIX: &str = "amq.rabbitmq.reply-to.";

/// Where replies for one token go.
#[derive(Debug, Clone)]
struct Target {
    tx: Inbox,
    channel: u16,
    consumer_tag: Arc<str>,
}

/// Registry of live direct reply-to consumers.
#[derive(Debug, Default)]
pub(crate) struct ReplyRegistry {
    targets: RwLock<HashMap<String, Target>>,
}

impl ReplyRegistry {
    /// Register a reply consumer; returns its token.
    pub(crate) fn register(&self, tx: Inbox, channel: u16, consumer_tag: Arc<str>) -> String {
        let token = random_token(24);
        let mut map = match self.targets.write() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        map.insert(
            token.clone(),
            Target {
                tx,
                channel,
                consumer_tag,
            },
        );
        token
    }

    /// Forget a token.
    pub(crate) fn unregister(&self, token: &str) {
        let mut map = match self.targets.write() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        map.remove(token);
    }

    /// Deliver a message published to `amq.rabbitmq.reply-to.<token>`.
    /// Returns false if no such consumer exists any more.
    pub(crate) fn deliver(&self, routing_key: &str, msg: Arc<Message>) -> bool {
        let Some(token) = routing_key.strip_prefix(REPLY_TO_PREFIX) else {
            return false;
        };
        let target = {
            let map = match self.targets.read() {
                Ok(m) => m,
                Err(p) => p.into_inner(),
            };
            map.get(token).cloned()
        };
        match target {
            Some(t) => {
                t.tx.send(ConnEvent::DirectReply {
                    channel: t.channel,
                    consumer_tag: t.consumer_tag,
                    msg,
                })
                .is_ok()
            }
            None => false,
        }
    }
}
