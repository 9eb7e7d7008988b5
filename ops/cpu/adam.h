// CPU kernel of the Adam / AdamW update (ops/adam.h): every parameter of one call updated in
// one parallel loop. The update rule (torch.optim's _single_tensor_adam / _adamw of torch 1.13,
// float64 arithmetic with the parameter dtype's rounding at the same points) is listed in
// models/nn/optim.h.
#pragma once
#include <vector>

#include "tensor/kernel_args.h"

namespace lm::cpu {

// params: CPU tensors, each p, g, m, v packed and of one dtype; updated in place.
void adam_update(const std::vector<AdamParam>& params);

}  // namespace lm::cpu
