"""`make cost`: the module's per-request cost, counted by the probe (bench/cost/probe.py), against
the budget in bench/cost-budget.toml. Prints the figures of every configuration."""

import json
import math
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench" / "cost"))
import probe  # noqa: E402

BUDGET = tomllib.loads((ROOT / "bench" / "cost-budget.toml").read_text())
CONFIGS = probe.configurations()
_RESULTS = {}


def results(name):
    if name not in _RESULTS:
        _RESULTS[name] = probe.measure_all([name])[name]
        print("\n" + probe.table({name: _RESULTS[name]}))
    return _RESULTS[name]


def line(figure, value):
    """A figure as its budget line writes it: rounded up (whole instructions, bytes, pages;
    hundredths of a call)."""
    if figure in ("host_calls", "entries", "allocs"):
        return math.ceil(value * 100 - 1e-6) / 100
    return math.ceil(value - 1e-6)


def test_every_configuration_has_a_budget():
    assert sorted(CONFIGS) == sorted(k for k in BUDGET if k not in ("step", "toolchain"))


def built_by(wasm):
    record = wasm.with_name(wasm.name + ".toolchain")
    return record.read_text().strip() if record.exists() else "an unrecorded toolchain"


@pytest.mark.parametrize("name", list(CONFIGS))
def test_within_budget(name):
    wasm = CONFIGS[name][0]
    if built_by(wasm) != BUDGET["toolchain"]:
        pytest.skip(f"{wasm.name} was built with {built_by(wasm)}, the budget's figures with "
                    f"{BUDGET['toolchain']}: another compiler executes other instructions")
    r = results(name)
    budget = BUDGET[name]
    figures = dict(r["mean"], pages=r["pages"])
    over = [f"{f} {figures[f]:.2f} > budget {budget[f]}" for f in budget if figures[f] > budget[f] + 1e-9]
    under = [f"{f} = {line(f, figures[f])} (now {budget[f]})" for f in budget
             if line(f, figures[f]) < budget[f] * 0.98]
    if under:
        print(f"{name}: below budget, lower these lines of bench/cost-budget.toml: {', '.join(under)}")
    assert not over, (f"{name}: per-request cost above bench/cost-budget.toml: {'; '.join(over)}. "
                      "Raising a line needs a `make bench` A/B in BENCHMARKS.md and a [[step]].")
    # Warm: the traffic measured after warm-up grows nothing.
    assert r["pages_after"] == r["pages"]


def test_same_module_same_figures():
    """A fresh VM gives the same figures to the instruction: what makes a budget checkable."""
    wasm, config, _ = CONFIGS["full"]
    first, second = probe.measure(wasm, config), probe.measure(wasm, config)
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)


def test_the_probe_measures_the_module_at_work():
    """The figures are those of requests recorded: every series the mix makes, exact counts
    (three passes of the mix: two warm-up, one measured)."""
    m = results("default")["metrics"]
    assert m["successful_login_details_total"] == 3
    assert m["failed_login_details_total"] == 3
    assert m["handler=.=none;.;method=.=GET;.;status=.=2xx;.;http_requests_total"] == 6
    assert m["handler=.=none;.;status=.=5xx;.;reason=.=no_healthy_upstream;.;"
             "http_proxy_responses_total"] == 3
    # The app's time (x-envoy-upstream-service-time), or Envoy's for its own answer (11 ms).
    assert m["handler=.=none;.;method=.=GET;.;http_request_duration_milliseconds"] == [3, 3, 3, 11] * 3
    full = results("full")["metrics"]
    assert full["handler=.=/users/{user_id};.;method=.=GET;.;status=.=2xx;.;http_requests_total"] == 3
    assert full["handler=.=none;.;method=.=GET;.;status=.=4xx;.;http_requests_total"] == 3
    assert full["total_users"] == 42  # the sampler's tick, answered {"count": 42}
    assert results("bodies-rule")["metrics"]["invalid_credentials_total"] == 3
