"""Warren's CLI and the tutorial's pika programs, talking to each other through each broker target.

(a) the tutorial's rpc_client calls `warren serve fib`;
(b) `warren call` calls the tutorial's rpc_server;
(c) `warren call` to a queue that does not exist fails fast with exit 5.
"""
import signal
import time

from conftest import connect
import pytest

from helpers import run, tutorial, uname

READY = "[x] Awaiting RPC requests"


def _serve(procs, warren, broker, queue, *extra):
    args = [warren, "serve", "fib"]
    if queue is not None:
        args += ["--queue", queue]
    s = procs.start(args + list(extra), broker.env(), name="warren serve")
    s.wait_for(READY, timeout=15)
    return s


# ---------------------------------------------------------------- (a) pika client -> warren server

def test_pika_client_calls_warren_server(broker, rpcq, procs, warren):
    q = rpcq
    _serve(procs, warren, broker, q)
    r = run(tutorial("rpc_client.py", "--queue", q, 30), broker.env(), timeout=30)
    assert r.returncode == 0, r
    assert r.stdout.splitlines() == [" [x] Requesting fib(30)", " [.] Got 832040"], r.stdout


def test_pika_client_calls_warren_server_tutorial_defaults(broker, procs, warren):
    """Both sides on their defaults: queue rpc_queue, n = 30."""
    _serve(procs, warren, broker, None, "--concurrency", "1")
    r = run(tutorial("rpc_client.py"), broker.env(), timeout=30)
    assert r.returncode == 0, r
    assert r.stdout.splitlines() == [" [x] Requesting fib(30)", " [.] Got 832040"], r.stdout


def test_pika_client_warren_server_many_values(broker, rpcq, procs, warren):
    q = rpcq
    _serve(procs, warren, broker, q)
    ns = [0, 1, 2, 10, 50, 93, 94, 100]
    r = run(tutorial("rpc_client.py", "--queue", q, *ns), broker.env(), timeout=30)
    assert r.returncode == 0, r

    def fib(n):
        a, b = 0, 1
        for _ in range(n):
            a, b = b, a + b
        return a

    got = [line for line in r.stdout.splitlines() if "Got" in line]
    assert got == [f" [.] Got {fib(n)}" for n in ns], r.stdout
    assert "Status" not in r.stdout or " [.] Status ok" in r.stdout, r.stdout


def test_pika_client_bad_input_gets_invalid_argument(broker, rpcq, procs, warren):
    q = rpcq
    _serve(procs, warren, broker, q)
    r = run(tutorial("rpc_client.py", "--queue", q, "abc"), broker.env(), timeout=30)
    assert r.returncode == 0, r
    assert " [.] Status invalid_argument" in r.stdout.splitlines(), r.stdout
    body = [line for line in r.stdout.splitlines() if "Got" in line][0]
    assert len(body) > len(" [.] Got "), "the error reply must carry a readable message"


def test_pika_raw_reply_properties_from_warren(broker, rpcq, procs, warren):
    """The reply's correlation_id is copied, and the error reply has x-status and a text body."""
    q = rpcq
    _serve(procs, warren, broker, q)
    c = connect(broker.url)
    try:
        ch = c.channel()
        cb = ch.queue_declare(queue="", exclusive=True).method.queue
        replies = {}

        def on_reply(_ch, _m, props, body):
            replies[props.correlation_id] = (props, body)

        ch.basic_consume(cb, on_reply, auto_ack=True)
        import pika

        for corr, body in (("c-ok", b"30"), ("c-bad", b"abc"), ("c-neg", b"-1"), ("c-empty", b"")):
            ch.basic_publish("", q, body, pika.BasicProperties(reply_to=cb, correlation_id=corr))
        deadline = time.monotonic() + 15
        while len(replies) < 4 and time.monotonic() < deadline:
            c.process_data_events(time_limit=0.5)
        assert set(replies) == {"c-ok", "c-bad", "c-neg", "c-empty"}, replies
        props, body = replies["c-ok"]
        assert body == b"832040"
        assert (props.headers or {}).get("x-status", "ok") == "ok"
        for corr in ("c-bad", "c-neg", "c-empty"):
            props, body = replies[corr]
            assert (props.headers or {}).get("x-status") == "invalid_argument", (corr, props)
            assert body and body.decode("utf-8"), (corr, body)
        # the bad requests were acked, not requeued
        assert ch.queue_declare(queue=q, passive=True).method.message_count == 0
    finally:
        c.close()


# ---------------------------------------------------------------- (b) warren client -> pika server

def test_warren_call_pika_server(broker, rpcq, procs, warren):
    q = rpcq
    server = procs.start(tutorial("rpc_server.py", "--queue", q), broker.env())
    server.wait_for(READY)
    r = run([warren, "call", "--queue", q, "30"], broker.env(), timeout=30)
    assert r.returncode == 0, r
    assert r.stdout.strip() == "832040", r
    server.wait_for(" [.] fib(30)")


def test_warren_call_pika_server_tutorial_defaults(broker, procs, warren):
    server = procs.start(tutorial("rpc_server.py"), broker.env())
    server.wait_for(READY)
    r = run([warren, "call", "30"], broker.env(), timeout=30)
    assert r.returncode == 0, r
    assert r.stdout.strip() == "832040", r


def test_warren_call_url_flag(broker, rpcq, procs, warren):
    """--url works without AMQP_URL in the environment."""
    q = rpcq
    server = procs.start(tutorial("rpc_server.py", "--queue", q), broker.env())
    server.wait_for(READY)
    env = broker.env()
    del env["AMQP_URL"]
    r = run([warren, "call", "--url", broker.url, "--queue", q, "20"], env, timeout=30)
    assert r.returncode == 0, r
    assert r.stdout.strip() == "6765", r


# ---------------------------------------------------------------- (c) no route

def test_warren_call_no_such_queue_exits_5_fast(broker, warren):
    q = uname("no_such_queue")
    t0 = time.monotonic()
    r = run([warren, "call", "--queue", q, "1"], broker.env(), timeout=30)
    elapsed = time.monotonic() - t0
    assert r.returncode == 5, r
    assert elapsed < 1.0, f"took {elapsed:.2f}s"


# ---------------------------------------------------------------- Warren to Warren, through the broker

def test_warren_call_warren_serve(broker, rpcq, procs, warren):
    q = rpcq
    _serve(procs, warren, broker, q)
    r = run([warren, "call", "--queue", q, "30"], broker.env(), timeout=30)
    assert (r.returncode, r.stdout.strip()) == (0, "832040"), r


def test_warren_call_remote_error_exits_3(broker, rpcq, procs, warren):
    q = rpcq
    _serve(procs, warren, broker, q)
    r = run([warren, "call", "--queue", q, "abc"], broker.env(), timeout=30)
    assert r.returncode == 3, r
    assert "invalid_argument" in r.stderr, r


def test_warren_call_timeout_exits_4(broker, rpcq, warren):
    """A queue exists but nobody serves it: the call times out."""
    q = rpcq
    c = connect(broker.url)
    try:
        c.channel().queue_declare(queue=q)
        t0 = time.monotonic()
        r = run([warren, "call", "--queue", q, "--timeout", "700ms", "1"], broker.env(), timeout=30)
        elapsed = time.monotonic() - t0
        assert r.returncode == 4, r
        assert 0.6 <= elapsed < 5, elapsed
    finally:
        c.channel().queue_delete(queue=q)
        c.close()


def test_warren_serve_stops_on_sigterm(broker, rpcq, procs, warren):
    q = rpcq
    s = _serve(procs, warren, broker, q)
    assert s.stop(signal.SIGTERM, timeout=10) == 0, s.describe()


def test_warren_call_broker_unavailable_exits_6(warren):
    from helpers import free_port
    import os

    env = dict(os.environ)
    env["AMQP_URL"] = f"amqp://guest:guest@127.0.0.1:{free_port()}/%2f"
    r = run([warren, "call", "1"], env, timeout=30)
    assert r.returncode == 6, r


def test_pika_direct_reply_to_caller_and_warren_server(broker, rpcq, procs, warren):
    """A pika caller using direct reply-to (amq.rabbitmq.reply-to) gets Warren's reply."""
    import pika

    _serve(procs, warren, broker, rpcq)
    c = connect(broker.url)
    try:
        ch = c.channel()
        replies = []
        ch.basic_consume("amq.rabbitmq.reply-to", lambda _c, m, p, b: replies.append((p, b)), auto_ack=True)
        ch.basic_publish("", rpcq, b"30", pika.BasicProperties(reply_to="amq.rabbitmq.reply-to", correlation_id="d-1"))
        deadline = time.monotonic() + 10
        while not replies and time.monotonic() < deadline:
            c.process_data_events(time_limit=0.2)
        assert replies, "no reply through direct reply-to"
        props, body = replies[0]
        assert (props.correlation_id, body) == ("d-1", b"832040")
    finally:
        c.close()


def test_warren_call_request_expires_in_the_queue(broker, rpcq, warren):
    """warren call sets `expiration` to its deadline: once it has timed out, the broker drops the request."""
    c = connect(broker.url)
    try:
        ch = c.channel()
        ch.queue_declare(queue=rpcq)
        r = run([warren, "call", "--queue", rpcq, "--timeout", "400ms", "7"], broker.env(), timeout=30)
        assert r.returncode == 4, r
        time.sleep(0.3)
        assert ch.basic_get(rpcq, auto_ack=True) == (None, None, None), "the expired request is still queued"
    finally:
        c.close()


def test_warren_call_request_properties(broker, rpcq, warren):
    """What a Warren request looks like on the wire (SPEC: request table)."""
    import threading

    c = connect(broker.url)
    try:
        ch = c.channel()
        ch.queue_declare(queue=rpcq)
        result = {}

        def call():
            result["r"] = run([warren, "call", "--queue", rpcq, "--timeout", "5s", "12"], broker.env(), timeout=30)

        t = threading.Thread(target=call, daemon=True)
        t.start()
        deadline = time.monotonic() + 10
        while True:
            method, props, body = ch.basic_get(rpcq, auto_ack=True)
            if method is not None:
                break
            assert time.monotonic() < deadline, "no request arrived"
            time.sleep(0.02)
        assert body == b"12"
        assert props.reply_to, "a call carries reply_to"
        assert props.correlation_id
        assert props.content_type == "text/plain"
        assert props.expiration is not None and 0 < int(props.expiration) <= 5000, props.expiration
        # both targets advertise the direct_reply_to capability, so Warren uses it
        assert props.reply_to.startswith("amq.rabbitmq.reply-to."), props.reply_to
        import pika

        ch.basic_publish("", props.reply_to, b"reply-from-pika", pika.BasicProperties(correlation_id=props.correlation_id))
        t.join(timeout=15)
        r = result["r"]
        assert (r.returncode, r.stdout.strip()) == (0, "reply-from-pika"), r
    finally:
        c.close()


# ---------------------------------------------------------------- Warren's choices (docs/SPEC.md), seen from pika

def _pika_call(broker, queue, body, timeout=10.0, **props):
    """One tutorial-style call from pika (server-named reply queue); returns (props, body) or None."""
    import pika

    c = connect(broker.url)
    try:
        ch = c.channel()
        cb = ch.queue_declare(queue="", exclusive=True).method.queue
        got = []
        ch.basic_consume(cb, lambda _c, m, p, b: got.append((p, b)), auto_ack=True)
        corr = uname("corr")
        ch.basic_publish("", queue, body, pika.BasicProperties(reply_to=cb, correlation_id=corr, **props))
        deadline = time.monotonic() + timeout
        while not got and time.monotonic() < deadline:
            c.process_data_events(time_limit=0.1)
        if not got:
            return None
        p, b = got[0]
        assert p.correlation_id == corr
        return p, b
    finally:
        c.close()


def test_warren_server_reply_copies_delivery_mode_and_sets_content_type(broker, rpcq, procs, warren):
    _serve(procs, warren, broker, rpcq)
    for mode in (1, 2):
        props, body = _pika_call(broker, rpcq, b"10", delivery_mode=mode)
        assert body == b"55"
        assert props.delivery_mode == mode
    props, body = _pika_call(broker, rpcq, b"abc")
    assert props.headers["x-status"] == "invalid_argument"
    assert props.content_type == "text/plain"


def test_warren_server_fib_limits_and_whitespace(broker, rpcq, procs, warren):
    _serve(procs, warren, broker, rpcq)
    props, body = _pika_call(broker, rpcq, b" 30 \n")
    assert body == b"832040" and (props.headers or {}).get("x-status", "ok") == "ok"
    props, body = _pika_call(broker, rpcq, b"100000", timeout=30)
    assert (props.headers or {}).get("x-status", "ok") == "ok"
    a, b = 0, 1
    for _ in range(100000):
        a, b = b, a + b
    import sys

    limit = getattr(sys, "get_int_max_str_digits", lambda: 0)()
    if hasattr(sys, "set_int_max_str_digits"):
        sys.set_int_max_str_digits(0)
    try:
        expected = str(a).encode()
    finally:
        if hasattr(sys, "set_int_max_str_digits"):
            sys.set_int_max_str_digits(limit)
    assert len(body) == 20899 and body == expected, body[:50]
    for bad in (b"100001", b"-1", b"", b"1.5"):
        props, body = _pika_call(broker, rpcq, bad)
        assert props.headers["x-status"] == "invalid_argument", bad
        assert body, "the error says what was wrong"


def test_warren_server_one_way_call(broker, rpcq, procs, warren):
    """No reply_to: the server does the work, sends nothing, acks."""
    import pika

    _serve(procs, warren, broker, rpcq)
    c = connect(broker.url)
    try:
        ch = c.channel()
        ch.confirm_delivery()
        ch.basic_publish("", rpcq, b"20", pika.BasicProperties(correlation_id="one-way"))
        deadline = time.monotonic() + 5
        while ch.queue_declare(queue=rpcq, passive=True).method.message_count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ch.queue_declare(queue=rpcq, passive=True).method.message_count == 0
    finally:
        c.close()
    assert _pika_call(broker, rpcq, b"20")[1] == b"6765", "the server still serves"


def test_warren_server_skips_requests_past_their_deadline(broker, rpcq, procs, warren):
    import pika

    _serve(procs, warren, broker, rpcq)
    past = int(time.time() * 1000) - 10_000
    assert _pika_call(broker, rpcq, b"10", timeout=1.5, headers={"x-deadline": pika.compat.long(past)}) is None
    future = int(time.time() * 1000) + 60_000
    props, body = _pika_call(broker, rpcq, b"10", headers={"x-deadline": pika.compat.long(future)})
    assert body == b"55"
    c = connect(broker.url)
    try:
        assert c.channel().queue_declare(queue=rpcq, passive=True).method.message_count == 0, "the late request was acked"
    finally:
        c.close()


def _responder(broker, queue, replies, timeout=10.0):
    """Take one request from `queue` with pika and answer it with `replies(props)`: a list of (props, body)."""
    import pika

    c = connect(broker.url)
    try:
        ch = c.channel()
        deadline = time.monotonic() + timeout
        while True:
            method, props, body = ch.basic_get(queue, auto_ack=True)
            if method is not None:
                break
            assert time.monotonic() < deadline, "no request arrived"
            time.sleep(0.02)
        for rprops, rbody in replies(props):
            ch.basic_publish("", props.reply_to, rbody, rprops)
        return props, body
    finally:
        c.close()


def _warren_call_against(broker, rpcq, warren, replies, body="5"):
    import threading

    c = connect(broker.url)
    try:
        c.channel().queue_declare(queue=rpcq)
    finally:
        c.close()
    result = {}
    t = threading.Thread(
        target=lambda: result.setdefault("r", run([warren, "call", "--queue", rpcq, "--timeout", "5s", body],
                                                  broker.env(), timeout=30)),
        daemon=True)
    t.start()
    _responder(broker, rpcq, replies)
    t.join(timeout=20)
    return result["r"]


def test_warren_call_ignores_stray_replies(broker, rpcq, warren):
    import pika

    r = _warren_call_against(broker, rpcq, warren, lambda p: [
        (pika.BasicProperties(correlation_id="not-" + p.correlation_id), b"stray"),
        (pika.BasicProperties(), b"no correlation id"),
        (pika.BasicProperties(correlation_id=p.correlation_id), b"the answer"),
    ])
    assert (r.returncode, r.stdout.strip()) == (0, "the answer"), r


@pytest.mark.parametrize("status", ["not_found", "unavailable", "some_future_code"])
def test_warren_call_remote_status_from_a_pika_server(broker, rpcq, warren, status):
    import pika

    r = _warren_call_against(broker, rpcq, warren, lambda p: [
        (pika.BasicProperties(correlation_id=p.correlation_id, content_type="text/plain",
                              headers={"x-status": status}), b"it went wrong"),
    ])
    assert r.returncode == 3, r
    assert "it went wrong" in r.stderr, r
    # A code Warren does not know is carried through by name, not flattened to unknown
    # (SPEC v2: x-status).
    assert status in r.stderr, r


def test_warren_call_ok_status_header_is_success(broker, rpcq, warren):
    import pika

    r = _warren_call_against(broker, rpcq, warren, lambda p: [
        (pika.BasicProperties(correlation_id=p.correlation_id, headers={"x-status": "ok"}), b"fine"),
    ])
    assert (r.returncode, r.stdout.strip()) == (0, "fine"), r


def test_warren_call_sends_x_deadline_as_long(broker, rpcq, warren):
    import pika

    seen = {}

    def replies(p):
        seen["props"] = p
        return [(pika.BasicProperties(correlation_id=p.correlation_id), b"ok")]

    t0 = time.time() * 1000
    r = _warren_call_against(broker, rpcq, warren, replies)
    assert r.returncode == 0, r
    headers = seen["props"].headers or {}
    deadline = headers.get("x-deadline")
    assert isinstance(deadline, pika.compat.long), headers  # AMQP field type 'l'
    assert t0 < deadline < t0 + 5000 + 2000


def test_warren_server_many_concurrent_pika_calls(broker, rpcq, procs, warren):
    import pika

    _serve(procs, warren, broker, rpcq, "--concurrency", "4")
    c = connect(broker.url)
    try:
        ch = c.channel()
        cb = ch.queue_declare(queue="", exclusive=True).method.queue
        replies = {}
        ch.basic_consume(cb, lambda _c, m, p, b: replies.__setitem__(p.correlation_id, b), auto_ack=True)
        n = 200
        for i in range(n):
            ch.basic_publish("", rpcq, str(i % 90).encode(), pika.BasicProperties(reply_to=cb, correlation_id=f"c{i}"))
        deadline = time.monotonic() + 30
        while len(replies) < n and time.monotonic() < deadline:
            c.process_data_events(time_limit=0.1)
    finally:
        c.close()

    def fib(k):
        a, b = 0, 1
        for _ in range(k):
            a, b = b, a + b
        return a

    assert len(replies) == n
    assert all(replies[f"c{i}"] == str(fib(i % 90)).encode() for i in range(n))
