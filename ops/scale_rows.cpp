// scale_rows (scale_rows.h): checks, CPU row kernels (float32 / float64), hand-written backward.
#include "ops/scale_rows.h"

#include "autograd/engine.h"
#include "ops/elementwise.h"
#include "ops/op_utils.h"
#include "ops/shape.h"
#include "ops/cpu/parallel.h"

namespace lm {

using namespace ops_detail;

namespace {


// out[i, :] = w[i] * x[i, :]
template <class T>
void scale_rows_forward(const T* x, const T* w, int64_t N, int64_t D, T* out) {
#pragma omp parallel for schedule(static) if (N * D > cpu::kParallelGrain)
  for (int64_t i = 0; i < N; ++i) {
    const T wi = w[i];
    const T* xr = x + i * D;
    T* o = out + i * D;
#pragma omp simd
    for (int64_t j = 0; j < D; ++j) o[j] = wi * xr[j];
  }
}

// gx[i, :] = w[i] g[i, :] (when gx), gw[i] = sum_j g[i, j] x[i, j] (when gw, float64 sums).
template <class T>
void scale_rows_backward(const T* g, const T* x, const T* w, int64_t N, int64_t D, T* gx, T* gw) {
#pragma omp parallel for schedule(static) if (N * D > cpu::kParallelGrain)
  for (int64_t i = 0; i < N; ++i) {
    const T* gr = g + i * D;
    if (gx) {
      const T wi = w[i];
      T* o = gx + i * D;
#pragma omp simd
      for (int64_t j = 0; j < D; ++j) o[j] = wi * gr[j];
    }
    if (gw) {
      const T* xr = x + i * D;
      double s = 0;
#pragma omp simd reduction(+ : s)
      for (int64_t j = 0; j < D; ++j) s += (double)gr[j] * (double)xr[j];
      gw[i] = (T)s;
    }
  }
}

template <class T>
void run_forward(const Tensor& x, const Tensor& w, Tensor& out) {
  scale_rows_forward(x.data<T>(), w.data<T>(), x.shape()[0], x.shape()[1], out.data<T>());
}

}  // namespace

Tensor scale_rows(const Tensor& x, const Tensor& w) {
  const char* name = "scale_rows";
  check_float(name, x);
  check_float(name, w);
  check_same(name, x, w);
  check_dim(name, x, 2, "x");
  check_dim(name, w, 1, "w");
  if (w.shape()[0] != x.shape()[0]) fail(name, "w " + w.str() + " must have one entry per row of x " + x.str());
  if (!x.device().is_cpu()) return mul(unsqueeze(w, 1), x);
  const int64_t N = x.shape()[0], D = x.shape()[1];
  Tensor xc = x.contiguous(), wc = w.contiguous();
  Tensor out = Tensor::empty({N, D}, x.dtype());
  {
    profiler::Scope prof(name, (double)N * D, 2.0 * x.nbytes());
    if (x.dtype() == DType::F32) run_forward<float>(xc, wc, out);
    else run_forward<double>(xc, wc, out);
  }
  if (autograd::needs_grad({x, w})) {
    const bool gx_needed = x.requires_grad(), gw_needed = w.requires_grad();
    Tensor xs = xc.detach(), ws = wc.detach();
    autograd::record(name, {x, w}, out, [=](const Tensor& g) -> std::vector<Tensor> {
      profiler::Scope prof("scale_rows_backward", 2.0 * N * D, 3.0 * xs.nbytes());
      Tensor gc = g.contiguous();
      Tensor gx = gx_needed ? Tensor::empty({N, D}, xs.dtype()) : Tensor();
      Tensor gw = gw_needed ? Tensor::empty({N}, xs.dtype()) : Tensor();
      if (xs.dtype() == DType::F32)
        scale_rows_backward(gc.data<float>(), xs.data<float>(), ws.data<float>(), N, D,
                            gx_needed ? gx.data<float>() : nullptr, gw_needed ? gw.data<float>() : nullptr);
      else
        scale_rows_backward(gc.data<double>(), xs.data<double>(), ws.data<double>(), N, D,
                            gx_needed ? gx.data<double>() : nullptr, gw_needed ? gw.data<double>() : nullptr);
      return {gx, gw};
    });
  }
  return out;
}

}  // namespace lm
