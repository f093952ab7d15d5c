//! What a channel tells the management API about itself: its prefetch, modes,
//! unacknowledged messages and consumers, as a [`ChannelInfo`].

use super::Channel;
use crate::stats::info::{ChannelInfo, ConsumerInfo};

impl Channel {
    /// A description of this channel for a stats snapshot.
    pub(crate) fn describe(&self) -> ChannelInfo {
        let consumers = self
            .consumers
            .iter()
            .map(|(tag, c)| ConsumerInfo {
                tag: tag.to_string(),
                queue: c.queue.name.clone(),
                ack_required: !c.no_ack,
                exclusive: false,
                prefetch_count: if c.no_ack { 0 } else { self.prefetch },
            })
            .collect();
        ChannelInfo {
            number: self.id,
            prefetch_count: self.prefetch,
            confirm: self.confirm,
            transactional: self.tx.is_some(),
            messages_unacknowledged: self.unacked.len(),
            messages_unconfirmed: self.confirms.len(),
            consumers,
        }
    }
}
