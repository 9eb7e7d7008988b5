#!/usr/bin/env bash
# Seconds per slide of `libramil heatmap` on a 20,000-patch slide (issue 22; docs/heatmaps.md).
# The shipped TCGA slide (4443 x 3567 at level 0, two levels) is covered by a grid of 28-pixel
# patches (158 x 127 = 20,066; the first 20,000 in row order), so every part of the slide is a
# patch. Cases, each the median wall time of REPEATS runs of the whole command:
#   scores   : `heatmap --scores` of a file with 4 scores (random), default options (auto level)
#   model    : `heatmap --features --checkpoint` with a Libra-MIL checkpoint (D 512, 3 classes,
#              46 text prototypes; random weights and features), 4 scores (weight, 3 attentions)
#   model-l0 : as model, drawn on level 0 at full resolution (--vis-level 0 --max-side 4443)
#   model-all: as model with --score all (1 + 3 + 46 = 50 heatmaps and galleries)
# Usage: bench/heatmap_bench.sh [BUILD_DIR] [REPEATS]    (run from the repository root)
# Needs /usr/bin/python3 with h5py and numpy, and for the checkpoint an interpreter with torch and
# safetensors: $LIBRAMIL_PYTHON, else .venv/bin/python, else /usr/bin/python3.
set -euo pipefail
BUILD=${1:-build}
REPEATS=${2:-3}
BIN=$BUILD/libramil
SLIDE=tests/data/slides/tcga-cr-7395-01a-01-ts1.svs
PY=/usr/bin/python3
REF_PY=${LIBRAMIL_PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo /usr/bin/python3)}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

$PY - "$WORK" <<'PY'
import sys, h5py, numpy as np
work = sys.argv[1]
p0, W, H = 28, 4443, 3567
xs, ys = np.arange(0, W - p0 + 1, p0), np.arange(0, H - p0 + 1, p0)
coords = np.array([(x, y) for y in ys for x in xs], dtype=np.int64)[:20000]
rng = np.random.default_rng(0)
for name, extra in (("scores", True), ("features", False)):
    with h5py.File(f"{work}/{name}.h5", "w") as f:
        c = f.create_dataset("coords", data=coords)
        c.attrs["patch_size_level0"] = p0
        c.attrs["patch_size"] = p0
        if extra:
            names = ["weight", "attention_0", "attention_1", "attention_2"]
            for n in names:
                f.create_dataset(n, data=rng.random(len(coords), dtype=np.float32))
            f.attrs["scores"] = ",".join(names)
        else:
            f.create_dataset("features", data=rng.standard_normal((len(coords), 512), dtype=np.float32))
print(f"{len(coords)} patches of {p0} px over {W} x {H}")
PY
$REF_PY tools/libramil_reference.py init --out "$WORK/libramil.safetensors" --dim 512 --text-dim 512 --kv 10 --kt 46 --classes 3 --seed 1

run_case() {  # name, then the heatmap arguments
  local name=$1; shift
  local times=()
  for ((r = 0; r < REPEATS; ++r)); do
    rm -rf "$WORK/out"
    local t0 t1
    t0=$(date +%s.%N)
    "$BIN" heatmap --slide "$SLIDE" --out "$WORK/out" --threads 2 "$@" > "$WORK/log.txt"
    t1=$(date +%s.%N)
    times+=("$(echo "$t1 - $t0" | bc)")
  done
  local med
  med=$(printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}')
  printf '%-10s %8.2f s   (runs: %s)   %s\n' "$name" "$med" "${times[*]}" "$(head -c 160 "$WORK/log.txt" | tr '\n' ' ')"
}

echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(nproc) cores, avx512f: $(grep -q avx512f /proc/cpuinfo && echo yes || echo no), load: $(cut -d' ' -f1-3 /proc/loadavg)"
run_case scores --scores "$WORK/scores.h5"
run_case model --features "$WORK/features.h5" --checkpoint "$WORK/libramil.safetensors" --score weight,attention
run_case model-l0 --features "$WORK/features.h5" --checkpoint "$WORK/libramil.safetensors" --score weight,attention --vis-level 0 --max-side 4443
run_case model-all --features "$WORK/features.h5" --checkpoint "$WORK/libramil.safetensors" --score all
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
