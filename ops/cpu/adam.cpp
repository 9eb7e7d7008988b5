// CPU Adam / AdamW update (see adam.h).
#include "ops/cpu/adam.h"

#include "ops/cpu/isa.h"

#include <algorithm>
#include <cmath>
#include <utility>

namespace lm::cpu {

namespace {

// One contiguous range of the Adam update, in float64 arithmetic with the rounding points of
// torch.optim's float32 implementation. Compiled for AVX-512 / AVX2 / baseline (the loader
// picks one); the loop vectorises under `omp simd`.
// Weight decay variants, fixed per call so that the loop has no branches.
enum class Decay { None, Decoupled, L2 };

template <class T, Decay mode>
inline __attribute__((always_inline)) void adam_range(T* __restrict p, const T* __restrict g, T* __restrict m,
                                                      T* __restrict v, int64_t n, double step_size, double bc2_sqrt,
                                                      double b1, double b2, double eps, double wd, double decay) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    double pi = (double)p[i];
    double gi = (double)g[i];
    if constexpr (mode == Decay::Decoupled) pi = (double)(T)(pi * decay);
    if constexpr (mode == Decay::L2) gi = (double)(T)(gi + wd * pi);
    const T mi = (T)(b1 * (double)m[i] + (1.0 - b1) * gi);
    const T vi = (T)(b2 * (double)v[i] + (1.0 - b2) * gi * gi);
    m[i] = mi;
    v[i] = vi;
    const double denom = std::sqrt((double)vi) / bc2_sqrt + eps;
    p[i] = (T)(pi - step_size * (double)mi / denom);
  }
}

template <class T>
inline __attribute__((always_inline)) void adam_range_any(T* p, const T* g, T* m, T* v, int64_t n, double step_size,
                                                          double bc2_sqrt, double b1, double b2, double eps, double wd,
                                                          double decay, bool decoupled) {
  if (decoupled) adam_range<T, Decay::Decoupled>(p, g, m, v, n, step_size, bc2_sqrt, b1, b2, eps, wd, decay);
  else if (wd != 0.0) adam_range<T, Decay::L2>(p, g, m, v, n, step_size, bc2_sqrt, b1, b2, eps, wd, decay);
  else adam_range<T, Decay::None>(p, g, m, v, n, step_size, bc2_sqrt, b1, b2, eps, wd, decay);
}

#if LM_X86  // ops/cpu/isa.h; elsewhere one version, vectorised for the target
#define LM_OPT_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define LM_OPT_CLONES
#endif
LM_OPT_CLONES void adam_range_f32(float* p, const float* g, float* m, float* v, int64_t n, double step_size,
                                  double bc2_sqrt, double b1, double b2, double eps, double wd, double decay,
                                  bool decoupled) {
  adam_range_any(p, g, m, v, n, step_size, bc2_sqrt, b1, b2, eps, wd, decay, decoupled);
}
LM_OPT_CLONES void adam_range_f64(double* p, const double* g, double* m, double* v, int64_t n, double step_size,
                                  double bc2_sqrt, double b1, double b2, double eps, double wd, double decay,
                                  bool decoupled) {
  adam_range_any(p, g, m, v, n, step_size, bc2_sqrt, b1, b2, eps, wd, decay, decoupled);
}

}  // namespace

// Runs every parameter's update as one parallel loop over 32k-element blocks of all of them,
// so that a model of many mid-sized tensors (512 x 512 weights) still uses every thread; a
// step with little work in total stays on the calling thread (see docs/tour.md "Threads").
void adam_update(const std::vector<AdamParam>& jobs) {
  constexpr int64_t kBlock = 1 << 15;
  std::vector<std::pair<int, int64_t>> blocks;  // (job, first element)
  int64_t total = 0;
  for (size_t j = 0; j < jobs.size(); ++j) {
    total += jobs[j].p.numel();
    for (int64_t i0 = 0; i0 < jobs[j].p.numel(); i0 += kBlock) blocks.emplace_back((int)j, i0);
  }
  const int64_t nb = (int64_t)blocks.size();
#pragma omp parallel for schedule(static) if (total > (1 << 18))
  for (int64_t b = 0; b < nb; ++b) {
    const AdamParam& jb = jobs[blocks[b].first];
    const AdamStep& c = jb.step;
    const int64_t i0 = blocks[b].second, len = std::min(kBlock, jb.p.numel() - i0);
    if (jb.p.dtype() == DType::F32)
      adam_range_f32(jb.p.data<float>() + i0, jb.g.data<float>() + i0, jb.m.data<float>() + i0, jb.v.data<float>() + i0,
                     len, c.step_size, c.bc2_sqrt, c.beta1, c.beta2, c.eps, c.weight_decay, c.decay, c.decoupled);
    else
      adam_range_f64(jb.p.data<double>() + i0, jb.g.data<double>() + i0, jb.m.data<double>() + i0,
                     jb.v.data<double>() + i0, len, c.step_size, c.bc2_sqrt, c.beta1, c.beta2, c.eps, c.weight_decay,
                     c.decay, c.decoupled);
  }
}

}  // namespace lm::cpu
