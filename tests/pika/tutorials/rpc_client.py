#!/usr/bin/env python3
"""Tutorial six, "RPC": the client.

Usage: rpc_client.py [--queue rpc_queue] [--timeout S] [n ...]   (default n: 30)
Declares an exclusive, server-named callback queue, then for each n
publishes a request to the queue with reply_to and a fresh uuid
correlation_id, and waits (process_data_events, bounded by --timeout) for
the reply with that correlation_id. Prints " [.] Got <reply body>", and
" [.] Status <x-status>" when the reply carries an x-status header.
Exits 1 if a reply does not come in time.
"""
import argparse
import os
import sys
import time
import uuid

import pika

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")


class FibonacciRpcClient:
    def __init__(self, queue):
        self.queue = queue
        self.connection = pika.BlockingConnection(pika.URLParameters(URL))
        self.channel = self.connection.channel()

        result = self.channel.queue_declare(queue="", exclusive=True)
        self.callback_queue = result.method.queue

        self.channel.basic_consume(
            queue=self.callback_queue,
            on_message_callback=self.on_response,
            auto_ack=True,
        )

        self.response = None
        self.response_props = None
        self.corr_id = None

    def on_response(self, ch, method, props, body):
        if self.corr_id == props.correlation_id:
            self.response = body
            self.response_props = props

    def call(self, n, timeout):
        self.response = None
        self.response_props = None
        self.corr_id = str(uuid.uuid4())
        self.channel.basic_publish(
            exchange="",
            routing_key=self.queue,
            properties=pika.BasicProperties(
                reply_to=self.callback_queue,
                correlation_id=self.corr_id,
            ),
            body=str(n),
        )
        deadline = time.monotonic() + timeout
        while self.response is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None, None
            self.connection.process_data_events(time_limit=min(remaining, 1.0))
        return self.response, self.response_props


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--queue", default="rpc_queue")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per call")
    parser.add_argument("n", nargs="*", default=["30"])
    args = parser.parse_args()

    fibonacci_rpc = FibonacciRpcClient(args.queue)
    for n in args.n:
        print(f" [x] Requesting fib({n})", flush=True)
        response, props = fibonacci_rpc.call(n, args.timeout)
        if response is None:
            print(f" [!] No reply for fib({n}) within {args.timeout}s", flush=True)
            sys.exit(1)
        print(f" [.] Got {response.decode(errors='replace')}", flush=True)
        headers = props.headers or {}
        if "x-status" in headers:
            status = headers["x-status"]
            if isinstance(status, bytes):
                status = status.decode(errors="replace")
            print(f" [.] Status {status}", flush=True)
    fibonacci_rpc.connection.close()


if __name__ == "__main__":
    main()
