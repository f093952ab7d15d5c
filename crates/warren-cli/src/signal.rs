//! Shutdown signals: [`listen`] starts listening for SIGINT (Ctrl-C) and SIGTERM at once,
//! before a command says it is ready, so a signal sent right after the ready line is
//! caught instead of killing the process; [`Shutdown::wait`] resolves on the first one.

/// Listeners for the shutdown signals, registered when made.
pub struct Shutdown {
    #[cfg(unix)]
    signals: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

/// Starts listening for SIGINT and SIGTERM now. Needs a runtime.
pub fn listen() -> Shutdown {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        // If either cannot be registered, `wait` falls back to tokio's Ctrl-C alone.
        let signals = signal(SignalKind::interrupt())
            .and_then(|int| Ok((int, signal(SignalKind::terminate())?)))
            .ok();
        Shutdown { signals }
    }
    #[cfg(not(unix))]
    {
        Shutdown {}
    }
}

impl Shutdown {
    /// Resolves when the process receives SIGINT or SIGTERM.
    pub async fn wait(self) {
        #[cfg(unix)]
        if let Some((mut int, mut term)) = self.signals {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}
