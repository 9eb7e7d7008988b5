// CPU Adam / AdamW update (see adam.h).
#include "ops/cpu/adam.h"

#include "ops/cpu/isa.h"

#include <algorithm>
#include <cmath>
#include <utility>

namespace lm::cpu {

namespace {

// One contiguous range of the Adam update, in float64 arithmetic with the rounding points of
// torch.optim's float32 implementation. Compiled for AVX-512 / AVX2 / baseline (pick chooses);
// the loop vectorises under `omp simd`.
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

// One version per instruction-set level, chosen by cpu_isa() (ops/cpu/isa.h), so that
// LIBRAMIL_CPU_ISA=avx2 also runs the AVX2 update on an AVX-512 host (a target_clones resolver,
// used before, picked by the hardware alone). Off x86: one version, vectorised for the target.
#define LM_ADAM_PARAMS(T)                                                                            \
  T *p, const T *g, T *m, T *v, int64_t n, double step_size, double bc2_sqrt, double b1, double b2, \
      double eps, double wd, double decay, bool decoupled
#define LM_ADAM_BODY \
  { adam_range_any(p, g, m, v, n, step_size, bc2_sqrt, b1, b2, eps, wd, decay, decoupled); }
template <class T>
using AdamFn = void (*)(LM_ADAM_PARAMS(T));

void adam_f32_base(LM_ADAM_PARAMS(float)) LM_ADAM_BODY
void adam_f64_base(LM_ADAM_PARAMS(double)) LM_ADAM_BODY
#if LM_X86
#define LM_ADAM_AVX512 __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,avx2,fma")))
#define LM_ADAM_AVX2 __attribute__((target("avx2,fma")))
LM_ADAM_AVX512 void adam_f32_avx512(LM_ADAM_PARAMS(float)) LM_ADAM_BODY
LM_ADAM_AVX512 void adam_f64_avx512(LM_ADAM_PARAMS(double)) LM_ADAM_BODY
LM_ADAM_AVX2 void adam_f32_avx2(LM_ADAM_PARAMS(float)) LM_ADAM_BODY
LM_ADAM_AVX2 void adam_f64_avx2(LM_ADAM_PARAMS(double)) LM_ADAM_BODY
#endif

// The version for the level in use (called once per process, like cpu_isa()); avx512 / avx2
// are null off x86.
template <class T>
AdamFn<T> pick(AdamFn<T> avx512, AdamFn<T> avx2, AdamFn<T> base) {
  if (avx512 && isa_allows(CpuIsa::Avx512)) return avx512;
  if (avx2 && isa_allows(CpuIsa::Avx2)) return avx2;
  return base;
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
#if LM_X86
  static const AdamFn<float> adam_f32 = pick<float>(adam_f32_avx512, adam_f32_avx2, adam_f32_base);
  static const AdamFn<double> adam_f64 = pick<double>(adam_f64_avx512, adam_f64_avx2, adam_f64_base);
#else
  static const AdamFn<float> adam_f32 = pick<float>(nullptr, nullptr, adam_f32_base);
  static const AdamFn<double> adam_f64 = pick<double>(nullptr, nullptr, adam_f64_base);
#endif
#pragma omp parallel for schedule(static) if (total > (1 << 18))
  for (int64_t b = 0; b < nb; ++b) {
    const AdamParam& jb = jobs[blocks[b].first];
    const AdamStep& c = jb.step;
    const int64_t i0 = blocks[b].second, len = std::min(kBlock, jb.p.numel() - i0);
    if (jb.p.dtype() == DType::F32)
      adam_f32(jb.p.data<float>() + i0, jb.g.data<float>() + i0, jb.m.data<float>() + i0, jb.v.data<float>() + i0,
                     len, c.step_size, c.bc2_sqrt, c.beta1, c.beta2, c.eps, c.weight_decay, c.decay, c.decoupled);
    else
      adam_f64(jb.p.data<double>() + i0, jb.g.data<double>() + i0, jb.m.data<double>() + i0,
                     jb.v.data<double>() + i0, len, c.step_size, c.bc2_sqrt, c.beta1, c.beta2, c.eps, c.weight_decay,
                     c.decay, c.decoupled);
  }
}

}  // namespace lm::cpu
