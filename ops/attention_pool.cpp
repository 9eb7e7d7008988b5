// weighted_attention_pool (attention_pool.h): checks, the forward as one pass writing the scores,
// the softmax rows and one GEMM, and the backward as two GEMMs and two passes over (R, N).
//
// Derivation of the backward. With B = A * w^T the output is out = B V, so for the upstream
// gradient G = dL/dout (R, D):
//   dL/dV = B^T G                       dL/dB = G V^T =: gB
// B[r, n] = A[r, n] w[n] gives
//   dL/dA[r, n] = w[n] gB[r, n] =: gA   and w's first part  sum_r A[r, n] gB[r, n].
// Softmax along n (docs/ops/softmax.md): gS = A * (gA - d), d_r = sum_n A[r, n] gA[r, n].
// S[r, n] = scale w[n] keys[n, r] gives
//   dL/dkeys[n, r] = scale w[n] gS[r, n]   and w's second part  sum_r scale keys[n, r] gS[r, n].
//
// Passes: d_r is one reduction per row r (float64, in n order); everything else of the
// backward is one pass over blocks of instances, where a block's R x kBlock slices of A and gB
// stay in L1 while gkeys' rows (R contiguous values per instance) are written. Every sum has
// a fixed order whatever the thread count, so the results are bit-identical for any number of
// threads.
#include "ops/attention_pool.h"

#include <omp.h>

#include <algorithm>
#include <vector>

#include "autograd/engine.h"
#include "ops/cpu/parallel.h"
#include "ops/cpu/softmax.h"
#include "ops/elementwise.h"
#include "ops/matmul.h"
#include "ops/op_utils.h"
#include "ops/shape.h"
#include "ops/softmax.h"

namespace lm {

using namespace ops_detail;

namespace {

constexpr int64_t kBlock = 256;  // instances per block of the column passes

// Forward, in one parallel region:
//   A[r, n]  = (scale * keys[n*ks0 + r*ks1]) * w[n]   the scores, by blocks of instances: each
//                                                     thread reads its own part of keys' rows
//                                                     once (a strided read of cold memory:
//                                                     240-400 us at 16000 x 24 where threads
//                                                     owning rows and reading every row took
//                                                     850-900); KT[r, n] = scale * keys[n, r]
//                                                     beside it when KT is not null
//   A[r, :]  = softmax(A[r, :]),  B[r, :] = A[r, :] * w              by rows
// KT (the backward's, for w's gradient) is null when nothing needs a gradient.
template <class T>
void forward_rows(const T* keys, int64_t ks0, int64_t ks1, const T* w, T scale, int64_t N, int64_t R, T* KT, T* A,
                  T* B) {
#pragma omp parallel if (N * R > cpu::kFusedRowsParallelGrain)
  {
#pragma omp for schedule(static)
    for (int64_t b0 = 0; b0 < N; b0 += kBlock)
      for (int64_t n = b0, n1 = std::min(N, b0 + kBlock); n < n1; ++n) {
        const T* k = keys + n * ks0;
        const T wn = w[n];
        for (int64_t r = 0; r < R; ++r) {
          const T kt = scale * k[r * ks1];
          if (KT) KT[r * N + n] = kt;
          A[r * N + n] = kt * wn;
        }
      }
#pragma omp for schedule(static)
    for (int64_t r = 0; r < R; ++r) {
      T* a = A + r * N;
      T* o = B + r * N;
      cpu::softmax_one_row(a, N, a);
#pragma omp simd
      for (int64_t n = 0; n < N; ++n) o[n] = a[n] * w[n];
    }
  }
}

// d_r = sum_n A[r, n] w[n] gB[r, n], in float64.
template <class T>
void row_dots(const T* A, const T* w, const T* gB, int64_t N, int64_t R, double* d) {
#pragma omp parallel for schedule(static) if (N * R > cpu::kFusedRowsParallelGrain)
  for (int64_t r = 0; r < R; ++r) {
    const T* a = A + r * N;
    const T* g = gB + r * N;
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t n = 0; n < N; ++n) s += (double)a[n] * (double)(w[n] * g[n]);
    d[r] = s;
  }
}

// gkeys (N, R) packed and gw (N), from A, gB, KT (R, N), d (R) and w; either output may be null
// (not needed). Per block of instances: gS row by row (vectorised along n) into a block tile,
// w's sum over r in r order, then the tile written out as gkeys' rows.
template <class T>
void column_pass(const T* A, const T* gB, const T* KT, const double* d, const T* w, T scale, int64_t N, int64_t R,
                 T* gkeys, T* gw) {
#pragma omp parallel if (N * R > cpu::kFusedRowsParallelGrain)
  {
    std::vector<T> tile(R * kBlock), wsum(kBlock);
#pragma omp for schedule(static)
    for (int64_t b0 = 0; b0 < N; b0 += kBlock) {
      const int64_t nb = std::min(kBlock, N - b0);
      const T* wb = w + b0;
      std::fill(wsum.begin(), wsum.begin() + nb, T(0));
      T* ws = wsum.data();
      for (int64_t r = 0; r < R; ++r) {
        const T* a = A + r * N + b0;
        const T* g = gB + r * N + b0;
        const T* kt = KT + r * N + b0;
        const T dr = (T)d[r];
        T* gt = tile.data() + r * kBlock;
#pragma omp simd
        for (int64_t i = 0; i < nb; ++i) {
          const T gs = a[i] * (wb[i] * g[i] - dr);
          gt[i] = scale * wb[i] * gs;
          ws[i] += a[i] * g[i] + kt[i] * gs;
        }
      }
      if (gw) std::copy(ws, ws + nb, gw + b0);
      if (gkeys)
        for (int64_t i = 0; i < nb; ++i)
          for (int64_t r = 0; r < R; ++r) gkeys[(b0 + i) * R + r] = tile[r * kBlock + i];
    }
  }
}

// The composed form (CUDA tensors, empty shapes): the same function from existing ops.
Tensor composed(const Tensor& keys, const Tensor& w, const Tensor& V, double scale, Tensor* attention) {
  Tensor wrow = unsqueeze(w, 0);                                    // (1, N)
  Tensor A = softmax(mul(t(keys), mul(wrow, scale)), -1);           // (R, N)
  if (attention) *attention = A.detach();
  return matmul(mul(A, wrow), V);                                   // (R, D)
}

}  // namespace

Tensor weighted_attention_pool(const Tensor& keys, const Tensor& w, const Tensor& V, double scale,
                               Tensor* attention) {
  const char* name = "weighted_attention_pool";
  check_float(name, keys);
  check_same(name, keys, w);
  check_same(name, keys, V);
  check_dim(name, keys, 2, "keys");
  check_dim(name, w, 1, "w");
  check_dim(name, V, 2, "V");
  const int64_t N = keys.shape()[0], R = keys.shape()[1], D = V.shape()[1];
  if (w.shape()[0] != N || V.shape()[0] != N)
    fail(name, "instance counts differ: keys " + keys.str() + ", w " + w.str() + ", V " + V.str() +
                   " (need (N,R), (N), (N,D))");
  if (!keys.device().is_cpu() || N == 0 || R == 0 || D == 0) return composed(keys, w, V, scale, attention);

  const DType dt = keys.dtype();
  Tensor kd = keys.detach(), wc = w.detach().contiguous(), Vd = V.detach();
  const bool need_k = keys.requires_grad(), need_w = w.requires_grad(), need_v = V.requires_grad();
  const bool grad = autograd::needs_grad({keys, w, V});
  // KT is read back only by the column pass, which runs when keys or w need a gradient.
  Tensor KT = grad && (need_k || need_w) ? Tensor::empty({R, N}, dt) : Tensor();
  Tensor A = Tensor::empty({R, N}, dt), B = Tensor::empty({R, N}, dt), out;
  {
    NoGradGuard no_grad;
    {
      profiler::Scope prof(name, 4.0 * R * N, (double)dtype_size(dt) * 4 * R * N);
      auto forward = [&](auto tag) {
        using T = decltype(tag);
        forward_rows<T>(kd.data<T>(), kd.strides()[0], kd.strides()[1], wc.data<T>(), (T)scale, N, R,
                        KT.defined() ? KT.data<T>() : nullptr, A.data<T>(), B.data<T>());
      };
      if (dt == DType::F32) forward(float{});
      else forward(double{});
    }
    out = matmul_untracked(B, Vd, "matmul");  // (R, D)
  }
  if (attention) *attention = A;
  if (grad) {
    const Shape v_shape = V.shape();
    autograd::record(name, {keys, w, V}, out, [=](const Tensor& g) -> std::vector<Tensor> {
      Tensor gk, gw, gv;
      if (need_k || need_w) {
        Tensor gB = matmul_untracked(g, t(Vd), "matmul.backward");  // (R, N)
        if (need_k) gk = Tensor::empty({N, R}, dt);
        if (need_w) gw = Tensor::empty({N}, dt);
        profiler::Scope prof("weighted_attention_pool.backward", 10.0 * R * N, (double)dtype_size(dt) * 4 * R * N);
        std::vector<double> d(R);
        auto backward = [&](auto tag) {
          using T = decltype(tag);
          row_dots<T>(A.data<T>(), wc.data<T>(), gB.data<T>(), N, R, d.data());
          column_pass<T>(A.data<T>(), gB.data<T>(), KT.data<T>(), d.data(), wc.data<T>(), (T)scale, N, R,
                         need_k ? gk.data<T>() : nullptr, need_w ? gw.data<T>() : nullptr);
        };
        if (dt == DType::F32) backward(float{});
        else backward(double{});
      }
      if (need_v) {
        Tensor acc = autograd::accumulation_target(2);
        const bool into = acc.defined() && acc.shape() == v_shape && acc.dtype() == dt;
        gv = matmul_untracked(t(B), g, "matmul.backward", into ? acc : Tensor());  // (N, D)
      }
      return {gk, gw, gv};
    });
  }
  return out;
}

}  // namespace lm
