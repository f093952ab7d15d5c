#!/usr/bin/env python3
"""Tutorial four, "Routing": the producer.

Usage: emit_log_direct.py [severity] [message...]
Publishes the message to the direct exchange `direct_logs` with the
severity (default "info") as routing key.
"""
import os
import sys

import pika

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")


def main():
    connection = pika.BlockingConnection(pika.URLParameters(URL))
    channel = connection.channel()

    channel.exchange_declare(exchange="direct_logs", exchange_type="direct")

    severity = sys.argv[1] if len(sys.argv) > 1 else "info"
    message = " ".join(sys.argv[2:]) or "Hello World!"
    channel.basic_publish(exchange="direct_logs", routing_key=severity, body=message)
    print(f" [x] Sent {severity}:{message}", flush=True)
    connection.close()


if __name__ == "__main__":
    main()
