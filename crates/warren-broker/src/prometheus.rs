//! Prometheus text exposition of a stats [`Snapshot`], under the names RabbitMQ's
//! `rabbitmq_prometheus` plugin (3.10) gives the same quantities, so dashboards and
//! alerts written for RabbitMQ read the embedded broker too. Queue metrics carry the
//! `vhost` and `queue` labels of the plugin's per-object mode; the global message
//! counters carry `protocol="amqp091"` (and `queue_type="rabbit_classic_queue"` where
//! the plugin splits by queue type: every Warren queue is a classic queue).
//!
//! Rendering is a pure function of the snapshot; serving it over HTTP is the
//! caller's (the `warren broker --metrics-listen` command, or a library user's own
//! server), so this crate takes no HTTP dependency.

use crate::stats::{QueueInfo, Snapshot};
use std::fmt::Write;

/// The content type of the text this module renders (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Labels of the global counters the plugin splits by queue type.
const CLASSIC: &str = "protocol=\"amqp091\",queue_type=\"rabbit_classic_queue\"";
/// A per-queue gauge: its name, help text and how to read it from a queue.
type QueueGauge = (&'static str, &'static str, fn(&QueueInfo) -> u64);

/// Labels of the global counters the plugin splits by protocol only.
const AMQP: &str = "protocol=\"amqp091\"";

/// Renders `snapshot` as Prometheus text.
pub fn render(snapshot: &Snapshot) -> String {
    let mut out = String::with_capacity(1024 + 256 * snapshot.queues.len());
    let o = &snapshot.overview;
    let channels: usize = snapshot.connections.iter().map(|c| c.channels.len()).sum();
    gauge(
        &mut out,
        "rabbitmq_connections",
        "Connections currently open",
        o.connections as u64,
    );
    gauge(
        &mut out,
        "rabbitmq_channels",
        "Channels currently open",
        channels as u64,
    );
    gauge(
        &mut out,
        "rabbitmq_consumers",
        "Consumers currently connected",
        o.consumers as u64,
    );
    gauge(
        &mut out,
        "rabbitmq_queues",
        "Queues available",
        o.queues as u64,
    );

    let t = &o.message_stats.totals;
    let counters: [(&str, &str, &str, u64); 9] = [
        ("received", "Total number of messages received from publishers", AMQP, t.publish),
        ("confirmed", "Total number of messages confirmed to publishers", AMQP, t.confirm),
        ("unroutable_returned", "Total number of messages returned to publishers as unroutable", AMQP, t.return_unroutable),
        ("unroutable_dropped", "Total number of messages published as non-mandatory into an exchange and dropped as unroutable", AMQP, t.drop_unroutable),
        ("delivered", "Total number of messages delivered to consumers", CLASSIC, t.deliver_get()),
        ("delivered_consume_manual_ack", "Total number of messages delivered to consumers using basic.consume with manual acknowledgment", CLASSIC, t.deliver),
        ("delivered_consume_auto_ack", "Total number of messages delivered to consumers using basic.consume with automatic acknowledgment", CLASSIC, t.deliver_no_ack),
        ("redelivered", "Total number of messages redelivered to consumers", CLASSIC, t.redeliver),
        ("acknowledged", "Total number of messages acknowledged by consumers", CLASSIC, t.ack),
    ];
    for (name, help, labels, value) in counters {
        let name = format!("rabbitmq_global_messages_{name}_total");
        header(&mut out, &name, help, "counter");
        let _ = writeln!(out, "{name}{{{labels}}} {value}");
    }
    let gets = [
        (
            "delivered_get_manual_ack",
            "Total number of messages fetched with basic.get in manual acknowledgement mode",
            t.get,
        ),
        (
            "delivered_get_auto_ack",
            "Total number of messages fetched with basic.get in automatic acknowledgement mode",
            t.get_no_ack,
        ),
    ];
    for (name, help, value) in gets {
        let name = format!("rabbitmq_global_messages_{name}_total");
        header(&mut out, &name, help, "counter");
        let _ = writeln!(out, "{name}{{{CLASSIC}}} {value}");
    }

    let per_queue: [QueueGauge; 4] = [
        (
            "rabbitmq_queue_messages_ready",
            "Messages ready to be delivered to consumers",
            |q| q.messages_ready,
        ),
        (
            "rabbitmq_queue_messages_unacked",
            "Messages delivered to consumers but not yet acknowledged",
            |q| q.messages_unacknowledged,
        ),
        (
            "rabbitmq_queue_messages_ready_bytes",
            "Size in bytes of ready messages",
            |q| q.message_bytes_ready,
        ),
        ("rabbitmq_queue_consumers", "Consumers on a queue", |q| {
            q.consumers as u64
        }),
    ];
    for (name, help, value) in per_queue {
        header(&mut out, name, help, "gauge");
        for q in &snapshot.queues {
            let _ = writeln!(
                out,
                "{name}{{vhost=\"{}\",queue=\"{}\"}} {}",
                escape(&q.vhost),
                escape(&q.name),
                value(q)
            );
        }
    }
    out
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    header(out, name, help, "gauge");
    let _ = writeln!(out, "{name} {value}");
}

/// A label value as the text format wants it: `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{MessageStats, MessageTotals, Overview};
    use std::time::SystemTime;

    fn snapshot() -> Snapshot {
        let totals = MessageTotals {
            publish: 7,
            deliver: 4,
            get: 1,
            ack: 3,
            ..MessageTotals::default()
        };
        let queue = |name: &str, ready, unacked, consumers| QueueInfo {
            vhost: "/".into(),
            name: name.into(),
            durable: false,
            auto_delete: false,
            exclusive_owner: None,
            arguments: Vec::new(),
            messages_ready: ready,
            messages_unacknowledged: unacked,
            message_bytes_ready: ready * 10,
            consumers,
            message_stats: MessageStats::default(),
        };
        Snapshot {
            overview: Overview {
                message_stats: MessageStats {
                    totals,
                    ..MessageStats::default()
                },
                messages_ready: 5,
                messages_unacknowledged: 2,
                queues: 2,
                exchanges: 7,
                consumers: 1,
                connections: 0,
                memory_used: 0,
                memory_limit: None,
                alarm: false,
                started: SystemTime::UNIX_EPOCH,
                listener: "127.0.0.1:5672".parse().unwrap(),
                vhosts: vec!["/".into()],
                samples: Vec::new(),
            },
            queues: vec![queue("jobs", 5, 2, 1), queue("we\"ird\\q", 0, 0, 0)],
            exchanges: Vec::new(),
            bindings: Vec::new(),
            connections: Vec::new(),
        }
    }

    #[test]
    fn renders_rabbitmq_prometheus_names_and_per_object_labels() {
        let text = render(&snapshot());
        for line in [
            "rabbitmq_connections 0",
            "rabbitmq_channels 0",
            "rabbitmq_consumers 1",
            "rabbitmq_queues 2",
            "rabbitmq_global_messages_received_total{protocol=\"amqp091\"} 7",
            "rabbitmq_global_messages_delivered_total{protocol=\"amqp091\",queue_type=\"rabbit_classic_queue\"} 5",
            "rabbitmq_global_messages_acknowledged_total{protocol=\"amqp091\",queue_type=\"rabbit_classic_queue\"} 3",
            "rabbitmq_queue_messages_ready{vhost=\"/\",queue=\"jobs\"} 5",
            "rabbitmq_queue_messages_unacked{vhost=\"/\",queue=\"jobs\"} 2",
            "rabbitmq_queue_consumers{vhost=\"/\",queue=\"jobs\"} 1",
            "rabbitmq_queue_messages_ready{vhost=\"/\",queue=\"we\\\"ird\\\\q\"} 0",
            "# TYPE rabbitmq_queue_messages_ready gauge",
            "# TYPE rabbitmq_global_messages_received_total counter",
        ] {
            assert!(text.lines().any(|l| l == line), "missing `{line}` in\n{text}");
        }
    }

    #[test]
    fn every_sample_has_one_type_line_before_it() {
        let text = render(&snapshot());
        let mut typed = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap_or_default();
                assert!(typed.insert(name.to_owned()), "{name} typed twice");
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap_or_default();
                assert!(typed.contains(name), "{name} has no TYPE line before it");
            }
        }
    }
}
