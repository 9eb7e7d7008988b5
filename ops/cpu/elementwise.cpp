// CPU elementwise kernels. The inner loops are plain, branch-free and contiguous where the
// layout allows, so the compiler vectorises them; large tensors are split across OpenMP
// threads. Broadcasting reads inputs through stride-0 dimensions instead of copying.
#include "ops/cpu/elementwise.h"
#include "ops/cpu/fast_math.h"

#include <cmath>

#include "ops/op_utils.h"
#include "ops/cpu/parallel.h"

namespace lm::cpu {

namespace {


template <class T, class F>
void binary_loop(const Tensor& a, const Tensor& b, Tensor& out, F f) {
  const Shape& shape = out.shape();
  int64_t n = out.numel();
  T* o = out.data<T>();
  const T* pa = a.data<T>();
  const T* pb = b.data<T>();
  if (n == 0) return;
  bool a_full = a.shape() == shape && a.is_contiguous();
  bool b_full = b.shape() == shape && b.is_contiguous();
  if (a_full && b_full) {
#pragma omp parallel for simd if (n > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) o[i] = f(pa[i], pb[i]);
    return;
  }
  if (a_full && b.numel() == 1) {
    T bv = pb[0];
#pragma omp parallel for simd if (n > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) o[i] = f(pa[i], bv);
    return;
  }
  if (b_full && a.numel() == 1) {
    T av = pa[0];
#pragma omp parallel for simd if (n > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) o[i] = f(av, pb[i]);
    return;
  }
  // General case: rows of the last dimension, each row read with its own strides.
  Shape sa = ops_detail::broadcast_strides(a, shape), sb = ops_detail::broadcast_strides(b, shape);
  int64_t nd = (int64_t)shape.size();
  int64_t inner = shape[nd - 1];
  int64_t rows = n / inner;
  int64_t ia = sa[nd - 1], ib = sb[nd - 1];
#pragma omp parallel for if (n > kParallelGrain)
  for (int64_t r = 0; r < rows; ++r) {
    int64_t rem = r, offa = 0, offb = 0;
    for (int64_t d = nd - 2; d >= 0; --d) {
      int64_t idx = rem % shape[d];
      rem /= shape[d];
      offa += idx * sa[d];
      offb += idx * sb[d];
    }
    const T* ra = pa + offa;
    const T* rb = pb + offb;
    T* ro = o + r * inner;
    if (ia == 1 && ib == 1) {
      for (int64_t i = 0; i < inner; ++i) ro[i] = f(ra[i], rb[i]);
    } else if (ia == 1 && ib == 0) {
      T bv = rb[0];
      for (int64_t i = 0; i < inner; ++i) ro[i] = f(ra[i], bv);
    } else if (ia == 0 && ib == 1) {
      T av = ra[0];
      for (int64_t i = 0; i < inner; ++i) ro[i] = f(av, rb[i]);
    } else {
      for (int64_t i = 0; i < inner; ++i) ro[i] = f(ra[i * ia], rb[i * ib]);
    }
  }
}

template <class T>
void binary_typed(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  switch (op) {
    case BinaryOp::Add: binary_loop<T>(a, b, out, [](T x, T y) { return x + y; }); break;
    case BinaryOp::Sub: binary_loop<T>(a, b, out, [](T x, T y) { return x - y; }); break;
    case BinaryOp::Mul: binary_loop<T>(a, b, out, [](T x, T y) { return x * y; }); break;
    case BinaryOp::Div: binary_loop<T>(a, b, out, [](T x, T y) { return x / y; }); break;
    case BinaryOp::Eq: binary_loop<T>(a, b, out, [](T x, T y) { return x == y ? T(1) : T(0); }); break;
  }
}

// erf: the vectorisable float32 polynomial of fast_math.h; float64 uses std::erf.
inline float erf_fast(float x) { return erf_poly(x); }
inline double erf_fast(double x) { return std::erf(x); }

template <class T, class F>
void map_loop(int64_t n, const T* x, T* y, F f) {
#pragma omp parallel for simd if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) y[i] = f(x[i]);
}

template <class T>
void unary_typed(UnaryOp op, const UnaryParams& p, const T* x, T* y, int64_t n) {
  const T p0 = (T)p.p0, p1 = (T)p.p1;
  switch (op) {
    case UnaryOp::Neg: map_loop(n, x, y, [](T v) { return -v; }); break;
    case UnaryOp::Exp: map_loop(n, x, y, [](T v) { return std::exp(v); }); break;
    case UnaryOp::Log: map_loop(n, x, y, [](T v) { return std::log(v); }); break;
    case UnaryOp::Sqrt: map_loop(n, x, y, [](T v) { return std::sqrt(v); }); break;
    case UnaryOp::Pow:
      if (p0 == (T)2) map_loop(n, x, y, [](T v) { return v * v; });
      else map_loop(n, x, y, [p0](T v) { return std::pow(v, p0); });
      break;
    case UnaryOp::Abs: map_loop(n, x, y, [](T v) { return std::abs(v); }); break;
    case UnaryOp::Clamp: map_loop(n, x, y, [p0, p1](T v) { return v < p0 ? p0 : (v > p1 ? p1 : v); }); break;
    case UnaryOp::Relu: map_loop(n, x, y, [](T v) { return v > 0 ? v : (T)0; }); break;
    case UnaryOp::Relu6: map_loop(n, x, y, [](T v) { return v < 0 ? (T)0 : (v > (T)6 ? (T)6 : v); }); break;
    case UnaryOp::Sigmoid: map_loop(n, x, y, [](T v) { return (T)1 / ((T)1 + std::exp(-v)); }); break;
    case UnaryOp::Tanh: map_loop(n, x, y, [](T v) { return std::tanh(v); }); break;
    case UnaryOp::Gelu:
      map_loop(n, x, y, [](T v) { return (T)0.5 * v * ((T)1 + erf_fast(v * (T)0.70710678118654752440)); });
      break;
    case UnaryOp::AddScalar: map_loop(n, x, y, [p0](T v) { return v + p0; }); break;
    case UnaryOp::MulScalar: map_loop(n, x, y, [p0](T v) { return v * p0; }); break;
    case UnaryOp::RSubScalar: map_loop(n, x, y, [p0](T v) { return p0 - v; }); break;
  }
}

template <class T, class F>
void grad_loop(int64_t n, const T* x, const T* y, const T* g, T* gx, F f) {
#pragma omp parallel for simd if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) gx[i] = f(x[i], y[i], g[i]);
}

template <class T>
void unary_backward_typed(UnaryOp op, const UnaryParams& p, const T* x, const T* y, const T* g, T* gx, int64_t n) {
  const T p0 = (T)p.p0, p1 = (T)p.p1;
  switch (op) {
    case UnaryOp::Neg: grad_loop(n, x, y, g, gx, [](T, T, T gv) { return -gv; }); break;
    case UnaryOp::Exp: grad_loop(n, x, y, g, gx, [](T, T yv, T gv) { return gv * yv; }); break;
    case UnaryOp::Log: grad_loop(n, x, y, g, gx, [](T xv, T, T gv) { return gv / xv; }); break;
    case UnaryOp::Sqrt: grad_loop(n, x, y, g, gx, [](T, T yv, T gv) { return gv * (T)0.5 / yv; }); break;
    case UnaryOp::Pow:
      if (p0 == (T)2) grad_loop(n, x, y, g, gx, [](T xv, T, T gv) { return gv * (T)2 * xv; });
      else grad_loop(n, x, y, g, gx, [p0](T xv, T, T gv) { return gv * p0 * std::pow(xv, p0 - (T)1); });
      break;
    case UnaryOp::Abs: grad_loop(n, x, y, g, gx, [](T xv, T, T gv) { return xv > 0 ? gv : (xv < 0 ? -gv : (T)0); }); break;
    case UnaryOp::Clamp:
      grad_loop(n, x, y, g, gx, [p0, p1](T xv, T, T gv) { return (xv >= p0 && xv <= p1) ? gv : (T)0; });
      break;
    case UnaryOp::Relu: grad_loop(n, x, y, g, gx, [](T xv, T, T gv) { return xv > 0 ? gv : (T)0; }); break;
    // torch's hardtanh backward: 0 at and beyond the kinks 0 and 6 (NaN passes the gradient).
    case UnaryOp::Relu6:
      grad_loop(n, x, y, g, gx, [](T xv, T, T gv) { return (xv <= 0 || xv >= (T)6) ? (T)0 : gv; });
      break;
    case UnaryOp::Sigmoid: grad_loop(n, x, y, g, gx, [](T, T yv, T gv) { return gv * yv * ((T)1 - yv); }); break;
    case UnaryOp::Tanh: grad_loop(n, x, y, g, gx, [](T, T yv, T gv) { return gv * ((T)1 - yv * yv); }); break;
    case UnaryOp::Gelu:
      // d/dx [x Phi(x)] = Phi(x) + x phi(x), phi the standard normal density.
      grad_loop(n, x, y, g, gx, [](T xv, T, T gv) {
        T cdf = (T)0.5 * ((T)1 + erf_fast(xv * (T)0.70710678118654752440));
        T pdf = (T)0.39894228040143267794 * std::exp((T)-0.5 * xv * xv);
        return gv * (cdf + xv * pdf);
      });
      break;
    case UnaryOp::AddScalar: grad_loop(n, x, y, g, gx, [](T, T, T gv) { return gv; }); break;
    case UnaryOp::MulScalar: grad_loop(n, x, y, g, gx, [p0](T, T, T gv) { return gv * p0; }); break;
    case UnaryOp::RSubScalar: grad_loop(n, x, y, g, gx, [](T, T, T gv) { return -gv; }); break;
  }
}

}  // namespace

void binary_forward(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  if (out.dtype() == DType::F32) binary_typed<float>(op, a, b, out);
  else binary_typed<double>(op, a, b, out);
}

void unary_forward(UnaryOp op, const UnaryParams& p, const Tensor& x, Tensor& out) {
  if (x.dtype() == DType::F32) unary_typed<float>(op, p, x.data<float>(), out.data<float>(), x.numel());
  else unary_typed<double>(op, p, x.data<double>(), out.data<double>(), x.numel());
}

void unary_backward(UnaryOp op, const UnaryParams& p, const Tensor& x, const Tensor& y, const Tensor& g, Tensor& gx) {
  if (x.dtype() == DType::F32)
    unary_backward_typed<float>(op, p, x.data<float>(), y.data<float>(), g.data<float>(), gx.data<float>(), x.numel());
  else
    unary_backward_typed<double>(op, p, x.data<double>(), y.data<double>(), g.data<double>(), gx.data<double>(), x.numel());
}

}  // namespace lm::cpu
