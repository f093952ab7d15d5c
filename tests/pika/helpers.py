"""Helpers shared by the pika test modules: child processes, names, URLs."""
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
TUTORIALS = HERE / "tutorials"
REPO = HERE.parent.parent


# Every name uname() gave out since the last take_unames(): conftest deletes them (as
# queues and as exchanges) from an external broker after each test.
_UNAMES = []


def uname(prefix="t"):
    """A name unique to this call, for queues and exchanges (deleted after the test on an external broker)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    _UNAMES.append(name)
    return name


def take_unames():
    """The names uname() gave out since the last call."""
    names = list(_UNAMES)
    _UNAMES.clear()
    return names


def warren_bin():
    """$WARREN_BIN, else the newest of target/{release,debug}/warren, else None."""
    env = os.environ.get("WARREN_BIN")
    if env:
        return env
    found = [p for p in (REPO / "target/release/warren", REPO / "target/debug/warren") if p.is_file()]
    if not found:
        return None
    return str(max(found, key=lambda p: p.stat().st_mtime))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(host, port, timeout, proc=None):
    """Wait until host:port accepts TCP connections; False on timeout or if proc exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def _default_sigint():
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Proc:
    """A child process whose stdout/stderr lines are collected by threads."""

    def __init__(self, args, env=None, name=None):
        self.args = [str(a) for a in args]
        self.name = name or Path(self.args[1] if self.args[0] == sys.executable else self.args[0]).name
        self.lines = []
        self.err_lines = []
        self._cond = threading.Condition()
        self.started = time.monotonic()
        self.p = subprocess.Popen(
            self.args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
            bufsize=1,
            start_new_session=True,
            # A shell that started this suite in the background (`cmd &` without job
            # control) ignores SIGINT, and children inherit that: Python then never
            # installs its KeyboardInterrupt handler and the tutorials' Ctrl+C test
            # hangs. Give each child the default disposition back.
            preexec_fn=_default_sigint,
        )
        self._threads = [
            threading.Thread(target=self._pump, args=(self.p.stdout, self.lines), daemon=True),
            threading.Thread(target=self._pump, args=(self.p.stderr, self.err_lines), daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _pump(self, stream, sink):
        for line in stream:
            with self._cond:
                sink.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def out(self):
        with self._cond:
            return list(self.lines)

    def describe(self):
        with self._cond:
            return (
                f"--- {self.name} {self.args} rc={self.p.poll()}\n"
                + "stdout:\n  " + "\n  ".join(self.lines) + "\n"
                + "stderr:\n  " + "\n  ".join(self.err_lines[-60:])
            )

    def wait_for(self, substring, count=1, timeout=15.0):
        """Wait until `count` stdout lines contain `substring`. Raises AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                n = sum(1 for line in self.lines if substring in line)
                if n >= count:
                    return
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                if self.p.poll() is not None and all(not t.is_alive() for t in self._threads):
                    break
                self._cond.wait(min(remaining, 0.2))
        raise AssertionError(
            f"{self.name}: expected {count} line(s) containing {substring!r} within {timeout}s\n{self.describe()}"
        )

    def wait(self, timeout=15.0):
        """Wait for the process to exit by itself; kill it and fail if it does not."""
        try:
            rc = self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.name} did not exit within {timeout}s\n{self.describe()}")
        for t in self._threads:
            t.join(timeout=5)
        return rc

    def send_signal(self, sig):
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, sig=signal.SIGINT, timeout=5.0):
        """Send `sig`, wait up to `timeout`, then SIGKILL. Returns the exit code."""
        self.send_signal(sig)
        try:
            rc = self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            rc = self.p.wait(timeout=5)
        for t in self._threads:
            t.join(timeout=5)
        return rc

    def kill(self):
        self.send_signal(signal.SIGKILL)
        try:
            self.p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def tutorial(script, *args):
    """The argv running tutorial `script` (e.g. "send.py") with the current interpreter."""
    return [sys.executable, "-u", str(TUTORIALS / script), *[str(a) for a in args]]


def run(args, env, timeout=20.0):
    """Run a command to completion (bounded). Returns CompletedProcess."""
    return subprocess.run(
        [str(a) for a in args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
