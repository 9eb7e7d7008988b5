// Device-side layout copies of the CUDA backend (cuda/copy.cu). No CUDA headers.
#pragma once
#include "tensor/tensor.h"

namespace lm::cuda {

// dst[idx] = src[idx] for every logical index; src, dst: same shape and dtype, on the same
// CUDA device, any strides (e.g. a transposed view into a packed tensor). Asynchronous on the
// current stream.
void copy_strided(const Tensor& src, Tensor& dst);

// x itself when packed, else a packed copy made on the device (no host round trip).
Tensor contiguous(const Tensor& x);

}  // namespace lm::cuda
