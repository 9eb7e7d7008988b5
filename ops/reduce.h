// Reductions over a set of dimensions (negative dims count from the end), with keepdim.
#pragma once
#include <vector>

#include "tensor/tensor.h"

namespace lm {

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);
Tensor sum(const Tensor& x);  // all elements -> scalar
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);
Tensor mean(const Tensor& x);
// Maximum over dims; the gradient is shared equally among tied maxima (as torch.amax).
Tensor amax(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);
// Maximum over one dim (values); same gradient rule as amax.
Tensor max(const Tensor& x, int64_t dim, bool keepdim = false);
// Index of the first maximum along dim (int64, no gradient).
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);
// log(sum(exp(x))) over dims, computed stably.
Tensor logsumexp(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);

}  // namespace lm
