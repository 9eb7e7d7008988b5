#!/usr/bin/env bash
# CI step (run by .ci/run after the main tests): builds libramil and its tests with
# AddressSanitizer + UndefinedBehaviorSanitizer (CMake preset "sanitize": RelWithDebInfo with
# -O1 -g1, build-asan/) and runs the CPU test suites that are quick under ASan, with leak
# detection on. Exits non-zero on any failure or report.
#
# Suites run (SUITES overrides; names of tests/test_*.cpp):
#   test_safetensors test_tokenizer test_data test_validation   readers, validation, the CLI
#   test_op_table test_autograd test_gemm test_gemm_skinny test_sinkhorn_kernels test_attention_pool
#                           kernels and the autograd engine on small shapes (and one fused op on large bags)
#   test_cuda_emulated*   the CUDA kernels on the CPU emulator (shared-memory overruns)
#   test_tissue test_patch  tissue segmentation; `libramil patch` (instrumented) on the real and
#                           the hostile slides (truncated, lying and corrupt images)
#   test_conv test_resize   the convolution, pooling and resize kernels (im2col / col2im indexing)
#   test_extract            `extract`'s reader threads and batch queue, tiles, bad inputs, and the
#                           real EfficientNet-Lite0 on one slide
#   test_config_file        `train --config` parsing through the instrumented binary
# Excluded for run time under ASan (2-10x slower, and they train or compare against PyTorch at
# length): test_protocol, test_resume, test_libramil, test_baselines, test_nn_ops, test_nn_optim,
# test_text_encoders, test_mil_benchmark, test_simulate, test_report. They run un-instrumented in
# the main CI job.
# Cost cuts (the instrumented build dominates the step: with -O2 -g it took ~31 min with every
# suite compiled, ~18 min with only the suites run, on a loaded 2-core machine): not built are the CUDA backend (LIBRAMIL_CUDA=OFF: no
# GPU code is instrumented or tested), the benchmarks (only the targets libramil and
# libramil_tests) and the excluded suites' sources (LIBRAMIL_TEST_SUITES = SUITES:
# libramil_tests holds only the suites run here); -O1 (ASan's recommended level) instead of
# -O2 and -g1 (line tables: reports keep file:line, no variable info) instead of -g cut the
# compile time by ~45%, at the price of slower kernel suites.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS="${JOBS:-$(nproc)}"
SUITES="${SUITES:-test_safetensors test_tokenizer test_data test_validation test_op_table test_autograd test_gemm test_gemm_skinny test_sinkhorn_kernels test_attention_pool test_cuda_emulated test_cuda_emulated_rows test_cuda_emulated_gemm_image test_block_cache test_tissue test_patch test_conv test_resize test_extract test_config_file}"
cmake --preset sanitize -DLIBRAMIL_TEST_SUITES="${SUITES// /;}" >/dev/null
cmake --build --preset sanitize -j "$JOBS"
# The test binary starts `libramil` subprocesses (test_validation, ...): they inherit these.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
status=0
for s in $SUITES; do
  if [ ! -f "tests/$s.cpp" ]; then echo "ci_sanitize: no suite $s" >&2; status=1; continue; fi
  echo "== asan+ubsan: $s"
  start=$(date +%s)
  rc=0
  ./build-asan/libramil_tests --source-file="*$s.cpp" --no-intro > "build-asan/$s.log" 2>&1 || rc=$?
  # doctest's skip code (77) is not a failure.
  if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then status=1; tail -40 "build-asan/$s.log"; fi
  # Reports from libramil subprocesses go to their own stderr, which the tests capture: look
  # for them in the test scratch logs too.
  if grep -rlq 'ERROR: AddressSanitizer\|ERROR: LeakSanitizer\|runtime error:' "build-asan/$s.log" build-asan/test_scratch 2>/dev/null; then
    echo "ci_sanitize: sanitizer report in $s:" >&2
    grep -rl 'ERROR: AddressSanitizer\|ERROR: LeakSanitizer\|runtime error:' "build-asan/$s.log" build-asan/test_scratch 2>/dev/null | head >&2
    status=1
  fi
  echo "   rc $rc, $(( $(date +%s) - start )) s"
done
exit $status
