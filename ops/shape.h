// Differentiable views and layout ops: reshape, permute, transpose, expand, slice, select,
// (un)squeeze, flatten, contiguous; and the copying ops cat, stack, index_select.
// Views share storage with their input; their gradients map back onto the input's shape.
#pragma once
#include <vector>

#include "tensor/tensor.h"

namespace lm {

Tensor reshape(const Tensor& x, const Shape& shape);  // one dimension may be -1
Tensor permute(const Tensor& x, const std::vector<int64_t>& dims);
Tensor transpose(const Tensor& x, int64_t d0, int64_t d1);
Tensor t(const Tensor& x);  // transpose of a 2-d tensor
Tensor expand(const Tensor& x, const Shape& shape);  // -1 keeps a dimension
Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step = 1);
Tensor select(const Tensor& x, int64_t dim, int64_t index);
Tensor unsqueeze(const Tensor& x, int64_t dim);
Tensor squeeze(const Tensor& x, int64_t dim);
Tensor flatten(const Tensor& x, int64_t start_dim = 0, int64_t end_dim = -1);
Tensor contiguous(const Tensor& x);
Tensor cat(const std::vector<Tensor>& xs, int64_t dim);
Tensor stack(const std::vector<Tensor>& xs, int64_t dim);
// Rows (along dim) of x picked by the int64 vector `index`.
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);

}  // namespace lm
