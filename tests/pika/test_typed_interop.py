"""Typed services (SPEC v2) across implementations, through each broker target.

(a) a plain pika client calls `warren serve calc` with nothing but standard properties
    (`type`, `content_type`, `reply_to`, `correlation_id`), in JSON, MessagePack and CBOR;
(b) a typed Warren client (the `calc_client` example, `CalcClient` inside) calls
    `calc_server.py`, a pika server written from the SPEC, in each codec.

`calc_client` is `$WARREN_CALC_CLIENT`, else target/{release,debug}/examples/calc_client
(build it with `cargo build --release -p warren-rpc --example calc_client`).
"""
import json
import os
import sys
import time
import uuid

import cbor2
import msgpack
import pika
import pytest

from conftest import connect
from helpers import REPO, run

HERE = os.path.dirname(os.path.abspath(__file__))
READY = "[x] Awaiting RPC requests"

CODECS = {
    "application/json": (lambda v: json.dumps(v).encode(), json.loads),
    "application/msgpack": (msgpack.packb, lambda b: msgpack.unpackb(b, raw=False)),
    "application/cbor": (cbor2.dumps, cbor2.loads),
}


def calc_client():
    env = os.environ.get("WARREN_CALC_CLIENT")
    if env:
        return env
    found = [p for p in (REPO / "target/release/examples/calc_client", REPO / "target/debug/examples/calc_client") if p.is_file()]
    if not found:
        pytest.fail("no calc_client: build it with `cargo build --release -p warren-rpc --example calc_client`")
    return str(max(found, key=lambda p: p.stat().st_mtime))


def serve_calc(procs, warren, broker, queue):
    s = procs.start([warren, "serve", "calc", "--queue", queue], broker.env(), name="warren serve calc")
    s.wait_for(READY, timeout=15)
    return s


class PlainCaller:
    """A tutorial-style pika RPC client: exclusive reply queue, a correlation id per call."""

    def __init__(self, url):
        self.conn = connect(url)
        self.ch = self.conn.channel()
        self.reply_to = self.ch.queue_declare(queue="", exclusive=True).method.queue
        self.replies = {}
        self.ch.basic_consume(self.reply_to, self._on_reply, auto_ack=True)

    def _on_reply(self, _ch, _method, props, body):
        self.replies[props.correlation_id] = (props, body)

    def call(self, queue, method, body, content_type="application/json"):
        corr = uuid.uuid4().hex
        props = pika.BasicProperties(type=method, content_type=content_type, reply_to=self.reply_to, correlation_id=corr)
        self.ch.basic_publish("", queue, body, props)
        deadline = time.monotonic() + 15
        while corr not in self.replies and time.monotonic() < deadline:
            self.conn.process_data_events(time_limit=0.2)
        assert corr in self.replies, f"no reply to {method} within 15 s"
        return self.replies.pop(corr)

    def close(self):
        if self.conn.is_open:
            self.conn.close()


def status(props):
    return (props.headers or {}).get("x-status", "ok")


# ---------------------------------------------------------------- (a) pika client -> warren serve calc

def test_pika_client_calls_warren_typed_service(broker, rpcq, procs, warren):
    serve_calc(procs, warren, broker, rpcq)
    caller = PlainCaller(broker.url)
    try:
        # Exactly the SPEC's example call.
        props, body = caller.call(rpcq, "add", json.dumps({"a": 2, "b": 3}))
        assert status(props) == "ok" and body == b"5", (props, body)
        assert props.content_type == "application/json"
        for content_type, (encode, decode) in CODECS.items():
            props, body = caller.call(rpcq, "add", encode({"a": 40, "b": 2}), content_type)
            assert status(props) == "ok", (content_type, props, body)
            assert props.content_type == content_type, "answered in the request's codec"
            assert decode(body) == 42, content_type
            props, body = caller.call(rpcq, "fib", encode({"n": 30}), content_type)
            assert decode(body) == "832040", content_type
    finally:
        caller.close()


def test_pika_client_gets_typed_errors(broker, rpcq, procs, warren):
    serve_calc(procs, warren, broker, rpcq)
    caller = PlainCaller(broker.url)
    try:
        props, body = caller.call(rpcq, "add", b'{"a": 2}')
        assert status(props) == "invalid_argument", props
        assert props.content_type == "text/plain"
        assert "`b`" in body.decode(), body
        props, body = caller.call(rpcq, "add", b'{"a": 2, "b": "three"}')
        assert status(props) == "invalid_argument" and "`b`" in body.decode(), body
        props, body = caller.call(rpcq, "add", b"not json")
        assert status(props) == "invalid_argument", props
        props, body = caller.call(rpcq, "add", b'{"a": 2, "b": 3}', "text/plain")
        assert status(props) == "invalid_argument" and "application/json" in body.decode(), body
        props, body = caller.call(rpcq, "mul", b"{}")
        assert status(props) == "unimplemented" and "mul" in body.decode(), body
        props, body = caller.call(rpcq, "fail", b'{"code": "not_found", "message": "no such key"}')
        assert (status(props), body) == ("not_found", b"no such key")
        # Every request was acked, none requeued.
        assert caller.ch.queue_declare(queue=rpcq, passive=True).method.message_count == 0
    finally:
        caller.close()


# ---------------------------------------------------------------- (b) typed warren client -> pika server

def start_spec_server(procs, broker, queue):
    s = procs.start([sys.executable, "-u", os.path.join(HERE, "calc_server.py"), "--queue", queue], broker.env(), name="calc_server.py")
    s.wait_for(READY, timeout=15)
    return s


@pytest.mark.parametrize("codec", ["json", "msgpack", "cbor"])
def test_typed_warren_client_calls_pika_server(broker, rpcq, procs, codec):
    client = calc_client()
    server = start_spec_server(procs, broker, rpcq)
    r = run([client, "--queue", rpcq, "--codec", codec, "add", 2, 3], broker.env(), timeout=30)
    assert r.returncode == 0, r
    assert r.stdout.strip() == "5", r
    # The pika server read a map keyed by parameter name, in the codec asked for.
    server.wait_for(f" [.] add application/{codec} {{'a': 2, 'b': 3}}")
    r = run([client, "--queue", rpcq, "--codec", codec, "fib", 30], broker.env(), timeout=30)
    assert r.returncode == 0, r
    assert r.stdout.strip() == "832040", r


def test_typed_warren_client_gets_pika_server_errors(broker, rpcq, procs):
    client = calc_client()
    start_spec_server(procs, broker, rpcq)
    r = run([client, "--queue", rpcq, "sleep", 5], broker.env(), timeout=30)
    assert r.returncode == 3, r
    assert "unimplemented" in r.stderr and "sleep" in r.stderr, r.stderr
    r = run([client, "--queue", rpcq, "fib", 20000], broker.env(), timeout=30)
    assert r.returncode == 3, r
    assert "invalid_argument" in r.stderr, r.stderr
