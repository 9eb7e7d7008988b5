// weighted_attention_pool(keys, w, V, scale): R queries attend over N instances whose weights w
// scale both the scores and the values -- Libra-MIL's step 8 once the key projection is folded
// into the queries (models/mil/libramil.cpp, class_query_attention):
//
//   S[r, n] = scale * w[n] * keys[n, r]        (R, N)  scores; keys (N, R) = V Qk^T
//   A       = softmax(S) along n               (R, N)  attention
//   out     = (A * w^T) V                      (R, D)  pooled values
//
// The same function as matmul(mul(softmax(mul(t(keys), w^T * scale), -1), w^T), V) as one
// autograd node: the scores are written straight from keys' rows (keys may be a strided view,
// columns of a wider product, read in place), and the backward is two GEMMs plus two passes over
// (R, N) instead of a dozen elementwise ops and transposing copies. CPU kernels here; CUDA
// tensors take the composed form.
//
// Backward, for the upstream gradient G (R, D), with B = A * w^T (derivation in
// attention_pool.cpp):
//   gV          = B^T G                                                  (N, D)
//   gB          = G V^T                                                  (R, N)
//   gS[r, n]    = A[r, n] (w[n] gB[r, n] - d_r),  d_r = sum_n A[r, n] w[n] gB[r, n]
//   gkeys[n, r] = scale * w[n] * gS[r, n]
//   gw[n]       = sum_r (A[r, n] gB[r, n] + scale * keys[n, r] gS[r, n])
#pragma once
#include "tensor/tensor.h"

namespace lm {

// keys (N, R), w (N), V (N, D) -> (R, D). With `attention`, *attention receives A (R, N),
// detached (for explanations).
Tensor weighted_attention_pool(const Tensor& keys, const Tensor& w, const Tensor& V, double scale,
                               Tensor* attention = nullptr);

}  // namespace lm
