"""The PrometheusRule's recording rules and SLO alerts, evaluated: `make kit`.

- `promtool test rules` runs tests/kit/prometheusrule_test.yaml against the shipped rules:
  series that must fire (fast and slow burns of availability and latency, a silent filter, a
  proxy scraped twice, a gRPC service's server errors) and series that must not (quiet services
  below the minimum-traffic guard, healthy ones, a burst only the short window sees, other apps'
  proxies, gRPC services answering only the caller's errors);
- the unit tests have teeth: the rules without the guard, or without the short window, fail them;
- no rule names an app, and every per-service rule keeps `cluster` and `namespace`.

Needs promtool (Debian `prometheus`).
"""

import copy
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
RULES = ROOT / "k8s/monitoring/prometheusrule.yaml"
UNIT_TESTS = HERE / "prometheusrule_test.yaml"
# The shipped example app: what no rule may name (the monitors and the WasmPlugin select it).
APP = "k8s-sample-api"


@pytest.fixture(scope="module")
def rules():
    [doc] = [d for d in yaml.safe_load_all(RULES.read_text()) if d]
    return doc


def promtool_test(spec, tmp_path):
    """`promtool test rules` of the unit tests against `spec`'s groups (annotations left out:
    the unit tests compare labels; `promtool check rules` checks the templates)."""
    spec = copy.deepcopy(spec)
    for group in spec["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "prometheusrule.rules.yaml").write_text(yaml.safe_dump(spec))
    shutil.copy(UNIT_TESTS, tmp_path / UNIT_TESTS.name)
    assert shutil.which("promtool"), "no promtool (apt-get install prometheus)"
    p = subprocess.run(["promtool", "test", "rules", UNIT_TESTS.name], cwd=tmp_path, capture_output=True,
                       text=True, timeout=120)
    return p.returncode, p.stdout + p.stderr


def test_rules_pass_their_unit_tests(rules, tmp_path):
    rc, out = promtool_test(rules["spec"], tmp_path)
    assert rc == 0 and "SUCCESS" in out, out


def alerts_named(spec, name):
    return [r for g in spec["groups"] for r in g["rules"] if r.get("alert") == name]


# Each family of SLO alerts and the records it reads, by the labels they aggregate by.
FAMILIES = {
    "http": (["AppAvailabilityBudgetBurn", "AppLatencyBudgetBurn"], "cluster_namespace_service:",
             "by (cluster, namespace, service)"),
    "grpc": (["AppGrpcErrorBudgetBurn"], "cluster_namespace_service_grpc_service:",
             "by (cluster, namespace, service, grpc_service)"),
}
# The gRPC codes that are the server's errors (OpenTelemetry's gRPC conventions, server side).
GRPC_SERVER_ERRORS = 'grpc_code=~"Unknown|DeadlineExceeded|Unimplemented|Internal|Unavailable|DataLoss"'


@pytest.mark.parametrize("family, mutation", [
    (family, mutation) for family in FAMILIES
    for mutation in ["no traffic guard", "no short window", "per pod, not per service"]
] + [("grpc", "caller errors counted")])
def test_unit_tests_catch_a_broken_rule(rules, tmp_path, family, mutation):
    """Each property the unit tests claim is one they check, for each family of alerts: break it
    and they fail."""
    alerts, prefix, by = FAMILIES[family]
    spec = copy.deepcopy(rules["spec"])
    for rule in [r for name in alerts for r in alerts_named(spec, name)]:
        expr = rule["expr"]
        if mutation == "no traffic guard":
            expr = re.sub(r"\)\s*and on \([^)]*\)\s*\S+ \* \d+ >= 100\s*$", ")", expr)
        elif mutation == "no short window":
            expr = re.sub(r"\s*and\s*\S+:ratio_rate(5m|30m) > \([^)]*\)", "", expr)
        assert expr != rule["expr"] or mutation in ("per pod, not per service", "caller errors counted"), \
            (mutation, rule["expr"])
        rule["expr"] = expr
    changed = 0
    for group in spec["groups"]:
        for rule in group["rules"]:
            if not rule.get("record", "").startswith(prefix):
                continue
            before = rule["expr"]
            if mutation == "per pod, not per service":
                rule["expr"] = before.replace(by, by[:-1] + ", pod)")
            elif mutation == "caller errors counted":
                rule["expr"] = before.replace(GRPC_SERVER_ERRORS, 'grpc_code!="OK"')
            changed += rule["expr"] != before
    assert changed or mutation in ("no traffic guard", "no short window"), mutation
    rc, out = promtool_test(spec, tmp_path)
    assert rc != 0, f"{family}, {mutation}: the unit tests still pass:\n{out}"


def test_no_rule_names_an_app(rules):
    for group in rules["spec"]["groups"]:
        for rule in group["rules"]:
            text = yaml.safe_dump(rule)
            assert APP not in text, f"{rule.get('alert') or rule.get('record')} names {APP}"
            assert not re.search(r'(destination_app|destination_service_name|app)="', rule["expr"]), rule


def test_slo_rules_keep_cluster_namespace_service(rules):
    """Every aggregation of the recording rules and the app / SLO alerts keeps cluster,
    namespace and service (the per-handler ones, handler too); the SRE workbook's pairs."""
    groups = {g["name"]: g["rules"] for g in rules["spec"]["groups"]}
    for rule in groups["app-metrics-wasm.handler"]:
        for by in re.findall(r"by \(([^)]*)\)", rule["expr"]):
            assert by.startswith("cluster, namespace, service, handler"), rule
    for rule in groups["app-metrics-wasm.slo"]:
        for by in re.findall(r"by \(([^)]*)\)", rule["expr"]):
            assert by == "cluster, namespace, service", rule
    quantiles = sorted(r["labels"]["quantile"] for r in groups["app-metrics-wasm.handler"] if "labels" in r)
    assert quantiles == ["0.5", "0.99"]
    pairs = {}
    for rule in groups["app-metrics-wasm.slo-alerts"]:
        windows = re.findall(r":ratio_rate(\w+) > \(([\d.]+) \* ([\d.]+)\)", rule["expr"])
        pairs.setdefault(rule["labels"]["slo"], []).append(windows)
        assert re.search(r"and on \(cluster, namespace, service\)\s*\S+:rate(\w+) \* \d+ >= \d+", rule["expr"]), rule
    assert pairs == {
        "availability": [[("1h", "14.4", "0.001"), ("5m", "14.4", "0.001")], [("6h", "6", "0.001"), ("30m", "6", "0.001")]],
        "latency": [[("1h", "14.4", "0.01"), ("5m", "14.4", "0.01")], [("6h", "6", "0.01"), ("30m", "6", "0.01")]],
    }


def test_grpc_rules_keep_cluster_namespace_service_grpc_service(rules):
    """The gRPC records aggregate by cluster, namespace, service, grpc_service (and grpc_method
    for the per-method ones), count only the server's codes, and the alert pairs the windows as
    the HTTP availability alert does."""
    groups = {g["name"]: g["rules"] for g in rules["spec"]["groups"]}
    for rule in groups["app-metrics-wasm.grpc"]:
        for by in re.findall(r"by \(([^)]*)\)", rule["expr"]):
            assert by.startswith("cluster, namespace, service, grpc_service, grpc_method"), rule
    for rule in groups["app-metrics-wasm.grpc-slo"]:
        for by in re.findall(r"by \(([^)]*)\)", rule["expr"]):
            assert by == "cluster, namespace, service, grpc_service", rule
    for group in ("app-metrics-wasm.grpc", "app-metrics-wasm.grpc-slo"):
        for rule in groups[group]:
            codes = re.findall(r"grpc_code\s*[=!~]+\s*\"[^\"]*\"", rule["expr"])
            assert codes in ([], [GRPC_SERVER_ERRORS]), rule
    windows = []
    for rule in groups["app-metrics-wasm.grpc-slo-alerts"]:
        windows.append(re.findall(r":ratio_rate(\w+) > \(([\d.]+) \* ([\d.]+)\)", rule["expr"]))
        assert re.search(r"and on \(cluster, namespace, service, grpc_service\)\s*\S+:rate(\w+) \* \d+ >= 100",
                         rule["expr"]), rule
    assert windows == [[("1h", "14.4", "0.001"), ("5m", "14.4", "0.001")],
                       [("6h", "6", "0.001"), ("30m", "6", "0.001")]]
