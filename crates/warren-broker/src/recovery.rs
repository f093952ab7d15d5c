//! Rebuilding the vhost's exchanges, queues, bindings and messages from what the
//! durable store recovered, when the broker starts.

use crate::{exchange, message, store, vhost};
use std::sync::Arc;

/// Rebuild exchanges, queues, bindings and messages from the store.
pub(crate) fn recover(vhost: &Arc<vhost::VHost>, rec: store::Recovered) {
    for (name, (kind, auto_delete, internal, args)) in rec.exchanges {
        vhost.recover_exchange(name, &kind, auto_delete, internal, args);
    }
    let mut messages = rec.messages;
    let mut n = 0usize;
    for (name, (auto_delete, args)) in rec.queues {
        let q = vhost.recover_queue(name.clone(), auto_delete, args);
        if let Some(msgs) = messages.remove(&name) {
            for (id, m) in msgs {
                let Ok((_, props)) =
                    amq_protocol::protocol::basic::parse_properties(&m.raw_props[..])
                else {
                    continue;
                };
                let msg =
                    message::Message::new(m.exchange, m.routing_key, props, m.raw_props, m.body)
                        .charged_to(&vhost.memory);
                let fallout = q.enqueue(Arc::new(msg), Some(id));
                vhost.settle(&q, fallout);
                n += 1;
            }
        }
    }
    for (exchange, dest, key, args, to_exchange) in rec.bindings {
        let Some(x) = vhost.exchange(&exchange) else {
            continue;
        };
        if to_exchange {
            if vhost.exchange(&dest).is_some() {
                x.bind(exchange::Dest::Exchange(dest), &key, args);
            }
        } else if let Ok(q) = vhost.queue(&dest, 0) {
            x.bind(exchange::Dest::Queue(q), &key, args);
        }
    }
    tracing::info!(messages = n, "recovered durable state");
}
