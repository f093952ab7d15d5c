#!/usr/bin/env python3
"""Tutorial one, "Hello World!": the producer.

Sends one message to the queue `hello` through the default exchange.
The broker URL comes from $AMQP_URL.
"""
import os
import sys

import pika

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")


def main():
    message = " ".join(sys.argv[1:]) or "Hello World!"
    connection = pika.BlockingConnection(pika.URLParameters(URL))
    channel = connection.channel()

    channel.queue_declare(queue="hello")

    channel.basic_publish(exchange="", routing_key="hello", body=message)
    print(f" [x] Sent '{message}'", flush=True)
    connection.close()


if __name__ == "__main__":
    main()
