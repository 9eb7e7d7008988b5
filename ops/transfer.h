// Moving a bag to where the model runs: a packed copy of a CPU tensor on a device, for CUDA
// staged through pinned host buffers (cuda/copy.h, upload_pinned) so that preparing the next
// bag overlaps the transfer and the device's work. The trainer uploads every bag through it.
#pragma once
#include "tensor/tensor.h"

namespace lm {

// `host` (a CPU tensor) on `device`: itself for the CPU, a packed device copy for CUDA (the
// call returns once `host` is in pinned memory; kernels queued later on the device's current
// stream see the data).
Tensor upload_to(const Tensor& host, Device device);

}  // namespace lm
