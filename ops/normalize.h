// Vector normalisation and cosine similarity.
//   l2_normalize(x, dim): x / max(||x||_2, eps)   (torch.nn.functional.normalize, p=2)
//   l1_normalize(x, dim): x / max(||x||_1, eps)   (p=1)
//   cosine_similarity_matrix(a (N, D), b (M, D)) -> (N, M): entry (i, j) = cos(a_i, b_j),
//   computed as l2_normalize(a) @ l2_normalize(b)^T.
#pragma once
#include "tensor/tensor.h"

namespace lm {

Tensor l2_normalize(const Tensor& x, int64_t dim = -1, double eps = 1e-12);
Tensor l1_normalize(const Tensor& x, int64_t dim = -1, double eps = 1e-12);
Tensor cosine_similarity_matrix(const Tensor& a, const Tensor& b, double eps = 1e-12);

}  // namespace lm
