// Adam / AdamW parameter update on the GPU: one elementwise kernel per parameter, the CPU
// kernel's arithmetic (ops/cpu/adam.cpp, adam_range) line for line. Reached through the
// adam_update op (ops/adam.h; declared in cuda/kernels.h). Per element:
//   p <- p * decay                                 (AdamW; rounded to T)
//   g <- g + wd * p                                (Adam with L2 weight decay; rounded to T)
//   m <- b1 m + (1 - b1) g,  v <- b2 v + (1 - b2) g^2      (each rounded to T)
//   p <- p - step_size * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// in float64, T = the parameter dtype. nvcc may contract a*b+c into an FMA where the CPU
// compiler does not (or the reverse), so the two devices agree to a few ulps, not bit for bit.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "cuda/common.cuh"
#include "cuda/kernels.h"
#include "cuda/optim_kernels.cuh"

namespace lm::cuda {

namespace {

using namespace optim_kernels;

// One parameter (shapes, dtypes and devices checked by the op).
void update_one(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v, const AdamStep& c) {
  KernelScope scope(p);
  const int64_t n = p.numel();
  if (n == 0) return;
  const int mode = c.decoupled ? 1 : (c.weight_decay != 0.0 ? 2 : 0);
  if (p.dtype() == DType::F32)
    adam_kernel<float><<<grid_for(n), kThreads, 0, scope.stream>>>(
        n, static_cast<float*>(p.raw_data()), static_cast<const float*>(g.raw_data()), static_cast<float*>(m.raw_data()),
        static_cast<float*>(v.raw_data()), c.step_size, c.bc2_sqrt, c.beta1, c.beta2, c.eps, c.weight_decay, c.decay,
        mode);
  else
    adam_kernel<double><<<grid_for(n), kThreads, 0, scope.stream>>>(
        n, static_cast<double*>(p.raw_data()), static_cast<const double*>(g.raw_data()),
        static_cast<double*>(m.raw_data()), static_cast<double*>(v.raw_data()), c.step_size, c.bc2_sqrt, c.beta1,
        c.beta2, c.eps, c.weight_decay, c.decay, mode);
  check_launch("adam_kernel");
}

}  // namespace

void adam_update(const std::vector<AdamParam>& params) {
  for (const AdamParam& a : params) update_one(a.p, a.g, a.m, a.v, a.step);
}

}  // namespace lm::cuda
