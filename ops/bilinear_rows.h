// bilinear_rows(a, M, b): out[i] = a[i, :] M b[i, :]^T for a (N, P), M (P, Q), b (N, Q) -- the
// fused instance score of Libra-MIL's paper mode, s_i = Sv_i T St_i^T (SPEC step 6). The same
// function as sum(mul(matmul(a, M), b), {1}) as one autograd node: U = a M by one GEMM, then
// row dots; row-strided inputs (slices of a wider matrix) are read in place. CPU kernels here;
// CUDA tensors take the composed form.
//
// Backward, for the upstream gradient g (N) (computed with U = a M, see bilinear_rows.cpp):
//   ga[i, p] = g[i] (M b_i^T)[p]        gb[i, q] = g[i] (a_i M)[q]
//   gM[p, q] = sum_i g[i] a[i, p] b[i, q]
#pragma once
#include "tensor/tensor.h"

namespace lm {

Tensor bilinear_rows(const Tensor& a, const Tensor& M, const Tensor& b);

}  // namespace lm
