#!/usr/bin/env bash
# The aarch64 job (opt-in: LIBRAMIL_CI_ARM=1 bash .ci/run, or this script alone; see
# docs/reliability.md, "The aarch64 job"): cross-compiles the core (tensor, autograd, ops and the
# portable CPU kernels; LIBRAMIL_CORE_ONLY=ON) with Debian's g++-aarch64-linux-gnu into
# build-arm/ and runs its test suites under qemu-user. Off x86 the AVX2 / AVX-512 kernels are
# not compiled (LM_X86, ops/cpu/isa.h): these suites test the portable kernels as GCC vectorises
# them for ARM (NEON). Exits non-zero on any failure.
#
# Suites: LM_CORE_SUITES in tests/suites.cmake, i.e. the op table (every op's forward, gradcheck
# and PyTorch comparison), the GEMM, convolution, resize, nn-op and Sinkhorn kernel suites, and
# the CUDA block cache's host-side bookkeeping; SUITES="test_x test_y" picks others among the
# tests/test_*.cpp that need only lm_ops. The PyTorch / POT references run on the host (.venv
# from tools/setup.sh, as for the native tests).
#
# Needs: the cross compiler and qemu-user (installed with apt-get when missing), plus what
# tools/setup.sh installs (cmake, doctest, nlohmann_json, the Python references).
# JOBS (default: nproc) sets the build's parallelism.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS="${JOBS:-$(nproc)}"
SUITES="${SUITES:-}"  # empty: the core default
SYSROOT=/usr/aarch64-linux-gnu
start_all=$SECONDS

if ! command -v aarch64-linux-gnu-g++ >/dev/null || ! command -v qemu-aarch64 >/dev/null; then
  echo "arm_check: installing g++-aarch64-linux-gnu and qemu-user"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq g++-aarch64-linux-gnu qemu-user
fi
for tool in aarch64-linux-gnu-g++ qemu-aarch64; do
  command -v "$tool" >/dev/null || { echo "arm_check: $tool not found (apt-get install g++-aarch64-linux-gnu qemu-user)" >&2; exit 1; }
done
[ -e "$SYSROOT/lib/ld-linux-aarch64.so.1" ] ||
  { echo "arm_check: no aarch64 loader in $SYSROOT/lib (package libc6-arm64-cross)" >&2; exit 1; }
echo "arm_check: $(aarch64-linux-gnu-g++ --version | head -1); $(qemu-aarch64 --version | head -1)"

echo "== configure + build (build-arm/, core only, $JOBS jobs)"
build_start=$SECONDS
mkdir -p build-arm
cmake -S . -B build-arm -DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/aarch64-linux-gnu.cmake" -DCMAKE_BUILD_TYPE=Release \
  -DLIBRAMIL_CORE_ONLY=ON -DLIBRAMIL_CUDA=OFF -DLIBRAMIL_TEST_SUITES="${SUITES// /;}" >build-arm/configure.log 2>&1 ||
  { cat build-arm/configure.log >&2; echo "arm_check: configure failed (log above)" >&2; exit 1; }
# The suites registered (the core default, or SUITES), in ctest's order.
SUITES=$(ctest --test-dir build-arm -N | awk '$1 == "Test" && $2 ~ /^#/ { print $3 }' | tr '\n' ' ')
[ -n "$SUITES" ] || { echo "arm_check: no test suites registered in build-arm/" >&2; exit 1; }
cmake --build build-arm -j "$JOBS" --target libramil_tests
aarch64-linux-gnu-readelf -h build-arm/libramil_tests | grep -q 'AArch64' ||
  { echo "arm_check: build-arm/libramil_tests is not an aarch64 binary" >&2; exit 1; }
echo "   build $((SECONDS - build_start)) s"

status=0
summary=()
for s in $SUITES; do
  echo "== qemu-aarch64: $s"
  start=$SECONDS
  rc=0
  qemu-aarch64 -L "$SYSROOT" build-arm/libramil_tests --source-file="*$s.cpp" --no-intro >"build-arm/$s.log" 2>&1 || rc=$?
  counts=$(grep '^\[doctest\] test cases:' "build-arm/$s.log" | tr -s ' ' || true)
  # doctest's skip code (77) is not a failure.
  if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
    status=1
    tail -40 "build-arm/$s.log"
    echo "arm_check: $s failed (exit $rc; log build-arm/$s.log)" >&2
  fi
  summary+=("$(printf '%-22s rc %-3d %5d s  %s' "$s" "$rc" $((SECONDS - start)) "${counts#\[doctest\] }")")
done
echo "== aarch64 summary"
printf '%s\n' "${summary[@]}"
echo "total $((SECONDS - start_all)) s; $([ $status -eq 0 ] && echo 'all passed' || echo 'FAILURES')"
exit $status
