//! Transactions (tx.select / commit / rollback): publishes and
//! acknowledgements on a transactional channel are held back until commit.

use super::{requeue_grouped, Channel, ConnCtx, Unacked};
use crate::error::AmqpError;
use crate::message::Message;
use crate::queue::Queue;
use crate::vhost::VHost;
use amq_protocol::protocol::{tx, AMQPClass};
use std::sync::Arc;

/// How a delivery is settled.
#[derive(Debug, Clone, Copy)]
pub(super) enum Settle {
    /// basic.ack.
    Ack,
    /// basic.nack / basic.reject.
    Reject {
        /// Put it back in the queue (else dead-letter or drop).
        requeue: bool,
    },
}

/// Work held back on a transactional channel.
#[derive(Debug, Default)]
pub(super) struct Tx {
    /// Routed publishes: message, target queues, mandatory.
    pub(super) publishes: Vec<(Arc<Message>, Vec<Arc<Queue>>, bool)>,
    /// Settlements with their delivery tags (for rollback).
    acks: Vec<(u64, Unacked, Settle)>,
}

impl Channel {
    /// Settle deliveries now, or at commit on a transactional channel.
    pub(super) fn settle(&mut self, vhost: &VHost, taken: Vec<(u64, Unacked)>, how: Settle) {
        if let Some(tx) = self.tx.as_mut() {
            tx.acks
                .extend(taken.into_iter().map(|(tag, u)| (tag, u, how)));
            return;
        }
        self.apply_settle(vhost, taken.into_iter().map(|(_, u)| u).collect(), how);
    }

    fn apply_settle(&mut self, vhost: &VHost, list: Vec<Unacked>, how: Settle) {
        match how {
            Settle::Ack => {
                for u in list {
                    if let Some(c) = &u.credit {
                        c.release(1);
                    }
                    vhost.forget(&u.queue, &u.msg);
                }
            }
            Settle::Reject { requeue: true } => requeue_grouped(vhost, list),
            Settle::Reject { requeue: false } => {
                for u in list {
                    if let Some(c) = &u.credit {
                        c.release(1);
                    }
                    let fallout = u.queue.reject(u.msg);
                    vhost.settle(&u.queue, fallout);
                }
            }
        }
        self.kick(vhost);
    }

    /// Put settlements held by an open transaction back as unacked.
    pub(super) fn rollback_acks(&mut self) {
        if let Some(tx) = self.tx.as_mut() {
            for (tag, u, _) in std::mem::take(&mut tx.acks) {
                self.unacked.insert(tag, u);
            }
            tx.publishes.clear();
        }
    }

    /// tx.select / tx.commit / tx.rollback.
    pub(super) fn tx_method(
        &mut self,
        ctx: &mut ConnCtx<'_>,
        m: tx::AMQPMethod,
    ) -> Result<(), AmqpError> {
        let not_tx = || AmqpError::precondition("channel is not transactional");
        match m {
            tx::AMQPMethod::Select(_) => {
                if self.confirm {
                    return Err(AmqpError::precondition(
                        "cannot switch from confirm to tx mode",
                    ));
                }
                if self.tx.is_none() {
                    self.tx = Some(Tx::default());
                }
                ctx.out.method(
                    self.id,
                    AMQPClass::Tx(tx::AMQPMethod::SelectOk(tx::SelectOk {})),
                );
            }
            tx::AMQPMethod::Commit(_) => {
                let work = std::mem::take(self.tx.as_mut().ok_or_else(not_tx)?);
                for (msg, queues, mandatory) in work.publishes {
                    self.deliver_routed(ctx, msg, queues, mandatory, None);
                }
                for (_, u, how) in work.acks {
                    self.apply_settle(ctx.vhost, vec![u], how);
                }
                ctx.out.method(
                    self.id,
                    AMQPClass::Tx(tx::AMQPMethod::CommitOk(tx::CommitOk {})),
                );
            }
            tx::AMQPMethod::Rollback(_) => {
                if self.tx.is_none() {
                    return Err(not_tx());
                }
                self.rollback_acks();
                ctx.out.method(
                    self.id,
                    AMQPClass::Tx(tx::AMQPMethod::RollbackOk(tx::RollbackOk {})),
                );
            }
            _ => {
                return Err(AmqpError::command_invalid(
                    "method not allowed from a client",
                ))
            }
        }
        Ok(())
    }
}
