// CPU reductions. The reduced axis sits between `outer` and `inner`, so reductions over the
// last dims (inner = 1) and over the first dims (outer = 1, e.g. a mean over a bag's
// instances) both read memory in order without a transposing copy.
#include "ops/cpu/reduce.h"

#include <cmath>
#include <limits>
#include <vector>

namespace lm::cpu {

namespace {

template <class T>
void reduce_typed(ReduceOp op, const T* x, int64_t outer, int64_t red, int64_t inner, T* out) {
  const int64_t work = outer * red * inner;
  if (inner == 1) {
#pragma omp parallel for if (work > (1 << 19))
    for (int64_t o = 0; o < outer; ++o) {
      const T* row = x + o * red;
      if (op == ReduceOp::Sum) {
        double acc = 0;
        for (int64_t r = 0; r < red; ++r) acc += row[r];
        out[o] = (T)acc;
      } else {
        T m = -std::numeric_limits<T>::infinity();
        for (int64_t r = 0; r < red; ++r) m = row[r] > m ? row[r] : m;
        if (op == ReduceOp::Max) {
          out[o] = m;
        } else {
          if (std::isinf(m)) { out[o] = m; continue; }
          double acc = 0;
          for (int64_t r = 0; r < red; ++r) acc += std::exp((double)(row[r] - m));
          out[o] = (T)((double)m + std::log(acc));
        }
      }
    }
    return;
  }
  // inner > 1: accumulate whole rows of `inner` values at once (vectorisable).
#pragma omp parallel for if (work > (1 << 19) && outer > 1)
  for (int64_t o = 0; o < outer; ++o) {
    const T* block = x + o * red * inner;
    T* dst = out + o * inner;
    if (op == ReduceOp::Sum) {
      std::vector<double> acc(inner, 0.0);
      for (int64_t r = 0; r < red; ++r) {
        const T* row = block + r * inner;
        for (int64_t i = 0; i < inner; ++i) acc[i] += row[i];
      }
      for (int64_t i = 0; i < inner; ++i) dst[i] = (T)acc[i];
    } else {
      std::vector<T> m(inner, -std::numeric_limits<T>::infinity());
      for (int64_t r = 0; r < red; ++r) {
        const T* row = block + r * inner;
        for (int64_t i = 0; i < inner; ++i) m[i] = row[i] > m[i] ? row[i] : m[i];
      }
      if (op == ReduceOp::Max) {
        for (int64_t i = 0; i < inner; ++i) dst[i] = m[i];
      } else {
        std::vector<double> acc(inner, 0.0);
        for (int64_t r = 0; r < red; ++r) {
          const T* row = block + r * inner;
          for (int64_t i = 0; i < inner; ++i) acc[i] += std::isinf(m[i]) ? 0.0 : std::exp((double)(row[i] - m[i]));
        }
        for (int64_t i = 0; i < inner; ++i) dst[i] = std::isinf(m[i]) ? m[i] : (T)((double)m[i] + std::log(acc[i]));
      }
    }
  }
}

template <class T>
void argmax_typed(const T* x, int64_t outer, int64_t red, int64_t inner, int64_t* out) {
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      int64_t best = 0;
      T bv = x[o * red * inner + i];
      for (int64_t r = 1; r < red; ++r) {
        T v = x[(o * red + r) * inner + i];
        if (v > bv || (std::isnan(v) && !std::isnan(bv))) { bv = v; best = r; }
      }
      out[o * inner + i] = best;
    }
}

}  // namespace

void reduce_forward(ReduceOp op, const Tensor& x, int64_t outer, int64_t red, int64_t inner, Tensor& out) {
  if (x.dtype() == DType::F32) reduce_typed<float>(op, x.data<float>(), outer, red, inner, out.data<float>());
  else reduce_typed<double>(op, x.data<double>(), outer, red, inner, out.data<double>());
}

void argmax_forward(const Tensor& x, int64_t outer, int64_t red, int64_t inner, Tensor& out) {
  if (x.dtype() == DType::F32) argmax_typed<float>(x.data<float>(), outer, red, inner, out.data<int64_t>());
  else argmax_typed<double>(x.data<double>(), outer, red, inner, out.data<int64_t>());
}

}  // namespace lm::cpu
