"""Warren's CLI and the tutorial's pika programs, talking to each other through each broker target.

(a) the tutorial's rpc_client calls `warren serve fib`;
(b) `warren call` calls the tutorial's rpc_server;
(c) `warren call` to a queue that does not exist fails fast with exit 5.
"""
import signal
import time

from conftest import connect
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
