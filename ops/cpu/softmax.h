// CPU kernels for softmax and log_softmax over the middle axis of a packed (outer, n, inner)
// view: inner == 1 is the common "rows of the last dim" case; inner > 1 (softmax over an
// earlier dim) is handled in place, reading `inner` lanes at once, with no transposing copy.
// Math and backward derivation: docs/ops/softmax.md.
#pragma once
#include "tensor/tensor.h"

namespace lm::cpu {

// x: (outer, n, inner) packed float32/float64; out: same shape, packed.
// out = softmax(x) (log = false) or log_softmax(x) (log = true) along n.
// Stable: the maximum along n is subtracted first; sums accumulate in float64.
void softmax_forward(const Tensor& x, int64_t outer, int64_t n, int64_t inner, bool log, Tensor& out);

// Softmax of one contiguous row of n values, x -> y (y may be x), by the row kernel in use
// (row_kernel.h): softmax_forward's rows, for a caller that runs its own parallel loop.
void softmax_one_row(const float* x, int64_t n, float* y);
void softmax_one_row(const double* x, int64_t n, double* y);

// y: (outer, n, inner) the saved forward output (softmax, or log_softmax when log = true);
// grad_y: same shape, packed; grad_x: same shape, packed (written).
//   softmax:     grad_x = y * (grad_y - sum_n(grad_y * y))
//   log_softmax: grad_x = grad_y - exp(y) * sum_n(grad_y)
void softmax_backward(const Tensor& y, const Tensor& grad_y, int64_t outer, int64_t n, int64_t inner, bool log,
                      Tensor& grad_x);

}  // namespace lm::cpu
