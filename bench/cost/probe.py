#!/usr/bin/env python3
"""The cost probe: what app_metrics.wasm executes per request, counted exactly (bench/cost/host.py).

    .venv/bin/python bench/cost/probe.py            # the budgeted configurations, per request
    .venv/bin/python bench/cost/probe.py --scale    # instructions vs the configuration's size
    .venv/bin/python bench/cost/probe.py --trace default   # where one request's instructions go
    .venv/bin/python bench/cost/churn.py            # what configuration churn leaves in a VM

Each configuration gets a fresh VM started as Envoy starts one, a sampler tick answered, the
traffic mix below sent twice (warm-up: every series defined, every cache filled), then each request
of the mix once more, measured alone. Same module, same figures, every run.

The mix: the seed's requests with the header maps Envoy holds at the end of a request (a browser's
and curl's, plus what Envoy's connection manager and router add): a login answered 200 and one 401,
a sign-up (POST /users, the demo app's) 201, a read of /users/{id}, /users/count, a miss (the app's
404 on a path no handler has), and one answer Envoy made itself (503, no healthy upstream).
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from host import Exchange, Host  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
LEAN = ROOT / "target" / "wasm32-wasip1" / "release" / "app_metrics.wasm"
BODIES = ROOT / "target" / "wasm32-wasip1" / "release" / "app_metrics_bodies.wasm"

BROWSER = [(":authority", "app.example.com"), (":scheme", "https"),
           ("user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                          "Chrome/131.0.0.0 Safari/537.36"),
           ("accept", "application/json, text/plain, */*"), ("accept-language", "en-US,en;q=0.9"),
           ("accept-encoding", "gzip, deflate, br, zstd"), ("origin", "https://app.example.com"),
           ("referer", "https://app.example.com/account"), ("sec-fetch-mode", "cors"),
           ("cookie", "session=4b1f0e2c9a7d43f8b6e5a1c0d9f8e7b6; theme=dark"), ("x-client", "web")]
CURL = [(":authority", "localhost:8080"), (":scheme", "http"), ("user-agent", "curl/8.5.0"),
        ("accept", "*/*")]


def envoy_added(n):
    """What Envoy's connection manager and router add to the request map."""
    return [("x-forwarded-proto", "https"), ("x-request-id", f"7d3c5a0e-1b2f-4c6d-9e8a-{n:012d}"),
            ("x-envoy-expected-rq-timeout-ms", "15000")]


def request(n, client, method, path, body=b"", content_type=None):
    head = client[:1] + [(":path", path), (":method", method)] + client[1:]
    if body:
        head += [("content-type", content_type), ("content-length", str(len(body)))]
    at_headers = head + envoy_added(n)[:2]
    return head + envoy_added(n), at_headers


def response(status, body=b"", app=True, content_type="application/json", more=()):
    head = [(":status", str(status)), ("date", "Sun, 06 Dec 2026 23:00:00 GMT"),
            ("content-type", content_type), ("content-length", str(len(body))), *more]
    head.append(("server", "envoy"))
    if app:
        head.append(("x-envoy-upstream-service-time", "3"))
    return head


def exchange(n, name, client, method, path, status, req_body=b"", resp_body=b"",
             content_type="application/x-www-form-urlencoded", app=True, details="via_upstream"):
    req, at_headers = request(n, client, method, path, req_body, content_type)
    resp = response(status, resp_body, app, "application/json" if app else "text/plain")
    return Exchange(name, req, resp, req_body, resp_body, 4_000_000 + 1_000_000 * n, details,
                    at_headers)


TRAFFIC = [
    exchange(1, "POST /login 200", BROWSER, "POST", "/login", 200,
             b"username=alice&password=wonderland",
             b'{"access_token": "9f86d081884c7d659a2feaa0c55ad015", "token_type": "bearer"}'),
    exchange(2, "POST /login 401", CURL, "POST", "/login", 401, b"username=alice&password=guess",
             b'{"detail": "invalid credentials"}'),
    exchange(3, "POST /users 201", BROWSER, "POST", "/users", 201,
             b'{"username": "bob", "password": "builder"}', b'{"id": 43, "username": "bob"}',
             content_type="application/json"),
    exchange(4, "GET /users/42 200", BROWSER, "GET", "/users/42", 200, b"",
             b'{"id": 42, "username": "alice"}'),
    exchange(5, "GET /users/count 200", CURL, "GET", "/users/count", 200, b"", b'{"count": 43}'),
    exchange(6, "GET /wp-login.php 404", CURL, "GET", "/wp-login.php", 404, b"",
             b'{"detail": "Not Found"}'),
    exchange(7, "GET /users/7 503 (Envoy)", BROWSER, "GET", "/users/7", 503, b"",
             b"no healthy upstream", app=False, details="no_healthy_upstream"),
]


def envoy_yaml_config():
    """The plugin configuration of the shipped envoy/envoy.yaml (bench's `full` variant)."""
    import yaml
    doc = yaml.safe_load((ROOT / "envoy" / "envoy.yaml").read_text())
    found = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("name") == "envoy.filters.http.wasm":
                found.append(node["typed_config"]["config"]["configuration"]["value"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(doc)
    return json.loads(found[0])


SEED_COUNTERS = [
    {"name": "successful_login_details_total",
     "match": {"method": "POST", "path": "/login", "status": ["2xx"]}},
    {"name": "failed_login_details_total",
     "match": {"method": "POST", "path": "/login", "status": [400, 401]}},
]
BODY_RULE = {"name": "invalid_credentials_total",
             "match": {"method": "POST", "path": "/login",
                       "response_json": [{"pointer": "/detail", "equals": "invalid credentials"}]}}


def configurations():
    """The budgeted configurations: name -> (module, plugin configuration or None, what it is)."""
    full = envoy_yaml_config()
    labelled = json.loads(json.dumps(full))
    labelled["labels"] = {"service": "k8s-sample-api"}
    labelled["http_metrics"]["labels"] = [
        {"name": "client", "request_header": "x-client", "values": ["web", "ios"]}]
    labelled["counters"][1]["labels"] = [
        {"name": "client", "request_header": "x-client", "values": ["web", "ios"]}]
    return {
        "default": (LEAN, None, "no plugin configuration: the seed's defaults (bench's default)"),
        "full": (LEAN, full, "envoy/envoy.yaml's configuration (bench's full)"),
        "labelled": (LEAN, labelled, "full + a constant label, a request-header label"),
        "bodies": (BODIES, None, "the body-reading module, no plugin configuration"),
        "bodies-rule": (BODIES, {"counters": SEED_COUNTERS + [BODY_RULE]},
                        "the body-reading module, seed counters + a response-body rule on /login"),
    }


FIGURES = ("instructions", "host_calls", "bytes_in", "bytes_out", "entries", "allocs")


def figures_of(t):
    return {"instructions": t.instructions, "host_calls": sum(t.calls.values()),
            "bytes_in": t.bytes_in, "bytes_out": t.bytes_out,
            "entries": sum(t.entries.values()), "allocs": t.allocs,
            "calls": dict(sorted(t.calls.items())), "callbacks": dict(sorted(t.entries.items()))}


def start(wasm, config):
    raw = b"" if config is None else json.dumps(config, separators=(",", ":")).encode()
    host = Host(wasm, raw)
    if not host.start():
        raise RuntimeError("proxy_on_configure refused")
    errors = [m for level, m in host.logs if level >= 3]
    if errors:
        raise RuntimeError(f"the module complained at start: {errors}")
    return host


def measure(wasm, config, traffic=TRAFFIC, warmups=2):
    """Per request figures of `traffic` after warm-up; `mean` over the mix."""
    host = start(wasm, config)
    host.tick()
    for _ in range(warmups):
        for ex in traffic:
            host.exchange(ex)
    pages = host.pages()
    rows = []
    for ex in traffic:
        before = host.snapshot()
        host.exchange(ex)
        rows.append(dict(name=ex.name, **figures_of(host.snapshot().minus(before))))
    warnings = [m for level, m in host.logs if level >= 3]
    if warnings:
        raise RuntimeError(f"the module warned during the traffic: {warnings[:3]}")
    mean = {f: sum(r[f] for r in rows) / len(rows) for f in FIGURES}
    calls = {}
    for r in rows:
        for k, v in r["calls"].items():
            calls[k] = calls.get(k, 0) + v / len(rows)
    mean["calls"] = calls
    return {"requests": rows, "mean": mean, "pages": pages, "pages_after": host.pages(),
            "metrics": {name: value for _, name, value in host.metrics.values()}}


def measure_all(names=None):
    out = {}
    for name, (wasm, config, what) in configurations().items():
        if names and name not in names:
            continue
        out[name] = dict(measure(wasm, config), what=what, module=wasm.name)
    return out


def trace(wasm, config, name):
    """Where one request's instructions go: the instructions between each crossing of the
    boundary (a callback entered or left, a host call, an allocation), after warm-up."""
    host = start(wasm, config)
    host.tick()
    for _ in range(2):
        for ex in TRAFFIC:
            host.exchange(ex)
    ex = next(e for e in TRAFFIC if e.name.startswith(name))
    host.trace = marks = []
    host.exchange(ex)
    steps = []
    for (f0, event), (f1, _) in zip(marks, marks[1:]):
        steps.append((event, f1 - f0))
    return steps


def table(results):
    lines = []
    for name, r in results.items():
        lines.append(f"{name}: {r['what']} ({r['module']}); linear memory {r['pages']} pages "
                     f"after warm-up, {r['pages_after']} after")
        lines.append(f"  {'request':26} {'instr':>7} {'calls':>5} {'in B':>6} {'out B':>6} "
                     f"{'entries':>7} {'allocs':>6}")
        for row in r["requests"] + [dict(name="mean per request", **r["mean"])]:
            lines.append(f"  {row['name']:26} {row['instructions']:7.0f} {row['host_calls']:5.2f} "
                         f"{row['bytes_in']:6.0f} {row['bytes_out']:6.0f} {row['entries']:7.2f} "
                         f"{row['allocs']:6.2f}")
        calls = ", ".join(f"{k.removeprefix('proxy_')} {v:.2f}" for k, v in r["mean"]["calls"].items())
        lines.append(f"  host calls per request: {calls}")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("configs", nargs="*", help="only these configurations")
    p.add_argument("--json", action="store_true", help="the figures as JSON")
    p.add_argument("--trace", metavar="REQUEST", help="where one request's instructions go, e.g. "
                   "'GET /users/42' (the first configuration given, default: default)")
    p.add_argument("--wasm", type=Path, help="measure this module instead of the configuration's")
    args = p.parse_args()
    if args.trace:
        wasm, config, _ = configurations()[(args.configs or ["default"])[0]]
        for event, fuel in trace(args.wasm or wasm, config, args.trace):
            print(f"{fuel:7} after {event}")
        return
    if args.wasm:
        results = {}
        for name, (_, config, what) in configurations().items():
            if not args.configs or name in args.configs:
                results[name] = dict(measure(args.wasm, config), what=what, module=str(args.wasm))
        print(json.dumps(results, indent=1) if args.json else table(results))
        return
    results = measure_all(args.configs)
    print(json.dumps(results, indent=1) if args.json else table(results))


if __name__ == "__main__":
    main()
