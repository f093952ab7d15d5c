#!/usr/bin/env python3
"""Tutorial five, "Topics": the producer.

Usage: emit_log_topic.py [routing_key] [message...]
Publishes the message to the topic exchange `topic_logs` with the
routing key (default "anonymous.info").
"""
import os
import sys

import pika

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")


def main():
    connection = pika.BlockingConnection(pika.URLParameters(URL))
    channel = connection.channel()

    channel.exchange_declare(exchange="topic_logs", exchange_type="topic")

    routing_key = sys.argv[1] if len(sys.argv) > 1 else "anonymous.info"
    message = " ".join(sys.argv[2:]) or "Hello World!"
    channel.basic_publish(exchange="topic_logs", routing_key=routing_key, body=message)
    print(f" [x] Sent {routing_key}:{message}", flush=True)
    connection.close()


if __name__ == "__main__":
    main()
