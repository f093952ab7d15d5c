#!/usr/bin/env python3
"""Tutorial six, "RPC": the server.

Declares the queue `rpc_queue` (override with --queue), consumes it with
prefetch 1 and manual acks, computes fib(n) for each request body n, and
publishes the result to the request's reply_to with its correlation_id
before acking the request. Runs until CTRL+C / SIGTERM.
"""
import argparse
import os
import signal
import sys

import pika

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")


def fib(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--queue", default="rpc_queue")
    args = parser.parse_args()

    connection = pika.BlockingConnection(pika.URLParameters(URL))
    channel = connection.channel()

    channel.queue_declare(queue=args.queue)

    def on_request(ch, method, props, body):
        n = int(body)

        print(f" [.] fib({n})", flush=True)
        response = fib(n)

        ch.basic_publish(
            exchange="",
            routing_key=props.reply_to,
            properties=pika.BasicProperties(correlation_id=props.correlation_id),
            body=str(response),
        )
        ch.basic_ack(delivery_tag=method.delivery_tag)

    channel.basic_qos(prefetch_count=1)
    channel.basic_consume(queue=args.queue, on_message_callback=on_request)

    print(" [x] Awaiting RPC requests", flush=True)
    channel.start_consuming()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        main()
    except KeyboardInterrupt:
        print("Interrupted", flush=True)
        sys.exit(0)
