"""A VM out of memory, driven through the built module in the probe's host (issue 20): the host's
copy of a header map needs more memory than the VM may have, the module's allocator answers null
(not an abort), the host answers the read with InvalidMemoryAccess, and the request passes
uncounted under app_metrics_requests_not_counted_total{reason="memory"}. The VM lives: the next
request counts."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench" / "cost"))
import probe  # noqa: E402
from host import PAGE  # noqa: E402

NOT_COUNTED = "reason=.=memory;.;app_metrics_requests_not_counted_total"


def value(host, name):
    return next((m[2] for m in host.metrics.values() if m[1] == name), None)


def requests(host, status):
    return value(host, f"handler=.=none;.;method=.=GET;.;status=.={status};.;http_requests_total")


def test_a_header_map_the_vm_has_no_memory_for_passes_uncounted_under_memory_and_the_vm_lives():
    wasm, config, _ = probe.configurations()["default"]
    host = probe.start(wasm, config)
    ordinary = probe.exchange(6, "GET /wp-login.php", probe.CURL, "GET", "/wp-login.php", 404)
    host.exchange(ordinary)
    assert requests(host, "4xx") == 1
    # The VM may grow by 4 pages at most; the request carries a 1 MiB header.
    host.store.set_limits(memory_size=(host.pages() + 4) * PAGE)
    huge = probe.exchange(6, "GET /wp-login.php", probe.CURL, "GET", "/wp-login.php", 404)
    huge.request.append(("x-padding", "a" * (1 << 20)))
    host.exchange(huge)
    assert value(host, NOT_COUNTED) == 1, host.logs
    assert requests(host, "4xx") == 1, "counted with half its facts"
    assert any("cannot read a header map (host status 6)" in text for _, text in host.logs)
    # The VM lives, and counts again once the memory is there.
    host.exchange(ordinary)
    assert requests(host, "4xx") == 2
    assert value(host, NOT_COUNTED) == 1
