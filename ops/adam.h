// The Adam / AdamW parameter update as a dispatched op: each parameter is updated where it
// lives, CPU parameters by ops/cpu/adam.h (all of them in one parallel loop), CUDA parameters
// by cuda/kernels.h's adam_update (one kernel per parameter, on the device: nothing is copied
// to the host). In place; records no gradient. The optimizer (models/nn/optim.h) computes each
// parameter's AdamStep and keeps the state.
#pragma once
#include <vector>

#include "tensor/kernel_args.h"

namespace lm {

// Every AdamParam's p, g, m, v packed, of one dtype (float32 / float64) and on one device;
// parameters may sit on different devices.
void adam_update(const std::vector<AdamParam>& params);

}  // namespace lm
