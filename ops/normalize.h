// Vector normalisation and cosine similarity.
//   l2_normalize(x, dim): x / max(||x||_2, eps)   (torch.nn.functional.normalize, p=2)
//   l1_normalize(x, dim): x / max(||x||_1, eps)   (p=1)
//   l2_norm_clamped(x): max(||x_i||_2, eps) over the last dim, the denominator of
//   l2_normalize, so that l2_normalize(x) @ P^T == (x @ P^T) / l2_norm_clamped(x)[:, None]
//   without materialising the normalised x (Libra-MIL's instance similarities).
//   cosine_similarity_matrix(a (N, D), b (M, D)) -> (N, M): entry (i, j) = cos(a_i, b_j),
//   computed as l2_normalize(a) @ l2_normalize(b)^T, i.e. a_i.b_j / (max(|a_i|, eps) max(|b_j|, eps)).
//   (torch.nn.functional.cosine_similarity clamps differently, a.b / max(|a| |b|, eps); the
//   two agree unless a row's norm is below eps. A zero row gives cosine 0 here.)
#pragma once
#include "tensor/tensor.h"

namespace lm {

Tensor l2_normalize(const Tensor& x, int64_t dim = -1, double eps = 1e-12);
Tensor l1_normalize(const Tensor& x, int64_t dim = -1, double eps = 1e-12);
Tensor l2_norm_clamped(const Tensor& x, double eps = 1e-12);
Tensor cosine_similarity_matrix(const Tensor& a, const Tensor& b, double eps = 1e-12);

}  // namespace lm
