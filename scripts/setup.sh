#!/usr/bin/env bash
# Installs the system tools that the given make goals need, and only those that are missing:
#   scripts/setup.sh [GOAL...]        (GOAL: build oci k8s lint unit wasm-unit e2e soak cost kit test demo screenshot bench; default build)
# `make` runs it once per invocation with the goals it was asked for. When everything is present
# it only looks (no apt, no rustup network call): well under a second. Without the rights to
# install (not root, no passwordless sudo) it stops at once with one line: what is missing and
# the command that installs it. Rust (rustup), Python 3, git and kubectl it cannot install.
set -euo pipefail
cd "$(dirname "$0")/.."

targets=() components=() debs=() cargo_bins=()
want_target() { targets+=("$@"); }
want_component() { components+=("$@"); }
# want_deb COMMAND PACKAGE: the Debian package that provides COMMAND
want_deb() { command -v "$1" >/dev/null || debs+=("$2"); }

want_build() { want_target wasm32-wasip1; want_deb wasm-opt binaryen; }
want_lint() { want_target wasm32-wasip1; want_component clippy rustfmt; }
want_wasm_unit() {
  want_target wasm32-unknown-unknown
  want_deb node nodejs
  # The runner must match the wasm-bindgen crate in Cargo.lock exactly.
  wb=$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')
  if ! { command -v wasm-bindgen-test-runner >/dev/null &&
         wasm-bindgen-test-runner --version 2>/dev/null | grep -qF " $wb"; }; then
    cargo_bins+=("wasm-bindgen-cli@$wb")
  fi
}
want_e2e() { want_build; want_deb prometheus prometheus; }
# kubectl (for `kubectl kustomize`) is no Debian package recent enough (bookworm's kubernetes-client is
# 1.20, whose kustomize predates the kit's kustomizations): it is checked, not installed.
need_kubectl=0
# node and npm: the kit installs the Gateway API's JSON schemas from npm and runs them with node.
want_kit() {
  want_build; need_kubectl=1; want_deb promtool prometheus; want_deb skopeo skopeo; want_deb docker-registry docker-registry
  want_deb node nodejs; want_deb npm npm
}

[ $# -gt 0 ] || set -- build
for goal in "$@"; do
  case "$goal" in
    build|oci|k8s|cost) want_build ;;
    lint) want_lint ;;
    unit) ;;
    wasm-unit) want_wasm_unit ;;
    e2e|soak) want_e2e ;;
    kit) want_kit ;;
    test) want_lint; want_wasm_unit; want_e2e; want_kit ;;
    demo) want_build; want_deb prometheus prometheus ;;
    screenshot) want_build; want_deb prometheus prometheus; want_deb chromium chromium ;;
    bench) want_build; want_deb wrk wrk ;;
    *) ;;  # goals that need no system tool (venv, clean, fuzz, ...)
  esac
done

command -v rustup >/dev/null || {
  echo "setup: missing rustup (Rust); install it: curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh" >&2
  exit 1
}
if [ "$need_kubectl" = 1 ] && ! command -v kubectl >/dev/null; then
  echo "setup: missing kubectl (1.21 or later, for \`kubectl kustomize\` in make kit): install it as https://kubernetes.io/docs/tasks/tools/ says" >&2
  exit 1
fi
# Deduplicated, and only what is not installed yet (both lists are local: no network).
missing_targets=() missing_components=()
if [ ${#targets[@]} -gt 0 ]; then
  installed=$(rustup target list --installed)
  for t in $(printf '%s\n' "${targets[@]}" | sort -u); do
    grep -qx "$t" <<<"$installed" || missing_targets+=("$t")
  done
fi
if [ ${#components[@]} -gt 0 ]; then
  installed=$(rustup component list --installed)
  for c in $(printf '%s\n' "${components[@]}" | sort -u); do
    grep -q "^$c" <<<"$installed" || missing_components+=("$c")
  done
fi
mapfile -t debs < <(printf '%s\n' "${debs[@]}" | sed '/^$/d' | sort -u)
mapfile -t cargo_bins < <(printf '%s\n' "${cargo_bins[@]}" | sed '/^$/d' | sort -u)

n=$(( ${#missing_targets[@]} + ${#missing_components[@]} + ${#debs[@]} + ${#cargo_bins[@]} ))
[ "$n" -eq 0 ] && exit 0

# Debian packages need root: check that first, so that nothing is half done.
SUDO=()
if [ ${#debs[@]} -gt 0 ] && [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    SUDO=(sudo)
  else
    cmd="sudo apt-get update && sudo apt-get install -y ${debs[*]}"
    [ ${#missing_targets[@]} -eq 0 ] || cmd+=" && rustup target add ${missing_targets[*]}"
    [ ${#missing_components[@]} -eq 0 ] || cmd+=" && rustup component add ${missing_components[*]}"
    for b in "${cargo_bins[@]}"; do cmd+=" && cargo install ${b%@*} --version ${b#*@}"; done
    what=$(echo ${debs[*]} ${missing_targets[*]} ${missing_components[*]} ${cargo_bins[*]})
    echo "setup: missing $what; install with: $cmd" >&2
    exit 1
  fi
fi
if [ ${#debs[@]} -gt 0 ] && ! command -v apt-get >/dev/null; then
  echo "setup: missing Debian packages ${debs[*]} and no apt-get: install them with your package manager" >&2
  exit 1
fi

if [ ${#debs[@]} -gt 0 ]; then
  echo "setup: apt-get install ${debs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${debs[@]}" >/dev/null
fi
if [ ${#missing_targets[@]} -gt 0 ]; then
  echo "setup: rustup target add ${missing_targets[*]}"
  rustup target add "${missing_targets[@]}"
fi
if [ ${#missing_components[@]} -gt 0 ]; then
  echo "setup: rustup component add ${missing_components[*]}"
  rustup component add "${missing_components[@]}"
fi
for b in "${cargo_bins[@]}"; do
  echo "setup: cargo install ${b%@*} ${b#*@} (a few minutes, once)"
  cargo install "${b%@*}" --version "${b#*@}"
done
echo "setup: done"
