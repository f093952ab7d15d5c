"""Broker targets for the pika suite.

WARREN_BROKERS (comma list, default "embedded,rabbitmq") picks the targets;
every test that takes the `broker` fixture runs once per target.

- embedded: starts `$WARREN_BIN broker --listen 127.0.0.1:<free port>` once per
  session, waits (10 s at most) until the port accepts TCP, and stops it
  (SIGTERM, then SIGKILL) at the end.
- rabbitmq: uses WARREN_RABBITMQ_URL. Unset: skipped, except under CI (env CI
  set), where it fails. Set but unreachable: fails.
"""
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import pika
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import helpers  # noqa: E402

BROKERS = [b.strip() for b in os.environ.get("WARREN_BROKERS", "embedded,rabbitmq").split(",") if b.strip()]
IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


@dataclass
class Broker:
    name: str
    url: str
    proc: "helpers.Proc | None" = None

    def env(self, **extra):
        env = dict(os.environ)
        env["AMQP_URL"] = self.url
        env.setdefault("PYTHONUNBUFFERED", "1")
        env.update({k: str(v) for k, v in extra.items()})
        return env


def pytest_report_header(config):
    return [
        f"warren brokers: {','.join(BROKERS)} (CI={'yes' if IN_CI else 'no'})",
        f"warren binary: {helpers.warren_bin()}",
        f"pika {pika.__version__}",
    ]


def _check_reachable(url):
    params = pika.URLParameters(url)
    params.connection_attempts = 1
    params.socket_timeout = 5
    params.stack_timeout = 10
    conn = pika.BlockingConnection(params)
    conn.close()


def _start_embedded():
    binary = helpers.warren_bin()
    if not binary:
        pytest.fail("embedded broker: no warren binary (set WARREN_BIN or build target/{release,debug}/warren)")
    port = helpers.free_port()
    env = dict(os.environ)
    env.pop("WARREN_BROKER_PASSWORD", None)  # the suite logs in as guest/guest
    env.setdefault("RUST_LOG", "info")
    proc = helpers.Proc([binary, "broker", "--listen", f"127.0.0.1:{port}"], env=env, name="warren broker")
    if not helpers.wait_port("127.0.0.1", port, timeout=10, proc=proc.p):
        proc.stop(signal.SIGTERM, timeout=3)
        pytest.fail(f"embedded broker did not accept TCP on 127.0.0.1:{port} within 10 s\n{proc.describe()}")
    return Broker("embedded", f"amqp://guest:guest@127.0.0.1:{port}/%2f", proc)


@pytest.fixture(scope="session", params=BROKERS)
def broker(request):
    name = request.param
    if name == "embedded":
        b = _start_embedded()
        yield b
        b.proc.stop(signal.SIGTERM, timeout=5)
    elif name == "rabbitmq":
        url = os.environ.get("WARREN_RABBITMQ_URL")
        if not url:
            if IN_CI:
                pytest.fail("rabbitmq target: WARREN_RABBITMQ_URL is not set, and CI is set: refusing to skip")
            pytest.skip("rabbitmq target: WARREN_RABBITMQ_URL is not set")
        try:
            _check_reachable(url)
        except Exception as e:  # noqa: BLE001
            pytest.fail(f"rabbitmq target: cannot connect to WARREN_RABBITMQ_URL={url}: {e!r}")
        yield Broker("rabbitmq", url)
    else:
        pytest.fail(f"unknown broker target {name!r} in WARREN_BROKERS (known: embedded, rabbitmq)")


@pytest.fixture(autouse=True)
def _broker_still_alive(request):
    """After each test on the embedded broker, fail if the broker process died."""
    yield
    if "broker" in request.fixturenames:
        b = request.getfixturevalue("broker")
        if b.proc is not None and b.proc.p.poll() is not None:
            pytest.fail(f"the embedded broker exited during the test\n{b.proc.describe()}")


@pytest.fixture
def url(broker):
    return broker.url


@pytest.fixture
def procs():
    """Start child processes with procs.start(argv, env); all are killed at teardown."""

    class Procs(list):
        def start(self, args, env, name=None):
            p = helpers.Proc(args, env=env, name=name)
            self.append(p)
            return p

    started = Procs()
    yield started
    for p in started:
        if p.p.poll() is None:
            p.stop(signal.SIGTERM, timeout=3)


@pytest.fixture
def warren(broker):
    binary = helpers.warren_bin()
    if not binary or not os.path.exists(binary):
        pytest.fail(f"no warren binary (WARREN_BIN={os.environ.get('WARREN_BIN')!r}); build target/release/warren")
    return binary


def connect(url, **overrides):
    params = pika.URLParameters(url)
    params.connection_attempts = 1
    params.socket_timeout = 5
    params.blocked_connection_timeout = 30
    for k, v in overrides.items():
        setattr(params, k, v)
    return pika.BlockingConnection(params)


@pytest.fixture
def conn(url):
    c = connect(url)
    yield c
    if c.is_open:
        try:
            c.close()
        except Exception:  # noqa: BLE001
            pass


@pytest.fixture
def ch(conn):
    return conn.channel()


@pytest.fixture
def rpcq(broker):
    """A unique queue name for an RPC server; the queue is deleted after the test."""
    name = helpers.uname("rpc")
    yield name
    try:
        c = connect(broker.url)
        try:
            c.channel().queue_delete(queue=name)
        finally:
            c.close()
    except Exception:  # noqa: BLE001  (best effort)
        pass
