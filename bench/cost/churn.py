#!/usr/bin/env python3
"""Configuration churn in one VM, counted exactly (issue 20): what retired configurations still cost.

    .venv/bin/python bench/cost/churn.py [--changes 300 600] [--json]

Envoy's ECDS churn as the mock host (bench/cost/host.py) models it, in simulated time: the plugin
starts with generation 0, then each change configures generation g as a new root of the same
plugin name (a distinct configuration each time, the counters' names alternating between two as
tests/e2e_soak.rs's do, but no new name per generation), sends a probe and two orders under it,
and deletes the previous root shortly after (Envoy releases it when its last stream ends; the
module is not told: it exports no `proxy_on_done`). Every timer keeps Envoy's semantics: a
deleted root's is fired for the VM's life, without entering the VM.

After the churn the VM idles: its first minute, then, after SETTLE_S in all (longer than any
silence the module waits for before it forgets a root: transients done), one more minute, the
measured one: VM instructions (wasmtime fuel), VM entries, host calls, host-side timer fires;
linear memory pages. `changes` 0 is the same VM with its one configuration, no churn: what the
churned one is compared with.
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import probe  # noqa: E402
from host import Host  # noqa: E402

PLUGIN = "default.churn"  # Istio's config name for WasmPlugin churn in namespace default
CLUSTER = "outbound|8000||shop.default.svc.cluster.local"
INTERVAL_S = 0.5  # between two changes (the soak's pace: a change served, three requests)
RELEASE_S = 0.1  # a change -> the previous root deleted (its last stream ended)
SETTLE_S = 180  # after the churn, before the measured minute (STALE_ROUNDS and 3 slow ticks pass)
IDLE_S = 60

REQUESTS = [probe.exchange(1, "GET /probe 200", probe.CURL, "GET", "/probe", 200, b"", b"[]"),
            probe.exchange(2, "POST /orders 201", probe.CURL, "POST", "/orders", 201, b"x", b"{}"),
            probe.exchange(3, "POST /orders 201", probe.CURL, "POST", "/orders", 201, b"x", b"{}")]


def generation(g):
    """Configuration g: distinct from every other, its counters named after g's parity only."""
    parity = "odd" if g % 2 else "even"
    return {
        "counters": [{"name": f"orders_{parity}_total", "match": {"method": "POST", "path": "/orders"}},
                     {"name": f"probes_{parity}_total", "match": {"method": "GET", "path": "/probe"}},
                     {"name": "never_total", "match": {"method": "GET", "path": f"/never/{g}"}}],
        "http_metrics": {"handlers": ["/orders"]},
        "samplers": [{"name": "total_users", "cluster": CLUSTER, "path": "/users/count",
                      "interval_seconds": 2, "value": {"json_pointer": "/count"}}],
    }


def raw(config):
    return json.dumps(config, separators=(",", ":")).encode()


def idle_minute(host):
    before = host.snapshot()
    host.run_for(IDLE_S)
    t = host.snapshot().minus(before)
    return {"instructions": t.instructions, "entries": sum(t.entries.values()),
            "timer_fires": t.timer_fires, "host_calls": sum(t.calls.values()),
            "callbacks": dict(sorted(t.entries.items())), "calls": dict(sorted(t.calls.items()))}


def run(wasm, changes):
    """The VM after `changes` configuration changes, settled, then idle for a minute."""
    host = Host(wasm)
    host.enter("_initialize")
    root, _ = host.add_root(raw(generation(0)), PLUGIN)
    for ex in REQUESTS:
        host.exchange(ex, root)
    host.run_for(3)
    for g in range(1, changes + 1):
        previous = root
        root, _ = host.add_root(raw(generation(g)), PLUGIN)
        for ex in REQUESTS:
            host.exchange(ex, root)
        host.run_for(RELEASE_S)
        host.delete_root(previous)
        host.run_for(INTERVAL_S - RELEASE_S)
    pages_churned = host.pages()
    first = idle_minute(host)
    host.run_for(SETTLE_S - 2 * IDLE_S)
    idle = idle_minute(host)
    problems = [m for level, m in host.logs if level >= 3]
    counted = {name: value for _, name, value in host.metrics.values() if "_total" in name}
    return dict(idle, changes=changes, module=Path(wasm).name, first_minute=first,
                pages_churned=pages_churned, pages=host.pages(),
                live_roots=len(host.roots), timers=len(host.timers),
                metrics_defined=len(host.metrics), shared_keys=len(host.shared),
                counted=counted, problems=problems[:5])


def table(rows):
    lines = [f"configuration churn ({rows[0]['module']}, one VM, simulated time): per idle minute "
             f"{SETTLE_S - IDLE_S}-{SETTLE_S} s after the last change (in brackets: the first minute "
             "after it; pages right after it)",
             f"  {'changes':>7} {'instructions':>17} {'entries':>9} {'host calls':>10} "
             f"{'timer fires':>11} {'pages':>7} {'metric ids':>10}"]
    for r in rows:
        f = r["first_minute"]
        lines.append(f"  {r['changes']:7} {r['instructions']:8} ({f['instructions']:6}) "
                     f"{r['entries']:3} ({f['entries']:3}) {r['host_calls']:10} {r['timer_fires']:11} "
                     f"{r['pages']:3} ({r['pages_churned']:2}) {r['metrics_defined']:10}")
    lines.append("  timer fires: host-side, with or without a VM entry (a deleted root's timer fires on "
                 "without one); metric ids: proxy_define_metric calls in all")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--changes", type=int, nargs="+", default=[0, 300, 600])
    p.add_argument("--wasm", type=Path, default=probe.LEAN)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    rows = [run(args.wasm, n) for n in args.changes]
    print(json.dumps(rows, indent=1) if args.json else table(rows))


if __name__ == "__main__":
    main()
