"""A small OTLP/HTTP protobuf receiver for the tests: accepts POST /v1/traces,
decodes each ExportTraceServiceRequest with the opentelemetry-proto package and keeps
the spans, flattened (ids in hex, attributes as a dict, the resource's service.name).
"""
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan


def _value(v):
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


@dataclass
class Span:
    service: str
    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict = field(default_factory=dict)
    status_code: int = 0


class Receiver:
    """Runs the HTTP server on 127.0.0.1:<free port> in a thread."""

    def __init__(self):
        self.spans = []
        self.requests = 0
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path != "/v1/traces":
                    self.send_response(404)
                    self.end_headers()
                    return
                req = ExportTraceServiceRequest()
                req.ParseFromString(body)
                receiver._add(req)
                out = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _add(self, req):
        found = []
        for rs in req.resource_spans:
            attrs = {a.key: _value(a.value) for a in rs.resource.attributes}
            service = attrs.get("service.name", "")
            for ss in rs.scope_spans:
                for s in ss.spans:
                    found.append(
                        Span(
                            service=service,
                            name=s.name,
                            kind=PbSpan.SpanKind.Name(s.kind),
                            trace_id=s.trace_id.hex(),
                            span_id=s.span_id.hex(),
                            parent_span_id=s.parent_span_id.hex(),
                            attributes={a.key: _value(a.value) for a in s.attributes},
                            status_code=s.status.code,
                        )
                    )
        with self._cond:
            self.requests += 1
            self.spans.extend(found)
            self._cond.notify_all()

    def wait_for(self, pred, what, timeout=20.0):
        """The first span matching `pred`, waiting up to `timeout` s; fails naming `what`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for s in self.spans:
                    if pred(s):
                        return s
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = "\n  ".join(f"{s.service} {s.kind} {s.name} {s.attributes}" for s in self.spans)
                    raise AssertionError(f"no {what} within {timeout}s; spans received:\n  {seen}")
                self._cond.wait(min(left, 0.2))

    def close(self):
        self.server.shutdown()
        self.server.server_close()
