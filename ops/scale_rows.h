// scale_rows(x, w): out[i, :] = w[i] * x[i, :] for x (N, D), w (N) -- the instance
// reweighting of Libra-MIL (Xf = w * V). The same function as mul(unsqueeze(w, 1), x), with a
// backward that forms no (N, D) temporary for w's gradient: gw[i] = <g[i, :], x[i, :]>.
// CPU kernels here; CUDA tensors take the composed form.
#pragma once
#include "tensor/tensor.h"

namespace lm {

Tensor scale_rows(const Tensor& x, const Tensor& w);

}  // namespace lm
