"""A real gRPC server for the end-to-end tests (tests/e2e_grpc.rs), no generated code.

Service `shop.v1.Cart`, bytes in and out (identity serializers); what each call does is chosen
by its request payload, so a test decides the outcome:

| payload              | answer                                                              |
|----------------------|---------------------------------------------------------------------|
| `ok`                 | OK, one reply                                                       |
| `notfound`           | NOT_FOUND with a message                                            |
| `denied`             | PERMISSION_DENIED with a message                                    |
| `bare:<code>`        | that code with no message                                           |
| `sleep:<ms>`         | waits, then OK (a client deadline shorter than that is exceeded)    |
| `stream:<n>`         | (Watch, Chat) n replies, then OK                                    |
| `stream:<n>:<code>`  | (Watch, Chat) n replies, then that code                             |

`<code>` is a grpc.StatusCode name (`NOT_FOUND`) or number (`5`). grpcio answers an error
before any reply trailers-only (`grpc-status` in the response headers); after a reply, in
trailers.
Add, Get, Remove: unary. Watch: server stream (its one request says what). Upload: client
stream, answered after reading every message with `count:<n>`, unless the last message is
one of the payloads above. Chat: bidi, each message answered as the table says (`ok`: one
echo), an error ending the call. Remove is implemented but not in the tests' filter
configuration (an unlisted method); any other path is UNIMPLEMENTED (no handler).

The server runs py-grpc-prometheus's interceptor (the in-app reference the tests compare
with) and serves its metrics on the metrics port.

Usage: server.py --port P --metrics-port M. Binds 127.0.0.1; prints `ready <port> <metrics>`.
"""

import argparse
import sys
import time
from concurrent import futures

import grpc
from prometheus_client import start_http_server
from py_grpc_prometheus.prometheus_server_interceptor import PromServerInterceptor

SERVICE = "shop.v1.Cart"


def status_code(text):
    """`NOT_FOUND` or `5` → grpc.StatusCode."""
    for code in grpc.StatusCode:
        if text.upper() == code.name or text == str(code.value[0]):
            return code
    raise ValueError(f"unknown status code {text!r}")


def abort_for(payload, context):
    """Aborts the call (raises) if the payload asks for an error; returns otherwise."""
    if payload == b"notfound":
        context.abort(grpc.StatusCode.NOT_FOUND, "no such cart")
    if payload == b"denied":
        context.abort(grpc.StatusCode.PERMISSION_DENIED, "not your cart")
    if payload.startswith(b"bare:"):
        context.abort(status_code(payload[5:].decode()), "")
    if payload.startswith(b"sleep:"):
        time.sleep(int(payload[6:]) / 1000)


def stream_plan(payload):
    """`stream:<n>[:<code>]` → (n, code or None); None if the payload is not a stream plan."""
    if not payload.startswith(b"stream:"):
        return None
    parts = payload.decode().split(":")
    return int(parts[1]), (status_code(parts[2]) if len(parts) > 2 else None)


def unary(request, context):
    abort_for(request, context)
    return b"reply:" + request


def watch(request, context):
    abort_for(request, context)
    plan = stream_plan(request) or (1, None)
    for i in range(plan[0]):
        yield b"update:%d" % i
    if plan[1] is not None:
        context.abort(plan[1], "stream ended in error")


def upload(request_iterator, context):
    messages = list(request_iterator)
    if messages:
        abort_for(messages[-1], context)
    return b"count:%d" % len(messages)


def chat(request_iterator, context):
    for message in request_iterator:
        plan = stream_plan(message)
        if plan is None:
            abort_for(message, context)
            yield b"echo:" + message
            continue
        for i in range(plan[0]):
            yield b"reply:%d" % i
        if plan[1] is not None:
            context.abort(plan[1], "chat ended in error")


def handlers():
    ident = {"request_deserializer": None, "response_serializer": None}
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Add": grpc.unary_unary_rpc_method_handler(unary, **ident),
            "Get": grpc.unary_unary_rpc_method_handler(unary, **ident),
            "Remove": grpc.unary_unary_rpc_method_handler(unary, **ident),
            "Watch": grpc.unary_stream_rpc_method_handler(watch, **ident),
            "Upload": grpc.stream_unary_rpc_method_handler(upload, **ident),
            "Chat": grpc.stream_stream_rpc_method_handler(chat, **ident),
        },
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--metrics-port", type=int, required=True)
    args = parser.parse_args()
    start_http_server(args.metrics_port, addr="127.0.0.1")
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=32),
        interceptors=[PromServerInterceptor(enable_handling_time_histogram=True)],
    )
    server.add_generic_rpc_handlers((handlers(),))
    server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    print(f"ready {args.port} {args.metrics_port}", flush=True)
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
