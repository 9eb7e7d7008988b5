// Which version of the float32 row kernels runs: AVX-512, AVX2 + FMA, or portable C++. The row
// kernels are the fused LayerNorm + GELU rows (layer_norm_gelu.cpp), softmax rows (softmax.cpp),
// the l2 norms' sums of squares (normalize.cpp) and bilinear_rows' row dots
// (ops/bilinear_rows.cpp). The AVX-512 and AVX2 versions give the same bits (avx2_math.h says
// how); the portable one differs from them in summation order and FMA contraction, and softmax's
// portable rows use libm's exp.
#pragma once
#include <string>

namespace lm::cpu {

enum class RowKernel { Portable, Avx2, Avx512 };

// The version in use: the best one isa_allows() (isa.h) permits, or LIBRAMIL_ROW_KERNEL=
// portable|avx2|avx512 when set and permitted, or the one set by set_row_kernel.
RowKernel row_kernel();
const char* row_kernel_name(RowKernel kernel);  // "portable" | "avx2" | "avx512"

// Runs the named version ("portable", "avx2", "avx512"; "auto": back to the default) from now
// on. Returns false, changing nothing, for an unknown name or a version isa_allows() does not
// permit. For tests, which compare the versions in one process; call it between kernel calls.
bool set_row_kernel(const std::string& name);

}  // namespace lm::cpu
