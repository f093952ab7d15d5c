"""A real Prometheus (Debian's `prometheus`) scrapes `warren serve --metrics-listen`;
the test asks Prometheus's HTTP API for the call counts and checks them against the
calls it made.

A second test has Prometheus scrape `warren broker --metrics-listen` and checks a
queue's depth under RabbitMQ's rabbitmq_prometheus names.
"""
import json
import os
import shutil
import signal
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

import helpers
from conftest import IN_CI

pytestmark = pytest.mark.timeout(120)


def prometheus_bin():
    found = os.environ.get("WARREN_PROMETHEUS") or shutil.which("prometheus")
    if not found:
        if IN_CI:
            pytest.fail("prometheus is not installed (apt-get install prometheus), and CI is set: refusing to skip")
        pytest.skip("prometheus is not installed (apt-get install prometheus)")
    return found


class Prometheus:
    """Prometheus on a free loopback port, scraping `targets` ({job: "host:port"}) every second."""

    def __init__(self, binary, targets):
        self.dir = tempfile.mkdtemp(prefix="warren-prom-")
        scrape = "\n".join(
            f"  - job_name: {job}\n    static_configs:\n      - targets: ['{addr}']" for job, addr in targets.items()
        )
        config = os.path.join(self.dir, "prometheus.yml")
        with open(config, "w") as f:
            f.write(f"global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n{scrape}\n")
        self.port = helpers.free_port()
        self.proc = helpers.Proc(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={os.path.join(self.dir, 'data')}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            name="prometheus",
        )
        if not helpers.wait_port("127.0.0.1", self.port, timeout=20, proc=self.proc.p):
            raise AssertionError(f"prometheus did not listen\n{self.proc.describe()}")

    def query(self, expr):
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=5) as r:
            body = json.load(r)
        assert body["status"] == "success", body
        return body["data"]["result"]

    def wait_value(self, expr, want, timeout=30.0):
        """Waits until `expr` is one sample equal to `want`; fails with the last answer."""
        deadline = time.monotonic() + timeout
        got = None
        while time.monotonic() < deadline:
            try:
                got = self.query(expr)
            except urllib.error.HTTPError as e:
                # 503 until Prometheus has opened its storage: it listens before it is ready.
                if e.code != 503:
                    raise
                got = f"HTTP 503 ({e.reason})"
            else:
                if len(got) == 1 and float(got[0]["value"][1]) == want:
                    return
            time.sleep(0.5)
        raise AssertionError(f"{expr}: wanted {want}, Prometheus answered {got}")

    def stop(self):
        self.proc.stop(signal.SIGTERM, timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


def test_prometheus_counts_the_calls_warren_serve_answered(warren, broker_url):
    binary = prometheus_bin()
    queue = helpers.uname("prom_fib")
    metrics_port = helpers.free_port()
    server = helpers.Proc(
        [warren, "serve", "fib", "--queue", queue, "--url", broker_url, "--metrics-listen", f"127.0.0.1:{metrics_port}"],
        name="warren serve",
    )
    prom = None
    try:
        server.wait_for("Awaiting RPC requests", timeout=15)
        targets = {"warren_serve": f"127.0.0.1:{metrics_port}"}
        prom = Prometheus(binary, targets)
        ok, bad = 5, 2
        for n in range(ok):
            out = helpers.run([warren, "call", "--queue", queue, "--url", broker_url, str(n + 10)], env=None)
            assert out.returncode == 0, out
        for _ in range(bad):
            out = helpers.run([warren, "call", "--queue", queue, "--url", broker_url, "not-a-number"], env=None)
            assert out.returncode == 3, out
        sel = f'job="warren_serve",queue="{queue}"'
        prom.wait_value(f'up{{job="warren_serve"}}', 1)
        prom.wait_value(f'sum(rpc_server_call_duration_seconds_count{{{sel},status="ok"}})', ok)
        prom.wait_value(f'sum(rpc_server_call_duration_seconds_count{{{sel},status="invalid_argument"}})', bad)
        prom.wait_value(f'sum(warren_server_calls_in_flight{{{sel}}})', 0)
    finally:
        if prom:
            prom.stop()
        server.stop()


def test_prometheus_reads_the_embedded_brokers_queue_depth(warren):
    """`warren broker --metrics-listen`: a real Prometheus scrapes it and sees the ready
    messages of a queue the test filled, under rabbitmq_prometheus's names and labels."""
    import pika

    binary = prometheus_bin()
    amqp_port, metrics_port = helpers.free_port(), helpers.free_port()
    broker = helpers.Proc(
        [warren, "broker", "--listen", f"127.0.0.1:{amqp_port}", "--metrics-listen", f"127.0.0.1:{metrics_port}"],
        name="warren broker",
    )
    prom = conn = None
    queue = helpers.uname("prom_depth")
    try:
        broker.wait_for("Metrics at", timeout=15)
        prom = Prometheus(binary, {"warren_broker": f"127.0.0.1:{metrics_port}"})
        conn = pika.BlockingConnection(pika.URLParameters(f"amqp://guest:guest@127.0.0.1:{amqp_port}/%2f"))
        ch = conn.channel()
        ch.queue_declare(queue)
        n = 17
        for i in range(n):
            ch.basic_publish("", queue, f"m{i}".encode())
        sel = f'job="warren_broker",vhost="/",queue="{queue}"'
        prom.wait_value('up{job="warren_broker"}', 1)
        prom.wait_value(f"rabbitmq_queue_messages_ready{{{sel}}}", n)
        prom.wait_value(f"rabbitmq_queue_consumers{{{sel}}}", 0)
        prom.wait_value('rabbitmq_connections{job="warren_broker"}', 1)
        prom.wait_value('rabbitmq_channels{job="warren_broker"}', 1)
        prom.wait_value('rabbitmq_global_messages_received_total{job="warren_broker",protocol="amqp091"}', n)
        ch.queue_delete(queue)
    finally:
        if conn:
            conn.close()
        if prom:
            prom.stop()
        broker.stop()
