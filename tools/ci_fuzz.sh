#!/usr/bin/env bash
# CI step: builds every libFuzzer target in fuzz/ (clang++-14, ASan + UBSan), seeds the corpus
# and runs each target for FUZZ_SECONDS (default 20) seconds, two at a time. Exits non-zero if
# any target crashed, leaked, hung or hit a sanitizer report (reproducers in fuzz/artifacts/).
set -euo pipefail
cd "$(dirname "$0")/.."
exec bash tools/fuzz.sh "${FUZZ_SECONDS:-20}" "$@"
