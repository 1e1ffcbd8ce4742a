#!/usr/bin/env bash
# `make demo`: the demo app behind Envoy with app-metrics-wasm, a real Prometheus scraping
# Envoy's :15090, some traffic, then the metrics and the seed dashboard's queries.
# Needs ENVOY_BIN (make passes it) and the built filter. KEEP=1 keeps everything running
# at the end until Ctrl-C, e.g. to open the Prometheus UI. ROUNDS sets how many rounds of traffic
# (5 s apart; default 5). SCREENSHOT=FILE.png captures Prometheus' graph page into FILE.png
# after the traffic (scripts/screenshot.sh; `make screenshot`).
set -euo pipefail
cd "$(dirname "$0")/.."

: "${ENVOY_BIN:?set ENVOY_BIN to an envoy binary (make demo does this)}"
WASM=target/wasm32-wasip1/release/app_metrics.wasm
for w in "$WASM" target/wasm32-wasip1/release/app_metrics_bodies.wasm; do
  [ -f "$w" ] || { echo "no $w: run 'make build' first" >&2; exit 1; }
done

APP=http://127.0.0.1:10000      # the app, through Envoy
METRICS=http://127.0.0.1:15090/stats/prometheus

fail() { echo "error: $*" >&2; exit 1; }

free() {  # is 127.0.0.1:$1 free to listen on? (SO_REUSEADDR: only a live listener counts)
  python3 -c 'import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null
}

echo "== Checking ports and tools"
busy=""
for p in 8000:app 10000:envoy-listener 15090:envoy-metrics 9901:envoy-admin; do
  free "${p%%:*}" || busy+="  port ${p%%:*} (${p#*:}) is in use"$'\n'
done
[ -z "$busy" ] || fail $'ports the demo needs are taken:\n'"$busy"\
"stop what listens there (see: ss -ltnp) and run 'make demo' again."

if ! command -v prometheus >/dev/null; then
  echo "prometheus not found: installing the Debian package"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus
fi
# 9090 if free (the Debian package may already run its own service there), else any free port.
PROM_PORT=9090
free "$PROM_PORT" || PROM_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
PROM=http://127.0.0.1:$PROM_PORT

# --- Housekeeping: temp dir for logs and Prometheus storage; stop what we started on exit ---
TMP=$(mktemp -d -t app-metrics-demo.XXXXXX)
PIDS=()
cleanup() {
  local rc=$?
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$rc" -eq 0 ]; then
    rm -rf "$TMP"
  else
    rm -rf "$TMP/prometheus-data"
    echo >&2
    echo "demo stopped early (exit $rc); everything it started is stopped. Logs: $TMP/{app,envoy,prometheus}.log" >&2
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_for NAME PID URL: until URL answers 2xx, or fail if NAME died or took over 20 s.
wait_for() {
  for _ in $(seq 100); do
    curl -fs -o /dev/null "$3" && return 0
    kill -0 "$2" 2>/dev/null || fail "$1 exited during start-up; see $TMP/$1.log"
    sleep 0.2
  done
  fail "$1 did not answer on $3 within 20 s; see $TMP/$1.log"
}

echo "== Starting the demo app (:8000), Envoy (:10000, metrics :15090, admin :9901), Prometheus (:$PROM_PORT)"
python3 demo/app.py >"$TMP/app.log" 2>&1 & PIDS+=($!); APP_PID=$!
"$ENVOY_BIN" -c envoy/envoy.yaml --base-id 900 --concurrency 2 >"$TMP/envoy.log" 2>&1 & PIDS+=($!); ENVOY_PID=$!
prometheus --config.file=demo/prometheus.yml --storage.tsdb.path="$TMP/prometheus-data" \
  --web.listen-address="127.0.0.1:$PROM_PORT" >"$TMP/prometheus.log" 2>&1 & PIDS+=($!); PROM_PID=$!
wait_for app "$APP_PID" http://127.0.0.1:8000/health
wait_for envoy "$ENVOY_PID" "$METRICS"      # the metrics listener, routed to Envoy's admin
wait_for prometheus "$PROM_PID" "$PROM/-/ready"

# --- Traffic: every request goes through Envoy; the app itself has no metrics code ---
bad=0
req() {  # req EXPECTED METHOD PATH [curl args...]: print the status, flag a surprise
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' -X "$2" "$APP$3" "${@:4}" || true)  # 000 if no answer
  if [ "$code" = "$1" ]; then printf ' %s' "$code"; else printf ' %s(expected %s)' "$code" "$1"; bad=1; fi
}
create() { req "$1" POST /users -H 'Content-Type: application/json' -d "$2"; }
login()  { req "$1" POST /login --data-urlencode "username=$2" --data-urlencode "password=$3"; }

ROUNDS=${ROUNDS:-5}
echo "== Traffic through Envoy :10000: $ROUNDS rounds, 5 s apart (status codes shown)"
for r in $(seq "$ROUNDS"); do
  printf '  round %d  POST /users' "$r"
  if [ "$r" = 1 ]; then
    create 201 '{"username": "alice", "password": "wonderland"}'
    create 201 '{"username": "bob", "password": "builder"}'
    create 422 '{"username": "no-password"}'             # malformed -> 422
  fi
  create 201 "{\"username\": \"user$r\", \"password\": \"secret$r\"}"   # total_users grows
  printf ' | POST /login'
  login 200 alice wonderland; login 200 bob builder; login 200 "user$r" "secret$r"
  login 400 alice wrong; login 400 mallory guess       # bad logins -> 400
  printf ' | GET'
  req 200 GET /users; req 200 GET /users/count; req 200 GET /users/1; req 404 GET /users/999; req 200 GET /health
  echo
  [ "$bad" = 0 ] || fail "unexpected status codes above (000: no answer from Envoy on :10000)"
  [ "$r" = "$ROUNDS" ] || sleep 5
done

# The sampler reads GET /users/count every 5 s: wait until Prometheus has its latest value.
users=$(curl -s http://127.0.0.1:8000/users/count | python3 -c 'import json, sys; print(json.load(sys.stdin)["count"])')
query() {  # query PROMQL: the single value of an instant query, or "none"
  curl -s "$PROM/api/v1/query" --data-urlencode "query=$1" | python3 -c '
import json, sys
r = json.load(sys.stdin)
if r["status"] != "success": sys.exit("query failed: %s" % r.get("error"))
res = r["data"]["result"]
print(float(res[0]["value"][1]) if res else "none")'
}
echo "== Waiting for the sampler and a Prometheus scrape to see total_users = $users"
for _ in $(seq 30); do
  [ "$(query 'sum(total_users)')" = "$users.0" ] && break
  sleep 0.5
done

echo
echo "== (a) The seed's metrics, scraped from Envoy: curl $METRICS"
curl -s "$METRICS" | grep -E '^(successful_login_details_total|failed_login_details_total|total_users|http_requests_total|app_metrics_)' \
  | sed 's/^/  /' || fail "no app-metrics lines on $METRICS: did the filter load? see $TMP/envoy.log"

echo
echo "== (b) The seed dashboard's queries, answered by Prometheus: $PROM/api/v1/query"
for q in 'sum(total_users)' 'sum(rate(successful_login_details_total[1m]))' 'sum(rate(failed_login_details_total[1m]))'; do
  v=$(query "$q")
  if [ "$v" = none ]; then v="no data yet"
  elif [[ $q == *rate\(* ]]; then v=$(printf '%.3f per second' "$v")
  else v=$(printf '%g' "$v"); fi
  printf '  %-48s %s\n' "$q" "$v"
done
echo
echo "In the seed's Grafana dashboard: the Total Users panel and the Login Success/Failure Rates panel."
echo "(rate() averages over the last minute, of which the demo's traffic filled only ~$((5 * (ROUNDS - 1))) s.)"
if [ -n "${SCREENSHOT:-}" ]; then
  echo
  echo "== Prometheus' graph page, captured by headless Chromium"
  bash scripts/screenshot.sh "$PROM" "$SCREENSHOT"
fi

echo
echo "== (c) Counters on JSON bodies: the same app behind the body-reading module"
# envoy/envoy.yaml with app_metrics_bodies.wasm and two body rules beside the seed's counters:
# the app says "wrong password" in its 400's body, and a sign-up without a password in the request.
python3 - "$TMP/envoy-bodies.yaml" <<'PY'
import sys
text = open("envoy/envoy.yaml").read()
seed_end = '"match": {"method": "POST", "path": "/login", "status": [400, 401]}}'
rules = seed_end + """,
                        {"name": "wrong_password_total",
                         "match": {"method": "POST", "path": "/login", "response_json":
                                   [{"pointer": "/detail", "equals": "Incorrect username or password"}]}},
                        {"name": "signups_without_password_total",
                         "match": {"method": "POST", "path": "/users", "request_json":
                                   [{"pointer": "/password", "present": false}]}}"""
for old, new in ((seed_end, rules), ("release/app_metrics.wasm", "release/app_metrics_bodies.wasm")):
    if text.count(old) != 1:
        sys.exit(f"envoy/envoy.yaml changed: cannot find {old!r} once")
    text = text.replace(old, new)
open(sys.argv[1], "w").write(text)
PY
kill "$ENVOY_PID" && wait "$ENVOY_PID" 2>/dev/null || true
"$ENVOY_BIN" -c "$TMP/envoy-bodies.yaml" --base-id 901 --concurrency 2 >"$TMP/envoy.log" 2>&1 & PIDS+=($!); ENVOY_PID=$!
wait_for envoy "$ENVOY_PID" "$METRICS"
printf '  POST /login'
login 400 alice wrong; login 400 bob nope; login 400 nobody guess; login 200 alice wonderland
printf ' | POST /users'
create 422 '{"username": "carol"}'; create 422 '{"username": "dave"}'
create 201 '{"username": "erin", "password": "pw"}'
echo
[ "$bad" = 0 ] || fail "unexpected status codes above"
for _ in $(seq 20); do
  curl -s "$METRICS" | grep -q '^signups_without_password_total{} 2' && break
  sleep 0.2
done
echo "  curl $METRICS (3 wrong passwords, 2 sign-ups without a password; this Envoy's counts start at 0)"
curl -s "$METRICS" | grep -E '^(wrong_password_total|signups_without_password_total|failed_login_details_total|app_metrics_body_not_counted_total)' \
  | sed 's/^/  /' || fail "no body-rule lines on $METRICS: see $TMP/envoy.log"
echo "(README, \"Counters on JSON bodies\": wrong_password_total read the 400s' bodies, the sign-ups the"
echo " requests'; app_metrics_body_not_counted_total says why a body could not, e.g. the 200 login's"
echo " body has no /detail: missing.)"

echo
echo "== (d) A gRPC service behind the lean module: envoy/envoy-grpc.yaml, a grpc section (docs/grpc.md)"
# tests/grpc/server.py: a real grpcio server (shop.v1.Cart) with no metrics code of ours; its
# calls come from tests/grpc/client.py: over HTTP/2, and one grpc-web call over HTTP/1.1.
PY=.venv/bin/python
[ -x "$PY" ] || fail "no $PY: run 'make venv' (make demo does)"
GRPC_PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
GRPC_METRICS=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$PY" tests/grpc/server.py --port "$GRPC_PORT" --metrics-port "$GRPC_METRICS" >"$TMP/grpc.log" 2>&1 & PIDS+=($!); GRPC_PID=$!
sed "s/port_value: 50051/port_value: $GRPC_PORT/" envoy/envoy-grpc.yaml >"$TMP/envoy-grpc.yaml"
kill "$ENVOY_PID" && wait "$ENVOY_PID" 2>/dev/null || true
"$ENVOY_BIN" -c "$TMP/envoy-grpc.yaml" --base-id 902 --concurrency 2 >"$TMP/envoy.log" 2>&1 & PIDS+=($!); ENVOY_PID=$!
wait_for envoy "$ENVOY_PID" "$METRICS"
for _ in $(seq 100); do grep -q '^ready' "$TMP/grpc.log" && break; kill -0 "$GRPC_PID" || fail "the gRPC server exited; see $TMP/grpc.log"; sleep 0.2; done
calls='[{"method": "/shop.v1.Cart/Add", "type": "unary", "messages": ["ok"], "repeat": 3},
        {"method": "/shop.v1.Cart/Get", "type": "unary", "messages": ["notfound"]},
        {"method": "/shop.v1.Cart/Watch", "type": "server_stream", "messages": ["stream:3"]},
        {"method": "/shop.v1.Cart/Get", "type": "web", "messages": ["denied"]}]'
printf '  calls:'
echo "$calls" | "$PY" tests/grpc/client.py 127.0.0.1:10000 \
  | "$PY" -c 'import json, sys; print("".join(" %s %s" % (c["method"].rsplit("/", 1)[1], c["code"]) for c in map(json.loads, sys.stdin)))'
for _ in $(seq 50); do
  curl -s "$METRICS" | grep -q '^grpc_server_handled_total.*grpc_code="PermissionDenied"' && break
  sleep 0.2
done
echo "  curl $METRICS (5 RPCs over HTTP/2 and 1 over grpc-web; the lean module counts started at the end)"
curl -s "$METRICS" | grep -E '^grpc_server_(started|handled)_total' | sed 's/^/  /' \
  || fail "no grpc_server_* lines on $METRICS: see $TMP/envoy.log"

if [ -n "${KEEP:-}" ]; then
  echo "Still running: app $APP, metrics $METRICS, Prometheus $PROM. Ctrl-C to stop."
  trap 'exit 0' INT TERM
  wait
fi
