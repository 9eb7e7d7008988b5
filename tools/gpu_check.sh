#!/usr/bin/env bash
# One-call GPU check of libramil (docs/cuda.md): builds for Hopper (sm_90) with the CUDA
# backend, runs the whole test suite (the op table then compares every op on CUDA against the
# CPU), compiles and runs the kernel studies in cuda/dev/ (validation + timing), times the
# same shapes with PyTorch on the GPU, and prints one summary table last.
#
# usage: tools/gpu_check.sh [BUILD_DIR=build-gpu]
# env:   LIBRAMIL_CUDA_ARCHS (default 90), JOBS (default nproc), LIBRAMIL_PYTHON (a python3
#        with torch; default: python3 on PATH), GPU_CHECK_SKIP_TESTS=1, GPU_CHECK_SKIP_BENCH=1,
#        LIBRAMIL_CUDA_GEMM=cublas|tiled (the GEMM the tests use; default cublas; test_gemm also
#        runs once more with LIBRAMIL_CUDA_GEMM=tensorcore), CTEST_JOBS (suites at a time, default 6).
# Every summary row is also printed when it is made, so a run cut short still shows its progress.
#
# The target machine has only the CUDA toolkit, CMake and a python3 with PyTorch, and no apt
# or pip access. The build needs these Debian development packages (or the same libraries
# installed elsewhere and visible to the compiler / CMake):
#   libfmt-dev nlohmann-json3-dev libcli11-dev doctest-dev libhdf5-dev libutf8proc-dev
#   libstb-dev pkg-config (and g++ with OpenMP, i.e. libgomp)
# They are checked first; the script stops with a clear message when one is missing.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD=${1:-build-gpu}
ARCHS=${LIBRAMIL_CUDA_ARCHS:-90}
JOBS=${JOBS:-$(nproc)}
PY=${LIBRAMIL_PYTHON:-$(command -v python3 || echo /usr/bin/python3)}
export LIBRAMIL_PYTHON="$PY"
LOG="$BUILD/gpu_check_logs"
SUMMARY=()  # rows "step|status|detail"

# Each row is printed as it is made too: a run stopped by its lease still shows how far it got.
row() { SUMMARY+=("$1|$2|$3"); printf '[gpu_check %s] %-34s %-6s %s\n' "$(date +%T)" "$1" "$2" "$3"; }
print_summary() {
  echo
  echo "==================== gpu_check summary ===================="
  printf '%-34s %-6s %s\n' "step" "status" "detail"
  printf '%-34s %-6s %s\n' "----" "------" "------"
  for r in "${SUMMARY[@]}"; do
    IFS='|' read -r a b c <<<"$r"
    printf '%-34s %-6s %s\n' "$a" "$b" "$c"
  done
  echo "logs: $LOG"
}
die() {
  echo "gpu_check: $*" >&2
  row "abort" "FAIL" "$*"
  print_summary
  exit 1
}

# ---- 0. tools and dependencies ---------------------------------------------------------------
NVCC=${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
[ -x "$NVCC" ] || die "nvcc not found (put the CUDA toolkit's bin/ on PATH or set CUDACXX)"
command -v cmake >/dev/null || die "cmake not found"
CXX_BIN=${CXX:-$(command -v c++ || command -v g++ || true)}
[ -n "$CXX_BIN" ] || die "no C++ compiler (g++) found"

# Libraries carried from a Debian machine (tools/gpu_deps.sh fetch; name .gpudeps in the run's
# carry): unpacked and put on the compiler's / loader's / CMake's paths only where missing.
GPU_DEPS_CMAKE_ARGS=""
if [ -d "${GPU_DEPS_DIR:-$ROOT/.gpudeps}" ]; then
  # shellcheck source=tools/gpu_deps.sh
  source "$ROOT/tools/gpu_deps.sh" activate || die "tools/gpu_deps.sh activate failed (see above)"
  row "carried deps (.gpudeps)" "ok" "$( [ -n "$GPU_DEPS_CMAKE_ARGS" ] && echo "build libraries from .gpudeps/root" || echo "not needed: the machine has them"); shared data ${LIBRAMIL_SHARED_DIR:-../shared}"
fi

missing=()
have_header() {  # header [extra include dir]
  local extra=""
  [ -n "${2:-}" ] && extra="-I$2"
  echo "#include <$1>" | "$CXX_BIN" -std=c++20 $extra -E -x c++ - >/dev/null 2>&1
}
have_header fmt/core.h || missing+=("libfmt-dev (fmt/core.h)")
have_header nlohmann/json.hpp || missing+=("nlohmann-json3-dev (nlohmann/json.hpp)")
have_header CLI/CLI.hpp || missing+=("libcli11-dev (CLI/CLI.hpp)")
have_header doctest/doctest.h || missing+=("doctest-dev (doctest/doctest.h)")
have_header hdf5.h || have_header hdf5.h /usr/include/hdf5/serial || missing+=("libhdf5-dev (hdf5.h)")
have_header utf8proc.h || missing+=("libutf8proc-dev (utf8proc.h)")
have_header stb_image_write.h /usr/include/stb || missing+=("libstb-dev (stb/stb_image_write.h)")
command -v pkg-config >/dev/null || missing+=("pkg-config")
echo 'int main(){}' | "$CXX_BIN" -fopenmp -x c++ - -o /dev/null >/dev/null 2>&1 || missing+=("OpenMP for $CXX_BIN (libgomp)")
if [ ${#missing[@]} -gt 0 ]; then
  echo "gpu_check: the build needs packages this machine lacks:" >&2
  for m in "${missing[@]}"; do echo "  - $m" >&2; done
  echo "Install them (Debian: apt-get install libfmt-dev nlohmann-json3-dev libcli11-dev doctest-dev" >&2
  echo "libhdf5-dev libutf8proc-dev libstb-dev pkg-config), or make the same libraries visible via" >&2
  echo "CPATH / CMAKE_PREFIX_PATH / PKG_CONFIG_PATH, then rerun." >&2
  die "missing build dependencies: ${missing[*]}"
fi
row "python" "ok" "$("$PY" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__, "cuda available:", torch.cuda.is_available())' 2>&1 | tail -1)"
# libcudnn for LIBRAMIL_CUDA_ATTENTION=cudnn (cuda/cudnn_attention.cu dlopens it): the machine's
# own if the loader finds one, else the one in torch's wheel (nvidia-cudnn), named by
# LIBRAMIL_CUDNN_LIBRARY, its directory added to LD_LIBRARY_PATH for its sub-libraries.
if [ -z "${LIBRAMIL_CUDNN_LIBRARY:-}" ] && ! ldconfig -p 2>/dev/null | grep -q "libcudnn.so.9 " &&
   ! ls /usr/local/cuda/lib*/libcudnn.so.9 >/dev/null 2>&1; then
  cudnn_lib=$("$PY" -c 'import os, nvidia.cudnn as m; print(os.path.join(list(m.__path__)[0], "lib", "libcudnn.so.9"))' 2>/dev/null || true)
  if [ -n "$cudnn_lib" ] && [ -f "$cudnn_lib" ]; then
    export LIBRAMIL_CUDNN_LIBRARY=$cudnn_lib
    export LD_LIBRARY_PATH=$(dirname "$cudnn_lib")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  fi
fi
row "cudnn library" "ok" "${LIBRAMIL_CUDNN_LIBRARY:-the loader's / the toolkit's libcudnn.so.9}"
row "dependencies" "ok" "nvcc $("$NVCC" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'), cmake $(cmake --version | head -1 | awk '{print $3}')"

mkdir -p "$LOG"
if command -v nvidia-smi >/dev/null; then
  GPU=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1)
  row "gpu" "ok" "${GPU:-unknown}"
else
  row "gpu" "warn" "nvidia-smi not found"
fi

# ---- 1. build --------------------------------------------------------------------------------
t0=$(date +%s)
if cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DLIBRAMIL_CUDA=ON -DLIBRAMIL_CUDA_ARCHS="$ARCHS" \
     -DCMAKE_CUDA_COMPILER="$NVCC" $GPU_DEPS_CMAKE_ARGS >"$LOG/configure.log" 2>&1 &&
   cmake --build "$BUILD" -j "$JOBS" >"$LOG/build.log" 2>&1; then
  row "build (sm_$ARCHS)" "ok" "$(( $(date +%s) - t0 )) s"
else
  tail -40 "$LOG/configure.log" "$LOG/build.log" 2>/dev/null
  die "build failed (see $LOG/build.log)"
fi
# The kernel studies compile in the background while the tests run (section 3 waits for them).
declare -A STUDY_PID
if [ "${GPU_CHECK_SKIP_BENCH:-0}" != 1 ]; then
  for study in softmax layernorm attention gemm reduce; do
    extra=(); [ "$study" = gemm ] && extra=(-lcublas)  # gemm.cu: versions 5-7 are cuBLAS, the yardstick
    "$NVCC" -O3 -std=c++17 -arch=sm_"${ARCHS%%;*}" -I"$ROOT" -o "$BUILD/dev_$study" "$ROOT/cuda/dev/$study.cu" "${extra[@]}" \
      >"$LOG/dev_$study.build.log" 2>&1 &
    STUDY_PID[$study]=$!
  done
fi
grep -q "LIBRAMIL_WITH_CUDA=1" "$BUILD/compile_commands.json" 2>/dev/null ||
  row "cuda dispatch" "warn" "LIBRAMIL_WITH_CUDA not defined (cuda/kernels.h missing?): ops will not run on the GPU"

# ---- 2. test suite ---------------------------------------------------------------------------
if [ "${GPU_CHECK_SKIP_TESTS:-0}" != 1 ]; then
  t0=$(date +%s)
  # -V: keep every suite's output (the op table prints its CUDA column even when it passes)
  # all-MiniLM-L6-v2's weights (88 MB) cannot travel with a run (64 MiB) and the machine has no
  # network: without them, test_text_encoders runs with that one case excluded, as a row says.
  mini=${LIBRAMIL_MINILM_DIR:-$ROOT/.cache/minilm}
  ctest_exclude=()
  if [ ! -f "$mini/model.safetensors" ]; then ctest_exclude=(-E '^test_text_encoders$'); fi
  # CTEST_JOBS suites at a time (the GPU has room for all of them), none longer than 200 s.
  ctest --test-dir "$BUILD" -V -j "${CTEST_JOBS:-6}" --timeout 200 "${ctest_exclude[@]}" >"$LOG/ctest.log" 2>&1
  rc=$?
  if [ ${#ctest_exclude[@]} -gt 0 ]; then
    if "$BUILD/libramil_tests" --source-file='*test_text_encoders.cpp' --test-case-exclude='*MiniLM*' --no-intro \
         >"$LOG/test_text_encoders.log" 2>&1; then
      row "test_text_encoders (no MiniLM)" "ok" "MiniLM-vs-PyTorch case not run: weights (88 MB) not carried, no network"
    else
      rc=1; row "test_text_encoders (no MiniLM)" "FAIL" "see $LOG/test_text_encoders.log"
    fi
  fi
  passed=$(grep -cE "Test +#.*Passed" "$LOG/ctest.log" || true)
  failed=$(grep -cE "Test +#.*(\*\*\*Failed|\*\*\*Exception|\*\*\*Timeout|Not Run)" "$LOG/ctest.log" || true)
  skipped=$(grep -cE "Test +#.*Skipped" "$LOG/ctest.log" || true)
  status=ok
  [ $rc -ne 0 ] && status=FAIL
  row "ctest (all suites)" "$status" "$passed passed, $failed failed, $skipped skipped, $(( $(date +%s) - t0 )) s"
  grep -E "Test +#.*(\*\*\*Failed|\*\*\*Exception|\*\*\*Timeout)" "$LOG/ctest.log" | sed 's/^ *//' | while read -r l; do
    echo "  $l"
  done
  # The fused attention kernels against the composed op on the GPU (tests/test_cuda_attention.cpp).
  attn_line=$(grep -E "cuda attention: [0-9]+ fused-vs-composed CUDA cases" "$LOG/ctest.log" | tail -1 | sed 's/^.*cuda attention: /cuda attention: /')
  if [ -n "$attn_line" ] && ! echo "$attn_line" | grep -q "skipped"; then row "attention fused vs composed" "ok" "$attn_line"
  else row "attention fused vs composed" "FAIL" "${attn_line:-no cuda attention line in the ctest log}"; fi
  # cuDNN's fused attention (LIBRAMIL_CUDA_ATTENTION=cudnn) against the CPU composition at
  # bfloat16 tolerance (tests/test_cudnn_attention.cpp); a cuDNN without the SDPA operations
  # (< 9.13) skips with its reason: a warning, not a failure of ours.
  cudnn_line=$(grep -E "cudnn attention: [0-9]+ GPU cases" "$LOG/ctest.log" | tail -1 | sed 's/^.*cudnn attention: /cudnn attention: /')
  if [ -n "$cudnn_line" ] && echo "$cudnn_line" | grep -q "checked"; then row "attention cuDNN vs CPU (bf16)" "ok" "$cudnn_line"
  elif [ -n "$cudnn_line" ]; then row "attention cuDNN vs CPU (bf16)" "warn" "$cudnn_line"
  else row "attention cuDNN vs CPU (bf16)" "FAIL" "no cudnn attention line in the ctest log"; fi
  # Any suite that skipped its GPU cases (they print "... skipped (no GPU)") did not see the GPU:
  # tests/test_cuda_train.cpp (conversion, pinned uploads, device Adam, train --device cuda vs
  # cpu) and the others report it that way.
  noskip=$(grep -cE "skipped \(no GPU\)" "$LOG/ctest.log" || true)
  if [ "${noskip:-0}" = 0 ]; then row "GPU cases run (no skips)" "ok" "no suite reported skipped GPU cases"
  else row "GPU cases run (no skips)" "FAIL" "$noskip suite messages say 'skipped (no GPU)': grep 'no GPU' $LOG/ctest.log"; fi
  # The op table's CUDA column (skipped here would mean the backend did not register).
  cuda_line=$(grep -E "CUDA comparisons" "$LOG/ctest.log" | tail -1 | sed 's/^ *//')
  if [ -n "$cuda_line" ]; then
    if echo "$cuda_line" | grep -q " 0 CUDA comparisons"; then row "op table on CUDA" "FAIL" "$cuda_line"
    else row "op table on CUDA" "ok" "$cuda_line"; fi
  else
    row "op table on CUDA" "warn" "no op-table CUDA line in the ctest log"
  fi
  # The CUDA GEMM cases of test_gemm (cuBLAS, cuBLASLt, tiled, tensorcore, gemm_bf16 vs float64).
  gemm_line=$(grep -E "cuda gemm: [0-9]+ CUDA cases" "$LOG/ctest.log" | tail -1 | sed 's/^.*cuda gemm: /cuda gemm: /')
  if [ -z "$gemm_line" ] || echo "$gemm_line" | grep -q "skipped"; then row "gemm on CUDA (test_gemm)" "FAIL" "${gemm_line:-no CUDA GEMM line in the ctest log}"
  else row "gemm on CUDA (test_gemm)" "ok" "$gemm_line"; fi
  # test_gemm once more with gemm()'s default backend = tensorcore (TF32). Only this suite: TF32
  # is ~1e-3 relative, which the op table's float32 tolerances reject by design.
  t0=$(date +%s)
  if LIBRAMIL_CUDA_GEMM=tensorcore "$BUILD/libramil_tests" --source-file='*test_gemm.cpp' --no-intro \
       >"$LOG/test_gemm_tensorcore.log" 2>&1 && ! grep -q "CUDA cases skipped" "$LOG/test_gemm_tensorcore.log"; then
    row "test_gemm (GEMM=tensorcore)" "ok" "$(grep -o 'default CUDA GEMM backend: [a-z]*' "$LOG/test_gemm_tensorcore.log" | tail -1), $(( $(date +%s) - t0 )) s"
  else
    row "test_gemm (GEMM=tensorcore)" "FAIL" "see $LOG/test_gemm_tensorcore.log"
  fi
  # The op table once more with cuBLASLt behind every matmul (full float32: same tolerances).
  t0=$(date +%s)
  if LIBRAMIL_CUDA_GEMM=cublaslt "$BUILD/libramil_tests" --source-file='*test_op_table.cpp' --no-intro \
       >"$LOG/test_op_table_cublaslt.log" 2>&1; then
    row "op table (GEMM=cublaslt)" "ok" "$(grep -E 'CUDA comparisons' "$LOG/test_op_table_cublaslt.log" | tail -1 | sed 's/^ *//'), $(( $(date +%s) - t0 )) s"
  else
    row "op table (GEMM=cublaslt)" "FAIL" "see $LOG/test_op_table_cublaslt.log"
  fi
else
  row "ctest" "skip" "GPU_CHECK_SKIP_TESTS=1"
fi

# ---- 3. kernel studies (cuda/dev) and PyTorch on the same shapes ------------------------------
declare -A OURS TORCH
if [ "${GPU_CHECK_SKIP_BENCH:-0}" != 1 ]; then
  # Most wanted first (a lease may end the run): the model-level comparisons, then the studies.
  # Reference-mode Sinkhorn fusion alone (issue #4's benchmark) on the GPU against the public
  # code's einsum loop in PyTorch on CUDA, after a same-inputs check of values and gradients.
  t0=$(date +%s)
  if timeout 150 "$PY" "$ROOT/bench/compare_sinkhorn.py" --libramil "$BUILD/libramil" --device cuda \
       --instances 8000,100000 --repeats 5 >"$LOG/compare_sinkhorn_cuda.log" 2>&1; then
    row "sinkhorn fusion on GPU vs torch" "ok" "$(grep -o 'check: [A-Z]*' "$LOG/compare_sinkhorn_cuda.log") ($(( $(date +%s) - t0 )) s)"
    while IFS='|' read -r _ n ts os tr _ _ tm om mr _; do
      row "  sinkhorn N=$(echo $n)" "info" "torch$ts ms / ours$os ms =$tr; device peak MB torch$tm / ours$om =$mr"
    done < <(grep -E '^\| [0-9]+ \|' "$LOG/compare_sinkhorn_cuda.log")
  else
    row "sinkhorn fusion on GPU vs torch" "FAIL" "see $LOG/compare_sinkhorn_cuda.log"
  fi
  # The Libra-MIL training step and inference forward on the GPU against the PyTorch anchor
  # (tools/libramil_reference.py on CUDA), same shapes: bench/compare_torch.py --device cuda.
  t0=$(date +%s)
  if timeout 240 "$PY" "$ROOT/bench/compare_torch.py" --libramil "$BUILD/libramil" --device cuda \
       --instances 8000,100000 --modes paper,reference --repeats 3 >"$LOG/compare_torch_cuda.log" 2>&1; then
    row "train step on GPU vs torch" "ok" "table in $LOG/compare_torch_cuda.log ($(( $(date +%s) - t0 )) s)"
    while IFS='|' read -r _ mode n ts os sr tf of fr _; do  # not a pipe: row must run in this shell
      row "  step $(echo $mode) N=$(echo $n)" "info" "torch$ts ms / ours$os ms = step ratio$sr; fwd ratio$fr"
    done < <(grep -E '^\| (paper|reference) \|' "$LOG/compare_torch_cuda.log")
  else
    row "train step on GPU vs torch" "FAIL" "see $LOG/compare_torch_cuda.log"
  fi
  # The profiler on one Libra-MIL training step on the GPU (per-kernel table; NVTX ranges).
  if timeout 90 "$BUILD/libramil" profile bench train-step --device cuda --instances 8000 --repeats 2 \
       >"$LOG/profile_train_step_cuda.log" 2>&1; then
    row "profile train-step (cuda)" "ok" "per-kernel table in $LOG/profile_train_step_cuda.log"
  else
    row "profile train-step (cuda)" "FAIL" "see $LOG/profile_train_step_cuda.log"
  fi
  # The training step replayed as one CUDA graph (bench train-step --cuda-graph): eager vs graph
  # step time, and the two runs' losses at the same steps (same seed) must agree.
  if timeout 90 "$BUILD/libramil" bench train-step --device cuda --cuda-graph --instances 8000 --repeats 10 \
       >"$LOG/train_step_cuda_graph.log" 2>&1; then
    graph_row=$("$PY" - "$LOG/train_step_cuda_graph.log" <<'PYEOF'
import json, sys
j = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
ok = j["graph_max_abs_loss_diff"] <= 1e-5 and j["graph_steps_compared"] > 0
print(("ok" if ok else "FAIL") + "|eager %.3f ms, graph %.3f ms (%d nodes) = %.2fx; max |loss diff| %.2e over %d steps" % (
    j["median_ms"], j["graph_median_ms"], j["graph_nodes"], j["median_ms"] / max(j["graph_median_ms"], 1e-9),
    j["graph_max_abs_loss_diff"], j["graph_steps_compared"]))
PYEOF
)
    row "train step as a CUDA graph" "${graph_row%%|*}" "${graph_row#*|}"
  else
    row "train step as a CUDA graph" "FAIL" "see $LOG/train_step_cuda_graph.log"
  fi
  # Attention at TransMIL's shape (8 heads of 64 over 8101 tokens = 1 + 90^2 for N = 8000,
  # float32 in, forward + backward) through our fused kernels and cuDNN's fused attention
  # (bfloat16 inside); PyTorch's scaled_dot_product_attention at the same shape below.
  declare -A ATT
  for path in fused cudnn; do
    if timeout 60 "$BUILD/libramil" bench attention --device cuda --path $path --heads 8 --queries 8101 \
         --keys 8101 --head-dim 64 --value-dim 64 --repeats 10 >"$LOG/bench_attention_$path.log" 2>&1; then
      ATT[$path]=$("$PY" -c 'import json, sys; j = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1]); print("%.3f ms (ran %s / %s)" % (j["median_ms"], j["forward_ran"], j["backward_ran"]))' "$LOG/bench_attention_$path.log")
    else
      ATT[$path]="failed, see $LOG/bench_attention_$path.log"
    fi
  done
  for study in softmax layernorm attention gemm reduce; do
    bin="$BUILD/dev_$study"
    if wait "${STUDY_PID[$study]}"; then
      if "$bin" >"$LOG/dev_$study.log" 2>&1; then row "cuda/dev/$study.cu" "ok" "all versions match the CPU reference"
      else row "cuda/dev/$study.cu" "FAIL" "see $LOG/dev_$study.log"; fi
    else
      row "cuda/dev/$study.cu" "FAIL" "nvcc failed, see $LOG/dev_$study.build.log"
    fi
  done
  # Library versions: softmax v3 (block 256), layernorm forward v2 / backward v2.
  OURS[softmax_fwd]=$(sed -n 's/^BENCH softmax_fwd v3 block=256 ms=\([0-9.]*\)/\1/p' "$LOG/dev_softmax.log" 2>/dev/null)
  OURS[layernorm_fwd]=$(sed -n 's/^BENCH layernorm_fwd v2 ms=\([0-9.]*\)/\1/p' "$LOG/dev_layernorm.log" 2>/dev/null)
  OURS[layernorm_bwd]=$(sed -n 's/^BENCH layernorm_bwd v2 ms=\([0-9.]*\)/\1/p' "$LOG/dev_layernorm.log" 2>/dev/null)
  # Fused attention v2 (cuda/attention.cu) at the Libra-MIL shape: 56 queries, 200000 keys, d = dv = 512.
  OURS[attention_fwd]=$(sed -n 's/^BENCH attention_fwd v2 ms=\([0-9.]*\)/\1/p' "$LOG/dev_attention.log" 2>/dev/null)
  OURS[attention_bwd]=$(sed -n 's/^BENCH attention_bwd v2 ms=\([0-9.]*\)/\1/p' "$LOG/dev_attention.log" 2>/dev/null)
  # Column sum of (100000, 512) (a bias gradient at N = 100000): the split kernels (v2, library).
  OURS[reduce_cols]=$(sed -n 's/^BENCH reduce_cols_sum v2 N=100000 C=512 ms=\([0-9.]*\).*/\1/p' "$LOG/dev_reduce.log" 2>/dev/null)
  # Best version of each study (any version / block size).
  # ("softmax_fwd " with its space: not the softmax_fwd_gbs lines; field 3 after '=' is the ms.)
  best_sm=$(grep '^BENCH softmax_fwd ' "$LOG/dev_softmax.log" 2>/dev/null | sort -t= -k3 -g | head -1 |
            sed 's/^BENCH softmax_fwd //')

  if "$PY" - >"$LOG/torch_bench.log" 2>&1 <<'PYEOF'
import torch
assert torch.cuda.is_available(), "torch sees no GPU"
def t(fn, reps=50):
    fn(); torch.cuda.synchronize()
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for _ in range(reps): fn()
    b.record(); torch.cuda.synchronize()
    return a.elapsed_time(b) / reps
torch.manual_seed(0)
x = torch.rand(8192, 4096, device="cuda") * 16 - 8
print("TORCH softmax_fwd ms=%.4f" % t(lambda: torch.softmax(x, -1)))
x = (torch.rand(8192, 768, device="cuda") * 4 - 2).requires_grad_(True)
w = (torch.rand(768, device="cuda") + 0.5).requires_grad_(True)
b = (torch.rand(768, device="cuda") - 0.5).requires_grad_(True)
ln = lambda: torch.nn.functional.layer_norm(x, (768,), w, b, 1e-5)
with torch.no_grad():
    print("TORCH layernorm_fwd ms=%.4f" % t(ln))
y = ln(); g = torch.rand_like(y)
print("TORCH layernorm_bwd ms=%.4f" % t(lambda: torch.autograd.grad(y, (x, w, b), g, retain_graph=True)))
x = torch.rand(100000, 512, device="cuda") * 2 - 1
print("TORCH reduce_cols ms=%.4f" % t(lambda: x.sum(0)))
for (M, N, K) in [(8192, 512, 512), (512, 512, 8192), (2048, 2048, 2048)]:
    A = torch.rand(M, K, device="cuda"); B = torch.rand(K, N, device="cuda")
    torch.backends.cuda.matmul.allow_tf32 = False
    ms = t(lambda: A @ B)
    print("TORCH gemm_%dx%dx%d ms=%.4f (%.1f TFLOP/s fp32, no TF32)" % (M, N, K, ms, 2.0 * M * N * K / ms / 1e9))
# scaled_dot_product_attention, float32, at cuda/dev/attention.cu's timing shape (whatever
# backend torch picks); a failure here only loses these two rows.
try:
    import torch.nn.functional as F
    q = torch.randn(1, 1, 56, 512, device="cuda")
    k = torch.randn(1, 1, 200000, 512, device="cuda")
    v = torch.randn(1, 1, 200000, 512, device="cuda")
    with torch.no_grad():
        print("TORCH attention_fwd ms=%.4f" % t(lambda: F.scaled_dot_product_attention(q, k, v), 20))
    qg, kg, vg = (x.clone().requires_grad_(True) for x in (q, k, v))
    o = F.scaled_dot_product_attention(qg, kg, vg)
    go = torch.randn_like(o)
    print("TORCH attention_bwd ms=%.4f" % t(lambda: torch.autograd.grad(o, (qg, kg, vg), go, retain_graph=True), 20))
except Exception as e:
    print("torch attention timing failed: %s" % e)
# The same at TransMIL's shape (bench attention's rows): forward + backward, float32 and bfloat16.
try:
    for name, dt in (("f32", torch.float32), ("bf16", torch.bfloat16)):
        q, k, v, go = (torch.randn(1, 8, 8101, 64, device="cuda", dtype=dt) for _ in range(4))
        q.requires_grad_(True); k.requires_grad_(True); v.requires_grad_(True)
        def step():
            o = F.scaled_dot_product_attention(q, k, v)
            torch.autograd.grad(o, (q, k, v), go)
        print("TORCH sdpa_transmil_%s ms=%.4f" % (name, t(step, 10)))
except Exception as e:
    print("torch TransMIL attention timing failed: %s" % e)
PYEOF
  then
    for k in softmax_fwd layernorm_fwd layernorm_bwd attention_fwd attention_bwd reduce_cols; do
      TORCH[$k]=$(sed -n "s/^TORCH $k ms=\([0-9.]*\).*/\1/p" "$LOG/torch_bench.log")
    done
    row "torch GPU timings" "ok" "$(grep -c '^TORCH' "$LOG/torch_bench.log") shapes"
  else
    row "torch GPU timings" "FAIL" "see $LOG/torch_bench.log ($PY)"
  fi
  for k in softmax_fwd layernorm_fwd layernorm_bwd attention_fwd attention_bwd reduce_cols; do
    o=${OURS[$k]:-}; p=${TORCH[$k]:-}
    if [ -n "$o" ] && [ -n "$p" ]; then
      row "bench $k (ours/torch)" "info" "$o ms vs $p ms = $(awk -v a="$o" -v b="$p" 'BEGIN{printf "%.2fx", a/b}') torch time"
    else
      row "bench $k" "skip" "no timing (ours '${o}', torch '${p}')"
    fi
  done
  row "attention 1x8x8101x64 fwd+bwd" "info" "fused ${ATT[fused]:-?}; cudnn ${ATT[cudnn]:-?}; torch f32 $(sed -n 's/^TORCH sdpa_transmil_f32 ms=//p' "$LOG/torch_bench.log" 2>/dev/null) ms, torch bf16 $(sed -n 's/^TORCH sdpa_transmil_bf16 ms=//p' "$LOG/torch_bench.log" 2>/dev/null) ms"
  # Memory-bound kernels as a share of the measured copy bandwidth (issue 3 aims above 80%):
  # the library versions' GB/s over a device-to-device cudaMemcpy of the same size.
  for spec in "softmax_fwd:v3 block=256:softmax" "layernorm_fwd:v2:layernorm" "layernorm_bwd:v2:layernorm"; do
    k=${spec%%:*}; rest=${spec#*:}; ver=${rest%%:*}; study=${rest#*:}
    copy=$(sed -n 's/^BENCH copy_bandwidth gbs=\([0-9.]*\).*/\1/p' "$LOG/dev_$study.log" 2>/dev/null | head -1)
    gbs=$(sed -n "s/^BENCH ${k}_gbs $ver gbs=\([0-9.]*\).*/\1/p" "$LOG/dev_$study.log" 2>/dev/null | head -1)
    if [ -n "$copy" ] && [ -n "$gbs" ]; then
      row "$k GB/s / copy bandwidth" "info" "$gbs / $copy GB/s = $(awk -v a="$gbs" -v b="$copy" 'BEGIN{printf "%.0f%%", 100*a/b}') ($ver; aim > 80%)"
    else
      row "$k GB/s / copy bandwidth" "skip" "no figures in $LOG/dev_$study.log"
    fi
  done
  for r in 1 24; do  # few long rows (softmax over N instances): one block per row -> split
    a=$(sed -n "s/^BENCH softmax_long rows rows=$r n=100000 ms=\([0-9.]*\).*/\1/p" "$LOG/dev_softmax.log" 2>/dev/null)
    b=$(sed -n "s/^BENCH softmax_long split rows=$r n=100000 ms=\([0-9.]*\).*/\1/p" "$LOG/dev_softmax.log" 2>/dev/null)
    [ -n "$a" ] && [ -n "$b" ] && row "softmax ${r}x100000 rows -> split" "info" "one block per row $a ms, split $b ms"
  done
  v1=$(sed -n 's/^BENCH reduce_cols_sum v1 N=100000 C=512 ms=\([0-9.]*\).*/\1/p' "$LOG/dev_reduce.log" 2>/dev/null)
  [ -n "$v1" ] && [ -n "${OURS[reduce_cols]:-}" ] &&
    row "column sum 100000x512 v1 -> v2" "info" "one thread per column $v1 ms, split ${OURS[reduce_cols]} ms (see $LOG/dev_reduce.log)"
  [ -n "${best_sm:-}" ] && row "bench softmax_fwd best version" "info" "$best_sm (see $LOG/dev_softmax.log)"
  # GEMM speed as a fraction of cuBLAS fp32 (cuda/dev/gemm.cu v5): cuBLAS ms / ours ms, 1 = as fast.
  for shape in 8192x512x512 4096x4096x4096; do
    cub=$(sed -n "s/^BENCH gemm v5 $shape ms=\([0-9.]*\).*/\1/p" "$LOG/dev_gemm.log" 2>/dev/null)
    for vn in 2:tiled 3:tf32; do
      ours=$(sed -n "s/^BENCH gemm v${vn%%:*} $shape ms=\([0-9.]*\).*/\1/p" "$LOG/dev_gemm.log" 2>/dev/null)
      if [ -n "$ours" ] && [ -n "$cub" ]; then
        row "gemm ${vn#*:} / cuBLAS $shape" "info" "$(awk -v a="$cub" -v b="$ours" 'BEGIN{printf "%.2f", a/b}') of cuBLAS fp32 speed ($ours ms vs $cub ms)"
      else
        row "gemm ${vn#*:} / cuBLAS $shape" "skip" "no timing (ours '${ours}', cuBLAS '${cub}')"
      fi
    done
  done
  grep '^TORCH gemm' "$LOG/torch_bench.log" 2>/dev/null | while read -r l; do echo "  $l"; done
  # Project benchmarks with a GPU mode (bench/*gpu*) are run when they exist.
  for b in "$ROOT"/bench/compare_*gpu*.py; do
    [ -e "$b" ] || continue
    name=$(basename "$b" .py)
    if "$PY" "$b" --build "$BUILD" >"$LOG/$name.log" 2>&1; then row "bench $name" "ok" "$(tail -1 "$LOG/$name.log")"
    else row "bench $name" "FAIL" "see $LOG/$name.log"; fi
  done
else
  row "benchmarks" "skip" "GPU_CHECK_SKIP_BENCH=1"
fi

print_summary
for r in "${SUMMARY[@]}"; do
  case "$r" in *"|FAIL|"*) exit 1 ;; esac
done
exit 0
