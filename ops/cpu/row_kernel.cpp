// The choice of row-kernel version (row_kernel.h), through isa.h's KernelChoice.
#include "ops/cpu/row_kernel.h"

#include "ops/cpu/isa.h"

namespace lm::cpu {

namespace {

// RowKernel's versions are CpuIsa's, in the same order.
static_assert(static_cast<int>(RowKernel::Portable) == static_cast<int>(CpuIsa::Scalar) &&
              static_cast<int>(RowKernel::Avx2) == static_cast<int>(CpuIsa::Avx2) &&
              static_cast<int>(RowKernel::Avx512) == static_cast<int>(CpuIsa::Avx512));

KernelChoice& choice() {
  static KernelChoice c("LIBRAMIL_ROW_KERNEL");
  return c;
}

}  // namespace

RowKernel row_kernel() { return static_cast<RowKernel>(choice().get()); }

const char* row_kernel_name(RowKernel kernel) { return KernelChoice::name(static_cast<CpuIsa>(kernel)); }

bool set_row_kernel(const std::string& name) { return choice().set(name); }

}  // namespace lm::cpu
