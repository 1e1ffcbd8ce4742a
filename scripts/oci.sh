#!/usr/bin/env bash
# `make oci`: the built filter as OCI images that Istio's WasmPlugin/TrafficExtension can pull,
# made without Docker, byte-for-byte reproducible. Two images, one per build (`make build`):
#
#   tag VERSION          app_metrics.wasm         the lean module: refuses body rules
#   tag VERSION-bodies   app_metrics_bodies.wasm  reads JSON bodies for the rules that ask
#                                                 (README, "Counters on JSON bodies")
#
# Format: Istio's Wasm image specification, "compat" variant (what Istio's image fetcher tries
# for any OCI manifest): one layer, media type application/vnd.oci.image.layer.v1.tar+gzip,
# a gzipped tar holding `plugin.wasm`. Istio compares WasmPlugin `sha256` with the digest of
# the *manifest*, which this script prints for each image.
#
# Output (both images in one layout, one tag each):
#   dist/oci/                              OCI image layout, tagged VERSION and VERSION-bodies
#   dist/app-metrics-wasm-oci.tar          the same layout as one tarball (skopeo's oci-archive:)
#   dist/app-metrics-wasm.digest           sha256:<manifest digest> of VERSION
#   dist/app-metrics-wasm-bodies.digest    sha256:<manifest digest> of VERSION-bodies
#
# Environment: WASM (default target/wasm32-wasip1/release/app_metrics.wasm), BODIES_WASM (default
# target/wasm32-wasip1/release/app_metrics_bodies.wasm), OUT (default dist), TAG (default:
# Cargo.toml version; the bodies image is TAG-bodies), SOURCE_DATE_EPOCH (timestamps in the tars,
# default 0).
# `scripts/oci.sh --pin` also writes each image's digest and tag, and the toolchain that built its
# .wasm (make build records it), into the manifests that pin it: the lean image into
# istio/wasmplugin.yaml, istio/trafficextension/trafficextension.yaml and
# istio/ambient/wasmplugin.yaml, the bodies image into istio/bodies/wasmplugin-patch.yaml.
# Without --pin, a pin there that is not its image's digest gets a PIN MISMATCH message naming
# both toolchains and the files to update.
# Push (--preserve-digests: the registry must keep the pinned manifest digest):
#   skopeo copy --preserve-digests oci:dist/oci:TAG docker://REGISTRY/app-metrics-wasm:TAG
#   skopeo copy --preserve-digests oci:dist/oci:TAG-bodies docker://REGISTRY/app-metrics-wasm:TAG-bodies
set -euo pipefail
cd "$(dirname "$0")/.."

WASM=${WASM:-target/wasm32-wasip1/release/app_metrics.wasm}
BODIES_WASM=${BODIES_WASM:-target/wasm32-wasip1/release/app_metrics_bodies.wasm}
OUT=${OUT:-dist}
TAG=${TAG:-$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)}
PIN=0
[ "${1:-}" = "--pin" ] && PIN=1

for w in "$WASM" "$BODIES_WASM"; do
  [ -f "$w" ] || { echo "error: no $w: run 'make build' first (it builds both modules)" >&2; exit 1; }
done
[ -n "$TAG" ] || { echo "error: no version in Cargo.toml and no TAG set" >&2; exit 1; }

python3 - "$WASM" "$BODIES_WASM" "$OUT" "$TAG" "${SOURCE_DATE_EPOCH:-0}" <<'PY'
import gzip, hashlib, io, json, os, shutil, sys, tarfile

lean_path, bodies_path, out, tag, epoch = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
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


sha = lambda b: "sha256:" + hashlib.sha256(b).hexdigest()


def image(wasm_path, ref, description):
    """One image: (its blobs, its manifest's descriptor in the index, what to print)."""
    wasm = open(wasm_path, "rb").read()
    layer_tar = tar_bytes([("plugin.wasm", wasm)])
    gz = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=gz, mtime=0, compresslevel=9) as f:
        f.write(layer_tar)
    layer = gz.getvalue()
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
            "org.opencontainers.image.version": ref,
            "org.opencontainers.image.description": description,
        },
    })
    desc = {
        "mediaType": MANIFEST, "digest": sha(manifest), "size": len(manifest),
        "annotations": {"org.opencontainers.image.ref.name": ref},
    }
    shown = (f"{ref}: {os.path.basename(wasm_path)}, {len(wasm)} bytes; layer {sha(layer)}, {len(layer)} bytes\n"
             f"  manifest digest: {sha(manifest)}\n"
             f"  WasmPlugin sha256: {sha(manifest)[7:]}")
    return {config, layer, manifest}, desc, shown


SPEC = "Istio Wasm image spec, compat variant"
images = [
    (image(lean_path, tag, f"app-metrics-wasm proxy-wasm filter ({SPEC})"), "app-metrics-wasm.digest"),
    (image(bodies_path, f"{tag}-bodies",
           f"app-metrics-wasm proxy-wasm filter, body-reading build ({SPEC})"), "app-metrics-wasm-bodies.digest"),
]
index = canonical({
    "schemaVersion": 2,
    "mediaType": INDEX,
    "manifests": [desc for (_, desc, _), _ in images],
})
layout = canonical({"imageLayoutVersion": "1.0.0"})

files = [("oci-layout", layout), ("index.json", index)]
blobs = set().union(*(b for (b, _, _), _ in images))
files += sorted((f"blobs/sha256/{sha(b)[7:]}", b) for b in blobs)

root = os.path.join(out, "oci")
shutil.rmtree(root, ignore_errors=True)
for name, data in files:
    path = os.path.join(root, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
with open(os.path.join(out, "app-metrics-wasm-oci.tar"), "wb") as f:
    f.write(tar_bytes(files))
for (_, desc, _), digest_file in images:
    with open(os.path.join(out, digest_file), "w") as f:
        f.write(desc["digest"] + "\n")

print(f"OCI image layout {root} (tags {tag}, {tag}-bodies), tarball {out}/app-metrics-wasm-oci.tar")
for (_, _, shown), _ in images:
    print(shown)
PY

# The manifests that pin each image: their sha256 must be its digest when it is published.
PINNED_FILES=(istio/wasmplugin.yaml istio/trafficextension/trafficextension.yaml istio/ambient/wasmplugin.yaml)
BODIES_PINNED_FILES=(istio/bodies/wasmplugin-patch.yaml)

# pin_or_check WASM DIGEST_FILE TAG FILE...: --pin writes the image's digest, tag and toolchain
# into the files; otherwise says PIN MISMATCH for those that pin another digest.
pin_or_check() {
  local wasm=$1 digest tag=$3 toolchain f pinned pinned_by
  digest=$(sed 's/^sha256://' "$2")
  shift 3
  # What built the .wasm (make build writes it), to put next to the pin and to compare with it.
  toolchain=$(cat "$wasm.toolchain" 2>/dev/null || echo "an unrecorded toolchain")
  if [ "$PIN" = 1 ]; then
    for f in "$@"; do
      sed -i -E "s/^( *sha256: ).*/\1$digest  # built with $toolchain/; s#^( *url: oci://.*):[^:/ ]+\$#\1:$tag#" "$f"
      echo "pinned $f to $tag, sha256 $digest (built with $toolchain)"
    done
    return
  fi
  local stale=()
  for f in "$@"; do
    grep -qE "^ *sha256: $digest( |\$)" "$f" || stale+=("$f")
  done
  [ ${#stale[@]} -gt 0 ] || return 0
  pinned=$(sed -n -E 's/^ *sha256: ([0-9a-f]+).*/\1/p' "${stale[0]}")
  pinned_by=$(sed -n 's/^ *sha256: [0-9a-f]* *# built with //p' "${stale[0]}")
  {
    echo "PIN MISMATCH: ${stale[*]} pin sha256 ${pinned:-(none)} (built with ${pinned_by:-an unrecorded toolchain});"
    echo "  image $tag is sha256 $digest (built with $toolchain)."
    if [ "$toolchain" != "$pinned_by" ]; then
      echo "  The toolchains differ, and so do their images: build with ${pinned_by:-the pinning toolchain} to reproduce the pin."
    fi
    echo "  Publishing this image? Run scripts/oci.sh --pin and commit ${stale[*]}."
  } >&2
}

pin_or_check "$WASM" "$OUT/app-metrics-wasm.digest" "$TAG" "${PINNED_FILES[@]}"
pin_or_check "$BODIES_WASM" "$OUT/app-metrics-wasm-bodies.digest" "$TAG-bodies" "${BODIES_PINNED_FILES[@]}"
