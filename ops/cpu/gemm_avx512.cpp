// AVX-512 SGEMM micro-kernel (see gemm.cpp for the blocking scheme around it).
//
// Register tile: MR rows x 32 columns of C = MR x 2 zmm accumulators (16 floats each).
// Per k step:
//   b0, b1  <- Bp[k, 0:16], Bp[k, 16:32]          (2 aligned vector loads)
//   for i < MR:  a = broadcast(Ap[k, i])           (folded into the FMA as {1to16})
//                c[i][0] += a * b0;  c[i][1] += a * b1
// With MR = 14: 28 accumulators + b0 + b1 + a = 31 of 32 zmm registers, 28 FMAs per
// 2 vector loads + 14 broadcasts, enough independent FMA chains to hide the 4-cycle latency
// on both FMA ports.
//
// Compiled with a per-function target attribute, so this file builds without -march flags;
// gemm.cpp only calls it after __builtin_cpu_supports("avx512f") etc.
#include <immintrin.h>

#include "ops/cpu/gemm.h"

namespace lm::cpu::detail {
namespace {

#define LM_AVX512_TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,fma")))

constexpr int kNR = 32;

// Ap: (kc, MR) packed A panel.  Bp: (kc, 32) packed B panel, 64-byte aligned.
// C: (MR, 32) tile of the output, row stride ldc; C = alpha * Ap^T Bp + beta * C.
template <int MR>
LM_AVX512_TARGET void kernel_avx512(int64_t kc, const float* __restrict Ap,
                                    const float* __restrict Bp, float* C, int64_t ldc,
                                    float alpha, float beta) {
  __m512 c0[MR], c1[MR];  // c0[i] = C[i, 0:16], c1[i] = C[i, 16:32]
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    c0[i] = _mm512_setzero_ps();
    c1[i] = _mm512_setzero_ps();
    _mm_prefetch(reinterpret_cast<const char*>(C + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(C + i * ldc + 16), _MM_HINT_T0);
  }

  for (int64_t k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_load_ps(Bp);
    const __m512 b1 = _mm512_load_ps(Bp + 16);
    _mm_prefetch(reinterpret_cast<const char*>(Ap + 8 * MR), _MM_HINT_T0);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m512 a = _mm512_set1_ps(Ap[i]);
      c0[i] = _mm512_fmadd_ps(a, b0, c0[i]);
      c1[i] = _mm512_fmadd_ps(a, b1, c1[i]);
    }
    Ap += MR;
    Bp += kNR;
  }

  const __m512 va = _mm512_set1_ps(alpha);
  if (beta == 0.0f) {
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      _mm512_storeu_ps(C + i * ldc, _mm512_mul_ps(va, c0[i]));
      _mm512_storeu_ps(C + i * ldc + 16, _mm512_mul_ps(va, c1[i]));
    }
  } else {
    const __m512 vb = _mm512_set1_ps(beta);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      float* c = C + i * ldc;
      _mm512_storeu_ps(c, _mm512_fmadd_ps(va, c0[i], _mm512_mul_ps(vb, _mm512_loadu_ps(c))));
      _mm512_storeu_ps(c + 16,
                       _mm512_fmadd_ps(va, c1[i], _mm512_mul_ps(vb, _mm512_loadu_ps(c + 16))));
    }
  }
}

constexpr int kMR = 14;

}  // namespace

KernelSpec avx512_kernel_spec() {
  // mc x kc A block (~336 KiB) in the 2 MiB L2; kc x 32 B micro-panel (32 KiB) in the
  // 48 KiB L1d; kc x nc B block (4 MiB) in L3.
  return {GemmKernel::Avx512, kMR, kNR, 24 * kMR, 256, 4096, kernel_avx512<kMR>,
          "avx512 14x32 packed"};
}

}  // namespace lm::cpu::detail
