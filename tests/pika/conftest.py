"""Broker targets for the pika suite.

WARREN_BROKERS (comma list, default "embedded,rabbitmq") picks the targets;
every test that takes the `broker` fixture runs once per target.

- embedded: starts `$WARREN_BIN broker --listen 127.0.0.1:<free port>` once per
  session, waits (10 s at most) until the port accepts TCP, and stops it
  (SIGTERM, then SIGKILL) at the end.
- rabbitmq: uses WARREN_RABBITMQ_URL. Unset: skipped, except under CI (env CI
  set), where it fails. Set but unreachable: fails. If a queue or exchange
  with a name the tutorials hard-code (TUTORIAL_QUEUES, TUTORIAL_EXCHANGES)
  already exists there, fails: the suite would use and delete it.

The suite leaves an external broker as it found it: after each test, every
name helpers.uname() gave out (and, after a test of TUTORIAL_MODULES, every
tutorial name) is deleted from it, as a queue and as an exchange (RabbitMQ
answers delete-ok for a missing one).
"""
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker

sys.path.insert(0, str(Path(__file__).resolve().parent))

import helpers  # noqa: E402

BROKERS = [b.strip() for b in os.environ.get("WARREN_BROKERS", "embedded,rabbitmq").split(",") if b.strip()]
IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
# Names the tutorial programs hard-code (tests/pika/tutorials).
TUTORIAL_QUEUES = ("hello", "task_queue", "rpc_queue")
TUTORIAL_EXCHANGES = ("logs", "direct_logs", "topic_logs")
# The test modules that run the tutorial programs (the CI leak check catches any other).
TUTORIAL_MODULES = ("test_tutorials", "test_interop")


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
        found = _existing_tutorial_names(url)
        if found:
            pytest.fail(
                f"rabbitmq target: {', '.join(found)} already exist on WARREN_RABBITMQ_URL; the tutorial tests "
                "would use and then delete them. Delete them if an interrupted run left them "
                "(rabbitmqctl delete_queue NAME), or point WARREN_RABBITMQ_URL at another vhost."
            )
        yield Broker("rabbitmq", url)
    else:
        pytest.fail(f"unknown broker target {name!r} in WARREN_BROKERS (known: embedded, rabbitmq)")


def _existing_tutorial_names(url):
    """Which of the tutorials' queues and exchanges exist at `url` (passive declares)."""
    found = []
    c = connect(url)
    try:
        for kind, names, declare in (
            ("queue", TUTORIAL_QUEUES, lambda ch, n: ch.queue_declare(queue=n, passive=True)),
            ("exchange", TUTORIAL_EXCHANGES, lambda ch, n: ch.exchange_declare(exchange=n, passive=True)),
        ):
            for name in names:
                ch = c.channel()
                try:
                    declare(ch, name)
                except ChannelClosedByBroker as e:
                    if e.reply_code != 404:
                        raise
                    continue
                found.append(f"{kind} {name}")
                ch.close()
    finally:
        c.close()
    return found


def _delete_everywhere(url, names):
    """Deletes each of `names` as a queue and as an exchange at `url`."""
    c = connect(url)
    try:
        ch = c.channel()
        for name in names:
            for kind in ("queue_delete", "exchange_delete"):
                try:
                    getattr(ch, kind)(name)
                except ChannelClosedByBroker:
                    # e.g. 405: an exclusive queue of a connection still open; it goes with it.
                    ch = c.channel()
    finally:
        c.close()


@pytest.fixture(autouse=True)
def _external_broker_left_clean(request):
    """After each test on an external broker, delete what the test may have declared there."""
    helpers.take_unames()
    yield
    names = helpers.take_unames()
    if "broker" in request.fixturenames:
        b = request.getfixturevalue("broker")
        if b.proc is None:
            if request.module.__name__ in TUTORIAL_MODULES:
                names += list(TUTORIAL_QUEUES) + list(TUTORIAL_EXCHANGES)
            _delete_everywhere(b.url, names)


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
    c = connect(broker.url)
    try:
        c.channel().queue_delete(queue=name)
    except ChannelClosedByBroker:
        pass  # the embedded broker answers 404 for a queue the test never declared
    finally:
        c.close()
