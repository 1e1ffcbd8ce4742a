#!/usr/bin/env bash
# `make oci`: the built filter as an OCI image that Istio's WasmPlugin/TrafficExtension can pull,
# made without Docker, byte-for-byte reproducible.
#
# Format: Istio's Wasm image specification, "compat" variant (what Istio's image fetcher tries
# for any OCI manifest): one layer, media type application/vnd.oci.image.layer.v1.tar+gzip,
# a gzipped tar holding `plugin.wasm`. Istio compares WasmPlugin `sha256` with the digest of
# the *manifest*, which this script prints.
#
# Output:
#   dist/oci/                        OCI image layout, tagged VERSION (Cargo.toml's version)
#   dist/app-metrics-wasm-oci.tar    the same layout as one tarball (skopeo's oci-archive:)
#   dist/app-metrics-wasm.digest     sha256:<manifest digest>
#
# Environment: WASM (default target/wasm32-wasip1/release/app_metrics.wasm), OUT (default dist),
# TAG (default: Cargo.toml version), SOURCE_DATE_EPOCH (timestamps in the tars, default 0).
# `scripts/oci.sh --pin` also writes the new digest and tag, and the toolchain that built the
# .wasm (make build records it), into istio/wasmplugin.yaml,
# istio/trafficextension/trafficextension.yaml and istio/ambient/wasmplugin.yaml; without --pin, a
# pin there that is not this image's digest gets a PIN MISMATCH message naming both toolchains and
# the files to update.
# Push (--preserve-digests: the registry must keep the pinned manifest digest):
#   skopeo copy --preserve-digests oci:dist/oci:TAG docker://REGISTRY/app-metrics-wasm:TAG
set -euo pipefail
cd "$(dirname "$0")/.."

WASM=${WASM:-target/wasm32-wasip1/release/app_metrics.wasm}
OUT=${OUT:-dist}
TAG=${TAG:-$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)}
PIN=0
[ "${1:-}" = "--pin" ] && PIN=1

[ -f "$WASM" ] || { echo "error: no $WASM: run 'make build' first" >&2; exit 1; }
[ -n "$TAG" ] || { echo "error: no version in Cargo.toml and no TAG set" >&2; exit 1; }

python3 - "$WASM" "$OUT" "$TAG" "${SOURCE_DATE_EPOCH:-0}" <<'PY'
import gzip, hashlib, io, json, os, shutil, sys, tarfile

wasm_path, out, tag, epoch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
CONFIG = "application/vnd.oci.image.config.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def tar_bytes(files):
    """A deterministic tar: fixed order, owner, mode and time."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, epoch
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


wasm = open(wasm_path, "rb").read()
layer_tar = tar_bytes([("plugin.wasm", wasm)])
gz = io.BytesIO()
with gzip.GzipFile(filename="", mode="wb", fileobj=gz, mtime=0, compresslevel=9) as f:
    f.write(layer_tar)
layer = gz.getvalue()

sha = lambda b: "sha256:" + hashlib.sha256(b).hexdigest()
# Docker's Wasm support names this platform wasi/wasm; Istio does not look at it.
config = canonical({
    "architecture": "wasm",
    "os": "wasi",
    "config": {},
    "rootfs": {"type": "layers", "diff_ids": [sha(layer_tar)]},
})
manifest = canonical({
    "schemaVersion": 2,
    "mediaType": MANIFEST,
    "config": {"mediaType": CONFIG, "digest": sha(config), "size": len(config)},
    "layers": [{
        "mediaType": LAYER, "digest": sha(layer), "size": len(layer),
        "annotations": {"org.opencontainers.image.title": "plugin.wasm"},
    }],
    "annotations": {
        "org.opencontainers.image.title": "app-metrics-wasm",
        "org.opencontainers.image.version": tag,
        "org.opencontainers.image.description": "app-metrics-wasm proxy-wasm filter (Istio Wasm image spec, compat variant)",
    },
})
digest = sha(manifest)
index = canonical({
    "schemaVersion": 2,
    "mediaType": INDEX,
    "manifests": [{
        "mediaType": MANIFEST, "digest": digest, "size": len(manifest),
        "annotations": {"org.opencontainers.image.ref.name": tag},
    }],
})
layout = canonical({"imageLayoutVersion": "1.0.0"})

files = [("oci-layout", layout), ("index.json", index)]
files += sorted((f"blobs/sha256/{sha(b)[7:]}", b) for b in {config, layer, manifest})

root = os.path.join(out, "oci")
shutil.rmtree(root, ignore_errors=True)
for name, data in files:
    path = os.path.join(root, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
with open(os.path.join(out, "app-metrics-wasm-oci.tar"), "wb") as f:
    f.write(tar_bytes(files))
with open(os.path.join(out, "app-metrics-wasm.digest"), "w") as f:
    f.write(digest + "\n")

print(f"OCI image layout {root} (tag {tag}), tarball {out}/app-metrics-wasm-oci.tar")
print(f"  layer  {sha(layer)}  {len(layer)} bytes (plugin.wasm, {len(wasm)} bytes)")
print(f"manifest digest: {digest}")
print(f"WasmPlugin sha256: {digest[7:]}")
PY

# The manifests that pin the image: their sha256 must be this image's digest when it is published.
PINNED_FILES=(istio/wasmplugin.yaml istio/trafficextension/trafficextension.yaml istio/ambient/wasmplugin.yaml)
digest=$(sed 's/^sha256://' "$OUT/app-metrics-wasm.digest")
# What built the .wasm (make build writes it), to put next to the pin and to compare with it.
toolchain=$(cat "$WASM.toolchain" 2>/dev/null || echo "an unrecorded toolchain")
if [ "$PIN" = 1 ]; then
  for f in "${PINNED_FILES[@]}"; do
    sed -i -E "s/^( *sha256: ).*/\1$digest  # built with $toolchain/; s#^( *url: oci://.*):[^:/ ]+\$#\1:$TAG#" "$f"
    echo "pinned $f to $TAG, sha256 $digest (built with $toolchain)"
  done
else
  stale=()
  for f in "${PINNED_FILES[@]}"; do
    grep -qE "^ *sha256: $digest( |\$)" "$f" || stale+=("$f")
  done
  if [ ${#stale[@]} -gt 0 ]; then
    pinned=$(sed -n -E 's/^ *sha256: ([0-9a-f]+).*/\1/p' "${stale[0]}")
    pinned_by=$(sed -n 's/^ *sha256: [0-9a-f]* *# built with //p' "${stale[0]}")
    {
      echo "PIN MISMATCH: ${stale[*]} pin sha256 ${pinned:-(none)} (built with ${pinned_by:-an unrecorded toolchain});"
      echo "  this image is sha256 $digest (built with $toolchain)."
      if [ "$toolchain" != "$pinned_by" ]; then
        echo "  The toolchains differ, and so do their images: build with ${pinned_by:-the pinning toolchain} to reproduce the pin."
      fi
      echo "  Publishing this image? Run scripts/oci.sh --pin and commit ${stale[*]}."
    } >&2
  fi
fi
