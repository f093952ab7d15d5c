#!/usr/bin/env python3
"""Tutorial two, "Work queues": the producer.

Sends one task (the command line, default "Hello World!") to the durable
queue `task_queue` as a persistent message. Each '.' in the task is one
second of work for the worker.
"""
import os
import sys

import pika

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")


def main():
    connection = pika.BlockingConnection(pika.URLParameters(URL))
    channel = connection.channel()

    channel.queue_declare(queue="task_queue", durable=True)

    message = " ".join(sys.argv[1:]) or "Hello World!"
    channel.basic_publish(
        exchange="",
        routing_key="task_queue",
        body=message,
        properties=pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent),
    )
    print(f" [x] Sent {message}", flush=True)
    connection.close()


if __name__ == "__main__":
    main()
