"""Broker behaviour, as pika sees it: the same tests on every target.

RabbitMQ is the reference: every test here passes on RabbitMQ, and a broker
that wants to stand in for it must pass them too. A failure on another
target is a broker bug, not a reason to loosen the assertion.
"""
import os
import socket
import struct
import time
import uuid
from datetime import datetime
from decimal import Decimal

import pika
import pytest
from pika import frame as pframe
from pika import spec
from pika.exceptions import ChannelClosedByBroker, UnroutableError

from conftest import connect
from helpers import uname

Props = pika.BasicProperties


# ---------------------------------------------------------------- helpers

def get_all(ch, queue, limit=1000):
    """basic.get (auto-ack) until empty; returns the bodies."""
    bodies = []
    for _ in range(limit):
        method, _props, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            return bodies
        bodies.append(body)
    raise AssertionError(f"more than {limit} messages in {queue}")


def get_eventually(ch, queue, timeout=5.0, auto_ack=False):
    """basic.get until a message comes (bounded); returns (method, props, body)."""
    deadline = time.monotonic() + timeout
    while True:
        method, props, body = ch.basic_get(queue, auto_ack=auto_ack)
        if method is not None:
            return method, props, body
        if time.monotonic() > deadline:
            raise AssertionError(f"no message in {queue} within {timeout}s")
        time.sleep(0.05)


def wait_until(conn, predicate, timeout=5.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        conn.process_data_events(time_limit=0.05)


def closed_with(code):
    """pytest.raises context for a channel closed by the broker; checks the reply code after."""
    return _ClosedWith(code)


class _ClosedWith:
    def __init__(self, code):
        self.code = code
        self._raises = pytest.raises(ChannelClosedByBroker)

    def __enter__(self):
        self.info = self._raises.__enter__()
        return self.info

    def __exit__(self, *exc):
        suppressed = self._raises.__exit__(*exc)
        assert self.info.value.reply_code == self.code, (
            f"expected channel close {self.code}, got {self.info.value.reply_code} {self.info.value.reply_text!r}"
        )
        return suppressed


@pytest.fixture
def q(ch, cleanup):
    """A fresh non-durable queue, deleted after the test (on a fresh connection: the
    test may have closed this one)."""
    name = uname("q")
    ch.queue_declare(queue=name)
    cleanup.queues.append(name)
    return name


@pytest.fixture
def cleanup(url):
    """cleanup.queues / cleanup.exchanges: deleted at teardown on a fresh connection."""

    class C:
        queues = []
        exchanges = []

    c = C()
    c.queues, c.exchanges = [], []
    yield c
    if c.queues or c.exchanges:
        conn = connect(url)
        try:
            _cleanup(conn.channel(), c.queues, c.exchanges)
        finally:
            conn.close()


def _cleanup(ch, queues=(), exchanges=()):
    conn = ch.connection
    if not conn.is_open:
        return
    if not ch.is_open:
        ch = conn.channel()
    for name in queues:
        try:
            ch.queue_delete(queue=name)
        except ChannelClosedByBroker:
            ch = conn.channel()
    for name in exchanges:
        try:
            ch.exchange_delete(exchange=name)
        except ChannelClosedByBroker:
            ch = conn.channel()


def declare_queues(ch, cleanup, n, **kw):
    names = [uname("q") for _ in range(n)]
    for name in names:
        ch.queue_declare(queue=name, **kw)
        cleanup.queues.append(name)
    return names


def declare_exchange(ch, cleanup, kind, **kw):
    name = uname(f"x_{kind}")
    ch.exchange_declare(exchange=name, exchange_type=kind, **kw)
    cleanup.exchanges.append(name)
    return name


# ---------------------------------------------------------------- exchanges and routing

def test_default_exchange_routes_by_queue_name(ch, cleanup):
    ch.confirm_delivery()
    a, b = declare_queues(ch, cleanup, 2)
    ch.basic_publish("", a, b"to-a")
    ch.basic_publish("", b, b"to-b")
    ch.basic_publish("", uname("nobody"), b"dropped")
    assert get_all(ch, a) == [b"to-a"]
    assert get_all(ch, b) == [b"to-b"]


def test_default_exchange_refuses_bind(conn, ch, q):
    with closed_with(403):
        ch.queue_bind(queue=q, exchange="", routing_key="x")
    assert conn.is_open


def test_default_exchange_cannot_be_deleted_or_declared(conn):
    with closed_with(403):
        conn.channel().exchange_delete(exchange="")
    with closed_with(403):
        conn.channel().exchange_declare(exchange="amq.custom_" + uuid.uuid4().hex[:6], exchange_type="direct")
    assert conn.is_open


def test_direct_exchange(ch, cleanup):
    ch.confirm_delivery()
    x = declare_exchange(ch, cleanup, "direct")
    qa, qb, qab = declare_queues(ch, cleanup, 3)
    ch.queue_bind(qa, x, routing_key="a")
    ch.queue_bind(qb, x, routing_key="b")
    ch.queue_bind(qab, x, routing_key="a")
    ch.queue_bind(qab, x, routing_key="b")
    ch.queue_bind(qab, x, routing_key="b")  # duplicate binding: still one copy
    for rk in ("a", "b", "c", ""):
        ch.basic_publish(x, rk, rk.encode() or b"empty")
    assert get_all(ch, qa) == [b"a"]
    assert get_all(ch, qb) == [b"b"]
    assert get_all(ch, qab) == [b"a", b"b"]


def test_unbind_stops_routing(ch, cleanup):
    ch.confirm_delivery()
    x = declare_exchange(ch, cleanup, "direct")
    (qa,) = declare_queues(ch, cleanup, 1)
    ch.queue_bind(qa, x, routing_key="k")
    ch.basic_publish(x, "k", b"1")
    ch.queue_unbind(qa, x, routing_key="k")
    ch.basic_publish(x, "k", b"2")
    assert get_all(ch, qa) == [b"1"]


def test_fanout_exchange(ch, cleanup):
    ch.confirm_delivery()
    x = declare_exchange(ch, cleanup, "fanout")
    queues = declare_queues(ch, cleanup, 3)
    for name in queues:
        ch.queue_bind(name, x, routing_key=uname("ignored"))
    ch.basic_publish(x, "anything", b"m1")
    ch.basic_publish(x, "", b"m2")
    for name in queues:
        assert get_all(ch, name) == [b"m1", b"m2"]


def topic_match(pattern, key):
    """Reference topic matching (RabbitMQ's): words split on '.', '*' one word, '#' zero or more;
    the empty key has no words (so '*' does not match it), while "a..c" has an empty middle word."""
    p = pattern.split(".") if pattern else []
    k = key.split(".") if key else []

    def m(i, j):
        if i == len(p):
            return j == len(k)
        if p[i] == "#":
            return any(m(i + 1, jj) for jj in range(j, len(k) + 1))
        if j == len(k):
            return False
        return (p[i] == "*" or p[i] == k[j]) and m(i + 1, j + 1)

    return m(0, 0)


TOPIC_PATTERNS = ["a.b.c", "a.*.c", "a.#", "#.c", "*", "#", "*.*", "a.#.c", "#.b.#", "*.b.*", "a.*.#"]
TOPIC_KEYS = ["a.b.c", "a", "a.b", "a.c", "a.x.y.c", "b.c", "c", "a.b.c.d", "x.b.y", "b", "a.b.b.c",
              "a..c", "", ".", "a.", ".c", "ab.c", "a.bc"]


def test_topic_exchange(ch, cleanup):
    ch.confirm_delivery()
    x = declare_exchange(ch, cleanup, "topic")
    queues = declare_queues(ch, cleanup, len(TOPIC_PATTERNS))
    for name, pattern in zip(queues, TOPIC_PATTERNS):
        ch.queue_bind(name, x, routing_key=pattern)
    for key in TOPIC_KEYS:
        ch.basic_publish(x, key, key.encode())
    wrong = []
    for name, pattern in zip(queues, TOPIC_PATTERNS):
        expected = [k.encode() for k in TOPIC_KEYS if topic_match(pattern, k)]
        got = get_all(ch, name)
        if got != expected:
            wrong.append(f"binding {pattern!r}: got {got}, want {expected}")
    assert not wrong, "\n".join(wrong)


def test_topic_one_copy_per_queue_when_several_bindings_match(ch, cleanup):
    ch.confirm_delivery()
    x = declare_exchange(ch, cleanup, "topic")
    (name,) = declare_queues(ch, cleanup, 1)
    for pattern in ("#", "a.*", "*.b", "a.b"):
        ch.queue_bind(name, x, routing_key=pattern)
    ch.basic_publish(x, "a.b", b"once")
    assert get_all(ch, name) == [b"once"]


def test_headers_exchange(ch, cleanup):
    ch.confirm_delivery()
    x = declare_exchange(ch, cleanup, "headers")
    q_all, q_any = declare_queues(ch, cleanup, 2)
    ch.queue_bind(q_all, x, arguments={"x-match": "all", "format": "pdf", "type": "report"})
    ch.queue_bind(q_any, x, arguments={"x-match": "any", "format": "pdf", "type": "log"})
    cases = [
        ({"format": "pdf", "type": "report"}, b"both"),
        ({"format": "pdf", "type": "report", "extra": 1}, b"both-extra"),
        ({"format": "zip", "type": "log"}, b"any-type"),
        ({"format": "pdf"}, b"any-format"),
        ({"format": "zip", "type": "report"}, b"none"),
        ({}, b"empty"),
        (None, b"no-headers"),
    ]
    for headers, body in cases:
        ch.basic_publish(x, "ignored", body, Props(headers=headers))
    assert get_all(ch, q_all) == [b"both", b"both-extra"]
    assert get_all(ch, q_any) == [b"both", b"both-extra", b"any-type", b"any-format"]


def test_headers_exchange_default_is_all(ch, cleanup):
    ch.confirm_delivery()
    x = declare_exchange(ch, cleanup, "headers")
    (name,) = declare_queues(ch, cleanup, 1)
    ch.queue_bind(name, x, arguments={"a": "1", "b": "2"})
    ch.basic_publish(x, "", b"one", Props(headers={"a": "1"}))
    ch.basic_publish(x, "", b"both", Props(headers={"a": "1", "b": "2"}))
    assert get_all(ch, name) == [b"both"]


@pytest.mark.parametrize(
    "exchange,kind",
    [("amq.direct", "direct"), ("amq.fanout", "fanout"), ("amq.topic", "topic"),
     ("amq.headers", "headers"), ("amq.match", "headers")],
)
def test_amq_exchanges_predeclared(ch, cleanup, exchange, kind):
    ch.exchange_declare(exchange=exchange, passive=True)
    ch.confirm_delivery()
    (name,) = declare_queues(ch, cleanup, 1)
    if kind == "headers":
        ch.queue_bind(name, exchange, arguments={"x-match": "all", "k": name})
        ch.basic_publish(exchange, "", b"hit", Props(headers={"k": name}))
        ch.basic_publish(exchange, "", b"miss", Props(headers={"k": "other"}))
    elif kind == "topic":
        ch.queue_bind(name, exchange, routing_key=f"{name}.#")
        ch.basic_publish(exchange, f"{name}.x.y", b"hit")
        ch.basic_publish(exchange, f"other.{name}", b"miss")
    elif kind == "direct":
        ch.queue_bind(name, exchange, routing_key=name)
        ch.basic_publish(exchange, name, b"hit")
        ch.basic_publish(exchange, name + "x", b"miss")
    else:
        ch.queue_bind(name, exchange, routing_key="whatever")
        ch.basic_publish(exchange, "anything", b"hit")
    assert get_all(ch, name) == [b"hit"]  # deleting the queue at teardown removes the binding


def test_publish_to_missing_exchange_closes_channel_404(conn, ch):
    ch.basic_publish(uname("nox"), "k", b"x")
    with closed_with(404):
        ch.queue_declare(queue="", exclusive=True)  # any synchronous call sees the close
    assert conn.is_open
    conn.channel().queue_declare(queue="", exclusive=True)


def test_bind_missing_queue_or_exchange_404(conn, cleanup):
    ch = conn.channel()
    x = declare_exchange(ch, cleanup, "direct")
    with closed_with(404):
        ch.queue_bind(uname("noq"), x, routing_key="k")
    ch = conn.channel()
    (name,) = declare_queues(ch, cleanup, 1)
    with closed_with(404):
        ch.queue_bind(name, uname("nox"), routing_key="k")


def test_exchange_redeclare_other_type_406(conn, cleanup):
    ch = conn.channel()
    x = declare_exchange(ch, cleanup, "direct")
    ch.exchange_declare(exchange=x, exchange_type="direct")  # same: fine
    with closed_with(406):
        ch.exchange_declare(exchange=x, exchange_type="fanout")
    assert conn.is_open


def test_exchange_passive_missing_404_and_delete(conn, cleanup):
    ch = conn.channel()
    with closed_with(404):
        ch.exchange_declare(exchange=uname("nox"), passive=True)
    ch = conn.channel()
    x = declare_exchange(ch, cleanup, "fanout")
    ch.exchange_delete(exchange=x)
    with closed_with(404):
        ch.exchange_declare(exchange=x, passive=True)


# ---------------------------------------------------------------- queue declaration errors

def test_queue_passive_missing_404_connection_survives(conn):
    ch = conn.channel()
    with closed_with(404) as e:
        ch.queue_declare(queue=uname("missing"), passive=True)
    assert "NOT_FOUND" in e.value.reply_text
    assert not ch.is_open
    assert conn.is_open
    ch2 = conn.channel()
    name = ch2.queue_declare(queue="", exclusive=True).method.queue
    ch2.basic_publish("", name, b"still works")
    assert get_eventually(ch2, name, auto_ack=True)[2] == b"still works"


def test_channel_error_leaves_other_channels_alone(conn, q):
    other = conn.channel()
    bad = conn.channel()
    with closed_with(404):
        bad.queue_declare(queue=uname("missing"), passive=True)
    assert other.is_open
    other.basic_publish("", q, b"ok")
    assert get_eventually(other, q, auto_ack=True)[2] == b"ok"


def test_queue_redeclare_different_durable_406(conn, cleanup):
    ch = conn.channel()
    (name,) = declare_queues(ch, cleanup, 1, durable=False)
    ch.queue_declare(queue=name, durable=False)  # equivalent: fine
    with closed_with(406) as e:
        ch.queue_declare(queue=name, durable=True)
    assert "PRECONDITION_FAILED" in e.value.reply_text
    assert conn.is_open


def test_queue_redeclare_different_arguments_406(conn, cleanup):
    ch = conn.channel()
    (name,) = declare_queues(ch, cleanup, 1, arguments={"x-message-ttl": 60000})
    with closed_with(406):
        ch.queue_declare(queue=name, arguments={"x-message-ttl": 1000})


def test_queue_declare_ok_counts(ch, q):
    ch.confirm_delivery()
    for i in range(3):
        ch.basic_publish("", q, str(i).encode())
    ok = ch.queue_declare(queue=q, passive=True).method
    assert (ok.queue, ok.message_count, ok.consumer_count) == (q, 3, 0)
    ch.basic_consume(q, lambda *a: None)
    ok = ch.queue_declare(queue=q, passive=True).method
    assert ok.consumer_count == 1


def test_server_named_queue(ch):
    ok = ch.queue_declare(queue="", exclusive=True).method
    assert ok.queue.startswith("amq.gen-")
    assert ok.message_count == 0 and ok.consumer_count == 0


def test_exclusive_queue_from_second_connection_405(url, conn):
    ch = conn.channel()
    name = uname("excl")
    ch.queue_declare(queue=name, exclusive=True)
    other = connect(url)
    try:
        with closed_with(405) as e:
            other.channel().queue_declare(queue=name, passive=True)
        assert "RESOURCE_LOCKED" in e.value.reply_text
        with closed_with(405):
            other.channel().basic_consume(name, lambda *a: None)
        with closed_with(405):
            other.channel().basic_get(name)
        with closed_with(405):
            other.channel().queue_declare(queue=name, exclusive=True)
        assert other.is_open
    finally:
        other.close()
    # still fine for its owner
    ch.queue_declare(queue=name, passive=True)


def test_exclusive_queue_deleted_with_its_connection(url):
    owner = connect(url)
    name = uname("excl")
    owner.channel().queue_declare(queue=name, exclusive=True)
    owner.close()
    other = connect(url)
    try:
        deadline = time.monotonic() + 5
        while True:
            try:
                other.channel().queue_declare(queue=name, passive=True)
            except ChannelClosedByBroker as e:
                assert e.reply_code == 404
                break
            assert time.monotonic() < deadline, "exclusive queue outlived its connection"
            time.sleep(0.1)
    finally:
        other.close()


def test_auto_delete_queue_goes_when_last_consumer_cancels(conn, url):
    ch = conn.channel()
    name = uname("ad")
    ch.queue_declare(queue=name, auto_delete=True)
    tag = ch.basic_consume(name, lambda *a: None)
    ch.queue_declare(queue=name, passive=True)
    ch.basic_cancel(tag)
    deadline = time.monotonic() + 5
    while True:
        try:
            conn.channel().queue_declare(queue=name, passive=True)
        except ChannelClosedByBroker as e:
            assert e.reply_code == 404
            break
        assert time.monotonic() < deadline, "auto-delete queue survived its last consumer"
        time.sleep(0.1)


# ---------------------------------------------------------------- publishing

def test_mandatory_no_route_with_confirms_unroutable(ch):
    ch.confirm_delivery()
    with pytest.raises(UnroutableError) as e:
        ch.basic_publish("", uname("nobody"), b"lost", mandatory=True)
    returned = e.value.messages[0]
    assert returned.method.reply_code == 312
    assert returned.method.reply_text == "NO_ROUTE"
    assert returned.body == b"lost"
    assert ch.is_open


def test_mandatory_no_route_basic_return(conn, ch):
    returned = []
    ch.add_on_return_callback(lambda _c, method, props, body: returned.append((method, props, body)))
    key = uname("nobody")
    ch.basic_publish("", key, b"back", Props(correlation_id="c1", headers={"h": "v"}), mandatory=True)
    wait_until(conn, lambda: returned, what="basic.return")
    method, props, body = returned[0]
    assert (method.reply_code, method.reply_text, method.exchange, method.routing_key) == (312, "NO_ROUTE", "", key)
    assert body == b"back"
    assert props.correlation_id == "c1" and props.headers == {"h": "v"}


def test_mandatory_no_route_via_exchange(conn, cleanup):
    ch = conn.channel()
    x = declare_exchange(ch, cleanup, "direct")
    returned = []
    ch.add_on_return_callback(lambda _c, method, props, body: returned.append(method))
    ch.basic_publish(x, "unbound", b"b", mandatory=True)
    wait_until(conn, lambda: returned, what="basic.return")
    assert (returned[0].reply_code, returned[0].exchange, returned[0].routing_key) == (312, x, "unbound")


def test_mandatory_routable_is_not_returned(conn, ch, q):
    returned = []
    ch.add_on_return_callback(lambda *a: returned.append(a))
    ch.confirm_delivery()
    ch.basic_publish("", q, b"ok", mandatory=True)
    conn.process_data_events(time_limit=0.3)
    assert returned == []
    assert get_all(ch, q) == [b"ok"]


def test_publisher_confirms(ch, q):
    ch.confirm_delivery()
    for i in range(200):
        ch.basic_publish("", q, str(i).encode())  # raises if nacked or not confirmed
    ch.basic_publish("", uname("nobody"), b"unroutable but confirmed")
    assert ch.queue_declare(queue=q, passive=True).method.message_count == 200
    assert get_all(ch, q) == [str(i).encode() for i in range(200)]


# ---------------------------------------------------------------- basic.get, ack, nack, reject

def test_basic_get_empty_and_ok(ch, q):
    assert ch.basic_get(q) == (None, None, None)
    ch.confirm_delivery()
    ch.basic_publish("", q, b"one")
    ch.basic_publish("", q, b"two")
    method, _props, body = ch.basic_get(q, auto_ack=False)
    assert body == b"one"
    assert isinstance(method, spec.Basic.GetOk)
    assert (method.redelivered, method.exchange, method.routing_key, method.message_count) == (False, "", q, 1)
    tag1 = method.delivery_tag
    method2, _p, body = ch.basic_get(q, auto_ack=False)
    assert body == b"two" and method2.message_count == 0
    assert method2.delivery_tag == tag1 + 1
    ch.basic_ack(method2.delivery_tag, multiple=True)
    assert ch.basic_get(q) == (None, None, None)


@pytest.mark.parametrize("how", ["nack", "reject"])
def test_requeue_sets_redelivered(ch, q, how):
    ch.confirm_delivery()
    ch.basic_publish("", q, b"first")
    ch.basic_publish("", q, b"second")
    method, _p, body = ch.basic_get(q)
    assert (body, method.redelivered) == (b"first", False)
    if how == "nack":
        ch.basic_nack(method.delivery_tag, requeue=True)
    else:
        ch.basic_reject(method.delivery_tag, requeue=True)
    method, _p, body = get_eventually(ch, q)  # the requeue is asynchronous
    assert (body, method.redelivered) == (b"first", True), "a requeued message goes back to the head"
    ch.basic_ack(method.delivery_tag)
    method, _p, body = ch.basic_get(q, auto_ack=True)
    assert (body, method.redelivered) == (b"second", False)


@pytest.mark.parametrize("how", ["nack", "reject"])
def test_no_requeue_discards(ch, q, how):
    ch.confirm_delivery()
    ch.basic_publish("", q, b"gone")
    method, _p, _b = ch.basic_get(q)
    if how == "nack":
        ch.basic_nack(method.delivery_tag, requeue=False)
    else:
        ch.basic_reject(method.delivery_tag, requeue=False)
    assert ch.basic_get(q) == (None, None, None)


def test_nack_multiple(ch, q):
    ch.confirm_delivery()
    for b in (b"1", b"2", b"3"):
        ch.basic_publish("", q, b)
    tags = [ch.basic_get(q)[0].delivery_tag for _ in range(3)]
    ch.basic_nack(tags[1], multiple=True, requeue=True)  # 1 and 2 back; 3 still unacked
    got = [get_eventually(ch, q, auto_ack=True) for _ in range(2)]  # the requeue is asynchronous
    assert ch.basic_get(q) == (None, None, None)
    assert [(m.redelivered, b) for m, _p, b in got] == [(True, b"1"), (True, b"2")]
    ch.basic_ack(tags[2])


def test_unacked_messages_requeued_when_channel_closes(conn, q):
    ch = conn.channel()
    ch.confirm_delivery()
    ch.basic_publish("", q, b"m")
    method, _p, _b = ch.basic_get(q)
    assert not method.redelivered
    ch.close()
    ch2 = conn.channel()
    method, _p, body = get_eventually(ch2, q, auto_ack=True)
    assert (body, method.redelivered) == (b"m", True)


def test_ack_unknown_delivery_tag_406(conn, q):
    ch = conn.channel()
    ch.basic_ack(12345)
    with closed_with(406) as e:
        ch.queue_declare(queue=q, passive=True)
    assert "unknown delivery tag" in e.value.reply_text
    assert conn.is_open


# ---------------------------------------------------------------- TTL, dead-lettering, max-length

def test_queue_message_ttl_drops(ch, cleanup):
    ch.confirm_delivery()
    (name,) = declare_queues(ch, cleanup, 1, arguments={"x-message-ttl": 200})
    ch.basic_publish("", name, b"old")
    time.sleep(0.6)
    ch.basic_publish("", name, b"new")
    assert get_all(ch, name) == [b"new"]


def test_per_message_expiration_drops(ch, q):
    ch.confirm_delivery()
    ch.basic_publish("", q, b"short", Props(expiration="200"))
    ch.basic_publish("", q, b"long", Props(expiration="60000"))
    ch.basic_publish("", q, b"forever")
    time.sleep(0.6)
    got = []
    for _ in range(10):
        method, props, body = ch.basic_get(q, auto_ack=True)
        if method is None:
            break
        got.append((body, props.expiration))
    assert got == [(b"long", "60000"), (b"forever", None)]


@pytest.mark.parametrize("expiration", ["soon", "-5"])
def test_invalid_expiration_406(conn, q, expiration):
    ch = conn.channel()
    ch.basic_publish("", q, b"x", Props(expiration=expiration))
    with closed_with(406) as e:
        ch.queue_declare(queue=q, passive=True)
    assert "PRECONDITION_FAILED" in e.value.reply_text


def _dlx_setup(ch, cleanup, queue_args, dl_key="dead"):
    dlx = declare_exchange(ch, cleanup, "direct")
    (dlq,) = declare_queues(ch, cleanup, 1)
    ch.queue_bind(dlq, dlx, routing_key=dl_key)
    args = {"x-dead-letter-exchange": dlx, **queue_args}
    (src,) = declare_queues(ch, cleanup, 1, arguments=args)
    return dlx, dlq, src


def _x_death(props):
    deaths = (props.headers or {}).get("x-death")
    assert isinstance(deaths, list) and deaths, props.headers
    return deaths[0]


def test_dead_letter_on_reject_with_routing_key(ch, cleanup):
    ch.confirm_delivery()
    dlx, dlq, src = _dlx_setup(ch, cleanup, {"x-dead-letter-routing-key": "dead"})
    ch.basic_publish("", src, b"bad", Props(correlation_id="c-1", headers={"mine": "kept"}))
    method, _p, _b = ch.basic_get(src)
    ch.basic_reject(method.delivery_tag, requeue=False)
    method, props, body = get_eventually(ch, dlq, auto_ack=True)
    assert body == b"bad"
    assert (method.exchange, method.routing_key) == (dlx, "dead")
    assert props.correlation_id == "c-1"
    assert props.headers["mine"] == "kept"
    death = _x_death(props)
    assert death["reason"] == "rejected"
    assert death["queue"] == src
    assert death["exchange"] == ""
    assert death["routing-keys"] == [src]
    assert death["count"] == 1
    assert isinstance(death["time"], datetime)
    assert props.headers["x-first-death-reason"] == "rejected"
    assert props.headers["x-first-death-queue"] == src
    assert ch.basic_get(src) == (None, None, None)


def test_dead_letter_on_nack_keeps_routing_key(ch, cleanup):
    """Without x-dead-letter-routing-key the message keeps its own routing key."""
    ch.confirm_delivery()
    dlx = declare_exchange(ch, cleanup, "fanout")
    (dlq,) = declare_queues(ch, cleanup, 1)
    ch.queue_bind(dlq, dlx)
    (src,) = declare_queues(ch, cleanup, 1, arguments={"x-dead-letter-exchange": dlx})
    ch.basic_publish("", src, b"n")
    method, _p, _b = ch.basic_get(src)
    ch.basic_nack(method.delivery_tag, requeue=False)
    method, props, body = get_eventually(ch, dlq, auto_ack=True)
    assert (body, method.exchange, method.routing_key) == (b"n", dlx, src)
    assert _x_death(props)["reason"] == "rejected"


def test_dead_letter_on_ttl(ch, cleanup):
    ch.confirm_delivery()
    dlx, dlq, src = _dlx_setup(ch, cleanup, {"x-dead-letter-routing-key": "dead", "x-message-ttl": 100})
    ch.basic_publish("", src, b"late")
    method, props, body = get_eventually(ch, dlq, auto_ack=True)
    assert (body, method.routing_key) == (b"late", "dead")
    death = _x_death(props)
    assert (death["reason"], death["queue"], death["count"]) == ("expired", src, 1)
    assert death.get("original-expiration") is None  # queue TTL, not per-message


def test_dead_letter_on_per_message_expiration(ch, cleanup):
    ch.confirm_delivery()
    dlx, dlq, src = _dlx_setup(ch, cleanup, {"x-dead-letter-routing-key": "dead"})
    ch.basic_publish("", src, b"late", Props(expiration="100"))
    _method, props, body = get_eventually(ch, dlq, auto_ack=True)
    assert body == b"late"
    death = _x_death(props)
    assert death["reason"] == "expired"
    assert death["original-expiration"] == "100"
    assert props.expiration is None, "the expiration is removed from a dead-lettered message"


def test_max_length_drops_head(ch, cleanup):
    ch.confirm_delivery()
    (name,) = declare_queues(ch, cleanup, 1, arguments={"x-max-length": 2})
    for b in (b"1", b"2", b"3", b"4"):
        ch.basic_publish("", name, b)
    assert ch.queue_declare(queue=name, passive=True).method.message_count == 2
    assert get_all(ch, name) == [b"3", b"4"]


def test_max_length_dead_letters_head(ch, cleanup):
    ch.confirm_delivery()
    dlx, dlq, src = _dlx_setup(ch, cleanup, {"x-dead-letter-routing-key": "dead", "x-max-length": 1})
    ch.basic_publish("", src, b"1")
    ch.basic_publish("", src, b"2")
    _m, props, body = get_eventually(ch, dlq, auto_ack=True)
    assert body == b"1"
    assert _x_death(props)["reason"] == "maxlen"
    assert get_all(ch, src) == [b"2"]


def test_max_length_bytes_drops_head(ch, cleanup):
    ch.confirm_delivery()
    (name,) = declare_queues(ch, cleanup, 1, arguments={"x-max-length-bytes": 10})
    for b in (b"aaaa", b"bbbb", b"cccc"):
        ch.basic_publish("", name, b)
    assert get_all(ch, name) == [b"bbbb", b"cccc"]


# ---------------------------------------------------------------- purge and delete

def test_purge_and_delete_counts(conn, cleanup):
    ch = conn.channel()
    ch.confirm_delivery()
    (name,) = declare_queues(ch, cleanup, 1)
    for i in range(5):
        ch.basic_publish("", name, b"p")
    assert ch.queue_purge(name).method.message_count == 5
    assert ch.queue_purge(name).method.message_count == 0
    for i in range(3):
        ch.basic_publish("", name, b"d")
    with closed_with(406):
        ch.queue_delete(name, if_empty=True)
    ch = conn.channel()
    assert ch.queue_delete(name).method.message_count == 3
    with closed_with(404):
        ch.queue_declare(queue=name, passive=True)


def test_purge_keeps_unacked(ch, q):
    ch.confirm_delivery()
    for b in (b"1", b"2", b"3"):
        ch.basic_publish("", q, b)
    method, _p, _b = ch.basic_get(q)
    assert ch.queue_purge(q).method.message_count == 2
    ch.basic_nack(method.delivery_tag, requeue=True)
    method, _p, body = get_eventually(ch, q, auto_ack=True)
    assert (body, method.redelivered) == (b"1", True)


def test_delete_if_unused(conn, cleanup):
    ch = conn.channel()
    (name,) = declare_queues(ch, cleanup, 1)
    ch.basic_consume(name, lambda *a: None)
    with closed_with(406):
        conn.channel().queue_delete(name, if_unused=True)


# ---------------------------------------------------------------- properties and bodies

HEADERS = {
    "str": "hello",
    "unicode": "h\u00e9llo \u2713 \U0001f407",
    "empty-str": "",
    "int": 42,
    "zero": 0,
    "neg": -7,
    "i32-max": 2**31 - 1,
    "i32-min": -(2**31),
    "big": 2**40,
    "negbig": -(2**40),
    "i64-max": 2**63 - 1,
    "true": True,
    "false": False,
    "bytes": b"\x00\x01\xfe\xffraw",
    "ts": datetime(2024, 2, 29, 23, 59, 58),
    "dec": Decimal("3.14"),
    "dec-neg": Decimal("-0.001"),
    "dec-int": Decimal("42"),
    "void": None,
    "array": [1, "two", True, None, b"\x07", [3, [4]], {"k": "v"}, datetime(2001, 1, 1), Decimal("1.5")],
    "empty-array": [],
    "nested": {"a": {"b": {"c": 1, "d": ["x", {"e": False}]}}, "empty": {}},
    "x-custom": "kept",
}


def _full_props(user):
    return Props(
        content_type="application/json",
        content_encoding="gzip",
        headers=HEADERS,
        delivery_mode=2,
        priority=5,
        correlation_id="corr-\u00e9-1",
        reply_to="reply.queue",
        expiration="600000",
        message_id="msg-1",
        timestamp=1700000000,
        type="my.type",
        user_id=user,
        app_id="pytest",
        cluster_id="cluster-1",
    )


PROPERTY_FIELDS = ["content_type", "content_encoding", "headers", "delivery_mode", "priority", "correlation_id",
                   "reply_to", "expiration", "message_id", "timestamp", "type", "user_id", "app_id", "cluster_id"]


def _assert_props_equal(got, sent):
    for field in PROPERTY_FIELDS:
        assert getattr(got, field) == getattr(sent, field), field
    # and exact types inside the headers (True is not 1, bytes are not str)
    _assert_same_types(got.headers, sent.headers, "headers")


def _expected_type(sent):
    """The type pika decodes `sent` to: ints that fit 32 bits come back as int ('I'), wider ones as
    pika.compat.long ('l'/'L'): so a broker that re-encodes an integer in another width shows up."""
    if type(sent) is int and not -(2**31) <= sent < 2**31:
        return pika.compat.long
    return type(sent)


def _assert_same_types(got, sent, path):
    want = _expected_type(sent)
    assert type(got) is want, f"{path}: {type(got).__name__} != {want.__name__}"
    if isinstance(sent, dict):
        assert set(got) == set(sent), path
        for k in sent:
            _assert_same_types(got[k], sent[k], f"{path}.{k}")
    elif isinstance(sent, list):
        assert len(got) == len(sent), path
        for i, (g, s) in enumerate(zip(got, sent)):
            _assert_same_types(g, s, f"{path}[{i}]")


def test_all_properties_round_trip_basic_get(url, ch, q):
    sent = _full_props(pika.URLParameters(url).credentials.username)
    ch.confirm_delivery()
    ch.basic_publish("", q, b"props", sent)
    _m, got, body = ch.basic_get(q, auto_ack=True)
    assert body == b"props"
    _assert_props_equal(got, sent)


def test_all_properties_round_trip_consumer(url, conn, ch, q):
    sent = _full_props(pika.URLParameters(url).credentials.username)
    ch.basic_publish("", q, b"props", sent)
    got = []
    ch.basic_consume(q, lambda _c, m, p, b: got.append((p, b)), auto_ack=True)
    wait_until(conn, lambda: got, what="delivery")
    props, body = got[0]
    assert body == b"props"
    _assert_props_equal(props, sent)


def test_no_properties_round_trip(ch, q):
    ch.confirm_delivery()
    ch.basic_publish("", q, b"bare")
    _m, got, _b = ch.basic_get(q, auto_ack=True)
    for field in PROPERTY_FIELDS:
        assert getattr(got, field) is None, field


def test_wrong_user_id_refused_406(conn, q):
    ch = conn.channel()
    ch.basic_publish("", q, b"x", Props(user_id="somebody-else"))
    with closed_with(406) as e:
        ch.queue_declare(queue=q, passive=True)
    assert "PRECONDITION_FAILED" in e.value.reply_text


@pytest.mark.parametrize("size", [0, 1, 131072 - 8, 131072 - 7, 131072, 3 * 131072 + 5, 1024 * 1024])
def test_body_sizes_round_trip(conn, ch, q, size):
    body = os.urandom(size)
    ch.confirm_delivery()
    ch.basic_publish("", q, body)
    _m, _p, got = ch.basic_get(q, auto_ack=True)
    assert got is not None and len(got) == size and got == body
    got2 = []
    ch.basic_publish("", q, body)
    ch.basic_consume(q, lambda _c, m, p, b: got2.append(b), auto_ack=True)
    wait_until(conn, lambda: got2, what="delivery")
    assert got2 == [body]


def test_one_mib_body_round_trip(ch, q):
    body = os.urandom(1024 * 1024)
    ch.confirm_delivery()
    ch.basic_publish("", q, body, Props(content_type="application/octet-stream"))
    _m, props, got = ch.basic_get(q, auto_ack=True)
    assert got == body
    assert props.content_type == "application/octet-stream"


# ---------------------------------------------------------------- consumers

def test_consumers_share_round_robin(conn, q):
    ch = conn.channel()
    got = {"a": [], "b": []}
    ch.basic_consume(q, lambda _c, m, p, b: got["a"].append(b), auto_ack=True, consumer_tag="a")
    ch.basic_consume(q, lambda _c, m, p, b: got["b"].append(b), auto_ack=True, consumer_tag="b")
    pub = conn.channel()
    for i in range(10):
        pub.basic_publish("", q, str(i).encode())
    wait_until(conn, lambda: len(got["a"]) + len(got["b"]) == 10, what="10 deliveries")
    assert len(got["a"]) == 5 and len(got["b"]) == 5, got
    assert sorted(got["a"] + got["b"], key=int) == [str(i).encode() for i in range(10)]


def test_consume_delivery_fields(conn, q):
    ch = conn.channel()
    got = []
    tag = ch.basic_consume(q, lambda _c, m, p, b: got.append(m))
    ch.basic_publish("", q, b"x")
    wait_until(conn, lambda: got, what="delivery")
    m = got[0]
    assert isinstance(m, spec.Basic.Deliver)
    assert (m.consumer_tag, m.redelivered, m.exchange, m.routing_key) == (tag, False, "", q)
    ch.basic_ack(m.delivery_tag)


def test_exclusive_consumer_refuses_second_403(conn, q):
    conn.channel().basic_consume(q, lambda *a: None, exclusive=True)
    with closed_with(403):
        conn.channel().basic_consume(q, lambda *a: None)


def test_basic_cancel_stops_deliveries(conn, q):
    ch = conn.channel()
    got = []
    tag = ch.basic_consume(q, lambda _c, m, p, b: got.append(b), auto_ack=True)
    ch.basic_publish("", q, b"1")
    wait_until(conn, lambda: got, what="delivery")
    ch.basic_cancel(tag)
    ch.confirm_delivery()
    ch.basic_publish("", q, b"2")
    conn.process_data_events(time_limit=0.3)
    assert got == [b"1"]
    assert get_all(ch, q) == [b"2"]


def test_consumer_cancel_notification_on_queue_delete(conn, url):
    ch = conn.channel()
    name = uname("q")
    ch.queue_declare(queue=name)
    cancelled = []
    ch.add_on_cancel_callback(lambda frame: cancelled.append(frame))
    tag = ch.basic_consume(name, lambda *a: None)
    other = connect(url)
    try:
        other.channel().queue_delete(name)
    finally:
        other.close()
    wait_until(conn, lambda: cancelled, what="basic.cancel from the broker")
    assert isinstance(cancelled[0].method, spec.Basic.Cancel)
    assert cancelled[0].method.consumer_tag == tag
    assert ch.is_open


def test_prefetch_one_limits_unacked(conn, q):
    pub = conn.channel()
    pub.confirm_delivery()
    for i in range(3):
        pub.basic_publish("", q, str(i).encode())
    ch = conn.channel()
    ch.basic_qos(prefetch_count=1)
    got = []
    ch.basic_consume(q, lambda _c, m, p, b: got.append((m, b)))
    wait_until(conn, lambda: got, what="first delivery")
    conn.process_data_events(time_limit=0.5)
    assert [b for _m, b in got] == [b"0"], "prefetch 1: one unacked delivery at a time"
    ch.basic_ack(got[0][0].delivery_tag)
    wait_until(conn, lambda: len(got) == 2, what="second delivery")
    conn.process_data_events(time_limit=0.5)
    assert [b for _m, b in got] == [b"0", b"1"]
    ch.basic_ack(got[1][0].delivery_tag)
    wait_until(conn, lambda: len(got) == 3, what="third delivery")


def test_prefetch_two(conn, q):
    pub = conn.channel()
    pub.confirm_delivery()
    for i in range(5):
        pub.basic_publish("", q, str(i).encode())
    ch = conn.channel()
    ch.basic_qos(prefetch_count=2)
    got = []
    ch.basic_consume(q, lambda _c, m, p, b: got.append(m))
    wait_until(conn, lambda: len(got) == 2, what="two deliveries")
    conn.process_data_events(time_limit=0.5)
    assert len(got) == 2
    ch.basic_ack(got[1].delivery_tag, multiple=True)
    wait_until(conn, lambda: len(got) == 4, what="two more deliveries")
    conn.process_data_events(time_limit=0.5)
    assert len(got) == 4


# ---------------------------------------------------------------- direct reply-to

def test_direct_reply_to(url, conn, q):
    client = conn.channel()
    replies = []
    client.basic_consume("amq.rabbitmq.reply-to", lambda _c, m, p, b: replies.append((m, p, b)), auto_ack=True)
    client.basic_publish("", q, b"ping", Props(reply_to="amq.rabbitmq.reply-to", correlation_id="c-42"))

    server_conn = connect(url)
    try:
        server = server_conn.channel()
        method, props, body = get_eventually(server, q)
        assert body == b"ping"
        assert props.reply_to.startswith("amq.rabbitmq.reply-to."), props.reply_to
        assert props.reply_to != "amq.rabbitmq.reply-to."
        server.basic_publish("", props.reply_to, b"pong", Props(correlation_id=props.correlation_id))
        server.basic_ack(method.delivery_tag)
    finally:
        server_conn.close()

    wait_until(conn, lambda: replies, what="the direct reply")
    method, props, body = replies[0]
    assert body == b"pong"
    assert props.correlation_id == "c-42"
    assert method.routing_key.startswith("amq.rabbitmq.reply-to")


def test_direct_reply_to_several_calls_one_channel(url, conn, q):
    client = conn.channel()
    replies = {}
    client.basic_consume("amq.rabbitmq.reply-to",
                         lambda _c, m, p, b: replies.__setitem__(p.correlation_id, b), auto_ack=True)
    for i in range(5):
        client.basic_publish("", q, str(i).encode(), Props(reply_to="amq.rabbitmq.reply-to", correlation_id=f"c{i}"))
    server_conn = connect(url)
    try:
        server = server_conn.channel()
        for _ in range(5):
            method, props, body = get_eventually(server, q, auto_ack=True)
            server.basic_publish("", props.reply_to, b"re:" + body, Props(correlation_id=props.correlation_id))
    finally:
        server_conn.close()
    wait_until(conn, lambda: len(replies) == 5, what="5 direct replies")
    assert replies == {f"c{i}": f"re:{i}".encode() for i in range(5)}


def test_direct_reply_to_after_caller_left(url, conn, q):
    """A reply to a caller that went away is dropped (returned 312 if mandatory); the server's channel stays open."""
    client = connect(url)
    try:
        cch = client.channel()
        cch.basic_consume("amq.rabbitmq.reply-to", lambda *a: None, auto_ack=True)
        cch.basic_publish("", q, b"req", Props(reply_to="amq.rabbitmq.reply-to"))
        server = conn.channel()
        _m, props, _b = get_eventually(server, q, auto_ack=True)
    finally:
        client.close()
    returned = []
    server.add_on_return_callback(lambda _c, m, p, b: returned.append(m))
    server.basic_publish("", props.reply_to, b"late")
    server.basic_publish("", props.reply_to, b"late-mandatory", mandatory=True)
    server.basic_publish("", "amq.rabbitmq.reply-to.not-a-real-one", b"garbage")
    wait_until(conn, lambda: returned, what="basic.return of the mandatory late reply")
    conn.process_data_events(time_limit=0.3)
    assert [(m.reply_code, m.routing_key) for m in returned] == [(312, props.reply_to)]
    assert server.is_open
    server.queue_declare(queue=q, passive=True)


def test_direct_reply_to_requires_consumer_406(conn, q):
    ch = conn.channel()
    ch.basic_publish("", q, b"x", Props(reply_to="amq.rabbitmq.reply-to"))
    with closed_with(406):
        ch.queue_declare(queue=q, passive=True)


def test_direct_reply_to_consumer_must_be_no_ack_406(conn):
    with closed_with(406):
        conn.channel().basic_consume("amq.rabbitmq.reply-to", lambda *a: None, auto_ack=False)


# ---------------------------------------------------------------- heartbeats

def test_heartbeat_negotiation(url):
    c = connect(url, heartbeat=2)
    try:
        assert c._impl.params.heartbeat == 2
        c.sleep(5)  # idle at the application level; pika keeps the socket serviced
        assert c.is_open
        checker = c._impl._heartbeat_checker
        assert checker is not None
        assert checker._heartbeat_frames_received >= 1, "the broker sent no heartbeat while idle"
        ch = c.channel()
        name = ch.queue_declare(queue="", exclusive=True).method.queue
        ch.basic_publish("", name, b"alive")
        assert get_eventually(ch, name, auto_ack=True)[2] == b"alive"
    finally:
        if c.is_open:
            c.close()


class RawAmqp:
    """Just enough AMQP over a plain socket, with pika's codec, to misbehave on purpose."""

    def __init__(self, url):
        p = pika.URLParameters(url)
        self.params = p
        self.sock = socket.create_connection((p.host, p.port), timeout=5)
        self.buf = b""

    def send(self, *frames):
        self.sock.sendall(b"".join(f.marshal() for f in frames))

    def recv_frame(self, timeout=5.0):
        self.sock.settimeout(timeout)
        while True:
            consumed, fr = pframe.decode_frame(self.buf)
            if fr is not None:
                self.buf = self.buf[consumed:]
                return fr
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buf += data

    def recv_method(self, cls, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            fr = self.recv_frame(timeout)
            assert fr is not None, f"connection closed while waiting for {cls.__name__}"
            if isinstance(fr, pframe.Method):
                assert isinstance(fr.method, cls), f"expected {cls.__name__}, got {fr.method}"
                return fr.method
        raise AssertionError(f"no {cls.__name__}")

    def handshake(self, heartbeat, frame_max=None):
        self.send(pframe.ProtocolHeader())
        start = self.recv_method(spec.Connection.Start)
        assert b"PLAIN" in start.mechanisms.split(b" ") if isinstance(start.mechanisms, bytes) else "PLAIN" in start.mechanisms
        creds = self.params.credentials
        response = f"\0{creds.username}\0{creds.password}"
        self.send(pframe.Method(0, spec.Connection.StartOk(
            client_properties={"product": "warren-raw-test"}, mechanism="PLAIN", response=response, locale="en_US")))
        tune = self.recv_method(spec.Connection.Tune)
        self.send(pframe.Method(0, spec.Connection.TuneOk(
            channel_max=tune.channel_max or 2047, frame_max=frame_max or tune.frame_max or 131072,
            heartbeat=heartbeat)))
        self.send(pframe.Method(0, spec.Connection.Open(virtual_host=self.params.virtual_host)))
        self.recv_method(spec.Connection.OpenOk)
        return tune

    def open_channel(self, number=1):
        self.send(pframe.Method(number, spec.Channel.Open()))
        self.recv_method(spec.Channel.OpenOk)

    def publish(self, channel, routing_key, body, frame_max, exchange=""):
        chunk = frame_max - 8
        self.send(pframe.Method(channel, spec.Basic.Publish(exchange=exchange, routing_key=routing_key)),
                  pframe.Header(channel, len(body), spec.BasicProperties()),
                  *[pframe.Body(channel, body[i:i + chunk]) for i in range(0, len(body), chunk)])

    def expect_connection_close(self, code, timeout=5.0):
        """The next method frame must be connection.close with `code`; answers close-ok, waits for EOF."""
        deadline = time.monotonic() + timeout
        while True:
            assert time.monotonic() < deadline, f"no connection.close {code}"
            try:
                fr = self.recv_frame(max(0.1, deadline - time.monotonic()))
            except socket.timeout:
                raise AssertionError(f"no connection.close {code} within {timeout}s: the broker said nothing")
            assert fr is not None, f"connection dropped without connection.close {code}"
            if isinstance(fr, pframe.Method):
                break
        assert isinstance(fr.method, spec.Connection.Close), f"expected connection.close {code}, got {fr.method}"
        assert fr.channel_number == 0
        assert fr.method.reply_code == code, fr.method
        self.send(pframe.Method(0, spec.Connection.CloseOk()))
        while time.monotonic() < deadline:
            try:
                if self.recv_frame(max(0.1, deadline - time.monotonic())) is None:
                    break
            except (ConnectionResetError, socket.timeout):
                break
        return fr.method

    def close(self):
        self.sock.close()


def test_broker_closes_connection_when_client_heartbeats_stop(url):
    """heartbeat=1 negotiated, then the client goes silent: the broker must hang up."""
    raw = RawAmqp(url)
    try:
        raw.handshake(heartbeat=1)
        t0 = time.monotonic()
        saw_heartbeat = False
        while True:
            assert time.monotonic() - t0 < 10, "broker kept a silent client for 10 s with heartbeat=1"
            try:
                fr = raw.recv_frame(timeout=10)
            except (ConnectionResetError, socket.timeout):
                break
            if fr is None:
                break
            if isinstance(fr, pframe.Heartbeat):
                saw_heartbeat = True
        elapsed = time.monotonic() - t0
        assert saw_heartbeat, "the broker sent no heartbeat before hanging up"
        assert elapsed >= 1.0, f"hung up too early ({elapsed:.2f}s)"
    finally:
        raw.close()


def test_connection_tune_and_frame_max(url):
    raw = RawAmqp(url)
    try:
        tune = raw.handshake(heartbeat=0)
        assert tune.frame_max >= 4096
        assert tune.channel_max >= 1
    finally:
        raw.close()


# ---------------------------------------------------------------- connection establishment

def _url_with(url, password=None, vhost=None):
    p = pika.URLParameters(url)
    creds = p.credentials
    vh = vhost if vhost is not None else p.virtual_host
    from urllib.parse import quote

    return (f"amqp://{quote(creds.username, safe='')}:{quote(password or creds.password, safe='')}"
            f"@{p.host}:{p.port}/{quote(vh, safe='')}")


def test_wrong_password_refused_403(url):
    with pytest.raises(pika.exceptions.ProbableAuthenticationError) as e:
        connect(_url_with(url, password="wrong-" + uuid.uuid4().hex[:6]))
    assert "403" in str(e.value) and "ACCESS_REFUSED" in str(e.value)


def test_unknown_vhost_refused_530(url):
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as e:
        connect(_url_with(url, vhost="no-such-vhost-" + uuid.uuid4().hex[:6]))
    assert "530" in str(e.value) and "NOT_ALLOWED" in str(e.value)


def test_many_channels_on_one_connection(conn, q):
    chans = [conn.channel() for _ in range(20)]
    assert len({c.channel_number for c in chans}) == 20
    for i, c in enumerate(chans):
        c.basic_publish("", q, str(i).encode())
    c0 = chans[0]
    got = []
    deadline = time.monotonic() + 5
    while len(got) < 20 and time.monotonic() < deadline:
        m, _p, b = c0.basic_get(q, auto_ack=True)
        if m is None:
            time.sleep(0.02)
        else:
            got.append(b)
    assert sorted(got, key=int) == [str(i).encode() for i in range(20)]
    for c in chans[1:]:
        c.close()
    assert conn.is_open


# ---------------------------------------------------------------- protocol errors (raw frames)

def test_deliveries_respect_client_frame_max(url):
    """With frame_max 4096 negotiated, no frame the broker sends is larger than 4096 bytes."""
    raw = RawAmqp(url)
    try:
        raw.handshake(heartbeat=0, frame_max=4096)
        raw.open_channel(1)
        raw.send(pframe.Method(1, spec.Queue.Declare(queue="", exclusive=True)))
        name = raw.recv_method(spec.Queue.DeclareOk).queue
        body = os.urandom(20000)
        raw.publish(1, name, body, frame_max=4096)
        got = b""
        sizes = []
        deadline = time.monotonic() + 5
        while len(got) < len(body):
            assert time.monotonic() < deadline, "message not delivered"
            raw.send(pframe.Method(1, spec.Basic.Get(queue=name, no_ack=True)))
            while True:
                before = len(raw.buf)
                fr = raw.recv_frame()
                assert fr is not None
                if isinstance(fr, pframe.Method) and isinstance(fr.method, spec.Basic.GetEmpty):
                    time.sleep(0.05)
                    break
                if isinstance(fr, pframe.Body):
                    sizes.append(len(fr.fragment) + 8)
                    got += fr.fragment
                    if len(got) >= len(body):
                        break
        assert got == body
        assert max(sizes) <= 4096, sizes
    finally:
        raw.close()


def test_frame_larger_than_frame_max_501(url):
    raw = RawAmqp(url)
    try:
        raw.handshake(heartbeat=0, frame_max=4096)
        raw.open_channel(1)
        raw.send(pframe.Method(1, spec.Basic.Publish(exchange="", routing_key="x")),
                 pframe.Header(1, 8000, spec.BasicProperties()), pframe.Body(1, b"x" * 8000))
        close = raw.expect_connection_close(501)
        assert close.reply_text.startswith("FRAME_ERROR")
    finally:
        raw.close()


def test_frame_on_unopened_channel_504(url):
    raw = RawAmqp(url)
    try:
        raw.handshake(heartbeat=0)
        raw.send(pframe.Method(5, spec.Queue.Declare(queue="", exclusive=True)))
        close = raw.expect_connection_close(504)
        assert close.reply_text.startswith("CHANNEL_ERROR")
    finally:
        raw.close()


def test_second_channel_open_504(url):
    raw = RawAmqp(url)
    try:
        raw.handshake(heartbeat=0)
        raw.open_channel(1)
        raw.send(pframe.Method(1, spec.Channel.Open()))
        raw.expect_connection_close(504)
    finally:
        raw.close()


def test_method_in_the_middle_of_content_505(url):
    raw = RawAmqp(url)
    try:
        raw.handshake(heartbeat=0)
        raw.open_channel(1)
        raw.send(pframe.Method(1, spec.Basic.Publish(exchange="", routing_key="x")),
                 pframe.Header(1, 10, spec.BasicProperties()), pframe.Body(1, b"abc"),
                 pframe.Method(1, spec.Queue.Declare(queue="", exclusive=True)))
        close = raw.expect_connection_close(505)
        assert close.reply_text.startswith("UNEXPECTED_FRAME")
    finally:
        raw.close()


def test_unsupported_protocol_header_answered_with_ours(url):
    p = pika.URLParameters(url)
    with socket.create_connection((p.host, p.port), timeout=5) as s:
        s.sendall(b"AMQP\x00\x00\x08\x00")  # AMQP 0-8
        data = b""
        deadline = time.monotonic() + 5
        while len(data) < 8 and time.monotonic() < deadline:
            chunk = s.recv(8 - len(data))
            if not chunk:
                break
            data += chunk
        assert data == b"AMQP\x00\x00\x09\x01"


def test_garbage_instead_of_protocol_header(url):
    p = pika.URLParameters(url)
    with socket.create_connection((p.host, p.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\n\r\n")
        data = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(64)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
        assert data in (b"", b"AMQP\x00\x00\x09\x01"), data


# ---------------------------------------------------------------- more queue semantics

def test_expiration_zero_without_consumer_drops(ch, q):
    ch.confirm_delivery()
    ch.basic_publish("", q, b"now-or-never", Props(expiration="0"))
    ch.basic_publish("", q, b"kept")
    time.sleep(0.2)
    assert get_all(ch, q) == [b"kept"]


@pytest.mark.parametrize("queue_ttl,msg_ttl", [(60000, "100"), (100, "60000")])
def test_lower_of_queue_and_message_ttl_applies(ch, cleanup, queue_ttl, msg_ttl):
    ch.confirm_delivery()
    (name,) = declare_queues(ch, cleanup, 1, arguments={"x-message-ttl": queue_ttl})
    ch.basic_publish("", name, b"x", Props(expiration=msg_ttl))
    time.sleep(0.5)
    assert get_all(ch, name) == []


def test_ttl_expires_messages_behind_a_consumer_free_queue(ch, cleanup, conn):
    """Expired messages are not delivered to a consumer that attaches later."""
    ch.confirm_delivery()
    (name,) = declare_queues(ch, cleanup, 1, arguments={"x-message-ttl": 150})
    ch.basic_publish("", name, b"old")
    time.sleep(0.5)
    ch.basic_publish("", name, b"fresh")
    got = []
    ch.basic_consume(name, lambda _c, m, p, b: got.append(b), auto_ack=True)
    wait_until(conn, lambda: got, what="delivery")
    conn.process_data_events(time_limit=0.2)
    assert got == [b"fresh"]


def test_negative_message_ttl_argument_406(conn):
    with closed_with(406):
        conn.channel().queue_declare(queue=uname("q"), arguments={"x-message-ttl": -1})
    assert conn.is_open


def test_queue_name_with_amq_prefix_403(conn):
    with closed_with(403):
        conn.channel().queue_declare(queue="amq.mine-" + uuid.uuid4().hex[:6])


def test_x_death_count_grows_on_a_dead_letter_cycle(ch, cleanup):
    """A rejects to B (via the default exchange); B's TTL sends it back to A; rejected again."""
    ch.confirm_delivery()
    a, b = uname("qa"), uname("qb")
    ch.queue_declare(queue=a, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": b})
    cleanup.queues.append(a)
    ch.queue_declare(queue=b, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": a,
                                         "x-message-ttl": 50})
    cleanup.queues.append(b)
    ch.basic_publish("", a, b"cycle")
    for round_ in (1, 2):
        method, props, body = get_eventually(ch, a)
        assert body == b"cycle"
        ch.basic_reject(method.delivery_tag, requeue=False)
    method, props, body = get_eventually(ch, a)  # back from B a second time
    deaths = props.headers["x-death"]
    by_key = {(d["queue"], d["reason"]): d["count"] for d in deaths}
    assert by_key == {(a, "rejected"): 2, (b, "expired"): 2}, deaths
    assert len(deaths) == 2
    assert (deaths[0]["queue"], deaths[0]["reason"]) == (b, "expired"), "the most recent death comes first"
    assert props.headers["x-first-death-queue"] == a
    assert props.headers["x-first-death-reason"] == "rejected"
    ch.basic_ack(method.delivery_tag)


def test_ack_after_basic_cancel(conn, q):
    ch = conn.channel()
    got = []
    tag = ch.basic_consume(q, lambda _c, m, p, b: got.append(m))
    ch.basic_publish("", q, b"x")
    wait_until(conn, lambda: got, what="delivery")
    ch.basic_cancel(tag)
    ch.basic_ack(got[0].delivery_tag)
    ch.queue_declare(queue=q, passive=True)  # the channel is still fine
    conn.process_data_events(time_limit=0.2)
    assert ch.is_open
    assert ch.queue_declare(queue=q, passive=True).method.message_count == 0


def test_ack_all_with_tag_zero_multiple(ch, q):
    ch.confirm_delivery()
    for b in (b"1", b"2", b"3"):
        ch.basic_publish("", q, b)
    for _ in range(3):
        ch.basic_get(q)
    ch.basic_ack(0, multiple=True)
    ch.close()
    c2 = ch.connection.channel()
    time.sleep(0.2)
    assert c2.basic_get(q) == (None, None, None), "acked messages came back"


def test_double_ack_406(conn, q):
    ch = conn.channel()
    ch.confirm_delivery()
    ch.basic_publish("", q, b"x")
    method, _p, _b = ch.basic_get(q)
    ch.basic_ack(method.delivery_tag)
    ch.basic_ack(method.delivery_tag)
    with closed_with(406):
        ch.queue_declare(queue=q, passive=True)


def test_fifo_order_through_a_consumer(conn, q):
    pub = conn.channel()
    pub.confirm_delivery()
    n = 500
    for i in range(n):
        pub.basic_publish("", q, str(i).encode())
    ch = conn.channel()
    ch.basic_qos(prefetch_count=50)
    got = []

    def on_msg(c, m, p, b):
        got.append(int(b))
        c.basic_ack(m.delivery_tag)

    ch.basic_consume(q, on_msg)
    wait_until(conn, lambda: len(got) == n, timeout=20, what=f"{n} deliveries")
    assert got == list(range(n))


def test_prefetch_zero_is_unlimited(conn, q):
    pub = conn.channel()
    pub.confirm_delivery()
    for i in range(20):
        pub.basic_publish("", q, str(i).encode())
    ch = conn.channel()
    ch.basic_qos(prefetch_count=0)
    got = []
    ch.basic_consume(q, lambda _c, m, p, b: got.append(m))
    wait_until(conn, lambda: len(got) == 20, what="20 unacked deliveries")


def test_heartbeat_zero_disables_heartbeats(url):
    c = connect(url, heartbeat=0)
    try:
        assert c._impl.params.heartbeat == 0
        assert c._impl._heartbeat_checker is None
        c.sleep(2.5)
        assert c.is_open
        c.channel().queue_declare(queue="", exclusive=True)
    finally:
        c.close()


# ---------------------------------------------------------------- capabilities and RabbitMQ extensions

RABBITMQ_CAPABILITIES = ["publisher_confirms", "exchange_exchange_bindings", "basic.nack", "consumer_cancel_notify",
                         "connection.blocked", "authentication_failure_close", "per_consumer_qos", "direct_reply_to"]


def test_server_capabilities(conn):
    props = conn._impl.server_properties
    caps = props.get("capabilities", {})
    assert {c: caps.get(c) for c in RABBITMQ_CAPABILITIES} == {c: True for c in RABBITMQ_CAPABILITIES}
    assert props.get("product") and props.get("version")


def test_exchange_to_exchange_binding(ch, cleanup):
    ch.confirm_delivery()
    src = declare_exchange(ch, cleanup, "direct")
    dst = declare_exchange(ch, cleanup, "fanout")
    (name,) = declare_queues(ch, cleanup, 1)
    ch.queue_bind(name, dst)
    ch.exchange_bind(destination=dst, source=src, routing_key="k")
    ch.basic_publish(src, "k", b"through")
    ch.basic_publish(src, "other", b"not-through")
    assert get_all(ch, name) == [b"through"]
    ch.exchange_unbind(destination=dst, source=src, routing_key="k")
    ch.basic_publish(src, "k", b"after-unbind")
    assert get_all(ch, name) == []


def test_exchange_binding_reaches_queue_once(ch, cleanup):
    """A queue reachable both directly and through an exchange-to-exchange binding gets one copy."""
    ch.confirm_delivery()
    src = declare_exchange(ch, cleanup, "topic")
    mid = declare_exchange(ch, cleanup, "fanout")
    (name,) = declare_queues(ch, cleanup, 1)
    ch.queue_bind(name, src, routing_key="a.*")
    ch.queue_bind(name, mid)
    ch.exchange_bind(destination=mid, source=src, routing_key="#")
    ch.basic_publish(src, "a.b", b"one")
    ch.basic_publish(src, "z", b"two")
    assert get_all(ch, name) == [b"one", b"two"]


def test_internal_exchange_refuses_publish_403(conn, cleanup):
    ch = conn.channel()
    x = declare_exchange(ch, cleanup, "fanout", internal=True)
    ch.basic_publish(x, "", b"x")
    with closed_with(403):
        ch.queue_declare(queue="", exclusive=True)


def test_auto_delete_exchange_goes_with_its_last_binding(conn, cleanup):
    ch = conn.channel()
    x = uname("x_ad")
    ch.exchange_declare(exchange=x, exchange_type="direct", auto_delete=True)
    cleanup.exchanges.append(x)
    (name,) = declare_queues(ch, cleanup, 1)
    ch.queue_bind(name, x, routing_key="k")
    ch.exchange_declare(exchange=x, passive=True)
    ch.queue_unbind(name, x, routing_key="k")
    deadline = time.monotonic() + 5
    while True:
        try:
            conn.channel().exchange_declare(exchange=x, passive=True)
        except ChannelClosedByBroker as e:
            assert e.reply_code == 404
            break
        assert time.monotonic() < deadline, "auto-delete exchange survived its last binding"
        time.sleep(0.1)


def test_queue_expires_when_unused(conn):
    ch = conn.channel()
    name = uname("exp")
    ch.queue_declare(queue=name, arguments={"x-expires": 300})
    deadline = time.monotonic() + 10
    while True:
        try:
            conn.channel().queue_declare(queue=name, passive=True)
        except ChannelClosedByBroker as e:
            assert e.reply_code == 404
            break
        assert time.monotonic() < deadline, "x-expires queue was not deleted"
        time.sleep(1.0)  # a (passive) declare counts as use and restarts the 300 ms, so look rarely


def test_global_qos_limits_the_channel(conn, cleanup):
    pub = conn.channel()
    pub.confirm_delivery()
    qa, qb = declare_queues(pub, cleanup, 2)
    for name in (qa, qb):
        for i in range(5):
            pub.basic_publish("", name, str(i).encode())
    ch = conn.channel()
    ch.basic_qos(prefetch_count=3, global_qos=True)
    got = []
    ch.basic_consume(qa, lambda _c, m, p, b: got.append(m))
    ch.basic_consume(qb, lambda _c, m, p, b: got.append(m))
    wait_until(conn, lambda: len(got) >= 3, what="3 deliveries")
    conn.process_data_events(time_limit=0.5)
    assert len(got) == 3, "global qos 3: three unacked deliveries on the channel in all"


def test_per_consumer_qos(conn, cleanup):
    pub = conn.channel()
    pub.confirm_delivery()
    qa, qb = declare_queues(pub, cleanup, 2)
    for name in (qa, qb):
        for i in range(5):
            pub.basic_publish("", name, str(i).encode())
    ch = conn.channel()
    ch.basic_qos(prefetch_count=2)
    got = {"a": [], "b": []}
    ch.basic_consume(qa, lambda _c, m, p, b: got["a"].append(m))
    ch.basic_consume(qb, lambda _c, m, p, b: got["b"].append(m))
    wait_until(conn, lambda: len(got["a"]) >= 2 and len(got["b"]) >= 2, what="2 deliveries per consumer")
    conn.process_data_events(time_limit=0.5)
    assert (len(got["a"]), len(got["b"])) == (2, 2)


# ---------------------------------------------------------------- load

def test_many_publishers_and_consumers(url, q):
    import threading

    publishers, per_publisher, consumers = 8, 150, 3
    total = publishers * per_publisher
    received = []
    lock = threading.Lock()
    errors = []
    stop = threading.Event()

    def consume():
        try:
            c = connect(url)
            ch = c.channel()
            ch.basic_qos(prefetch_count=20)

            def on_msg(chan, m, p, b):
                with lock:
                    received.append(b)
                chan.basic_ack(m.delivery_tag)

            ch.basic_consume(q, on_msg)
            deadline = time.monotonic() + 40
            while not stop.is_set() and time.monotonic() < deadline:
                c.process_data_events(time_limit=0.1)
            c.close()
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    def publish(pid):
        try:
            c = connect(url)
            ch = c.channel()
            ch.confirm_delivery()
            for i in range(per_publisher):
                ch.basic_publish("", q, f"{pid}:{i}".encode())
            c.close()
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    cons = [threading.Thread(target=consume, daemon=True) for _ in range(consumers)]
    for t in cons:
        t.start()
    pubs = [threading.Thread(target=publish, args=(p,), daemon=True) for p in range(publishers)]
    for t in pubs:
        t.start()
    for t in pubs:
        t.join(timeout=40)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with lock:
            if len(received) >= total:
                break
        time.sleep(0.05)
    time.sleep(0.2)
    stop.set()
    for t in cons:
        t.join(timeout=10)
    assert not errors, errors
    assert len(received) == total, f"{len(received)} of {total}"
    assert sorted(received) == sorted(f"{p}:{i}".encode() for p in range(publishers) for i in range(per_publisher))
    # per publisher, order is kept across the shared queue only per consumer; check nothing was duplicated
    assert len(set(received)) == total


# ---------------------------------------------------------------- requeue order, deletions

def test_unacked_requeued_in_order_when_consumer_connection_closes(url, q):
    pubc = connect(url)
    try:
        pub = pubc.channel()
        pub.confirm_delivery()
        for i in range(1, 6):
            pub.basic_publish("", q, str(i).encode())
        c = connect(url)
        ch = c.channel()
        got = []
        ch.basic_consume(q, lambda _c, m, p, b: got.append(b))
        wait_until(c, lambda: len(got) == 5, what="5 deliveries")
        c.close()  # never acked
        bodies = []
        deadline = time.monotonic() + 5
        while len(bodies) < 5 and time.monotonic() < deadline:
            m, _p, b = pub.basic_get(q, auto_ack=True)
            if m is None:
                time.sleep(0.05)
                continue
            assert m.redelivered
            bodies.append(b)
        assert bodies == [b"1", b"2", b"3", b"4", b"5"]
    finally:
        pubc.close()


def test_nack_multiple_requeues_ahead_of_waiting_messages(ch, q):
    ch.confirm_delivery()
    for i in range(1, 6):
        ch.basic_publish("", q, str(i).encode())
    tags = [ch.basic_get(q)[0].delivery_tag for _ in range(3)]
    ch.basic_nack(tags[-1], multiple=True, requeue=True)
    got = [get_eventually(ch, q, auto_ack=True) for _ in range(5)]
    assert [(b, m.redelivered) for m, _p, b in got] == [
        (b"1", True), (b"2", True), (b"3", True), (b"4", False), (b"5", False)]


def test_exchange_delete_if_unused_406_and_bindings_go(conn, cleanup):
    ch = conn.channel()
    ch.confirm_delivery()
    x = declare_exchange(ch, cleanup, "fanout")
    (name,) = declare_queues(ch, cleanup, 1)
    ch.queue_bind(name, x)
    with closed_with(406):
        ch.exchange_delete(x, if_unused=True)
    ch = conn.channel()
    ch.confirm_delivery()
    ch.exchange_delete(x)
    ch.exchange_declare(exchange=x, exchange_type="fanout")
    ch.basic_publish(x, "", b"no binding any more")
    assert get_all(ch, name) == []
    ch.queue_declare(queue=name, passive=True)  # the queue itself stays


def test_deleted_queue_loses_its_bindings(conn, cleanup):
    ch = conn.channel()
    x = declare_exchange(ch, cleanup, "direct")
    name = uname("q")
    ch.queue_declare(queue=name)
    ch.queue_bind(name, x, routing_key="k")
    ch.queue_delete(name)
    ch.queue_declare(queue=name)  # same name, new queue: no binding
    cleanup.queues.append(name)
    ch.confirm_delivery()
    with pytest.raises(UnroutableError):
        ch.basic_publish(x, "k", b"x", mandatory=True)


# ---------------------------------------------------------------- raw content: every field type, interleaving

def _ss(s):
    b = s.encode()
    return struct.pack(">B", len(b)) + b


def _ls(b):
    return struct.pack(">I", len(b)) + b


def _table(entries):
    body = b"".join(_ss(k) + v for k, v in entries)
    return struct.pack(">I", len(body)) + body


# Every field type RabbitMQ knows (its letters: 's' is a short int, 'u'/'i' unsigned), encoded by hand:
# pika can only produce some of them and decodes several to the same Python type.
FIELD_VALUES = [
    ("t", b"t\x01"), ("b", b"b" + struct.pack(">b", -5)), ("B", b"B" + struct.pack(">B", 250)),
    ("s", b"s" + struct.pack(">h", -300)), ("u", b"u" + struct.pack(">H", 65000)),
    ("I", b"I" + struct.pack(">i", -70000)), ("i", b"i" + struct.pack(">I", 4000000000)),
    ("l", b"l" + struct.pack(">q", -(2**40))), ("f", b"f" + struct.pack(">f", 1.5)),
    ("d", b"d" + struct.pack(">d", -2.25)), ("D", b"D" + struct.pack(">Bi", 2, 314)),
    ("S", b"S" + _ls("h\u00e9llo".encode())), ("T", b"T" + struct.pack(">Q", 1700000000)),
    ("V", b"V"), ("x", b"x" + _ls(b"\x00\xff")),
]
FIELD_VALUES_ALL = FIELD_VALUES + [
    ("A", b"A" + _ls(b"".join(v for _k, v in FIELD_VALUES))),
    ("F", b"F" + _table(FIELD_VALUES)),
]


def _content_header_payload(body_size):
    flags = 0x8000 | 0x2000  # content-type, headers
    return struct.pack(">HHQ", 60, 0, body_size) + struct.pack(">H", flags) + _ss("text/plain") + _table(FIELD_VALUES_ALL)


def _raw_frame(kind, channel, payload):
    return struct.pack(">BHI", kind, channel, len(payload)) + payload + b"\xce"


def _parse_value(b, off):
    t = b[off:off + 1]
    off += 1
    fixed = {b"t": 1, b"b": 1, b"B": 1, b"s": 2, b"u": 2, b"I": 4, b"i": 4, b"l": 8, b"f": 4, b"d": 8,
             b"D": 5, b"T": 8, b"V": 0}
    if t in fixed:
        n = fixed[t]
        return (t, b[off:off + n]), off + n
    if t in (b"S", b"x"):
        n = struct.unpack_from(">I", b, off)[0]
        return (t, b[off + 4:off + 4 + n]), off + 4 + n
    if t == b"A":
        n = struct.unpack_from(">I", b, off)[0]
        end, o, items = off + 4 + n, off + 4, []
        while o < end:
            v, o = _parse_value(b, o)
            items.append(v)
        return (t, items), end
    if t == b"F":
        v, o = _parse_table(b, off)
        return (t, v), o
    raise AssertionError(f"unknown field type {t!r}")


def _parse_table(b, off):
    """{key: (type letter, raw value)}: compares field types, not just values."""
    n = struct.unpack_from(">I", b, off)[0]
    end, o, d = off + 4 + n, off + 4, {}
    while o < end:
        kl = b[o]
        k = b[o + 1:o + 1 + kl].decode()
        o += 1 + kl
        d[k], o = _parse_value(b, o)
    return d, end


def _headers_of(header_payload):
    flags = struct.unpack_from(">H", header_payload, 12)[0]
    assert flags & 0x8000 and flags & 0x2000, hex(flags)
    off = 14 + 1 + header_payload[14]  # skip content-type
    return _parse_table(header_payload, off)[0]


def _raw_get_header(raw, queue, timeout=5.0):
    """basic.get on channel 1 until a message comes; returns the raw content-header payload."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        raw.send(pframe.Method(1, spec.Basic.Get(queue=queue, no_ack=True)))
        while True:
            kind, payload = _raw_read(raw)
            if kind == 1:
                cls, meth = struct.unpack_from(">HH", payload)
                if (cls, meth) == (60, 72):  # get-empty
                    time.sleep(0.05)
                    break
                assert (cls, meth) == (60, 71), (cls, meth)
            elif kind == 2:
                return payload
    raise AssertionError("no message")


def _raw_read(raw):
    """One frame as (type, payload), straight from the socket."""
    raw.sock.settimeout(5)
    while True:
        if len(raw.buf) >= 7:
            kind, _ch, size = struct.unpack_from(">BHI", raw.buf)
            if len(raw.buf) >= size + 8:
                payload = raw.buf[7:7 + size]
                raw.buf = raw.buf[size + 8:]
                return kind, payload
        data = raw.sock.recv(65536)
        assert data, "connection closed"
        raw.buf += data


def test_every_field_type_round_trips_byte_exact(url, q):
    raw = RawAmqp(url)
    try:
        raw.handshake(heartbeat=0)
        raw.open_channel(1)
        body = b"typed"
        sent = _content_header_payload(len(body))
        raw.sock.sendall(pframe.Method(1, spec.Basic.Publish(exchange="", routing_key=q)).marshal()
                         + _raw_frame(2, 1, sent) + pframe.Body(1, body).marshal())
        got = _raw_get_header(raw, q)
        assert _headers_of(got) == _headers_of(sent)
        assert got == sent, "the content header is delivered as it was published"
    finally:
        raw.close()


def test_field_types_survive_dead_lettering(url, ch, cleanup):
    dlq = uname("dlq")
    ch.queue_declare(queue=dlq)
    cleanup.queues.append(dlq)
    src = uname("src")
    ch.queue_declare(queue=src, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq})
    cleanup.queues.append(src)
    raw = RawAmqp(url)
    try:
        raw.handshake(heartbeat=0)
        raw.open_channel(1)
        sent = _content_header_payload(1)
        raw.sock.sendall(pframe.Method(1, spec.Basic.Publish(exchange="", routing_key=src)).marshal()
                         + _raw_frame(2, 1, sent) + pframe.Body(1, b"x").marshal())
        method, _p, _b = get_eventually(ch, src)
        ch.basic_reject(method.delivery_tag, requeue=False)
        got = _headers_of(_raw_get_header(raw, dlq))
        want = _headers_of(sent)
        assert {k: got.get(k) for k in want} == want, "a dead-lettered message keeps its headers and their types"
        # the x-death table, with RabbitMQ's field types
        xd_type, deaths = got["x-death"]
        assert xd_type == b"A" and len(deaths) == 1 and deaths[0][0] == b"F"
        death = deaths[0][1]
        assert {k: v[0] for k, v in death.items()} == {
            "count": b"l", "reason": b"S", "queue": b"S", "time": b"T", "exchange": b"S", "routing-keys": b"A"}
        assert death["count"][1] == struct.pack(">q", 1)
        assert death["reason"][1] == b"rejected"
        assert death["routing-keys"][1] == [(b"S", src.encode())]
        for k in ("x-first-death-exchange", "x-first-death-queue", "x-first-death-reason"):
            assert got[k][0] == b"S", k
    finally:
        raw.close()


def test_heartbeats_between_content_frames(url):
    raw = RawAmqp(url)
    try:
        raw.handshake(heartbeat=0)
        raw.open_channel(1)
        raw.send(pframe.Method(1, spec.Queue.Declare(queue="", exclusive=True)))
        name = raw.recv_method(spec.Queue.DeclareOk).queue
        raw.send(pframe.Method(1, spec.Basic.Publish(exchange="", routing_key=name)), pframe.Heartbeat(),
                 pframe.Header(1, 6, spec.BasicProperties()), pframe.Heartbeat(),
                 pframe.Body(1, b"abc"), pframe.Heartbeat(), pframe.Body(1, b"def"))
        _raw_get_header(raw, name)
        kind, payload = _raw_read(raw)
        assert (kind, payload) == (3, b"abcdef")
    finally:
        raw.close()


def test_content_interleaved_across_channels(url):
    """Frames of two channels' publishes may interleave; each message is assembled per channel."""
    raw = RawAmqp(url)
    try:
        raw.handshake(heartbeat=0)
        raw.open_channel(1)
        raw.open_channel(2)
        raw.send(pframe.Method(1, spec.Queue.Declare(queue="", exclusive=True)))
        name = raw.recv_method(spec.Queue.DeclareOk).queue
        raw.send(pframe.Method(1, spec.Basic.Publish(exchange="", routing_key=name)),
                 pframe.Header(1, 6, spec.BasicProperties(message_id="one")),
                 pframe.Body(1, b"111"),
                 pframe.Method(2, spec.Basic.Publish(exchange="", routing_key=name)),
                 pframe.Header(2, 3, spec.BasicProperties(message_id="two")),
                 pframe.Body(2, b"222"),
                 pframe.Body(1, b"111"))
        bodies = []
        for _ in range(2):
            _raw_get_header(raw, name)
            kind, payload = _raw_read(raw)
            assert kind == 3
            bodies.append(payload)
        assert sorted(bodies) == [b"111111", b"222"]
    finally:
        raw.close()


# ---------------------------------------------------------------- declaration equivalence

QUEUE_INEQUIVALENT = {
    "auto_delete": ({}, {"auto_delete": True}),
    "args-added": ({}, {"arguments": {"x-message-ttl": 1000}}),
    "args-removed": ({"arguments": {"x-message-ttl": 1000}}, {}),
    "max-length-differs": ({"arguments": {"x-max-length": 5}}, {"arguments": {"x-max-length": 6}}),
    "dlx-differs": ({"arguments": {"x-dead-letter-exchange": "a"}}, {"arguments": {"x-dead-letter-exchange": "b"}}),
}


@pytest.mark.parametrize("case", sorted(QUEUE_INEQUIVALENT))
def test_queue_redeclare_inequivalent_406(conn, case):
    first, second = QUEUE_INEQUIVALENT[case]
    name = uname("eq")
    conn.channel().queue_declare(queue=name, **first)
    try:
        with closed_with(406) as e:
            conn.channel().queue_declare(queue=name, **second)
        assert "inequivalent arg" in e.value.reply_text
    finally:
        conn.channel().queue_delete(name)


QUEUE_EQUIVALENT = {
    "same": ({"arguments": {"x-message-ttl": 1000}}, {"arguments": {"x-message-ttl": 1000}}),
    "non-x-argument-differs": ({"arguments": {"foo": 1}}, {"arguments": {"foo": 2}}),
    "integer-width-differs": ({"arguments": {"x-message-ttl": 1000}},
                              {"arguments": {"x-message-ttl": pika.compat.long(1000)}}),
    "passive-ignores-the-rest": ({}, {"passive": True, "durable": True, "arguments": {"x-message-ttl": 5}}),
}


@pytest.mark.parametrize("case", sorted(QUEUE_EQUIVALENT))
def test_queue_redeclare_equivalent_ok(conn, case):
    first, second = QUEUE_EQUIVALENT[case]
    name = uname("eq")
    ch = conn.channel()
    ch.queue_declare(queue=name, **first)
    try:
        assert ch.queue_declare(queue=name, **second).method.queue == name
    finally:
        ch.queue_delete(name)


@pytest.mark.parametrize("first_exclusive", [False, True])
def test_queue_redeclare_exclusive_changed_405(conn, first_exclusive):
    """RabbitMQ answers a change of `exclusive` with 405 RESOURCE_LOCKED, even on the owner's connection."""
    name = uname("eq")
    conn.channel().queue_declare(queue=name, exclusive=first_exclusive)
    try:
        with closed_with(405):
            conn.channel().queue_declare(queue=name, exclusive=not first_exclusive)
    finally:
        conn.channel().queue_delete(name)


EXCHANGE_INEQUIVALENT = {
    "durable": {"durable": True},
    "auto_delete": {"auto_delete": True},
    "internal": {"internal": True},
    "arguments": {"arguments": {"alternate-exchange": "elsewhere"}},
}


@pytest.mark.parametrize("case", sorted(EXCHANGE_INEQUIVALENT))
def test_exchange_redeclare_inequivalent_406(conn, case):
    name = uname("eqx")
    conn.channel().exchange_declare(exchange=name, exchange_type="direct")
    try:
        with closed_with(406) as e:
            conn.channel().exchange_declare(exchange=name, exchange_type="direct", **EXCHANGE_INEQUIVALENT[case])
        assert "inequivalent arg" in e.value.reply_text
    finally:
        conn.channel().exchange_delete(name)


def test_exchange_passive_ignores_type(conn, cleanup):
    ch = conn.channel()
    x = declare_exchange(ch, cleanup, "direct")
    ch.exchange_declare(exchange=x, exchange_type="fanout", passive=True)


def test_unknown_exchange_type_closes_connection_503(url):
    c = connect(url)
    try:
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
            c.channel().exchange_declare(exchange=uname("x"), exchange_type="no-such-type")
        assert e.value.reply_code == 503
        assert "COMMAND_INVALID" in e.value.reply_text
    finally:
        if c.is_open:
            c.close()


# ---------------------------------------------------------------- odds and ends RabbitMQ answers in a particular way

def test_counts_exclude_unacked(ch):
    ch.confirm_delivery()
    name = uname("q")
    ch.queue_declare(queue=name)
    for _ in range(3):
        ch.basic_publish("", name, b"x")
    method, _p, _b = ch.basic_get(name)
    assert ch.queue_declare(queue=name, passive=True).method.message_count == 2
    assert ch.queue_delete(name).method.message_count == 2
    ch.basic_ack(method.delivery_tag)  # acking a message of a deleted queue is fine
    ch.queue_declare(queue="", exclusive=True)


def test_prefetch_size_not_implemented_540(url):
    c = connect(url)
    try:
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
            c.channel().basic_qos(prefetch_size=1000)
        assert e.value.reply_code == 540
    finally:
        if c.is_open:
            c.close()


def test_basic_recover_requeues(ch, q):
    ch.confirm_delivery()
    ch.basic_publish("", q, b"r")
    ch.basic_get(q)
    ch.basic_recover(requeue=True)
    method, _p, body = get_eventually(ch, q, auto_ack=True)
    assert (body, method.redelivered) == (b"r", True)


def test_cancel_unknown_consumer_tag_is_ok(url):
    raw = RawAmqp(url)
    try:
        raw.handshake(heartbeat=0)
        raw.open_channel(1)
        raw.send(pframe.Method(1, spec.Basic.Cancel(consumer_tag="never-was")))
        assert raw.recv_method(spec.Basic.CancelOk).consumer_tag == "never-was"
    finally:
        raw.close()


@pytest.mark.parametrize("op", ["consume", "purge", "get", "bind"])
def test_missing_queue_404(conn, op):
    ch = conn.channel()
    missing = uname("missing")
    with closed_with(404):
        if op == "consume":
            ch.basic_consume(missing, lambda *a: None)
        elif op == "purge":
            ch.queue_purge(missing)
        elif op == "get":
            ch.basic_get(missing)
        else:
            ch.queue_bind(missing, "amq.direct", routing_key="k")
    assert conn.is_open


@pytest.mark.parametrize("op", ["queue_delete", "exchange_delete", "unbind_missing_queue", "unbind_never_bound"])
def test_idempotent_deletes_and_unbinds(conn, op):
    ch = conn.channel()
    if op == "queue_delete":
        assert ch.queue_delete(uname("missing")).method.message_count == 0
    elif op == "exchange_delete":
        ch.exchange_delete(uname("missing"))
    elif op == "unbind_missing_queue":
        ch.queue_unbind(uname("missing"), "amq.direct", routing_key="k")
    else:
        name = ch.queue_declare(queue="", exclusive=True).method.queue
        ch.queue_unbind(name, "amq.direct", routing_key="never-bound")
    assert ch.is_open


def test_amq_default_is_not_an_exchange_name(conn):
    ch = conn.channel()
    name = ch.queue_declare(queue="", exclusive=True).method.queue
    with closed_with(404):
        ch.queue_bind(name, "amq.default")


# ---------------------------------------------------------------- more protocol errors (raw frames)

def _raw_open(url):
    raw = RawAmqp(url)
    raw.handshake(heartbeat=0)
    return raw


def _connection_ends(raw, timeout=5.0):
    """Read until the broker closes the connection (connection.close or EOF/reset); returns the close or None.
    Fails if the connection stays up, or if the broker answers with anything but a close."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            fr = raw.recv_frame(max(0.1, deadline - time.monotonic()))
        except (ConnectionResetError, BrokenPipeError):
            return None
        except socket.timeout:
            break
        if fr is None:
            return None
        if isinstance(fr, pframe.Method):
            assert isinstance(fr.method, spec.Connection.Close), f"expected the connection to end, got {fr.method}"
            return fr.method
    raise AssertionError("the broker kept the connection open")


def test_bad_frame_end_501(url):
    raw = _raw_open(url)
    try:
        raw.open_channel(1)
        raw.sock.sendall(pframe.Method(1, spec.Queue.Declare(queue="", exclusive=True)).marshal()[:-1] + b"\x00")
        raw.expect_connection_close(501)
    finally:
        raw.close()


def test_unknown_frame_type_501(url):
    raw = _raw_open(url)
    try:
        raw.sock.sendall(struct.pack(">BHI", 9, 0, 1) + b"x" + b"\xce")
        raw.expect_connection_close(501)
    finally:
        raw.close()


@pytest.mark.parametrize("what", ["header", "body"])
def test_content_without_publish_505(url, what):
    raw = _raw_open(url)
    try:
        raw.open_channel(1)
        raw.send(pframe.Header(1, 3, spec.BasicProperties()) if what == "header" else pframe.Body(1, b"abc"))
        raw.expect_connection_close(505)
    finally:
        raw.close()


def test_channel_method_on_channel_zero_504(url):
    raw = _raw_open(url)
    try:
        raw.send(pframe.Method(0, spec.Queue.Declare(queue="", exclusive=True)))
        raw.expect_connection_close(504)
    finally:
        raw.close()


def test_connection_method_on_a_channel_503(url):
    raw = _raw_open(url)
    try:
        raw.open_channel(1)
        raw.send(pframe.Method(1, spec.Connection.Open(virtual_host="/")))
        raw.expect_connection_close(503)
    finally:
        raw.close()


def test_heartbeat_on_a_channel_is_a_connection_error(url):
    raw = _raw_open(url)
    try:
        raw.open_channel(1)
        raw.sock.sendall(struct.pack(">BHI", 8, 1, 0) + b"\xce")
        close = _connection_ends(raw)
        # RabbitMQ answers 505 UNEXPECTED_FRAME; the 0-9-1 spec says 501 FRAME_ERROR: either will do.
        assert close is not None and close.reply_code in (501, 505), close
    finally:
        raw.close()


def test_unknown_method_ends_the_connection(url):
    raw = _raw_open(url)
    try:
        raw.open_channel(1)
        raw.sock.sendall(struct.pack(">BHI", 1, 1, 4) + struct.pack(">HH", 60, 999) + b"\xce")
        _connection_ends(raw)
    finally:
        raw.close()


def _tune_then_open(url, frame_max):
    raw = RawAmqp(url)
    raw.send(pframe.ProtocolHeader())
    raw.recv_method(spec.Connection.Start)
    creds = raw.params.credentials
    raw.send(pframe.Method(0, spec.Connection.StartOk(
        client_properties={}, mechanism="PLAIN", response=f"\0{creds.username}\0{creds.password}", locale="en_US")))
    tune = raw.recv_method(spec.Connection.Tune)
    raw.send(pframe.Method(0, spec.Connection.TuneOk(channel_max=tune.channel_max, frame_max=frame_max(tune),
                                                     heartbeat=0)))
    raw.send(pframe.Method(0, spec.Connection.Open(virtual_host=raw.params.virtual_host)))
    return raw


@pytest.mark.parametrize("case", ["below-4096", "above-the-server's"])
def test_bad_frame_max_in_tune_ok_refused(url, case):
    pick = (lambda t: 1000) if case == "below-4096" else (lambda t: t.frame_max * 2)
    raw = _tune_then_open(url, pick)
    try:
        _connection_ends(raw)  # never connection.open-ok
    finally:
        raw.close()


def test_server_generated_consumer_tags(url):
    raw = _raw_open(url)
    try:
        raw.open_channel(1)
        raw.send(pframe.Method(1, spec.Queue.Declare(queue="", exclusive=True)))
        name = raw.recv_method(spec.Queue.DeclareOk).queue
        tags = []
        for _ in range(2):
            raw.send(pframe.Method(1, spec.Basic.Consume(queue=name, consumer_tag="", no_ack=True)))
            tags.append(raw.recv_method(spec.Basic.ConsumeOk).consumer_tag)
        assert all(tags) and tags[0] != tags[1], tags
        raw.send(pframe.Method(1, spec.Basic.Cancel(consumer_tag=tags[0])))
        assert raw.recv_method(spec.Basic.CancelOk).consumer_tag == tags[0]
    finally:
        raw.close()


def test_duplicate_consumer_tag_on_a_channel_530(url):
    raw = _raw_open(url)
    try:
        raw.open_channel(1)
        raw.send(pframe.Method(1, spec.Queue.Declare(queue="", exclusive=True)))
        name = raw.recv_method(spec.Queue.DeclareOk).queue
        raw.send(pframe.Method(1, spec.Basic.Consume(queue=name, consumer_tag="dup", no_ack=True)))
        raw.recv_method(spec.Basic.ConsumeOk)
        raw.send(pframe.Method(1, spec.Basic.Consume(queue=name, consumer_tag="dup", no_ack=True)))
        raw.expect_connection_close(530)
    finally:
        raw.close()


@pytest.mark.parametrize("length", [1, 2])
def test_expiry_dead_letter_cycle_is_dropped(ch, cleanup, length):
    """A message that only ever expires around a dead-letter cycle is dropped, not looped forever."""
    ch.confirm_delivery()
    names = [uname("cyc") for _ in range(length)]
    for i, name in enumerate(names):
        ch.queue_declare(queue=name, arguments={"x-message-ttl": 50, "x-dead-letter-exchange": "",
                                               "x-dead-letter-routing-key": names[(i + 1) % length]})
        cleanup.queues.append(name)
    ch.basic_publish("", names[0], b"loop")
    time.sleep(1.0)
    seen = []
    for _ in range(10):  # a message still cycling every 50 ms would show up in one of these
        for name in names:
            method, props, _b = ch.basic_get(name, auto_ack=True)
            if method is not None:
                seen.append((name, props.headers))
        time.sleep(0.05)
    assert seen == []


def test_auto_delete_queue_without_consumers_stays(conn, cleanup):
    ch = conn.channel()
    name = uname("ad")
    ch.queue_declare(queue=name, auto_delete=True)
    cleanup.queues.append(name)
    ch.confirm_delivery()
    ch.basic_publish("", name, b"x")
    ch.basic_get(name, auto_ack=True)  # basic.get is not a consumer
    time.sleep(0.5)
    ch.queue_declare(queue=name, passive=True)


def test_auto_delete_queue_goes_when_its_consumers_connection_closes(url, conn):
    name = uname("ad")
    conn.channel().queue_declare(queue=name, auto_delete=True)
    other = connect(url)
    other.channel().basic_consume(name, lambda *a: None)
    other.close()
    deadline = time.monotonic() + 5
    while True:
        try:
            conn.channel().queue_declare(queue=name, passive=True)
        except ChannelClosedByBroker as e:
            assert e.reply_code == 404
            break
        assert time.monotonic() < deadline, "auto-delete queue survived its consumer's connection"
        time.sleep(0.1)


def test_basic_get_ignores_prefetch(conn, cleanup):
    ch = conn.channel()
    ch.confirm_delivery()
    qa, qb = declare_queues(ch, cleanup, 2)
    for name in (qa, qb):
        ch.basic_publish("", name, b"1")
        ch.basic_publish("", name, b"2")
    ch.basic_qos(prefetch_count=1)
    got = []
    ch.basic_consume(qa, lambda _c, m, p, b: got.append(m))
    wait_until(conn, lambda: got, what="delivery")
    assert [ch.basic_get(qb)[2] for _ in range(2)] == [b"1", b"2"]


def test_max_length_reject_publish_nacks(ch, cleanup):
    ch.confirm_delivery()
    (name,) = declare_queues(ch, cleanup, 1, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    ch.basic_publish("", name, b"1")
    with pytest.raises(pika.exceptions.NackError):
        ch.basic_publish("", name, b"2")
    assert get_all(ch, name) == [b"1"]
    ch.basic_publish("", name, b"3")  # room again
    assert get_all(ch, name) == [b"3"]


def test_max_length_reject_publish_mandatory_is_not_returned(conn, cleanup):
    """A publish refused by a full queue is nacked, not returned: it had a route."""
    ch = conn.channel()
    ch.confirm_delivery()
    (name,) = declare_queues(ch, cleanup, 1, arguments={"x-max-length": 0, "x-overflow": "reject-publish"})
    returned = []
    ch.add_on_return_callback(lambda *a: returned.append(a))
    with pytest.raises(pika.exceptions.NackError):
        ch.basic_publish("", name, b"x", mandatory=True)
    assert returned == []


def test_publisher_dies_mid_content_nothing_enqueued(url, conn, q):
    raw = _raw_open(url)
    raw.open_channel(1)
    raw.send(pframe.Method(1, spec.Basic.Publish(exchange="", routing_key=q)),
             pframe.Header(1, 10, spec.BasicProperties()), pframe.Body(1, b"abc"))
    raw.close()  # gone before the last 7 bytes
    time.sleep(0.3)
    ch = conn.channel()
    assert ch.basic_get(q) == (None, None, None)
    ch.confirm_delivery()
    ch.basic_publish("", q, b"next")
    assert get_all(ch, q) == [b"next"]


def test_confirm_delivery_tags_count_every_publish(url, q):
    """In confirm mode every basic.publish gets the next tag (1, 2, ...), routable or not, each confirmed once."""
    raw = _raw_open(url)
    try:
        raw.open_channel(1)
        raw.send(pframe.Method(1, spec.Confirm.Select()))
        raw.recv_method(spec.Confirm.SelectOk)
        n = 60
        frames = []
        for i in range(n):
            key = q if i % 3 else uname("nowhere")
            frames += [pframe.Method(1, spec.Basic.Publish(exchange="", routing_key=key, mandatory=(i % 5 == 0))),
                       pframe.Header(1, 1, spec.BasicProperties()), pframe.Body(1, b"x")]
        raw.send(*frames)
        confirmed = set()
        returned_before_ack = []
        returns = []
        deadline = time.monotonic() + 10
        while len(confirmed) < n and time.monotonic() < deadline:
            fr = raw.recv_frame()
            assert fr is not None
            if isinstance(fr, pframe.Method):
                m = fr.method
                if isinstance(m, spec.Basic.Ack):
                    assert 1 <= m.delivery_tag <= n, m
                    if m.multiple:
                        tags = [t for t in range(1, m.delivery_tag + 1) if t not in confirmed]
                    else:
                        assert m.delivery_tag not in confirmed, f"tag {m.delivery_tag} confirmed twice"
                        tags = [m.delivery_tag]
                    for t in tags:
                        confirmed.add(t)
                        if t in returns:
                            returned_before_ack.append(t)
                elif isinstance(m, spec.Basic.Return):
                    # the return belongs to the next unconfirmed mandatory unroutable publish
                    pending = [i + 1 for i in range(n) if i % 3 == 0 and i % 5 == 0 and (i + 1) not in returns]
                    returns.append(pending[0])
                else:
                    raise AssertionError(f"unexpected {m}")
        assert confirmed == set(range(1, n + 1))
        expected_returns = [i + 1 for i in range(n) if i % 3 == 0 and i % 5 == 0]
        assert sorted(returns) == expected_returns
        assert sorted(returned_before_ack) == expected_returns, "a basic.return comes before its basic.ack"
    finally:
        raw.close()


def test_consumer_that_stops_reading_does_not_stall_others(url, conn, cleanup):
    """A client that consumes a lot and never reads its socket must not hold up other connections."""
    ch = conn.channel()
    ch.confirm_delivery()
    big, small = declare_queues(ch, cleanup, 2)
    chunk = os.urandom(100 * 1024)
    for _ in range(300):  # 30 MiB: far more than the socket buffers hold
        ch.basic_publish("", big, chunk)
    raw = _raw_open(url)
    try:
        raw.open_channel(1)
        raw.send(pframe.Method(1, spec.Basic.Consume(queue=big, consumer_tag="hog", no_ack=True)))
        time.sleep(1.0)  # the broker fills the socket and blocks writing to it; we never read
        other = connect(url)
        try:
            och = other.channel()
            och.confirm_delivery()
            t0 = time.monotonic()
            for i in range(20):
                och.basic_publish("", small, str(i).encode())
            assert get_all(och, small) == [str(i).encode() for i in range(20)]
            name = och.queue_declare(queue="", exclusive=True).method.queue
            och.queue_delete(name)
            elapsed = time.monotonic() - t0
            assert elapsed < 3, f"other clients were held up for {elapsed:.1f}s"
        finally:
            other.close()
        assert conn.is_open
    finally:
        raw.close()


def test_nowait_methods_get_no_reply(url):
    raw = _raw_open(url)
    try:
        raw.open_channel(1)
        q, x = uname("nw"), uname("nwx")
        for method in (spec.Exchange.Declare(exchange=x, type="fanout", nowait=True),
                       spec.Queue.Declare(queue=q, nowait=True),
                       spec.Queue.Bind(queue=q, exchange=x, nowait=True),
                       spec.Basic.Consume(queue=q, consumer_tag="c1", no_ack=True, nowait=True),
                       spec.Basic.Cancel(consumer_tag="c1", nowait=True),
                       spec.Queue.Purge(queue=q, nowait=True),
                       spec.Queue.Unbind(queue=q, exchange=x),  # no nowait in unbind: answered
                       spec.Basic.Qos(prefetch_count=5)):
            raw.send(pframe.Method(1, method))
        # nothing for the nowait methods: the next two replies are unbind-ok and qos-ok
        replies = [type(raw.recv_frame().method).__name__ for _ in range(2)]
        assert replies == ["UnbindOk", "QosOk"], replies
        raw.send(pframe.Method(1, spec.Queue.Delete(queue=q, nowait=True)),
                 pframe.Method(1, spec.Exchange.Delete(exchange=x, nowait=True)),
                 pframe.Method(1, spec.Confirm.Select(nowait=True)))
        raw.publish(1, uname("nowhere"), b"x", frame_max=131072)
        fr = raw.recv_frame()
        assert isinstance(fr.method, spec.Basic.Ack), fr
        raw.send(pframe.Method(1, spec.Queue.Declare(queue=q, passive=True)))
        fr = raw.recv_frame()
        assert isinstance(fr.method, spec.Channel.Close) and fr.method.reply_code == 404, fr
    finally:
        raw.close()


def test_immediate_flag_not_implemented_540(url):
    raw = _raw_open(url)
    try:
        raw.open_channel(1)
        raw.send(pframe.Method(1, spec.Basic.Publish(exchange="", routing_key="x", immediate=True)),
                 pframe.Header(1, 1, spec.BasicProperties()), pframe.Body(1, b"x"))
        raw.expect_connection_close(540)
    finally:
        raw.close()


# ---------------------------------------------------------------- queue arguments

QUEUE_ARGUMENTS_INVALID = {
    "ttl-string": {"x-message-ttl": "1000"},
    "ttl-negative": {"x-message-ttl": -1},
    "ttl-bool": {"x-message-ttl": True},
    "max-length-negative": {"x-max-length": -1},
    "max-length-string": {"x-max-length": "5"},
    "max-length-bytes-negative": {"x-max-length-bytes": -1},
    "expires-zero": {"x-expires": 0},
    "expires-negative": {"x-expires": -5},
    "dlx-not-a-string": {"x-dead-letter-exchange": 5},
    "dl-routing-key-not-a-string": {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": 5},
    "dl-routing-key-without-dlx": {"x-dead-letter-routing-key": "k"},
    "overflow-unknown": {"x-overflow": "bogus"},
}


@pytest.mark.parametrize("case", sorted(QUEUE_ARGUMENTS_INVALID))
def test_invalid_queue_arguments_406(conn, case):
    name = uname("args")
    try:
        with closed_with(406) as e:
            conn.channel().queue_declare(queue=name, arguments=QUEUE_ARGUMENTS_INVALID[case])
        assert "PRECONDITION_FAILED" in e.value.reply_text
        assert conn.is_open
        with closed_with(404):
            conn.channel().queue_declare(queue=name, passive=True)  # and no queue was made
    finally:
        if conn.is_open:
            conn.channel().queue_delete(name)


@pytest.mark.parametrize("args", [{"x-whatever": 1}, {"x-overflow": "drop-head"}, {"x-overflow": "reject-publish"},
                                  {"x-queue-type": "classic"}, {"x-dead-letter-exchange": "later"}],
                         ids=["unknown-x-arg", "drop-head", "reject-publish", "classic", "dlx-not-declared-yet"])
def test_accepted_queue_arguments(ch, args):
    name = uname("args")
    ch.queue_declare(queue=name, arguments=args)
    ch.queue_delete(name)


def test_priority_queue_delivers_highest_first(ch, cleanup):
    ch.confirm_delivery()
    (name,) = declare_queues(ch, cleanup, 1, arguments={"x-max-priority": 10})
    for prio in (1, 5, None, 9, 5, 200):
        ch.basic_publish("", name, str(prio).encode(), Props(priority=prio))
    # 200 is capped at the queue's maximum (10); no priority counts as 0; FIFO within a priority
    assert get_all(ch, name) == [b"200", b"9", b"5", b"5", b"1", b"None"]


def test_alternate_exchange(conn, cleanup):
    ch = conn.channel()
    ch.confirm_delivery()
    ae = declare_exchange(ch, cleanup, "fanout")
    x = uname("x_direct")
    ch.exchange_declare(exchange=x, exchange_type="direct", arguments={"alternate-exchange": ae})
    cleanup.exchanges.append(x)
    q, qa = declare_queues(ch, cleanup, 2)
    ch.queue_bind(q, x, routing_key="k")
    ch.queue_bind(qa, ae)
    ch.basic_publish(x, "k", b"routed")
    ch.basic_publish(x, "other", b"alt", mandatory=True)  # routed by the alternate: not returned
    assert get_all(ch, q) == [b"routed"]
    assert get_all(ch, qa) == [b"alt"]
