// Which x86 instruction-set level the CPU kernels may use: the most the processor supports,
// lowered by LIBRAMIL_CPU_ISA=avx512|avx2|scalar so that the AVX2 and scalar paths can be run,
// tested and timed on an AVX-512 host (CI runs the op table under each). Every run-time kernel
// choice in ops/cpu asks isa_allows() before its hardware check: the GEMM micro-kernels, the
// AVX-512 and AVX2 row kernels (row_kernel.h: softmax, LayerNorm + GELU, normalisation, bilinear
// rows) and the Sinkhorn lanes. Finer per-family switches (LIBRAMIL_GEMM_KERNEL, LIBRAMIL_ROW_KERNEL,
// LIBRAMIL_SINKHORN_KERNEL) still apply below this ceiling.
#pragma once
#include <string>

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

}  // namespace lm::cpu
