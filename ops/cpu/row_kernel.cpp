// The choice of row-kernel version (row_kernel.h).
#include "ops/cpu/row_kernel.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>

#include "ops/cpu/isa.h"

namespace lm::cpu {

namespace {

bool permitted(RowKernel kernel) {
  switch (kernel) {
    case RowKernel::Avx512: return isa_allows(CpuIsa::Avx512);
    case RowKernel::Avx2: return isa_allows(CpuIsa::Avx2);
    case RowKernel::Portable: break;
  }
  return true;
}

bool parse(const std::string& name, RowKernel* kernel) {
  if (name == "portable") *kernel = RowKernel::Portable;
  else if (name == "avx2") *kernel = RowKernel::Avx2;
  else if (name == "avx512") *kernel = RowKernel::Avx512;
  else return false;
  return true;
}

// The best permitted version, or LIBRAMIL_ROW_KERNEL when it names a permitted one.
RowKernel default_kernel() {
  static const RowKernel kernel = [] {
    const RowKernel best = permitted(RowKernel::Avx512) ? RowKernel::Avx512
                           : permitted(RowKernel::Avx2) ? RowKernel::Avx2
                                                        : RowKernel::Portable;
    const char* env = std::getenv("LIBRAMIL_ROW_KERNEL");
    if (env == nullptr || *env == '\0') return best;
    RowKernel want = best;
    if (parse(env, &want) && permitted(want)) return want;
    std::fprintf(stderr, "libramil: LIBRAMIL_ROW_KERNEL=%s unknown or not permitted here, using %s\n", env,
                 row_kernel_name(best));
    return best;
  }();
  return kernel;
}

std::atomic<int> forced{-1};  // set_row_kernel; -1: default_kernel()

}  // namespace

RowKernel row_kernel() {
  const int f = forced.load(std::memory_order_relaxed);
  return f < 0 ? default_kernel() : static_cast<RowKernel>(f);
}

const char* row_kernel_name(RowKernel kernel) {
  switch (kernel) {
    case RowKernel::Avx512: return "avx512";
    case RowKernel::Avx2: return "avx2";
    case RowKernel::Portable: break;
  }
  return "portable";
}

bool set_row_kernel(const std::string& name) {
  if (name == "auto") {
    forced = -1;
    return true;
  }
  RowKernel kernel;
  if (!parse(name, &kernel) || !permitted(kernel)) return false;
  forced = static_cast<int>(kernel);
  return true;
}

}  // namespace lm::cpu
