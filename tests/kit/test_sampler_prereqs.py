"""The sampler's prerequisites in sidecar mode, checked over the kit: `make kit`.

A sidecar sampler calls the app's own Service through `outbound|<port>||<service FQDN>`:
- istiod generates that cluster only if the pod's Sidecar resource (if any) has the Service in its
  egress hosts; otherwise every sample fails with reason `dispatch`;
- the call reaches a pod of the Service over mTLS as the app's own identity: an ALLOW
  AuthorizationPolicy on the app must let it through, or every sample fails with `status` (403).

Both rules are modelled here from Istio's documented semantics (Sidecar egress `hosts`
`namespace/dnsName` with `*`, `.` and `~`; AuthorizationPolicy DENY before ALLOW, a workload with
ALLOW policies needing one rule to match) and run over every Sidecar and AuthorizationPolicy the kit
ships (istio/prerequisites/ holds the examples an admin merges into theirs), each kustomize build
included, against each shipped sampler. The models have teeth: the usual mistakes fail.
"""

import copy
import fnmatch
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from cloudcoil.models.istio.networking.v1 import Sidecar
from cloudcoil.models.istio.security.v1 import AuthorizationPolicy

ROOT = Path(__file__).resolve().parents[2]
ROOT_NAMESPACE = "istio-system"  # meshConfig.rootNamespace's default
APP_LABELS = {"app": "k8s-sample-api"}
# The k8s-sample-api pods' service account (the seed's Deployment sets none: `default`).
APP_PRINCIPAL = "cluster.local/ns/default/sa/default"
KUSTOMIZATIONS = ["k8s/istio", "k8s/istio-bodies", "k8s/istio-trafficextension", "k8s/istio-per-pod-sampling",
                  "k8s/istio-file"]


def load(path):
    return [d for d in yaml.safe_load_all((ROOT / path).read_text()) if d]


def shipped_objects():
    """Every object under istio/ and k8s/ and in the Istio kustomize builds."""
    docs = [d for f in sorted(p for d in ("istio", "k8s") for p in (ROOT / d).rglob("*.yaml"))
            for d in yaml.safe_load_all(f.read_text()) if isinstance(d, dict) and "kind" in d]
    for k in KUSTOMIZATIONS:
        p = subprocess.run(["kubectl", "kustomize", str(ROOT / k)], capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        docs += [d for d in yaml.safe_load_all(p.stdout) if d]
    return docs


def samplers(docs):
    """(namespace, sampler) of every WasmPlugin / TrafficExtension sampler on an `outbound|` cluster."""
    out = []
    for d in docs:
        spec = d.get("spec", {})
        config = spec.get("pluginConfig") or spec.get("wasm", {}).get("pluginConfig") or {}
        for s in config.get("samplers", []):
            if s["cluster"].startswith("outbound|"):
                out.append((d["metadata"]["namespace"], s))
    return out


# ---------------------------------------------------------------------------------- Sidecar scope


def applicable_sidecar(sidecars, namespace, labels):
    """The Sidecar Istio applies to a workload: one in its namespace selecting it, else its
    namespace's one without selector, else the root namespace's one without selector."""
    def selects(s):
        sel = s["spec"].get("workloadSelector", {}).get("labels")
        return sel is not None and all(labels.get(k) == v for k, v in sel.items())

    def plain(s):
        return "workloadSelector" not in s["spec"]

    for ns, test in ((namespace, selects), (namespace, plain), (ROOT_NAMESPACE, plain)):
        found = [s for s in sidecars if s["metadata"].get("namespace", namespace) == ns and test(s)]
        if found:
            return found[0]
    return None


def egress_includes(sidecar, host, service_namespace):
    """Whether a Sidecar's egress hosts take in a Service (istio/api networking/v1 sidecar.proto:
    `namespace/dnsName`, namespace `*` any, `.` the Sidecar's own, `~` none; dnsName `*` any, a
    leading `*.` wildcard, or the FQDN)."""
    own = sidecar["metadata"].get("namespace")
    for listener in sidecar["spec"].get("egress", []):
        for h in listener.get("hosts", []):
            ns, _, name = h.partition("/")
            ns_ok = ns == "*" or (ns == "." and own == service_namespace) or ns == service_namespace
            if ns_ok and fnmatch.fnmatchcase(host, name):
                return True
    return False


def sampler_cluster_exists(sidecars, namespace, sampler):
    """Whether istiod generates the sampler's outbound cluster in the app's sidecar."""
    m = re.fullmatch(r"outbound\|\d+\|[^|]*\|([a-z0-9.-]+)", sampler["cluster"])
    assert m, sampler["cluster"]
    host = m.group(1)
    service_namespace = host.split(".")[1]
    sidecar = applicable_sidecar(sidecars, namespace, APP_LABELS)
    return sidecar is None or egress_includes(sidecar, host, service_namespace)


# ---------------------------------------------------------------------------------- AuthorizationPolicy


def match_any(value, patterns):
    """Istio's string match: exact, `*` prefix or suffix wildcard, or `*` alone."""
    return any(p == "*" or p == value or (p.startswith("*") and value.endswith(p[1:]))
               or (p.endswith("*") and value.startswith(p[:-1])) for p in patterns)


def rule_matches(rule, request):
    for field, key in (("from", "source"), ("to", "operation")):
        clauses = rule.get(field)
        if clauses is None:
            continue
        if not any(clause_matches(c.get(key, {}), request) for c in clauses):
            return False
    # Conditions this model does not know never match an ALLOW (and so may only deny less).
    return not rule.get("when")


def clause_matches(clause, request):
    fields = {"principals": "principal", "namespaces": "namespace", "methods": "method", "paths": "path",
              "ports": "port", "hosts": "host"}
    for name, attr in fields.items():
        if name in clause and not match_any(str(request[attr]), clause[name]):
            return False
        negated = "not" + name[0].upper() + name[1:]
        if negated in clause and match_any(str(request[attr]), clause[negated]):
            return False
    unknown = set(clause) - set(fields) - {"not" + n[0].upper() + n[1:] for n in fields}
    return not unknown


def applies(policy, namespace, labels):
    ns = policy["metadata"].get("namespace", namespace)
    sel = policy["spec"].get("selector", {}).get("matchLabels")
    if ns == ROOT_NAMESPACE and sel is None:
        return True
    return ns == namespace and (sel is None or all(labels.get(k) == v for k, v in sel.items()))


def authorized(policies, namespace, labels, request):
    mine = [p for p in policies if applies(p, namespace, labels)]
    for p in mine:
        if p["spec"].get("action") == "DENY" and any(rule_matches(r, request) for r in p["spec"].get("rules", [])):
            return False
    allow = [p for p in mine if p["spec"].get("action", "ALLOW") == "ALLOW"]
    if not allow:
        return True
    return any(rule_matches(r, request) for p in allow for r in p["spec"].get("rules", []))


def sampler_request(namespace, sampler):
    port = int(sampler["cluster"].split("|")[1])
    return {"principal": APP_PRINCIPAL, "namespace": namespace, "method": "GET", "path": sampler["path"],
            "port": port, "host": sampler.get("authority", "")}


# ---------------------------------------------------------------------------------- the tests


@pytest.fixture(scope="module")
def docs():
    return shipped_objects()


def test_the_kit_ships_samplers_on_outbound_clusters(docs):
    assert len(samplers(docs)) >= 3, "no shipped sampler found"


def test_the_examples_validate():
    [sidecar] = load("istio/prerequisites/sidecar.yaml")
    [policy] = load("istio/prerequisites/authorizationpolicy.yaml")
    Sidecar.model_validate(sidecar, extra="forbid")
    AuthorizationPolicy.model_validate(policy, extra="forbid")


def test_every_sidecar_the_kit_ships_keeps_the_samplers_cluster(docs):
    sidecars = [d for d in docs if d["kind"] == "Sidecar"]
    assert sidecars, "istio/prerequisites/sidecar.yaml not found"
    for namespace, sampler in samplers(docs):
        for s in sidecars:
            assert sampler_cluster_exists([s], namespace, sampler), (s["metadata"], sampler["cluster"])


def test_every_policy_the_kit_ships_lets_the_sampler_through(docs):
    policies = [d for d in docs if d["kind"] == "AuthorizationPolicy"]
    assert policies, "istio/prerequisites/authorizationpolicy.yaml not found"
    for namespace, sampler in samplers(docs):
        assert authorized(policies, namespace, APP_LABELS, sampler_request(namespace, sampler)), sampler


def test_the_models_catch_the_usual_mistakes(docs):
    namespace, sampler = samplers(docs)[0]
    [sidecar] = load("istio/prerequisites/sidecar.yaml")
    # A namespace Sidecar reaching only the control plane: no outbound cluster for the app.
    narrow = copy.deepcopy(sidecar)
    narrow["spec"]["egress"] = [{"hosts": ["istio-system/*"]}]
    assert not sampler_cluster_exists([narrow], namespace, sampler)
    # ... unless the app's namespace is in it; or a workload Sidecar of other pods is all there is.
    for hosts in (["./*"], ["*/*"], ["default/*.default.svc.cluster.local"]):
        ok = copy.deepcopy(narrow)
        ok["spec"]["egress"] = [{"hosts": hosts}]
        assert sampler_cluster_exists([ok], namespace, sampler), hosts
    other = copy.deepcopy(narrow)
    other["spec"]["workloadSelector"] = {"labels": {"app": "other"}}
    assert sampler_cluster_exists([other], namespace, sampler)
    # A mesh-wide default in the root namespace counts too.
    mesh = copy.deepcopy(narrow)
    mesh["metadata"]["namespace"] = ROOT_NAMESPACE
    assert not sampler_cluster_exists([mesh], namespace, sampler)

    [policy] = load("istio/prerequisites/authorizationpolicy.yaml")
    request = sampler_request(namespace, sampler)
    # An ALLOW for the frontend only: the sampler's own identity is refused.
    frontend = copy.deepcopy(policy)
    frontend["spec"]["rules"][0]["from"][0]["source"]["principals"] = ["cluster.local/ns/default/sa/frontend"]
    assert not authorized([frontend], namespace, APP_LABELS, request)
    assert authorized([frontend, policy], namespace, APP_LABELS, request)
    # A DENY on the path wins over the ALLOW.
    deny = copy.deepcopy(policy)
    deny["spec"]["action"] = "DENY"
    deny["spec"]["rules"] = [{"to": [{"operation": {"paths": ["/users/*"]}}]}]
    assert not authorized([policy, deny], namespace, APP_LABELS, request)
    # An empty ALLOW policy (rules: []) allows nothing.
    nothing = copy.deepcopy(policy)
    nothing["spec"]["rules"] = []
    assert not authorized([nothing], namespace, APP_LABELS, request)
