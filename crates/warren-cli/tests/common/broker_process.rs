//! A `warren broker` child process for the CLI's tests: started with the flags a test
//! gives (on a free loopback port unless it says `--listen`), ready once it printed
//! its ` [*] Warren broker listening on ADDR (...)` line, and never left behind:
//! dropping it continues it (if stopped) and kills it.
//!
//! A module of `tests/common` (`mod common; use common::broker_process;`).
#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The `warren` binary under test.
pub const WARREN: &str = env!("CARGO_BIN_EXE_warren");

/// How long a broker may take to print its ready line.
pub const READY_WITHIN: Duration = Duration::from_secs(30);

/// How long a broker may take to exit after SIGTERM.
pub const STOP_WITHIN: Duration = Duration::from_secs(20);

/// A running `warren broker` process.
pub struct BrokerProcess {
    child: Child,
    addr: SocketAddr,
    ready_line: String,
    /// Killed or exited and waited for: nothing left to clean up.
    gone: bool,
}

impl BrokerProcess {
    /// `warren broker --listen 127.0.0.1:0`, with no other flag.
    pub fn start_default() -> BrokerProcess {
        BrokerProcess::start(std::iter::empty::<&str>())
    }

    /// `warren broker ARGS` (with `--listen 127.0.0.1:0` unless ARGS has `--listen`),
    /// stderr discarded; panics if it does not come up.
    pub fn start<I, S>(args: I) -> BrokerProcess
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        BrokerProcess::spawn(BrokerProcess::command(args)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The command line [`start`](Self::start) runs, for a test that sets stderr or the
    /// environment before [`spawn`](Self::spawn)ing it.
    pub fn command<I, S>(args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let mut command = Command::new(WARREN);
        command.arg("broker");
        if !args.iter().any(|a| a == "--listen") {
            command.args(["--listen", "127.0.0.1:0"]);
        }
        command.args(args).stderr(Stdio::null());
        command
    }

    /// Runs `command` (a `warren broker` command line) and waits for its ready line.
    /// The error says what the process printed, or how it exited.
    pub fn spawn(mut command: Command) -> Result<BrokerProcess, String> {
        let mut child = command
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("warren broker does not start: {e}"))?;
        let line = child
            .stdout
            .take()
            .map(read_first_line)
            .unwrap_or_else(|| Err("no stdout to read".to_owned()));
        let addr = line.as_deref().ok().and_then(parse_ready_line);
        match (line, addr) {
            (Ok(ready_line), Some(addr)) => Ok(BrokerProcess {
                child,
                addr,
                ready_line,
                gone: false,
            }),
            (line, _) => {
                let _ = child.kill();
                let status = child.wait().ok();
                Err(format!(
                    "the broker did not come up (exit {status:?}); its first line: {line:?}"
                ))
            }
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Its AMQP URL (user guest, vhost `/`).
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@{}/%2f", self.addr)
    }

    /// The line it printed when it was ready (it names the memory limit too).
    pub fn ready_line(&self) -> &str {
        &self.ready_line
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (`-STOP`, `-CONT`, `-TERM`, ...) with `kill`.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} {} failed", self.pid());
    }

    /// SIGSTOP: the process keeps its sockets but stops reading and writing them.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGKILL, and wait for it: the kernel closes its sockets and drops its locks.
    pub fn kill9(&mut self) {
        self.signal("-KILL");
        let _ = self.child.wait();
        self.gone = true;
    }

    /// SIGTERM, then wait (at most [`STOP_WITHIN`]) for a clean exit (status 0).
    pub fn stop(&mut self) {
        self.signal("-TERM");
        let deadline = Instant::now() + STOP_WITHIN;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.gone = true;
                assert!(status.success(), "a clean stop exits 0, got {status}");
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the broker did not stop within {STOP_WITHIN:?} of SIGTERM");
    }

    /// A lapin connection to it.
    pub async fn connect(&self) -> lapin::Connection {
        lapin::Connection::connect(&self.url(), lapin::ConnectionProperties::default())
            .await
            .expect("connects to the broker")
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        if self.gone {
            return;
        }
        let _ = Command::new("kill")
            .args(["-CONT", &self.pid().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address in a ready line ` [*] Warren broker listening on ADDR (...)`.
pub fn parse_ready_line(line: &str) -> Option<SocketAddr> {
    let (_, rest) = line.split_once("listening on ")?;
    rest.split_whitespace().next()?.parse().ok()
}

/// The first line `out` gives within [`READY_WITHIN`].
pub fn read_first_line(out: std::process::ChildStdout) -> Result<String, String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let read = BufReader::new(out).read_line(&mut line).map(|_| line);
        let _ = tx.send(read);
    });
    match rx.recv_timeout(READY_WITHIN) {
        Ok(Ok(line)) => Ok(line),
        Ok(Err(e)) => Err(format!("stdout unreadable: {e}")),
        Err(_) => Err(format!("no line within {READY_WITHIN:?}")),
    }
}
