"""One scrape path per proxy: the kit's monitors against the pods Istio makes, `make kit`.

Istio's metrics merging annotates pods for scraping on :15020, where istio-agent serves Envoy's
stats merged with the app's; the kit's PodMonitor scrapes Envoy on :15090. A Prometheus honouring
both counts every series twice. This models, from Istio's sources, what the pods carry:

- the sidecar injector's `applyPrometheusMerge` (istio/istio pkg/kube/inject: the
  `prometheus.istio.io/merge-metrics` annotation overrides `meshConfig.enablePrometheusMerge`;
  `prometheus.io/scrape: "false"` opts out; the app's `prometheus.io/*` annotations are replaced
  by port 15020, path /stats/prometheus) and the injected istio-proxy's `http-envoy-prom` port;
- the waypoint's pod template (istio/istio manifests/charts/istio-control/istio-discovery/files/
  waypoint.yaml: the Gateway's infrastructure annotations, then `prometheus.io/*` for :15020
  written over them; ports metrics 15020, http-envoy-prom 15090);

and two kinds of Prometheus: the Prometheus Operator with the kit's monitors only, and one that
also runs the usual annotation job (`kubernetes-pods`: keep pods annotated scrape "true", port and
path from the annotations). It counts the jobs that reach a proxy's Envoy stats.
"""

import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
STATUS_PORT = "15020"  # meshConfig.defaultConfig.statusPort's default
# Where a proxy's Envoy series are served: Envoy's Prometheus listener, and istio-agent's merged one.
ENVOY_STATS = {(15090, "/stats/prometheus"), (15020, "/stats/prometheus")}


def kustomize(kdir):
    p = subprocess.run(["kubectl", "kustomize", str(ROOT / kdir)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return [d for d in yaml.safe_load_all(p.stdout) if d]


def sanitized(name):
    """Prometheus's label-name sanitizing, which Istio's injector applies to annotation names."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def inject(annotations, labels, mesh_merge=True):
    """The pod the sidecar injector makes from a pod template's annotations and labels."""
    ann = dict(annotations)
    scrape = True
    for k, v in ann.items():
        if sanitized(k) == "prometheus_io_scrape" and v.lower() in ("true", "false", "1", "0"):
            scrape = v.lower() in ("true", "1")
    merge = mesh_merge
    if "prometheus.istio.io/merge-metrics" in ann:
        merge = ann["prometheus.istio.io/merge-metrics"].lower() in ("true", "1")
    port = next((v for k, v in ann.items() if sanitized(k) == "prometheus_io_port"), None)
    if scrape and merge and port != STATUS_PORT:
        ann = {k: v for k, v in ann.items()
               if sanitized(k) not in ("prometheus_io_scrape", "prometheus_io_port", "prometheus_io_path")}
        ann.update({"prometheus.io/port": STATUS_PORT, "prometheus.io/path": "/stats/prometheus",
                    "prometheus.io/scrape": "true"})
    ports = {"http-envoy-prom": 15090, "app": 8000}
    return {"annotations": ann, "labels": dict(labels), "ports": ports}


def waypoint_pod(gateway):
    ann = dict(gateway["spec"].get("infrastructure", {}).get("annotations", {}))
    ann["istio.io/rev"] = "default"
    ann.update({"prometheus.io/path": "/stats/prometheus", "prometheus.io/port": STATUS_PORT,
                "prometheus.io/scrape": "true"})
    labels = {**gateway["spec"].get("infrastructure", {}).get("labels", {}),
              "gateway.networking.k8s.io/gateway-name": gateway["metadata"]["name"]}
    return {"annotations": ann, "labels": labels, "ports": {"metrics": 15020, "status-port": 15021, "http-envoy-prom": 15090}}


def annotation_job(pod):
    """The kubernetes-pods job: [(port, path)] it scrapes on `pod`."""
    ann = pod["annotations"]
    if ann.get("prometheus.io/scrape") != "true":
        return []
    return [(int(ann.get("prometheus.io/port", "80")), ann.get("prometheus.io/path", "/metrics"))]


def pod_monitor(pm, pod):
    """[(port, path)] a PodMonitor scrapes on `pod` (its matchLabels, named container ports)."""
    want = pm["spec"]["selector"]["matchLabels"]
    if any(pod["labels"].get(k) != v for k, v in want.items()):
        return []
    return [(pod["ports"][e["port"]], e.get("path", "/metrics")) for e in pm["spec"]["podMetricsEndpoints"]
            if e["port"] in pod["ports"]]


def envoy_scrapes(pod, monitors, annotation_prometheus):
    """How many scrape jobs reach the pod's Envoy series."""
    jobs = [pod_monitor(pm, pod) for pm in monitors]
    if annotation_prometheus:
        jobs.append(annotation_job(pod))
    return sum(1 for targets in jobs if set(targets) & ENVOY_STATS)


@pytest.fixture(scope="module")
def sidecar_pod_template():
    """The app's pod template as `kubectl patch` with istio/app-patch.yaml leaves it."""
    patch = yaml.safe_load((ROOT / "istio/app-patch.yaml").read_text())
    return {"annotations": patch["spec"]["template"]["metadata"]["annotations"], "labels": {"app": "k8s-sample-api"}}


@pytest.mark.parametrize("annotation_prometheus", [False, True])
@pytest.mark.parametrize("mesh_merge", [True, False])
@pytest.mark.parametrize("app_annotations", [{}, {"prometheus.io/scrape": "true", "prometheus.io/port": "8000"}])
def test_sidecar_envoy_series_have_one_scrape_path(sidecar_pod_template, annotation_prometheus, mesh_merge,
                                                   app_annotations):
    [pm] = [d for d in kustomize("k8s/istio") if d["kind"] == "PodMonitor"]
    pod = inject({**app_annotations, **sidecar_pod_template["annotations"]}, sidecar_pod_template["labels"], mesh_merge)
    assert envoy_scrapes(pod, [pm], annotation_prometheus) == 1, pod
    # The app's own metrics stay scraped where the app said (now straight from the app).
    if app_annotations and annotation_prometheus:
        assert annotation_job(pod) == [(8000, "/metrics")]


def test_without_the_merge_annotation_a_sidecar_is_scraped_twice(sidecar_pod_template):
    """The model has teeth: Istio's default merging plus the PodMonitor is two paths."""
    [pm] = [d for d in kustomize("k8s/istio") if d["kind"] == "PodMonitor"]
    ann = {k: v for k, v in sidecar_pod_template["annotations"].items() if k != "prometheus.istio.io/merge-metrics"}
    pod = inject(ann, sidecar_pod_template["labels"])
    assert pod["annotations"]["prometheus.io/port"] == STATUS_PORT
    assert envoy_scrapes(pod, [pm], annotation_prometheus=True) == 2
    assert envoy_scrapes(pod, [pm], annotation_prometheus=False) == 1


def test_waypoint_has_one_path_under_the_operator_and_says_what_to_drop_otherwise():
    """A waypoint's pod always carries the merge annotations: the PodMonitor is its only path
    under the Prometheus Operator alone; with an annotation job it is two, which the kit can only
    document (the PodMonitor's comment and docs/deploy.md say to drop it) and detect
    (AppMetricsScrapedTwice)."""
    docs = kustomize("k8s/istio-ambient")
    [pm] = [d for d in docs if d["kind"] == "PodMonitor"]
    [gateway] = [d for d in docs if d["kind"] == "Gateway"]
    pod = waypoint_pod(gateway)
    assert envoy_scrapes(pod, [pm], annotation_prometheus=False) == 1
    assert envoy_scrapes(pod, [pm], annotation_prometheus=True) == 2
    assert envoy_scrapes(pod, [], annotation_prometheus=True) == 1
    comment = (ROOT / "k8s/monitoring/podmonitor.yaml").read_text()
    assert "waypoint" in comment and "drop this PodMonitor" in comment
    deploy = (ROOT / "docs/deploy.md").read_text()
    assert "**two paths: drop the PodMonitor**" in deploy
    rules = (ROOT / "k8s/monitoring/prometheusrule.yaml").read_text()
    assert "alert: AppMetricsScrapedTwice" in rules


def test_plain_envoy_has_one_path():
    docs = kustomize("k8s/envoy-sidecar")
    [sm] = [d for d in docs if d["kind"] == "ServiceMonitor"]
    assert not [d for d in docs if d["kind"] == "PodMonitor"]
    [deployment] = [d for d in docs if d["kind"] == "Deployment"]
    template = deployment["spec"]["template"]["metadata"]
    assert not [k for k in template.get("annotations", {}) if sanitized(k).startswith("prometheus_io_")]
    assert [e["port"] for e in sm["spec"]["endpoints"]] == ["envoy-metrics"]
