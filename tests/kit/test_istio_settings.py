"""No deprecated Istio setting in the kit: `make kit`.

Every annotation anywhere in the shipped manifests (objects' metadata, pod templates, a Gateway's
infrastructure annotations, the kustomize builds) is checked against the annotations istio/api
marks deprecated, and the stats tags the waypoint needs come through ProxyConfig.
"""

import copy
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]

# The annotations istio/api marks `deprecated: true` in annotation/annotations.yaml (commit
# b8f8791d9653b2edc77a071d48887e582cfe84bf, 2026-07-21), with the replacement istio/api or Istio's
# docs name. istioctl analyze reports them (IST0135, DeprecatedAnnotation).
DEPRECATED = {
    "alpha.istio.io/kubernetes-serviceaccounts": "none",
    "alpha.istio.io/canonical-serviceaccounts": "none",
    "sidecar.istio.io/inject": "the pod label sidecar.istio.io/inject",
    "sidecar.istio.io/discoveryAddress": "ProxyConfig discoveryAddress (proxy.istio.io/config)",
    "sidecar.istio.io/statsInclusionPrefixes": "ProxyConfig proxyStatsMatcher",
    "sidecar.istio.io/statsInclusionSuffixes": "ProxyConfig proxyStatsMatcher",
    "sidecar.istio.io/statsInclusionRegexps": "ProxyConfig proxyStatsMatcher",
    "traffic.sidecar.istio.io/kubevirtInterfaces": "istio.io/reroute-virtual-interfaces",
    "sidecar.istio.io/extraStatTags": "ProxyConfig extraStatTags (proxy.istio.io/config, or meshConfig.defaultConfig)",
    "sidecar.istio.io/statsCompression": "ProxyConfig statsCompression",
}
KUSTOMIZATIONS = ["istio", "istio/trafficextension", "istio/ambient", "k8s/istio", "k8s/istio-bodies",
                  "k8s/istio-ambient", "k8s/istio-trafficextension", "k8s/istio-per-pod-sampling",
                  "k8s/istio-file", "k8s/monitoring", "k8s/grafana", "k8s/envoy-sidecar"]


def annotations(node, where=""):
    """(where, name) of every annotation in a document: any `annotations` mapping, at any depth."""
    found = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "annotations" and isinstance(v, dict):
                found += [(f"{where}.annotations", name) for name in v]
            found += annotations(v, f"{where}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            found += annotations(v, f"{where}[{i}]")
    return found


def shipped_documents():
    """(source, document) of every YAML file under istio/ and k8s/ and of every kustomize build."""
    docs = []
    for f in sorted(p for d in ("istio", "k8s") for p in (ROOT / d).rglob("*.yaml")):
        for doc in yaml.safe_load_all(f.read_text()):
            if isinstance(doc, dict):
                docs.append((str(f.relative_to(ROOT)), doc))
    for k in KUSTOMIZATIONS:
        p = subprocess.run(["kubectl", "kustomize", str(ROOT / k)], capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        docs += [(f"kubectl kustomize {k}", d) for d in yaml.safe_load_all(p.stdout) if d]
    return docs


def deprecated_in(docs):
    return [f"{src} {doc.get('kind')} {doc.get('metadata', {}).get('name')}{where}: {name} (use {DEPRECATED[name]})"
            for src, doc in docs for where, name in annotations(doc) if name in DEPRECATED]


@pytest.fixture(scope="module")
def docs():
    return shipped_documents()


def test_no_deprecated_istio_annotation(docs):
    assert len(docs) > 30, "the kit's files were not found"
    found = deprecated_in(docs)
    assert not found, "\n".join(found)


def test_the_check_finds_one(docs):
    """The check has teeth: the waypoint with the old extraStatTags annotation fails it."""
    src, gateway = next((s, d) for s, d in docs if d.get("kind") == "Gateway")
    bad = copy.deepcopy(gateway)
    bad["spec"]["infrastructure"]["annotations"]["sidecar.istio.io/extraStatTags"] = "handler"
    [found] = deprecated_in([(src, bad)])
    assert "spec.infrastructure.annotations: sidecar.istio.io/extraStatTags" in found


def test_stats_tags_come_through_proxyconfig(docs):
    """Sidecar and waypoint both set extraStatTags as ProxyConfig (proxy.istio.io/config), whose
    list replaces the mesh's: the files that set it say so where it bites."""
    setting = [(src, where) for src, doc in docs for where, name in annotations(doc) if name == "proxy.istio.io/config"]
    sources = {src for src, _ in setting}
    assert {"istio/app-patch.yaml", "istio/ambient/waypoint.yaml"} <= sources, sources
    for f in ("istio/app-patch.yaml", "istio/ambient/waypoint.yaml"):
        text = " ".join(w for w in (ROOT / f).read_text().split() if w != "#")
        assert "REPLACES the mesh's" in text, f
