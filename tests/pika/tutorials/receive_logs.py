#!/usr/bin/env python3
"""Tutorial three, "Publish/Subscribe": a subscriber.

Declares an exclusive, server-named queue, binds it to the fanout exchange
`logs` and prints every log message. Runs until CTRL+C / SIGTERM, --count
messages, or --timeout seconds.
"""
import argparse
import os
import signal
import sys

import pika

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=0, help="exit after N messages")
    parser.add_argument("--timeout", type=float, default=0, help="exit after S seconds")
    args = parser.parse_args()

    connection = pika.BlockingConnection(pika.URLParameters(URL))
    channel = connection.channel()

    channel.exchange_declare(exchange="logs", exchange_type="fanout")

    result = channel.queue_declare(queue="", exclusive=True)
    queue_name = result.method.queue

    channel.queue_bind(exchange="logs", queue=queue_name)

    received = 0

    def callback(ch, method, properties, body):
        nonlocal received
        print(f" [x] {body.decode()}", flush=True)
        received += 1
        if args.count and received >= args.count:
            ch.stop_consuming()

    channel.basic_consume(queue=queue_name, on_message_callback=callback, auto_ack=True)
    if args.timeout:
        connection.call_later(args.timeout, channel.stop_consuming)

    print(f" [*] Waiting for logs on {queue_name}. To exit press CTRL+C", flush=True)
    channel.start_consuming()
    connection.close()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        main()
    except KeyboardInterrupt:
        print("Interrupted", flush=True)
        sys.exit(0)
