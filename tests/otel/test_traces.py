"""Traces across languages: pika, instrumented by OpenTelemetry's own
opentelemetry-instrumentation-pika, and Warren's CLI exporting OTLP/HTTP, both to a
receiver the test runs. A trace must continue across the AMQP hop either way.
"""
import threading
import uuid

import pika
import pytest

import helpers
from conftest import otel_env

pytestmark = pytest.mark.timeout(90)

PRODUCER = "SPAN_KIND_PRODUCER"
CONSUMER = "SPAN_KIND_CONSUMER"
CLIENT = "SPAN_KIND_CLIENT"
SERVER = "SPAN_KIND_SERVER"


def serve(warren, broker_url, receiver, procedure, queue, service):
    proc = helpers.Proc(
        [warren, "serve", procedure, "--queue", queue, "--url", broker_url],
        env=otel_env(receiver, service),
        name=f"warren serve {procedure}",
    )
    proc.wait_for("Awaiting RPC requests", timeout=15)
    return proc


def delete_queue(broker_url, queue):
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        conn.channel().queue_delete(queue)
    finally:
        conn.close()


def test_a_pika_client_call_continues_in_the_warren_server_span(warren, broker_url, receiver, pika_tracing):
    queue = helpers.uname("otel_fib")
    server = serve(warren, broker_url, receiver, "fib", queue, "warren-serve")
    try:
        conn = pika.BlockingConnection(pika.URLParameters(broker_url))
        ch = conn.channel()
        replies = []
        ch.basic_consume("amq.rabbitmq.reply-to", lambda c, m, p, b: replies.append((p, b)), auto_ack=True)
        cid = uuid.uuid4().hex
        ch.basic_publish(
            "",
            queue,
            b"10",
            pika.BasicProperties(reply_to="amq.rabbitmq.reply-to", correlation_id=cid),
        )
        for _ in range(100):
            if replies:
                break
            conn.process_data_events(time_limit=0.1)
        conn.close()
        assert replies and replies[0][1] == b"55", replies

        sent = receiver.wait_for(
            lambda s: s.service == "pika-peer" and s.kind == PRODUCER and queue in s.name, "pika publish span"
        )
        served = receiver.wait_for(lambda s: s.service == "warren-serve" and s.kind == SERVER, "warren server span")
        assert served.trace_id == sent.trace_id, (served, sent)
        assert served.parent_span_id == sent.span_id, (served, sent)
        a = served.attributes
        assert a["messaging.system"] == "rabbitmq"
        assert a["messaging.destination.name"] == queue
        assert a["messaging.rabbitmq.destination.routing_key"] == queue
        assert a["messaging.operation.type"] == "process"
        assert a["messaging.message.conversation_id"] == cid
        assert a["rpc.response.status_code"] == "ok"
        assert "error.type" not in a
        assert served.name == f"process {queue}"
    finally:
        server.stop()
        delete_queue(broker_url, queue)


def test_a_warren_call_continues_in_the_pika_server_span(warren, broker_url, receiver, pika_tracing):
    queue = helpers.uname("otel_pika")
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    ch = conn.channel()
    ch.queue_declare(queue)

    def on_request(c, method, props, body):
        c.basic_publish(
            "", props.reply_to, body.upper(), pika.BasicProperties(correlation_id=props.correlation_id)
        )
        c.basic_ack(method.delivery_tag)

    ch.basic_consume(queue, on_request)
    stop = threading.Event()

    def pump():
        while not stop.is_set():
            conn.process_data_events(time_limit=0.1)

    # The pika connection is used by this thread only from here on.
    t = threading.Thread(target=pump, daemon=True)
    t.start()
    try:
        env = otel_env(receiver, "warren-call")
        out = helpers.run([warren, "call", "--queue", queue, "--url", broker_url, "hello"], env=env, timeout=30)
        assert out.returncode == 0, out
        assert out.stdout.strip() == "HELLO", out

        called = receiver.wait_for(lambda s: s.service == "warren-call" and s.kind == CLIENT, "warren client span")
        received = receiver.wait_for(
            lambda s: s.service == "pika-peer" and s.kind == CONSUMER and queue in s.name, "pika consumer span"
        )
        assert received.trace_id == called.trace_id, (received, called)
        assert received.parent_span_id == called.span_id, (received, called)
        a = called.attributes
        assert a["messaging.system"] == "rabbitmq"
        assert a["messaging.operation.type"] == "send"
        assert a["messaging.rabbitmq.destination.routing_key"] == queue
        assert a["rpc.response.status_code"] == "ok"
        assert a["messaging.message.conversation_id"] == received.attributes.get("messaging.conversation_id"), (
            a,
            received.attributes,
        )
    finally:
        stop.set()
        t.join(timeout=5)
        ch.queue_delete(queue)
        conn.close()


def test_a_failed_typed_call_marks_both_spans_with_its_status(warren, broker_url, receiver):
    queue = helpers.uname("otel_calc")
    server = serve(warren, broker_url, receiver, "calc", queue, "warren-serve")
    try:
        env = otel_env(receiver, "warren-call")
        args = [warren, "call", "--queue", queue, "--method", "fail", "--url", broker_url]
        out = helpers.run([*args, '{"code":"not_found","message":"gone"}'], env=env, timeout=30)
        assert out.returncode == 3, out  # the server answered with an error status

        called = receiver.wait_for(lambda s: s.service == "warren-call" and s.kind == CLIENT, "warren client span")
        served = receiver.wait_for(lambda s: s.service == "warren-serve" and s.kind == SERVER, "warren server span")
        assert served.trace_id == called.trace_id
        assert served.parent_span_id == called.span_id
        for span in (called, served):
            assert span.attributes["rpc.method"] == "fail", span
            assert span.attributes["error.type"] == "not_found", span
            assert span.attributes["rpc.response.status_code"] == "not_found", span
            assert span.status_code == 2, span  # STATUS_CODE_ERROR
        assert called.name == f"send {queue}/fail"
    finally:
        server.stop()
        delete_queue(broker_url, queue)
