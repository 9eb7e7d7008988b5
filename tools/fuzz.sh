#!/usr/bin/env bash
# Builds and runs the libFuzzer targets in fuzz/ (clang++ -fsanitize=fuzzer,address,undefined),
# independently of the main CMake build: the few tensor/ and data/ sources the readers need
# are compiled once into fuzz/build/obj and linked into each target.
#
# Usage: tools/fuzz.sh SECONDS [TARGET...]     (default: every fuzz/fuzz_*.cpp)
#   SECONDS  -max_total_time per target (0 = build and seed the corpus only)
# Environment:
#   FUZZ_PARALLEL  targets run at once (default 2)       CXX  clang++ (default clang++-14)
#   FUZZ_BUILD     build dir (default fuzz/build)        FUZZ_ARGS  extra libFuzzer flags
#   PYTHON         interpreter with h5py/torch for the seed corpus (default .venv or python3)
# Corpus: fuzz/corpus/<target>/ seeded by tools/make_fuzz_corpus.py (kept between runs; new
# inputs libFuzzer finds are added there). Crash reproducers go to fuzz/artifacts/<target>/.
# Prints one line per target: execs, new corpus entries, crashes; exits 1 if any crashed.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET="${1:?usage: tools/fuzz.sh SECONDS [TARGET...]}"
shift || true
CXX="${CXX:-clang++-14}"
command -v "$CXX" >/dev/null || CXX=clang++
BUILD="${FUZZ_BUILD:-fuzz/build}"
PARALLEL="${FUZZ_PARALLEL:-2}"
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
  for f in fuzz/fuzz_*.cpp; do t=$(basename "$f" .cpp); TARGETS+=("${t#fuzz_}"); done
fi

HDF5_CFLAGS=$(pkg-config --cflags hdf5 2>/dev/null || echo -I/usr/include/hdf5/serial)
HDF5_LIBS=$(pkg-config --libs hdf5 2>/dev/null || echo "-L/usr/lib/x86_64-linux-gnu/hdf5/serial -lhdf5")
FLAGS=(-std=c++20 -O1 -g -fno-omit-frame-pointer -I. -I/usr/include/stb $HDF5_CFLAGS -Wall -Wextra -Wno-unused-parameter)
SAN=address,undefined
LIBS=($HDF5_LIBS -lutf8proc -lfmt)
# All of tensor/ (the bottom layer: tensor.cpp needs storage.cpp and profiler.cpp), and the
# data/ readers the targets call.
SRCS=(tensor/*.cpp data/atomic_file.cpp data/feature_bag.cpp data/tables.cpp data/checksum.cpp
      data/formats/safetensors.cpp data/formats/zip_reader.cpp data/formats/torch_pickle.cpp data/formats/hdf5_writer.cpp
      data/text/tokenizer.cpp data/text/tokenizer_bpe.cpp data/text/tokenizer_wordpiece.cpp data/text/tokenizer_unicode.cpp
      data/slides/image_io.cpp data/slides/morphology.cpp data/slides/tissue.cpp)

mkdir -p "$BUILD/obj"
# Library objects (rebuilt when the source or a header under data/ tensor/ is newer).
OBJS=()
for s in "${SRCS[@]}"; do
  o="$BUILD/obj/$(echo "$s" | tr / _).o"
  OBJS+=("$o")
  if [ ! -f "$o" ] || [ "$s" -nt "$o" ] || [ -n "$(find data tensor -name '*.h' -newer "$o" 2>/dev/null | head -1)" ]; then
    while [ "$(jobs -rp | wc -l)" -ge "$PARALLEL" ]; do wait -n; done
    "$CXX" "${FLAGS[@]}" -fsanitize=fuzzer-no-link,$SAN -c "$s" -o "$o.tmp" && mv "$o.tmp" "$o" &
  fi
done
wait
for o in "${OBJS[@]}"; do [ -f "$o" ] || { echo "fuzz.sh: failed to compile $o" >&2; exit 1; }; done
for t in "${TARGETS[@]}"; do
  exe="$BUILD/fuzz_$t"
  src="fuzz/fuzz_$t.cpp"
  [ -f "$src" ] || { echo "fuzz.sh: no target $src" >&2; exit 2; }
  if [ ! -x "$exe" ] || [ "$src" -nt "$exe" ] || [ fuzz/fuzz_util.h -nt "$exe" ] ||
     [ -n "$(find "${OBJS[@]}" -newer "$exe" | head -1)" ]; then
    echo "== build fuzz_$t"
    "$CXX" "${FLAGS[@]}" -fsanitize=fuzzer,$SAN "$src" "${OBJS[@]}" "${LIBS[@]}" -o "$exe"
  fi
done

echo "== seed corpus"
"$PYTHON" tools/make_fuzz_corpus.py fuzz/corpus "${TARGETS[@]}"
[ "$SECONDS_PER_TARGET" -gt 0 ] || exit 0

run_one() {
  local t=$1
  mkdir -p "fuzz/artifacts/$t" "$BUILD/logs"
  # UBSan findings abort (halt_on_error) so that libFuzzer records them as crashes.
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
    "$BUILD/fuzz_$t" -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=20 \
    -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" ${FUZZ_ARGS:-} "fuzz/corpus/$t" \
    > "$BUILD/logs/$t.log" 2>&1 || true
}
echo "== fuzz ${#TARGETS[@]} targets, ${SECONDS_PER_TARGET} s each, $PARALLEL at a time"
running=()
for t in "${TARGETS[@]}"; do
  run_one "$t" &
  running+=($!)
  if [ ${#running[@]} -ge "$PARALLEL" ]; then wait "${running[0]}"; running=("${running[@]:1}"); fi
done
for p in "${running[@]}"; do wait "$p"; done

status=0
printf '%-18s %12s %10s %8s %s\n' target execs exec/s crashes corpus
for t in "${TARGETS[@]}"; do
  log="$BUILD/logs/$t.log"
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  crashes=$(find "fuzz/artifacts/$t" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) -newer "$BUILD/fuzz_$t" | wc -l)
  if grep -q 'ERROR: \(AddressSanitizer\|LeakSanitizer\|libFuzzer\)\|runtime error:\|SUMMARY: ' "$log"; then
    [ "$crashes" -gt 0 ] || crashes=1
  fi
  corpus=$(ls "fuzz/corpus/$t" | wc -l)
  printf '%-18s %12s %10s %8s %s\n' "$t" "${execs:-?}" "${rate:-?}" "$crashes" "$corpus"
  if [ "$crashes" -gt 0 ]; then status=1; echo "  see $log and fuzz/artifacts/$t/" >&2; fi
done
exit $status
