#!/usr/bin/env python3
"""Tutorial two, "Work queues": the worker.

Consumes the durable queue `task_queue` with prefetch 1 and manual acks;
sleeps one second per '.' in the task, then acks it. Runs until CTRL+C /
SIGTERM, --count tasks done, or --timeout seconds.
"""
import argparse
import os
import signal
import sys
import time

import pika

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=0, help="exit after N tasks")
    parser.add_argument("--timeout", type=float, default=0, help="exit after S seconds")
    parser.add_argument("--name", default="", help="shown in the output")
    args = parser.parse_args()
    tag = f"[{args.name}] " if args.name else ""

    connection = pika.BlockingConnection(pika.URLParameters(URL))
    channel = connection.channel()

    channel.queue_declare(queue="task_queue", durable=True)

    done = 0

    def callback(ch, method, properties, body):
        nonlocal done
        print(f" {tag}[x] Received {body.decode()}", flush=True)
        time.sleep(body.count(b"."))
        print(f" {tag}[x] Done", flush=True)
        ch.basic_ack(delivery_tag=method.delivery_tag)
        done += 1
        if args.count and done >= args.count:
            ch.stop_consuming()

    channel.basic_qos(prefetch_count=1)
    channel.basic_consume(queue="task_queue", on_message_callback=callback)
    if args.timeout:
        connection.call_later(args.timeout, channel.stop_consuming)

    print(f" {tag}[*] Waiting for messages. To exit press CTRL+C", flush=True)
    channel.start_consuming()
    connection.close()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        main()
    except KeyboardInterrupt:
        print("Interrupted", flush=True)
        sys.exit(0)
