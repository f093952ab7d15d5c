"""RabbitMQ's six tutorials (tests/pika/tutorials), run against each broker target.

The tutorials hard-code their queue and exchange names (hello, task_queue,
logs, direct_logs, topic_logs, rpc_queue), so these tests run serially
(no xdist) and clean up what they can.
"""
import signal
import time

import pika
import pytest

from conftest import connect
from helpers import tutorial, run, uname

GRACE = 0.7  # seconds to wait for messages that must NOT arrive


def _delete_queue(url, name):
    c = connect(url)
    try:
        c.channel().queue_delete(queue=name)
    finally:
        c.close()


def _queue_count(url, name):
    c = connect(url)
    try:
        return c.channel().queue_declare(queue=name, passive=True, durable=True).method.message_count
    finally:
        c.close()


def _received(proc, marker=" [x] "):
    return [line for line in proc.out if line.startswith(marker)]


def _run_ok(args, env, timeout=20):
    r = run(args, env, timeout=timeout)
    assert r.returncode == 0, f"{args} exited {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    return r.stdout


# ---------------------------------------------------------------- 1 hello world

def test_hello_world(broker, procs):
    _delete_queue(broker.url, "hello")
    env = broker.env()
    rx = procs.start(tutorial("receive.py", "--count", 2, "--timeout", 20), env)
    rx.wait_for("Waiting for messages")
    out = _run_ok(tutorial("send.py"), env)
    assert out.strip() == "[x] Sent 'Hello World!'"
    _run_ok(tutorial("send.py", "second"), env)
    assert rx.wait(timeout=15) == 0, rx.describe()
    assert _received(rx) == [" [x] Received b'Hello World!'", " [x] Received b'second'"], rx.describe()


def test_hello_world_send_first(broker, procs):
    """The queue holds the message until a consumer comes."""
    _delete_queue(broker.url, "hello")
    env = broker.env()
    _run_ok(tutorial("send.py"), env)
    rx = procs.start(tutorial("receive.py", "--count", 1, "--timeout", 20), env)
    assert rx.wait(timeout=15) == 0, rx.describe()
    assert _received(rx) == [" [x] Received b'Hello World!'"], rx.describe()


# ---------------------------------------------------------------- 2 work queues

def test_work_queue_round_robin_with_prefetch_1(broker, procs):
    """A busy worker (prefetch 1, task unacked) gets no more tasks: the idle one takes them."""
    _delete_queue(broker.url, "task_queue")
    env = broker.env()
    w1 = procs.start(tutorial("worker.py", "--name", "w1", "--timeout", 40), env)
    w1.wait_for("Waiting for messages")
    w2 = procs.start(tutorial("worker.py", "--name", "w2", "--timeout", 40), env)
    w2.wait_for("Waiting for messages")

    _run_ok(tutorial("new_task.py", "long....."), env)  # 5 s of work
    # Whoever got the long task is busy for 5 s; the short tasks must all go to the other.
    deadline = time.monotonic() + 10
    busy = None
    while busy is None and time.monotonic() < deadline:
        for w in (w1, w2):
            if any("Received long....." in line for line in w.out):
                busy = w
        time.sleep(0.05)
    assert busy is not None, w1.describe() + "\n" + w2.describe()
    idle = w2 if busy is w1 else w1
    shorts = [f"short{i}" for i in range(4)]
    for s in shorts:
        _run_ok(tutorial("new_task.py", s), env)
    idle.wait_for("Done", count=len(shorts), timeout=15)
    busy.wait_for("Done", count=1, timeout=15)
    time.sleep(GRACE)
    busy_got = [line.split("Received ", 1)[1] for line in busy.out if "Received" in line]
    idle_got = [line.split("Received ", 1)[1] for line in idle.out if "Received" in line]
    assert busy_got == ["long....."], busy.describe()
    assert idle_got == shorts, idle.describe()
    assert _queue_count(broker.url, "task_queue") == 0


def test_work_queue_round_robin(broker, procs):
    """Two idle workers share quick tasks in turn."""
    _delete_queue(broker.url, "task_queue")
    env = broker.env()
    w1 = procs.start(tutorial("worker.py", "--name", "w1", "--timeout", 40), env)
    w1.wait_for("Waiting for messages")
    w2 = procs.start(tutorial("worker.py", "--name", "w2", "--timeout", 40), env)
    w2.wait_for("Waiting for messages")
    tasks = [f"task{i}." for i in range(4)]  # 1 s each: the other worker is idle meanwhile
    for t in tasks:
        _run_ok(tutorial("new_task.py", t), env)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        done = sum(1 for w in (w1, w2) for line in w.out if "Done" in line)
        if done >= len(tasks):
            break
        time.sleep(0.1)
    got1 = [line.split("Received ", 1)[1] for line in w1.out if "Received" in line]
    got2 = [line.split("Received ", 1)[1] for line in w2.out if "Received" in line]
    assert sorted(got1 + got2) == sorted(tasks), w1.describe() + "\n" + w2.describe()
    assert len(got1) == 2 and len(got2) == 2, w1.describe() + "\n" + w2.describe()


def test_work_queue_unacked_task_is_redelivered(broker, procs):
    """A worker killed mid-task never acked it: the task goes to another worker."""
    _delete_queue(broker.url, "task_queue")
    env = broker.env()
    w1 = procs.start(tutorial("worker.py", "--name", "w1", "--timeout", 40), env)
    w1.wait_for("Waiting for messages")
    _run_ok(tutorial("new_task.py", "slow..."), env)  # 3 s
    w1.wait_for("Received slow", timeout=10)
    w1.kill()  # SIGKILL: no ack, connection dropped
    w2 = procs.start(tutorial("worker.py", "--name", "w2", "--count", 1, "--timeout", 30), env)
    w2.wait_for("Received slow", timeout=10)
    assert w2.wait(timeout=20) == 0, w2.describe()
    assert _queue_count(broker.url, "task_queue") == 0


def test_work_queue_durable_and_persistent(broker, procs):
    """Tasks sent with no worker running wait in the durable queue, marked persistent."""
    _delete_queue(broker.url, "task_queue")
    env = broker.env()
    for t in ("a", "b", "c"):
        _run_ok(tutorial("new_task.py", t), env)
    c = connect(broker.url)
    try:
        chan = c.channel()
        ok = chan.queue_declare(queue="task_queue", durable=True, passive=True)
        assert ok.method.message_count == 3
        method, props, body = chan.basic_get("task_queue", auto_ack=False)
        assert body == b"a"
        assert props.delivery_mode == 2
        chan.basic_nack(method.delivery_tag, requeue=True)
    finally:
        c.close()
    w = procs.start(tutorial("worker.py", "--count", 3, "--timeout", 20), env)
    assert w.wait(timeout=20) == 0, w.describe()
    assert [line.split("Received ", 1)[1] for line in w.out if "Received" in line] == ["a", "b", "c"]


# ---------------------------------------------------------------- 3 publish/subscribe

def test_publish_subscribe_fanout(broker, procs):
    env = broker.env()
    subs = []
    for _ in range(3):
        s = procs.start(tutorial("receive_logs.py", "--count", 2, "--timeout", 20), env)
        s.wait_for("Waiting for logs")
        subs.append(s)
    queues = {s.out[0].split(" on ", 1)[1].split(". To exit")[0] for s in subs}
    assert len(queues) == 3, "each subscriber must get its own server-named queue"
    assert all(q.startswith("amq.gen-") for q in queues), queues
    _run_ok(tutorial("emit_log.py"), env)
    _run_ok(tutorial("emit_log.py", "error: disk full"), env)
    for s in subs:
        assert s.wait(timeout=15) == 0, s.describe()
        assert _received(s) == [" [x] info: Hello World!", " [x] error: disk full"], s.describe()


def test_publish_subscribe_exclusive_queue_goes_away(broker, procs):
    env = broker.env()
    s = procs.start(tutorial("receive_logs.py", "--timeout", 20), env)
    s.wait_for("Waiting for logs")
    queue = s.out[0].split(" on ", 1)[1].split(". To exit")[0]
    assert s.stop(signal.SIGINT) == 0, s.describe()
    c = connect(broker.url)
    try:
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            c.channel().queue_declare(queue=queue, passive=True)
        assert e.value.reply_code == 404
    finally:
        c.close()


def test_publish_subscribe_no_subscriber_drops(broker, procs):
    """A fanout message with no queue bound is dropped; a later subscriber does not see it."""
    env = broker.env()
    _run_ok(tutorial("emit_log.py", "lost"), env)
    s = procs.start(tutorial("receive_logs.py", "--count", 1, "--timeout", 20), env)
    s.wait_for("Waiting for logs")
    _run_ok(tutorial("emit_log.py", "seen"), env)
    assert s.wait(timeout=15) == 0, s.describe()
    assert _received(s) == [" [x] seen"]


# ---------------------------------------------------------------- 4 routing

def test_routing_direct(broker, procs):
    env = broker.env()
    errors = procs.start(tutorial("receive_logs_direct.py", "--timeout", 30, "error"), env)
    errors.wait_for("Waiting for logs")
    everything = procs.start(tutorial("receive_logs_direct.py", "--timeout", 30, "info", "warning", "error"), env)
    everything.wait_for("Waiting for logs")
    sent = [("info", "i1"), ("warning", "w1"), ("error", "e1"), ("debug", "d1"), ("error", "e2")]
    for sev, msg in sent:
        _run_ok(tutorial("emit_log_direct.py", sev, msg), env)
    errors.wait_for(" [x] ", count=2)
    everything.wait_for(" [x] ", count=4)
    time.sleep(GRACE)
    assert sorted(_received(errors)) == sorted([" [x] error:e1", " [x] error:e2"]), errors.describe()
    assert sorted(_received(everything)) == sorted(
        [" [x] info:i1", " [x] warning:w1", " [x] error:e1", " [x] error:e2"]
    ), everything.describe()


# ---------------------------------------------------------------- 5 topics

TOPIC_CASES = {
    # routing key: which of the receivers below get it
    "quick.orange.rabbit": {"q1", "q2", "all"},
    "lazy.orange.elephant": {"q1", "q2", "all"},
    "quick.orange.fox": {"q1", "all"},
    "lazy.brown.fox": {"q2", "all"},
    "lazy.pink.rabbit": {"q2", "all"},  # matches both q2 patterns: delivered once
    "quick.brown.fox": {"all"},
    "orange": {"all"},
    "quick.orange.new.rabbit": {"all"},
    "lazy.orange.new.rabbit": {"q2", "all"},
    "lazy": {"q2", "all"},  # '#' matches zero words
    "kern.critical": {"kern", "all"},
    "kern": {"all"},
    "kern.critical.disk": {"all"},
    "": {"all"},
}


def test_topics(broker, procs):
    env = broker.env()
    bindings = {
        "q1": ["*.orange.*"],
        "q2": ["*.*.rabbit", "lazy.#"],
        "all": ["#"],
        "kern": ["kern.*"],
    }
    rx = {}
    for name, keys in bindings.items():
        rx[name] = procs.start(tutorial("receive_logs_topic.py", "--timeout", 40, *keys), env, name=name)
        rx[name].wait_for("Waiting for logs")
    for key in TOPIC_CASES:
        _run_ok(tutorial("emit_log_topic.py", key, f"msg-{key or 'empty'}"), env)
    expected = {name: sorted(f" [x] {k}:msg-{k or 'empty'}" for k, who in TOPIC_CASES.items() if name in who) for name in rx}
    for name, p in rx.items():
        p.wait_for(" [x] ", count=len(expected[name]))
    time.sleep(GRACE)
    for name, p in rx.items():
        assert sorted(_received(p)) == expected[name], p.describe()


# ---------------------------------------------------------------- 6 RPC

def test_rpc(broker, procs):
    """The tutorial pair on the tutorial's queue, rpc_queue."""
    env = broker.env()
    server = procs.start(tutorial("rpc_server.py"), env)
    server.wait_for("Awaiting RPC requests")
    out = _run_ok(tutorial("rpc_client.py"), env)
    assert out.splitlines() == [" [x] Requesting fib(30)", " [.] Got 832040"], out


def test_rpc_several_calls_own_queue(broker, rpcq, procs):
    env = broker.env()
    q = rpcq
    server = procs.start(tutorial("rpc_server.py", "--queue", q), env)
    server.wait_for("Awaiting RPC requests")
    out = _run_ok(tutorial("rpc_client.py", "--queue", q, 0, 1, 2, 10, 30, 100), env)
    got = [line for line in out.splitlines() if "Got" in line]
    assert got == [
        " [.] Got 0",
        " [.] Got 1",
        " [.] Got 1",
        " [.] Got 55",
        " [.] Got 832040",
        " [.] Got 354224848179261915075",
    ], out
    server.wait_for("fib(100)")
    assert [line for line in server.out if "fib(" in line] == [
        f" [.] fib({n})" for n in (0, 1, 2, 10, 30, 100)
    ]


def test_rpc_two_servers_share_the_queue(broker, rpcq, procs):
    env = broker.env()
    q = rpcq
    s1 = procs.start(tutorial("rpc_server.py", "--queue", q), env, name="s1")
    s1.wait_for("Awaiting RPC requests")
    s2 = procs.start(tutorial("rpc_server.py", "--queue", q), env, name="s2")
    s2.wait_for("Awaiting RPC requests")
    out = _run_ok(tutorial("rpc_client.py", "--queue", q, *range(20, 30)), env)
    assert out.count(" [.] Got ") == 10, out
    handled1 = sum(1 for line in s1.out if "fib(" in line)
    handled2 = sum(1 for line in s2.out if "fib(" in line)
    assert handled1 + handled2 == 10
    assert handled1 >= 1 and handled2 >= 1, (s1.describe(), s2.describe())


def test_rpc_client_no_server_times_out(broker, rpcq, procs):
    env = broker.env()
    q = rpcq
    c = connect(broker.url)
    try:
        c.channel().queue_declare(queue=q)
        r = run(tutorial("rpc_client.py", "--queue", q, "--timeout", 1, 5), env, timeout=20)
        assert r.returncode == 1, r
        assert "No reply" in r.stdout
    finally:
        c.channel().queue_delete(queue=q)
        c.close()
