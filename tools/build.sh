#!/usr/bin/env bash
# Configures and builds libramil (Release) into build/. CUDA sources compile when nvcc exists.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS="${JOBS:-$(nproc)}"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build build -j "$JOBS"
