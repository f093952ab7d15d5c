#!/usr/bin/env python3
"""Tutorial three, "Publish/Subscribe": the producer.

Publishes one log message to the fanout exchange `logs`.
"""
import os
import sys

import pika

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")


def main():
    connection = pika.BlockingConnection(pika.URLParameters(URL))
    channel = connection.channel()

    channel.exchange_declare(exchange="logs", exchange_type="fanout")

    message = " ".join(sys.argv[1:]) or "info: Hello World!"
    channel.basic_publish(exchange="logs", routing_key="", body=message)
    print(f" [x] Sent {message}", flush=True)
    connection.close()


if __name__ == "__main__":
    main()
