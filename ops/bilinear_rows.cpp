// bilinear_rows (bilinear_rows.h): checks, CPU row kernels (float32 / float64 with float64
// sums), hand-written backward.
#include "ops/bilinear_rows.h"

#include <algorithm>
#include <vector>

#include "autograd/engine.h"
#include "ops/elementwise.h"
#include "ops/matmul.h"
#include "ops/op_utils.h"
#include "ops/reduce.h"

namespace lm {

using namespace ops_detail;

namespace {

constexpr int64_t kParallelGrain = 1 << 19;  // multiply-adds; see docs/tour.md "Threads"
constexpr int64_t kRowBlock = 256;           // rows per block of the gM partial sums

// A matrix read through a row stride (columns contiguous).
template <class T>
struct Rows {
  const T* p;
  int64_t ld;
  const T* row(int64_t i) const { return p + i * ld; }
};

// out[i] = a_i M b_i^T, accumulated in float64.
template <class T>
void forward_rows(Rows<T> a, const T* M, Rows<T> b, int64_t N, int64_t P, int64_t Q, T* out) {
#pragma omp parallel for schedule(static) if (N * P * Q > kParallelGrain)
  for (int64_t i = 0; i < N; ++i) {
    const T* ai = a.row(i);
    const T* bi = b.row(i);
    double s = 0;
    for (int64_t p = 0; p < P; ++p) {
      const T* mp = M + p * Q;
      double t = 0;
#pragma omp simd reduction(+ : t)
      for (int64_t q = 0; q < Q; ++q) t += (double)mp[q] * (double)bi[q];
      s += (double)ai[p] * t;
    }
    out[i] = (T)s;
  }
}

// ga (N, P), gb (N, Q) (either may be null) and the gM partial sums of each row block
// (blocks x P x Q, float64), summed in block order afterwards.
template <class T>
void backward_rows(const T* g, Rows<T> a, const T* M, Rows<T> b, int64_t N, int64_t P, int64_t Q, T* ga, T* gb,
                   double* gm_blocks) {
  const int64_t blocks = (N + kRowBlock - 1) / kRowBlock;
#pragma omp parallel for schedule(static) if (N * P * Q > kParallelGrain)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    double* gm = gm_blocks ? gm_blocks + blk * P * Q : nullptr;
    if (gm) std::fill(gm, gm + P * Q, 0.0);
    std::vector<double> bq(Q);
    for (int64_t i = blk * kRowBlock, end = std::min(N, (blk + 1) * kRowBlock); i < end; ++i) {
      const double gi = (double)g[i];
      const T* ai = a.row(i);
      const T* bi = b.row(i);
      if (gb) std::fill(bq.begin(), bq.end(), 0.0);
      for (int64_t p = 0; p < P; ++p) {
        const T* mp = M + p * Q;
        const double ap = (double)ai[p];
        if (ga) {
          double t = 0;
#pragma omp simd reduction(+ : t)
          for (int64_t q = 0; q < Q; ++q) t += (double)mp[q] * (double)bi[q];
          ga[i * P + p] = (T)(gi * t);
        }
        if (gb) {
#pragma omp simd
          for (int64_t q = 0; q < Q; ++q) bq[q] += ap * (double)mp[q];
        }
        if (gm) {
          const double w = gi * ap;
          double* gmp = gm + p * Q;
#pragma omp simd
          for (int64_t q = 0; q < Q; ++q) gmp[q] += w * (double)bi[q];
        }
      }
      if (gb)
        for (int64_t q = 0; q < Q; ++q) gb[i * Q + q] = (T)(gi * bq[q]);
    }
  }
}

// Row-strided view of a 2-d tensor: itself when its columns are contiguous, else a packed copy.
Tensor rows_view(const Tensor& x) { return x.strides()[1] == 1 || x.shape()[1] == 1 ? x : x.contiguous(); }

template <class T>
Rows<T> rows_of(const Tensor& x) {
  return {x.data<T>(), x.strides()[0]};
}

}  // namespace

Tensor bilinear_rows(const Tensor& a, const Tensor& M, const Tensor& b) {
  const char* name = "bilinear_rows";
  check_float(name, a);
  check_float(name, M);
  check_float(name, b);
  check_same(name, a, M);
  check_same(name, a, b);
  check_dim(name, a, 2, "a");
  check_dim(name, M, 2, "M");
  check_dim(name, b, 2, "b");
  const int64_t N = a.shape()[0], P = a.shape()[1], Q = b.shape()[1];
  if (M.shape()[0] != P || M.shape()[1] != Q || b.shape()[0] != N)
    fail(name, "shapes do not chain: a " + a.str() + ", M " + M.str() + ", b " + b.str() + " (need (N,P), (P,Q), (N,Q))");
  if (!a.device().is_cpu()) return sum(mul(matmul(a, M), b), {1});
  Tensor ac = rows_view(a), bc = rows_view(b), Mc = M.contiguous();
  Tensor out = Tensor::empty({N}, a.dtype());
  {
    profiler::Scope prof(name, 2.0 * N * P * Q, (double)dtype_size(a.dtype()) * N * (P + Q));
    if (a.dtype() == DType::F32)
      forward_rows(rows_of<float>(ac), Mc.data<float>(), rows_of<float>(bc), N, P, Q, out.data<float>());
    else
      forward_rows(rows_of<double>(ac), Mc.data<double>(), rows_of<double>(bc), N, P, Q, out.data<double>());
  }
  if (autograd::needs_grad({a, M, b})) {
    const bool need_a = a.requires_grad(), need_m = M.requires_grad(), need_b = b.requires_grad();
    Tensor as = ac.detach(), bs = bc.detach(), ms = Mc.detach();
    autograd::record(name, {a, M, b}, out, [=](const Tensor& g) -> std::vector<Tensor> {
      profiler::Scope prof("bilinear_rows_backward", 6.0 * N * P * Q, (double)dtype_size(as.dtype()) * 2 * N * (P + Q));
      Tensor gc = g.contiguous();
      Tensor ga = need_a ? Tensor::empty({N, P}, as.dtype()) : Tensor();
      Tensor gb = need_b ? Tensor::empty({N, Q}, as.dtype()) : Tensor();
      const int64_t blocks = (N + kRowBlock - 1) / kRowBlock;
      std::vector<double> parts(need_m ? blocks * P * Q : 0);
      if (as.dtype() == DType::F32)
        backward_rows(gc.data<float>(), rows_of<float>(as), ms.data<float>(), rows_of<float>(bs), N, P, Q,
                      need_a ? ga.data<float>() : nullptr, need_b ? gb.data<float>() : nullptr,
                      need_m ? parts.data() : nullptr);
      else
        backward_rows(gc.data<double>(), rows_of<double>(as), ms.data<double>(), rows_of<double>(bs), N, P, Q,
                      need_a ? ga.data<double>() : nullptr, need_b ? gb.data<double>() : nullptr,
                      need_m ? parts.data() : nullptr);
      Tensor gm;
      if (need_m) {
        std::vector<double> total(P * Q, 0.0);
        for (int64_t blk = 0; blk < blocks; ++blk)
          for (int64_t k = 0; k < P * Q; ++k) total[k] += parts[blk * P * Q + k];
        gm = Tensor::from_vector(total, {P, Q}).to(as.dtype());
      }
      return {ga, gm, gb};
    });
  }
  return out;
}

}  // namespace lm
