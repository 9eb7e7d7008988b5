// bilinear_rows (bilinear_rows.h): checks, the forward as one GEMM plus a row pass, and the
// backward as two GEMMs plus row passes.
//
// With U = a M (N, Q) the output is the row-wise dot s_i = <U_i, b_i>. So
//   forward:  U = a M (our GEMM, a read through its row stride), s_i = <U_i, b_i>
//   backward: gU_i = g_i b_i,  gb_i = g_i U_i (U saved from the forward),
//             ga = gU M^T,     gM = a^T gU.
// The GEMMs run at full speed on these skinny shapes (ops/cpu/gemm_skinny.h), where
// a per-row loop over P x Q spends most of its time in short-loop overhead.
#include "ops/bilinear_rows.h"

#include <algorithm>
#include <type_traits>

#include "autograd/engine.h"
#include "ops/cpu/avx2_math.h"
#include "ops/cpu/avx512_math.h"
#include "ops/cpu/row_kernel.h"
#include "ops/elementwise.h"
#include "ops/matmul.h"
#include "ops/op_utils.h"
#include "ops/reduce.h"
#include "ops/scale_rows.h"
#include "ops/shape.h"
#include "ops/cpu/parallel.h"

namespace lm {

using namespace ops_detail;

namespace {


#if LM_X86
// <u, b> of two float32 rows on 16 lanes, float64 sums.
LM_AVX512 double dot_avx512(const float* u, const float* b, int64_t Q) {
  __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
  for (int64_t q = 0; q < Q; q += 16) {
    const __mmask16 k = cpu::tail_mask(Q - q);
    cpu::add_to_f64(s0, s1, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, u + q), _mm512_maskz_loadu_ps(k, b + q)));
  }
  return cpu::hsum8d(_mm512_add_pd(s0, s1));
}

// dot_avx512 on AVX2, with its bits: its 16 lanes as two halves (ops/cpu/avx2_math.h).
LM_AVX2 double dot_avx2(const float* u, const float* b, int64_t Q) {
  __m256d s[4];
  for (__m256d& v : s) v = _mm256_setzero_pd();
  for (int64_t q = 0; q < Q; q += 8) {
    const __m256 p = _mm256_mul_ps(cpu::load8(u + q, Q - q), cpu::load8(b + q, Q - q));
    if (q % 16 == 0) cpu::add_to_f64(s[0], s[1], p);
    else cpu::add_to_f64(s[2], s[3], p);
  }
  return cpu::hsum_f64(s);
}

// out[i] = <u_i, b_i> with float64 sums; u (N, Q) packed, b rows at stride ldb.
#endif  // LM_X86

template <class T>
void row_dots(const T* u, const T* b, int64_t ldb, int64_t N, int64_t Q, T* out) {
  [[maybe_unused]] const cpu::RowKernel kernel = cpu::row_kernel();  // unused off x86
#pragma omp parallel for schedule(static) if (N * Q > cpu::kParallelGrain)
  for (int64_t i = 0; i < N; ++i) {
    const T* ui = u + i * Q;
    const T* bi = b + i * ldb;
    if constexpr (std::is_same_v<T, float>) {
#if LM_X86
      if (kernel == cpu::RowKernel::Avx512) {
        out[i] = (T)dot_avx512(ui, bi, Q);
        continue;
      }
      if (kernel == cpu::RowKernel::Avx2) {
        out[i] = (T)dot_avx2(ui, bi, Q);
        continue;
      }
#endif
    }
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t q = 0; q < Q; ++q) s += (double)ui[q] * (double)bi[q];
    out[i] = (T)s;
  }
}

// Row-strided view of a 2-d tensor: itself when its columns are contiguous, else a packed copy.
Tensor rows_view(const Tensor& x) { return x.strides()[1] == 1 || x.shape()[1] == 1 ? x : x.contiguous(); }

template <class T>
void run_row_dots(const Tensor& u, const Tensor& b, Tensor& out) {
  row_dots(u.data<T>(), b.data<T>(), b.strides()[0], u.shape()[0], u.shape()[1], out.data<T>());
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
  Tensor ad = a.detach(), Md = M.detach(), bc = rows_view(b.detach());
  Tensor U, out = Tensor::empty({N}, a.dtype());
  {
    NoGradGuard no_grad;
    U = matmul(ad, Md).contiguous();  // (N, Q)
    profiler::Scope prof(name, 2.0 * N * Q, (double)dtype_size(a.dtype()) * 2 * N * Q);
    if (N * Q > 0) {
      if (a.dtype() == DType::F32) run_row_dots<float>(U, bc, out);
      else run_row_dots<double>(U, bc, out);
    }
  }
  if (autograd::needs_grad({a, M, b})) {
    const bool need_a = a.requires_grad(), need_m = M.requires_grad(), need_b = b.requires_grad();
    autograd::record(name, {a, M, b}, out, [=](const Tensor& g) -> std::vector<Tensor> {
      Tensor gc = g.contiguous();
      Tensor gU = scale_rows(bc, gc);               // gU_i = g_i b_i
      Tensor ga, gm, gb = need_b ? scale_rows(U, gc) : Tensor();  // gb_i = g_i U_i
      if (need_a) ga = matmul(gU, t(Md));  // (N, P)
      if (need_m) gm = matmul(t(ad), gU);  // (P, Q)
      return {ga, gm, gb};
    });
  }
  return out;
}

}  // namespace lm
