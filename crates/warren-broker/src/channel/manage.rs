//! Queue and exchange management methods (declare, bind, unbind, purge,
//! delete) on a channel.

use super::{Channel, ConnCtx};
use crate::access::grant::Kind;
use crate::error::AmqpError;
use crate::message::short;
use crate::queue::Purged;
use crate::vhost::{ExchangeDecl, QueueDecl};
use amq_protocol::protocol::{exchange, queue, AMQPClass};

impl Channel {
    pub(super) fn queue(
        &mut self,
        ctx: &mut ConnCtx<'_>,
        m: queue::AMQPMethod,
    ) -> Result<(), AmqpError> {
        use queue::AMQPMethod as Q;
        match m {
            Q::Declare(d) => {
                if !d.passive {
                    // A server-named queue is checked as `amq.gen-` (its prefix).
                    let name = d.queue.as_str();
                    let name = if name.is_empty() { "amq.gen-" } else { name };
                    ctx.grant.configure(Kind::Queue, name)?;
                }
                let declared = ctx.vhost.declare_queue(
                    ctx.conn_id,
                    QueueDecl {
                        name: d.queue.to_string(),
                        passive: d.passive,
                        durable: d.durable,
                        exclusive: d.exclusive,
                        auto_delete: d.auto_delete,
                        arguments: d.arguments,
                    },
                )?;
                let q = declared.queue;
                self.last_queue = Some(q.name.clone());
                if !d.nowait {
                    ctx.out.method(
                        self.id,
                        AMQPClass::Queue(Q::DeclareOk(queue::DeclareOk {
                            queue: short(q.name.as_str()),
                            message_count: declared.counts.messages,
                            consumer_count: declared.counts.consumers,
                        })),
                    );
                }
                Ok(())
            }
            Q::Bind(b) => {
                let name = self.queue_name(b.queue.as_str())?;
                ctx.grant.write(Kind::Queue, &name)?;
                ctx.grant.read(Kind::Exchange, b.exchange.as_str())?;
                ctx.vhost.bind(
                    ctx.conn_id,
                    &name,
                    b.exchange.as_str(),
                    b.routing_key.as_str(),
                    b.arguments,
                )?;
                if !b.nowait {
                    ctx.out
                        .method(self.id, AMQPClass::Queue(Q::BindOk(queue::BindOk {})));
                }
                Ok(())
            }
            Q::Unbind(u) => {
                let name = self.queue_name(u.queue.as_str())?;
                ctx.grant.write(Kind::Queue, &name)?;
                ctx.grant.read(Kind::Exchange, u.exchange.as_str())?;
                ctx.vhost.unbind(
                    ctx.conn_id,
                    &name,
                    u.exchange.as_str(),
                    u.routing_key.as_str(),
                    u.arguments,
                )?;
                ctx.out
                    .method(self.id, AMQPClass::Queue(Q::UnbindOk(queue::UnbindOk {})));
                Ok(())
            }
            Q::Purge(p) => {
                let name = self.queue_name(p.queue.as_str())?;
                ctx.grant.read(Kind::Queue, &name)?;
                let q = ctx.vhost.queue(&name, ctx.conn_id)?;
                let Purged {
                    messages: n,
                    fallout,
                } = q.purge();
                ctx.vhost.settle(&q, fallout);
                if !p.nowait {
                    ctx.out.method(
                        self.id,
                        AMQPClass::Queue(Q::PurgeOk(queue::PurgeOk { message_count: n })),
                    );
                }
                Ok(())
            }
            Q::Delete(d) => {
                let name = self.queue_name(d.queue.as_str())?;
                ctx.grant.configure(Kind::Queue, &name)?;
                let n = ctx
                    .vhost
                    .delete_queue(ctx.conn_id, &name, d.if_unused, d.if_empty)?;
                if !d.nowait {
                    ctx.out.method(
                        self.id,
                        AMQPClass::Queue(Q::DeleteOk(queue::DeleteOk { message_count: n })),
                    );
                }
                Ok(())
            }
            _ => Err(AmqpError::command_invalid(
                "method not allowed from a client",
            )),
        }
    }

    pub(super) fn exchange(
        &mut self,
        ctx: &mut ConnCtx<'_>,
        m: exchange::AMQPMethod,
    ) -> Result<(), AmqpError> {
        use exchange::AMQPMethod as X;
        match m {
            X::Declare(d) => {
                if !d.passive {
                    ctx.grant.configure(Kind::Exchange, d.exchange.as_str())?;
                }
                ctx.vhost.declare_exchange(ExchangeDecl {
                    name: d.exchange.to_string(),
                    kind: d.kind.to_string(),
                    passive: d.passive,
                    durable: d.durable,
                    auto_delete: d.auto_delete,
                    internal: d.internal,
                    arguments: d.arguments,
                })?;
                if !d.nowait {
                    ctx.out.method(
                        self.id,
                        AMQPClass::Exchange(X::DeclareOk(exchange::DeclareOk {})),
                    );
                }
                Ok(())
            }
            X::Delete(d) => {
                ctx.grant.configure(Kind::Exchange, d.exchange.as_str())?;
                ctx.vhost
                    .delete_exchange(d.exchange.as_str(), d.if_unused)?;
                if !d.nowait {
                    ctx.out.method(
                        self.id,
                        AMQPClass::Exchange(X::DeleteOk(exchange::DeleteOk {})),
                    );
                }
                Ok(())
            }
            X::Bind(b) => {
                ctx.grant.write(Kind::Exchange, b.destination.as_str())?;
                ctx.grant.read(Kind::Exchange, b.source.as_str())?;
                ctx.vhost.bind_exchange(
                    b.destination.as_str(),
                    b.source.as_str(),
                    b.routing_key.as_str(),
                    b.arguments,
                    true,
                )?;
                if !b.nowait {
                    ctx.out
                        .method(self.id, AMQPClass::Exchange(X::BindOk(exchange::BindOk {})));
                }
                Ok(())
            }
            X::Unbind(u) => {
                ctx.grant.write(Kind::Exchange, u.destination.as_str())?;
                ctx.grant.read(Kind::Exchange, u.source.as_str())?;
                ctx.vhost.bind_exchange(
                    u.destination.as_str(),
                    u.source.as_str(),
                    u.routing_key.as_str(),
                    u.arguments,
                    false,
                )?;
                if !u.nowait {
                    ctx.out.method(
                        self.id,
                        AMQPClass::Exchange(X::UnbindOk(exchange::UnbindOk {})),
                    );
                }
                Ok(())
            }
            _ => Err(AmqpError::command_invalid(
                "method not allowed from a client",
            )),
        }
    }
}
