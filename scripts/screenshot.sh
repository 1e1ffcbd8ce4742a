#!/usr/bin/env bash
# Prometheus' graph page captured by headless Chromium (Debian `chromium`): the picture in README.
#   scripts/screenshot.sh PROMETHEUS_URL OUT.png
# `make screenshot` runs it from scripts/demo.sh while the demo's Prometheus holds a minute of
# traffic scraped from Envoy's /stats/prometheus.
set -euo pipefail
prom=$1 out=$2
command -v chromium >/dev/null || { echo "screenshot: no chromium (apt-get install chromium)" >&2; exit 1; }

# The requests the filter counted, by route template and status class, as a rate: /login's 2xx
# and 4xx are the seed's successful and failed logins.
query='sum by (handler, status) (rate(http_requests_total[1m]))'
enc() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }
# Debian's Prometheus 2.42 serves the classic UI under /classic; other builds only /graph.
page=/graph
[ "$(curl -s -o /dev/null -w '%{http_code}' "$prom/classic/graph")" = 200 ] && page=/classic/graph
url="$prom$page?g0.expr=$(enc "$query")&g0.tab=0&g0.range_input=1m"

mkdir -p "$(dirname "$out")"
profile=$(mktemp -d -t app-metrics-chromium.XXXXXX)
trap 'rm -rf "$profile"' EXIT
# No network but 127.0.0.1: no QUIC, sync, component updates or background fetches. The virtual
# time budget lets the page's scripts query Prometheus and draw before the capture.
timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --hide-scrollbars --window-size=1200,920 --virtual-time-budget=10000 \
  --screenshot="$out" "$url" >"$profile/chromium.log" 2>&1 \
  || { cat "$profile/chromium.log" >&2; echo "screenshot: chromium failed" >&2; exit 1; }
[ -s "$out" ] || { echo "screenshot: chromium wrote no $out" >&2; exit 1; }
echo "  wrote $out ($(stat -c %s "$out") bytes): $url"
