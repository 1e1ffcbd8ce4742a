"""The seed tutorial's API, with no metrics code at all: app-metrics-wasm in Envoy adds them.

Standard library only. Listens on 127.0.0.1:8000 (override with --port).

  POST /login          form username, password -> 200 {"access_token"} | 400
  POST /users          JSON {"username","password"} -> 201 | 409 when taken | 422 when malformed
  GET  /users          list of users, X-Total-Count header
  GET  /users/count    {"count": N}
  GET  /users/{id}     one user | 404
  GET  /health         {"status": "ok"}
"""

import argparse
import hashlib
import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

USERS = {}  # id -> {"id", "username", "password_hash"}
LOCK = threading.Lock()


def _hash(password):
    return hashlib.sha256(password.encode()).hexdigest()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "demo-app"

    def log_message(self, *args):  # quiet: the demo prints metrics, not access logs
        pass

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status, payload, headers=None):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = urlsplit(self.path).path
        with LOCK:
            users = [{"id": u["id"], "username": u["username"]} for u in USERS.values()]
        if path == "/health":
            return self._send(200, {"status": "ok"})
        if path == "/users":
            return self._send(200, users, {"X-Total-Count": str(len(users))})
        if path == "/users/count":
            return self._send(200, {"count": len(users)})
        if path.startswith("/users/"):
            user_id = path[len("/users/"):]
            for user in users:
                if str(user["id"]) == user_id:
                    return self._send(200, user)
            return self._send(404, {"detail": "User not found"})
        return self._send(404, {"detail": "Not Found"})

    def do_POST(self):
        path = urlsplit(self.path).path
        body = self._body()
        if path == "/login":
            form = parse_qs(body.decode("utf-8", "replace"))
            username = (form.get("username") or [""])[0]
            password = (form.get("password") or [""])[0]
            with LOCK:
                ok = any(u["username"] == username and u["password_hash"] == _hash(password)
                         for u in USERS.values())
            if not ok:
                return self._send(400, {"detail": "Incorrect username or password"})
            return self._send(200, {"access_token": secrets.token_hex(16), "token_type": "bearer"})
        if path == "/users":
            try:
                data = json.loads(body)
                username, password = str(data["username"]), str(data["password"])
            except (ValueError, KeyError, TypeError):
                return self._send(422, {"detail": "username and password are required"})
            with LOCK:
                if any(u["username"] == username for u in USERS.values()):
                    return self._send(409, {"detail": "Username already registered"})
                user_id = len(USERS) + 1
                USERS[user_id] = {"id": user_id, "username": username, "password_hash": _hash(password)}
            return self._send(201, {"id": user_id, "username": username})
        return self._send(404, {"detail": "Not Found"})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    print(f"demo app on http://{args.host}:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
