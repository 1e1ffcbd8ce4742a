"""A minimal real gRPC server (grpcio, no generated code) for tests/e2e_promql.rs: each unary
call of any method of `shop.v1.Cart` answers as its request payload says, `<CODE>:<ms>`: wait
<ms> milliseconds, then end with grpc.StatusCode <CODE> (`OK`, `NOT_FOUND`, `INTERNAL`, ...).
OK answers the payload back (status in the trailers); an error has no message, so grpcio
answers it trailers-only (`grpc-status` in the response headers).

Usage: status_server.py PORT. Binds 127.0.0.1; prints `ready` once serving.
"""

import sys
import time
from concurrent import futures

import grpc


def answer(request, context):
    code, _, ms = request.decode().partition(":")
    time.sleep(int(ms or 0) / 1000)
    if code != "OK":
        context.abort(grpc.StatusCode[code], "")
    return request


class AnyMethod(grpc.GenericRpcHandler):
    def service(self, handler_call_details):
        if not handler_call_details.method.startswith("/shop.v1.Cart/"):
            return None  # grpcio answers UNIMPLEMENTED
        return grpc.unary_unary_rpc_method_handler(answer)


def main():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers((AnyMethod(),))
    server.add_insecure_port(f"127.0.0.1:{int(sys.argv[1])}")
    server.start()
    print("ready", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
