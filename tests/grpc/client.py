"""Makes a list of gRPC calls through an address and prints what each got, one JSON line per
call, so tests/e2e_grpc.rs can assert what clients saw.

Usage: client.py HOST:PORT < CALLS_JSON, where CALLS_JSON (on stdin: messages may be large) is
a list of calls:

    {"method": "/shop.v1.Cart/Add",  # the path
     "type": "unary",               # unary | server_stream | client_stream | bidi_stream
                                    # (grpcio, HTTP/2), web (grpc-web over HTTP/1.1, the
                                    # request's messages framed, answer read unary or streamed),
                                    # raw (HTTP/1.1 POST with `content_type`, one framed message)
     "messages": ["ok"],            # request payloads (tests/grpc/server.py says what they do)
     "timeout_ms": 300,             # optional client deadline
     "authority": "down.test",      # optional :authority (Envoy routes on it)
     "content_type": "application/grpc+json",  # raw only
     "repeat": 1}                   # optional: the same call this many times

Prints per call {"method", "type", "code" (grpc.StatusCode name, e.g. NOT_FOUND), "number",
"details", "replies" (messages received), "status_in" (web/raw: "headers" for a trailers-only
answer, "trailer-frame" for grpc-web's trailer frame, null if none), "http_status" (web/raw)}.
"""

import http.client
import json
import struct
import sys

import grpc

CODES = {code.value[0]: code for code in grpc.StatusCode}


def result(call, code, details="", replies=0, status_in=None, http_status=None):
    return {
        "method": call["method"],
        "type": call["type"],
        "code": code.name if code is not None else None,
        "number": code.value[0] if code is not None else None,
        "details": details,
        "replies": replies,
        "status_in": status_in,
        "http_status": http_status,
    }


def grpcio_call(channel, call):
    method, kind = call["method"], call["type"]
    messages = [m.encode() for m in call.get("messages", ["ok"])]
    timeout = call["timeout_ms"] / 1000 if "timeout_ms" in call else None
    replies = 0
    try:
        if kind == "unary":
            stub = channel.unary_unary(method)
            stub(messages[0], timeout=timeout)
            replies = 1
        elif kind == "server_stream":
            for _ in channel.unary_stream(method)(messages[0], timeout=timeout):
                replies += 1
        elif kind == "client_stream":
            channel.stream_unary(method)(iter(messages), timeout=timeout)
            replies = 1
        elif kind == "bidi_stream":
            for _ in channel.stream_stream(method)(iter(messages), timeout=timeout):
                replies += 1
        else:
            raise ValueError(f"unknown call type {kind!r}")
    except grpc.RpcError as err:
        return result(call, err.code(), err.details() or "", replies)
    return result(call, grpc.StatusCode.OK, "", replies)


def frame(payload, flags=0):
    return struct.pack(">BI", flags, len(payload)) + payload


def http1_call(address, call):
    """grpc-web (or any content type) over HTTP/1.1: POST the framed messages, read frames back."""
    host, port = address.rsplit(":", 1)
    web = call["type"] == "web"
    content_type = "application/grpc-web+proto" if web else call["content_type"]
    body = b"".join(frame(m.encode()) for m in call.get("messages", ["ok"]))
    headers = {"content-type": content_type, "te": "trailers"}
    if web:
        headers["x-grpc-web"] = "1"
    if "authority" in call:
        headers["host"] = call["authority"]
    conn = http.client.HTTPConnection(host, int(port), timeout=20)
    try:
        conn.request("POST", call["method"], body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    if resp.getheader("grpc-status") is not None:
        code = CODES.get(int(resp.getheader("grpc-status")), grpc.StatusCode.UNKNOWN)
        return result(call, code, resp.getheader("grpc-message") or "", 0, "headers", resp.status)
    replies, code, details, offset = 0, None, "", 0
    while offset + 5 <= len(data):
        flags, length = struct.unpack(">BI", data[offset : offset + 5])
        chunk = data[offset + 5 : offset + 5 + length]
        offset += 5 + length
        if flags & 0x80:
            trailers = dict(
                line.split(":", 1) for line in chunk.decode().split("\r\n") if ":" in line
            )
            trailers = {k.strip().lower(): v.strip() for k, v in trailers.items()}
            code = CODES.get(int(trailers.get("grpc-status", "2")), grpc.StatusCode.UNKNOWN)
            details = trailers.get("grpc-message", "")
        else:
            replies += 1
    status_in = "trailer-frame" if code is not None else None
    return result(call, code, details, replies, status_in, resp.status)


def main():
    address, calls = sys.argv[1], json.load(sys.stdin)
    channels = {}
    try:
        for call in calls:
            for _ in range(call.get("repeat", 1)):
                if call["type"] in ("web", "raw"):
                    out = http1_call(address, call)
                else:
                    authority = call.get("authority")
                    if authority not in channels:
                        options = [("grpc.default_authority", authority)] if authority else []
                        channels[authority] = grpc.insecure_channel(address, options=options)
                    out = grpcio_call(channels[authority], call)
                print(json.dumps(out), flush=True)
    finally:
        for channel in channels.values():
            channel.close()


if __name__ == "__main__":
    main()
