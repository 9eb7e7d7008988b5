#!/usr/bin/env bash
# CI step (run by .ci/run after the sanitizer job): builds every libFuzzer target in fuzz/
# (clang++-14, ASan + UBSan), seeds the corpus and runs each target for FUZZ_SECONDS (default
# 30) seconds, two at a time (FUZZ_PARALLEL): 7 targets take about 2 minutes plus the build. Exits
# non-zero if any target crashed, leaked, hung or hit a sanitizer report (reproducers in
# fuzz/artifacts/).
set -euo pipefail
cd "$(dirname "$0")/.."
exec bash tools/fuzz.sh "${FUZZ_SECONDS:-30}" "$@"
