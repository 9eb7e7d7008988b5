// Which x86 instruction-set level the CPU kernels may use: the most the processor supports,
// lowered by LIBRAMIL_CPU_ISA=avx512|avx2|scalar so that the AVX2 and scalar paths can be run,
// tested and timed on an AVX-512 host (CI runs the op table under each). Every run-time kernel
// choice in ops/cpu asks isa_allows() before its hardware check: the GEMM micro-kernels and
// skinny forms, the AVX-512 and AVX2 row kernels (row_kernel.h: softmax, LayerNorm + GELU,
// normalisation, bilinear rows), the Sinkhorn lanes and the Adam update. Finer per-family switches (LIBRAMIL_GEMM_KERNEL, LIBRAMIL_ROW_KERNEL,
// LIBRAMIL_SINKHORN_KERNEL) still apply below this ceiling.
//
// Off x86 (aarch64: tools/arm_check.sh) the intrinsic kernels are not compiled (LM_X86 guards
// them), hardware_isa() is Scalar, and every kernel is the portable C++ one, which the compiler
// vectorises for the target (NEON on aarch64).
#pragma once
#include <atomic>
#include <string>

// 1 when compiling for x86 (the AVX2 / AVX-512 kernels and their target attributes exist).
#if defined(__x86_64__) || defined(__i386__)
#define LM_X86 1
#else
#define LM_X86 0
#endif

namespace lm::cpu {

enum class CpuIsa { Scalar = 0, Avx2 = 1, Avx512 = 2 };

// What the processor supports (AVX2 means AVX2 + FMA; AVX-512 means F, BW, DQ, VL + FMA).
CpuIsa hardware_isa();
// The level in use: hardware_isa(), or LIBRAMIL_CPU_ISA when set. Decided once per process.
// Throws std::invalid_argument for an unknown value or one above what the processor supports
// (apps/main.cpp asks at start-up, so the error is one line before any work).
CpuIsa cpu_isa();
bool isa_allows(CpuIsa level);
const char* isa_name(CpuIsa isa);  // "avx512" | "avx2" | "scalar"
// The architecture this build targets: "x86-64", "aarch64", or "other" (`--version` names it
// off x86, where "scalar" means the portable kernels vectorised for that architecture).
const char* target_arch();

// One kernel family's choice among its versions (portable C++, AVX2, AVX-512, in CpuIsa's
// order): the best that isa_allows() permits, unless the environment variable `env` names a
// permitted one ("portable" | "avx2" | "avx512"), unless set() chose one (tests, benchmarks;
// "auto" restores). The row kernels (row_kernel.h) and the Sinkhorn lanes (sinkhorn.h) each
// keep one.
class KernelChoice {
 public:
  explicit KernelChoice(const char* env) : env_(env) {}
  CpuIsa get();
  // False, changing nothing, for an unknown name or a version isa_allows() does not permit.
  bool set(const std::string& name);
  static const char* name(CpuIsa version);  // "portable" | "avx2" | "avx512"

 private:
  CpuIsa default_version();
  const char* env_;
  std::atomic<int> default_{-1}, forced_{-1};
};

}  // namespace lm::cpu
