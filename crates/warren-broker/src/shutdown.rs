//! Graceful-shutdown signal shared by the accept loop and connections.
//!
//! Built on a `watch` channel so that a listener created after the signal
//! was sent still observes it.

use tokio::sync::watch;

/// Sends the shutdown signal.
pub(crate) type Notifier = watch::Sender<bool>;

/// Listens for the broker's shutdown signal.
#[derive(Debug, Clone)]
pub(crate) struct Shutdown {
    is_shutdown: bool,
    notify: watch::Receiver<bool>,
}

impl Shutdown {
    /// Subscribe to a notifier.
    pub(crate) fn new(notifier: &Notifier) -> Self {
        Self {
            is_shutdown: false,
            notify: notifier.subscribe(),
        }
    }

    /// Whether the signal was already received.
    pub(crate) fn is_shutdown(&self) -> bool {
        self.is_shutdown
    }

    /// Wait for the signal (returns immediately if already sent).
    pub(crate) async fn recv(&mut self) {
        if self.is_shutdown {
            return;
        }
        let _ = self.notify.wait_for(|v| *v).await;
        self.is_shutdown = true;
    }
}
