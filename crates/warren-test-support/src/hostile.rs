//! Hostile peers for deadline tests, all on loopback and all stopped when dropped:
//!
//! - [`BlackHole`]: accepts TCP connections and never writes a byte.
//! - [`FullBacklog`]: a listener whose accept queue is full, so a TCP connect to it
//!   never completes (the kernel drops the SYNs).
//! - [`ScriptedPeer`]: speaks AMQP up to a chosen step of the handshake, then goes
//!   silent (keeps the socket open and reads, but never answers).
//! - [`Proxy`]: forwards to a real broker and can be frozen (stops forwarding both
//!   ways, like a broker stopped with SIGSTOP) or severed (closes every connection,
//!   like a broker that died).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// An AMQP URL for a peer on `addr`.
pub fn url_of(addr: SocketAddr) -> String {
    format!("amqp://guest:guest@{addr}/%2f")
}

/// Accepts connections and holds them open, silent, until dropped.
pub struct BlackHole {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl BlackHole {
    pub async fn start() -> BlackHole {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        BlackHole { addr, task }
    }

    pub fn url(&self) -> String {
        url_of(self.addr)
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A listener with a backlog of 0 that never accepts, its queue already full: a TCP
/// connect to it hangs in SYN-SENT until it gives up.
pub struct FullBacklog {
    pub addr: SocketAddr,
    _listener: TcpListener,
    _fillers: Vec<TcpStream>,
}

impl FullBacklog {
    pub async fn start() -> FullBacklog {
        let socket = TcpSocket::new_v4().expect("a TCP socket");
        socket
            .bind("127.0.0.1:0".parse().expect("an address"))
            .expect("bind a loopback port");
        let listener = socket.listen(0).expect("listen with a backlog of 0");
        let addr = listener.local_addr().expect("local address");
        let mut fillers = Vec::new();
        for _ in 0..3 {
            if let Ok(Ok(s)) =
                tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(addr)).await
            {
                fillers.push(s);
            }
        }
        assert!(
            !fillers.is_empty(),
            "the first connect fills the accept queue"
        );
        assert!(
            tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(addr))
                .await
                .is_err(),
            "a connect to a full accept queue must hang"
        );
        FullBacklog {
            addr,
            _listener: listener,
            _fillers: fillers,
        }
    }

    pub fn url(&self) -> String {
        url_of(self.addr)
    }
}

/// How far a [`ScriptedPeer`] goes before it falls silent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SilentAfter {
    /// Reads the protocol header, sends nothing.
    ProtocolHeader,
    /// Sends `connection.start`, reads `start-ok`, then nothing (no `tune`).
    StartOk,
    /// Completes the handshake up to `connection.open-ok`, then answers nothing
    /// (no `channel.open-ok`).
    OpenOk,
}

/// A fake AMQP broker that stops answering at a chosen step.
pub struct ScriptedPeer {
    pub addr: SocketAddr,
    /// Connections that reached the silent step.
    pub silenced: Arc<Mutex<usize>>,
    task: JoinHandle<()>,
}

impl ScriptedPeer {
    pub async fn start(silent_after: SilentAfter) -> ScriptedPeer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let silenced = Arc::new(Mutex::new(0));
        let counter = Arc::clone(&silenced);
        let task = tokio::spawn(async move {
            let mut peers = JoinSet::new();
            while let Ok((socket, _)) = listener.accept().await {
                peers.spawn(script(socket, silent_after, Arc::clone(&counter)));
            }
        });
        ScriptedPeer {
            addr,
            silenced,
            task,
        }
    }

    pub fn url(&self) -> String {
        url_of(self.addr)
    }

    pub fn silenced(&self) -> usize {
        *self.silenced.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for ScriptedPeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn script(mut socket: TcpStream, silent_after: SilentAfter, silenced: Arc<Mutex<usize>>) {
    let _ = handshake(&mut socket, silent_after).await;
    *silenced.lock().unwrap_or_else(|e| e.into_inner()) += 1;
    // Silent: keep reading (so the client can write) and never answer.
    let mut sink = [0u8; 4096];
    while let Ok(n) = socket.read(&mut sink).await {
        if n == 0 {
            break;
        }
    }
}

async fn handshake(socket: &mut TcpStream, silent_after: SilentAfter) -> std::io::Result<()> {
    let mut header = [0u8; 8];
    socket.read_exact(&mut header).await?;
    if silent_after == SilentAfter::ProtocolHeader {
        return Ok(());
    }
    // connection.start: version 0-9, no server properties, PLAIN, en_US.
    let mut start = vec![0, 9];
    start.extend_from_slice(&0u32.to_be_bytes());
    long_str(&mut start, b"PLAIN");
    long_str(&mut start, b"en_US");
    send_method(socket, 10, 10, &start).await?;
    expect_method(socket, 10, 11).await?;
    if silent_after == SilentAfter::StartOk {
        return Ok(());
    }
    // connection.tune: channel_max 2047, frame_max 131072, heartbeat 0.
    let mut tune = Vec::new();
    tune.extend_from_slice(&2047u16.to_be_bytes());
    tune.extend_from_slice(&131_072u32.to_be_bytes());
    tune.extend_from_slice(&0u16.to_be_bytes());
    send_method(socket, 10, 30, &tune).await?;
    expect_method(socket, 10, 31).await?;
    expect_method(socket, 10, 40).await?;
    // connection.open-ok: one empty short string.
    send_method(socket, 10, 41, &[0]).await
}

fn long_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&u32::try_from(s.len()).unwrap_or(0).to_be_bytes());
    out.extend_from_slice(s);
}

async fn send_method(
    socket: &mut TcpStream,
    class: u16,
    method: u16,
    args: &[u8],
) -> std::io::Result<()> {
    let mut payload = Vec::with_capacity(4 + args.len());
    payload.extend_from_slice(&class.to_be_bytes());
    payload.extend_from_slice(&method.to_be_bytes());
    payload.extend_from_slice(args);
    let mut frame = vec![1u8, 0, 0];
    frame.extend_from_slice(&u32::try_from(payload.len()).unwrap_or(0).to_be_bytes());
    frame.extend_from_slice(&payload);
    frame.push(0xCE);
    socket.write_all(&frame).await
}

/// Reads frames until a method frame `class.method` on channel 0 (skipping heartbeats).
async fn expect_method(socket: &mut TcpStream, class: u16, method: u16) -> std::io::Result<()> {
    loop {
        let mut head = [0u8; 7];
        socket.read_exact(&mut head).await?;
        let size = u32::from_be_bytes([head[3], head[4], head[5], head[6]]) as usize;
        let mut body = vec![0u8; size + 1];
        socket.read_exact(&mut body).await?;
        if head[0] == 1 && size >= 4 {
            let got = (
                u16::from_be_bytes([body[0], body[1]]),
                u16::from_be_bytes([body[2], body[3]]),
            );
            if got == (class, method) {
                return Ok(());
            }
            return Err(std::io::Error::other(format!(
                "expected method {class}.{method}, got {}.{}",
                got.0, got.1
            )));
        }
    }
}

/// A TCP proxy in front of a broker: [`Proxy::freeze`] stops all forwarding (the
/// sockets stay open, like a broker stopped with SIGSTOP), [`Proxy::thaw`] resumes it,
/// [`Proxy::sever`] closes every connection made so far (like a broker that died).
pub struct Proxy {
    pub addr: SocketAddr,
    frozen: watch::Sender<bool>,
    severed: watch::Sender<u64>,
    task: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let (frozen, frozen_rx) = watch::channel(false);
        let (severed, severed_rx) = watch::channel(0u64);
        let task = tokio::spawn(async move {
            let mut links = JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let (frozen, mut severed) = (frozen_rx.clone(), severed_rx.clone());
                severed.mark_unchanged();
                links.spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::select! {
                        _ = pump(cr, sw, frozen.clone()) => {}
                        _ = pump(sr, cw, frozen) => {}
                        _ = severed.changed() => {}
                    }
                });
            }
        });
        Proxy {
            addr,
            frozen,
            severed,
            task,
        }
    }

    pub fn url(&self) -> String {
        url_of(self.addr)
    }

    pub fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    pub fn thaw(&self) {
        self.frozen.send_replace(false);
    }

    pub fn sever(&self) {
        self.severed.send_modify(|n| *n += 1);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies `from` to `to`, neither reading nor writing while frozen.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut frozen: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if frozen.wait_for(|f| !*f).await.is_err() {
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if frozen.wait_for(|f| !*f).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
