//! [`SocketCut`]: a second handle on a connection's TCP socket, so Warren can shut the
//! socket down when it gives up on the connection.
//!
//! Each connection has a task that owns its socket and waits for the peer. When the
//! peer stalls (a black hole, a SIGSTOPped broker) and Warren abandons the connection
//! (a connect or close that ran out of time), nothing would ever wake that task, and a
//! write to a peer that stopped reading can wait forever. Shutting the socket down
//! makes its pending read return end-of-file and its write fail, so the task ends
//! instead of lingering for the life of the process.

use std::net::Shutdown;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tracing::trace;

/// A duplicate of a connection's socket, used only to shut it down. Clones share it.
#[derive(Clone, Default)]
pub(crate) struct SocketCut(Arc<Mutex<Slot>>);

#[derive(Default)]
enum Slot {
    /// No socket yet (the TCP connect is still running).
    #[default]
    Empty,
    /// The duplicate of the connection's socket.
    Armed(std::net::TcpStream),
    /// Cut: a socket armed from now on is shut down at once.
    Cut,
}

impl std::fmt::Debug for SocketCut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &*self.lock() {
            Slot::Empty => "empty",
            Slot::Armed(_) => "armed",
            Slot::Cut => "cut",
        };
        f.debug_tuple("SocketCut").field(&state).finish()
    }
}

impl SocketCut {
    fn lock(&self) -> MutexGuard<'_, Slot> {
        // Only ever a swap: nothing to leave half-done on a panic.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps a duplicate of `stream`'s socket so that [`SocketCut::cut`] can shut it
    /// down. Fails (after shutting the socket down) if the cut already happened: the
    /// connect was given up while its TCP connect was finishing.
    pub(crate) fn arm(&self, stream: &tokio::net::TcpStream) -> std::io::Result<()> {
        let socket = duplicate(stream)?;
        let mut slot = self.lock();
        if matches!(*slot, Slot::Cut) {
            let _ = socket.shutdown(Shutdown::Both);
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "the connection attempt was given up",
            ));
        }
        *slot = Slot::Armed(socket);
        Ok(())
    }

    /// Shuts the socket down in both directions now (once; later calls do nothing).
    /// The duplicate refers to the same socket for as long as it is held, so this can
    /// never hit an unrelated socket that reused a file descriptor number.
    pub(crate) fn cut(&self) {
        let previous = std::mem::replace(&mut *self.lock(), Slot::Cut);
        if let Slot::Armed(socket) = previous {
            trace!("shutting down an abandoned connection's socket");
            // Fails only when the peer already closed it: then there is nothing to do.
            let _ = socket.shutdown(Shutdown::Both);
        }
    }

    /// Cuts after `grace`, leaving time for a `connection.close` already queued to go
    /// out; at once when there is no runtime to wait on.
    pub(crate) fn cut_later(&self, grace: Duration) {
        if matches!(*self.lock(), Slot::Cut) {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let cut = self.clone();
                runtime.spawn(async move {
                    tokio::time::sleep(grace).await;
                    cut.cut();
                });
            }
            Err(_) => self.cut(),
        }
    }
}

#[cfg(unix)]
fn duplicate(stream: &tokio::net::TcpStream) -> std::io::Result<std::net::TcpStream> {
    use std::os::fd::AsFd;
    Ok(std::net::TcpStream::from(
        stream.as_fd().try_clone_to_owned()?,
    ))
}

#[cfg(windows)]
fn duplicate(stream: &tokio::net::TcpStream) -> std::io::Result<std::net::TcpStream> {
    use std::os::windows::io::AsSocket;
    Ok(std::net::TcpStream::from(
        stream.as_socket().try_clone_to_owned()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn cut_ends_the_other_handle_and_is_idempotent() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, server) =
            tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
        let mut client = client.unwrap();
        let _server = server.unwrap();
        let cut = SocketCut::default();
        cut.arm(&client).unwrap();
        cut.cut();
        cut.cut();
        let mut buf = [0u8; 8];
        let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf))
            .await
            .expect("a cut socket reads end-of-file at once")
            .unwrap_or(0);
        assert_eq!(n, 0);
        assert!(format!("{cut:?}").contains("cut"));
        assert!(
            cut.arm(&client).is_err(),
            "arming after the cut shuts the socket down"
        );
    }
}
