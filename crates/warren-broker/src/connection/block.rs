//! A connection's side of the resource alarms: the state machine that tells a
//! publishing client `connection.blocked` / `unblocked` and pauses reading it.

use crate::alarm::{Active, Alarms};
use crate::frame::Out;
use crate::message::short;
use amq_protocol::protocol::{connection, AMQPClass};
use std::sync::Arc;
use tokio::sync::watch;

/// A connection's side of the resource alarms (memory, disk), as RabbitMQ applies
/// them: while any alarm is on, a connection that publishes is told
/// `connection.blocked` (if it announced the capability) and, once it has sent the
/// last frame of a message, is no longer read from until every alarm clears; then
/// it is told `connection.unblocked`. Connections that only consume go on.
///
/// Reads pause only between messages, as RabbitMQ's reader does: a message cut off
/// mid-body would hold its memory without ever reaching a queue, so consumers
/// could never drain what raised the alarm (a 24 MiB body publish hung pika).
pub(super) struct Block {
    /// The alarms (their current state) and a receiver for their changes; the
    /// alarms own the sender, so the receiver never sees it closed.
    alarms: Arc<Alarms>,
    pub(super) alarm: watch::Receiver<Active>,
    /// The client announced the `connection.blocked` capability.
    pub(super) notify: bool,
    /// The connection has published at least once.
    publisher: bool,
    /// `connection.blocked` was sent and not yet followed by `unblocked`.
    told: bool,
    /// We stopped reading the socket.
    pub(super) reads_paused: bool,
}

impl Block {
    pub(super) fn new(alarms: Arc<Alarms>) -> Self {
        Self {
            alarm: alarms.subscribe(),
            alarms,
            notify: false,
            publisher: false,
            told: false,
            reads_paused: false,
        }
    }

    pub(super) fn tell(&mut self, out: &mut Out, blocked: bool) {
        if !self.notify || self.told == blocked {
            return;
        }
        self.told = blocked;
        let method = if blocked {
            connection::AMQPMethod::Blocked(connection::Blocked {
                reason: short(self.alarms.active().reason()),
            })
        } else {
            connection::AMQPMethod::Unblocked(connection::Unblocked {})
        };
        out.method(0, AMQPClass::Connection(method));
    }

    /// A basic.publish arrived.
    pub(super) fn published(&mut self, out: &mut Out) {
        self.publisher = true;
        if self.alarms.any() {
            self.tell(out, true);
        }
    }

    /// Whether any alarm is on now.
    pub(super) fn alarmed(&self) -> bool {
        self.alarms.any()
    }

    /// A frame of message content (a body frame, or the header of an empty body)
    /// was handled; `pause` if it was the message's last and an alarm was on when it
    /// arrived. Stop reading if an alarm is (still) on.
    pub(super) fn content_read(&mut self, pause: bool) {
        if pause && self.alarms.any() {
            self.reads_paused = true;
        }
    }

    /// The set of active alarms changed.
    pub(super) fn alarm_changed(&mut self, active: Active, out: &mut Out) {
        if !active.is_clear() {
            if self.publisher {
                self.tell(out, true);
            }
        } else {
            self.reads_paused = false;
            self.tell(out, false);
        }
    }
}
