#!/usr/bin/env python3
"""The `calc` typed service written from docs/SPEC.md (v2) with plain pika: no Warren code.

Consumes --queue (default `calc`) with manual acks, dispatches on the `type` property,
decodes the arguments map in the codec `content_type` names (JSON when absent,
MessagePack, CBOR), and answers in the same codec with the return value alone. Errors
are `x-status` + a text/plain message. Methods: add(a, b), fib(n) -> decimal string.
Prints every request as ` [.] <method> <content_type> <args>`. Runs until SIGTERM.
"""
import argparse
import json
import os
import signal
import sys

import cbor2
import msgpack
import pika

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")

CODECS = {
    "application/json": (lambda b: json.loads(b), lambda v: json.dumps(v).encode()),
    "application/msgpack": (lambda b: msgpack.unpackb(b, raw=False), msgpack.packb),
    "application/cbor": (cbor2.loads, cbor2.dumps),
}


class Failure(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def fib(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def arg(args, name, kind):
    if not isinstance(args, dict):
        raise Failure("invalid_argument", "the body must be a map of arguments")
    if name not in args:
        raise Failure("invalid_argument", f"missing argument `{name}`")
    value = args[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise Failure("invalid_argument", f"argument `{name}` has the wrong type")
    return value


def call(method, args):
    if method == "add":
        return arg(args, "a", int) + arg(args, "b", int)
    if method == "fib":
        n = arg(args, "n", int)
        if not 0 <= n <= 10000:
            raise Failure("invalid_argument", "n must be from 0 to 10000")
        return str(fib(n))
    raise Failure("unimplemented", f"no method `{method}`; methods: add, fib")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--queue", default="calc")
    opts = parser.parse_args()

    connection = pika.BlockingConnection(pika.URLParameters(URL))
    channel = connection.channel()
    channel.queue_declare(queue=opts.queue)

    def on_request(ch, method, props, body):
        content_type = props.content_type or "application/json"
        try:
            if content_type not in CODECS:
                raise Failure("invalid_argument", f"content_type {content_type} is not a codec")
            decode, encode = CODECS[content_type]
            try:
                args = decode(body)
            except Exception as e:  # noqa: BLE001
                raise Failure("invalid_argument", f"the body does not decode: {e}")
            print(f" [.] {props.type} {content_type} {args}", flush=True)
            reply = encode(call(props.type, args))
            reply_props = pika.BasicProperties(correlation_id=props.correlation_id, content_type=content_type)
        except Failure as f:
            reply = str(f).encode()
            reply_props = pika.BasicProperties(
                correlation_id=props.correlation_id,
                content_type="text/plain",
                headers={"x-status": f.code},
            )
        if props.reply_to:
            ch.basic_publish(exchange="", routing_key=props.reply_to, properties=reply_props, body=reply)
        ch.basic_ack(delivery_tag=method.delivery_tag)

    channel.basic_qos(prefetch_count=1)
    channel.basic_consume(queue=opts.queue, on_message_callback=on_request)
    print(" [x] Awaiting RPC requests", flush=True)
    channel.start_consuming()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
