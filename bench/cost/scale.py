#!/usr/bin/env python3
"""Per-request cost vs the configuration's size, counted by the probe (bench/cost/probe.py):

    .venv/bin/python bench/cost/scale.py [--markdown] [--wasm LEAN.wasm --bodies-wasm BODIES.wasm]

Each row is envoy/envoy.yaml's configuration grown in one dimension, the requests being the
probe's mix (which the added parts do not match: what a request pays for parts it has nothing to
do with): handler templates, counters (each on a route of its own, methods in turn), dynamic labels
on the request metrics (one value each: the series bound allows few at 4; at most 4 per
metric), labels on counters (each on a header of its own), body rules (the body-reading
module, each on a route of its own).
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import probe  # noqa: E402

METHODS = ("GET", "POST", "PUT", "DELETE")


def route(i):
    return f"/api/v1/resource{i}/{{id}}" if i % 2 else f"/api/v1/resource{i}"


def handlers(n):
    config = probe.envoy_yaml_config()
    base = config["http_metrics"]["handlers"]
    config["http_metrics"]["handlers"] = base + [route(i) for i in range(n - len(base))]
    return config


def counters(n):
    config = probe.envoy_yaml_config()
    base = config["counters"]
    config["counters"] = base + [
        {"name": f"resource{i}_total",
         "match": {"method": METHODS[i % 4], "path": route(i), "status": ["2xx"] if i % 3 else [404]}}
        for i in range(n - len(base))]
    return config


def labels(n):
    config = probe.envoy_yaml_config()
    config["http_metrics"]["labels"] = [
        {"name": f"label{i}", "request_header": f"x-label-{i}", "values": ["v"]} for i in range(n)]
    return config


def counter_labels(n):
    """20 counters, `n` of them with a label on a header of its own."""
    config = counters(20)
    for i, counter in enumerate(config["counters"][2:2 + n]):
        counter["labels"] = [{"name": "client", "request_header": f"x-client-{i}", "values": ["web", "ios"]}]
    return config


def body_rules(n):
    config = probe.envoy_yaml_config()
    config["counters"] = config["counters"] + [
        {"name": f"resource{i}_json_total",
         "match": {"method": METHODS[i % 4], "path": route(i),
                   "response_json": [{"pointer": "/status", "equals": "done"}]}}
        for i in range(n - 1)] + [probe.BODY_RULE]
    return config


DIMENSIONS = [
    ("handlers", handlers, (5, 50, 400), "lean"),
    ("counters", counters, (2, 20, 200), "lean"),
    ("request-metric labels", labels, (0, 1, 2, 4), "lean"),
    ("counter labels (20 counters)", counter_labels, (0, 6, 18), "lean"),
    ("body rules", body_rules, (1, 10, 50), "bodies"),
]


def run(lean=probe.LEAN, bodies=probe.BODIES):
    rows = []
    for name, make, sizes, module in DIMENSIONS:
        wasm = lean if module == "lean" else bodies
        for n in sizes:
            m = probe.measure(wasm, make(n))["mean"]
            rows.append({"dimension": name, "size": n, "instructions": m["instructions"],
                         "host_calls": m["host_calls"]})
    first = {}
    for r in rows:
        first.setdefault(r["dimension"], r["instructions"])
        r["ratio"] = r["instructions"] / first[r["dimension"]]
    return rows


def markdown(rows):
    lines = ["| grown | size | instructions per request | × smallest | host calls per request |",
             "|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['dimension']} | {r['size']} | {r['instructions']:.0f} | "
                     f"{r['ratio']:.2f} | {r['host_calls']:.2f} |")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--wasm", type=Path, default=probe.LEAN)
    p.add_argument("--bodies-wasm", type=Path, default=probe.BODIES)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    rows = run(args.wasm, args.bodies_wasm)
    print(json.dumps(rows, indent=1) if args.json else markdown(rows))


if __name__ == "__main__":
    main()
