#!/usr/bin/env python3
"""Tutorial four, "Routing": a subscriber.

Usage: receive_logs_direct.py [--count N] [--timeout S] severity [severity...]
Binds an exclusive, server-named queue to the direct exchange `direct_logs`
once per severity and prints "routing_key:body" for each message.
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
    parser.add_argument("severities", nargs="*")
    args = parser.parse_args()
    if not args.severities:
        sys.stderr.write(f"Usage: {sys.argv[0]} [info] [warning] [error]\n")
        sys.exit(1)

    connection = pika.BlockingConnection(pika.URLParameters(URL))
    channel = connection.channel()

    channel.exchange_declare(exchange="direct_logs", exchange_type="direct")

    result = channel.queue_declare(queue="", exclusive=True)
    queue_name = result.method.queue

    for severity in args.severities:
        channel.queue_bind(exchange="direct_logs", queue=queue_name, routing_key=severity)

    received = 0

    def callback(ch, method, properties, body):
        nonlocal received
        print(f" [x] {method.routing_key}:{body.decode()}", flush=True)
        received += 1
        if args.count and received >= args.count:
            ch.stop_consuming()

    channel.basic_consume(queue=queue_name, on_message_callback=callback, auto_ack=True)
    if args.timeout:
        connection.call_later(args.timeout, channel.stop_consuming)

    print(" [*] Waiting for logs. To exit press CTRL+C", flush=True)
    channel.start_consuming()
    connection.close()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        main()
    except KeyboardInterrupt:
        print("Interrupted", flush=True)
        sys.exit(0)
