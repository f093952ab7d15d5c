"""Fixtures of the observability suite (tests/otel): an embedded `warren broker`, an
OTLP/HTTP receiver, and a pika tracer provider exporting to it.

Reuses tests/pika/helpers.py (processes, ports, the warren binary).
"""
import os
import signal
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "pika"))

import helpers  # noqa: E402
from otlp_receiver import Receiver  # noqa: E402

IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def pytest_report_header(config):
    return [f"warren binary: {helpers.warren_bin()} (CI={'yes' if IN_CI else 'no'})"]


@pytest.fixture(scope="session")
def warren():
    binary = helpers.warren_bin()
    if not binary:
        pytest.fail("no warren binary (set WARREN_BIN or build target/release/warren)")
    return binary


@pytest.fixture(scope="session")
def broker_url(warren):
    """An embedded broker for the whole session."""
    port = helpers.free_port()
    proc = helpers.Proc([warren, "broker", "--listen", f"127.0.0.1:{port}"], name="warren broker")
    if not helpers.wait_port("127.0.0.1", port, timeout=10, proc=proc.p):
        proc.stop(signal.SIGTERM, timeout=3)
        pytest.fail(f"warren broker did not listen on 127.0.0.1:{port}\n{proc.describe()}")
    yield f"amqp://guest:guest@127.0.0.1:{port}/%2f"
    proc.stop(signal.SIGTERM, timeout=5)


@pytest.fixture()
def receiver():
    r = Receiver()
    yield r
    r.close()


def otel_env(receiver, service, **extra):
    """The environment of a warren process exporting its spans to `receiver`."""
    env = dict(os.environ)
    env.update(
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_SERVICE_NAME=service,
        # Export each batch quickly: the tests wait for spans.
        OTEL_BSP_SCHEDULE_DELAY="100",
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


@pytest.fixture()
def pika_tracing(receiver):
    """A tracer provider exporting pika's spans to `receiver`, and pika instrumented."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.pika import PikaInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "pika-peer"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{receiver.endpoint}/v1/traces")))
    instrumentor = PikaInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    yield provider
    instrumentor.uninstrument()
    provider.shutdown()
