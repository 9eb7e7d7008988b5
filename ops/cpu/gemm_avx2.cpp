// AVX2 + FMA SGEMM micro-kernel (see gemm.cpp for the blocking scheme around it).
//
// Register tile: 6 rows x 16 columns of C = 6 x 2 ymm accumulators (8 floats each).
// Per k step:
//   b0, b1 <- Bp[k, 0:8], Bp[k, 8:16]              (2 aligned vector loads)
//   for i < 6:  a = broadcast(Ap[k, i]);  c[i][0] += a * b0;  c[i][1] += a * b1
// 12 accumulators + 2 B vectors + 1 broadcast = 15 of the 16 ymm registers.
//
// Compiled with a per-function target attribute, so this file builds without -march flags;
// gemm.cpp only calls it after __builtin_cpu_supports("avx2") and ("fma").
#include "ops/cpu/gemm.h"
#include "ops/cpu/isa.h"

#if LM_X86  // x86 only: gemm.cpp never asks for this kernel elsewhere
#include <immintrin.h>

namespace lm::cpu::detail {
namespace {

#define LM_AVX2_TARGET __attribute__((target("avx2,fma")))

constexpr int kMR = 6;
constexpr int kNR = 16;

// Ap: (kc, 6) packed A panel.  Bp: (kc, 16) packed B panel, 64-byte aligned.
// C: (6, 16) tile of the output, row stride ldc; C = alpha * Ap^T Bp + beta * C.
LM_AVX2_TARGET void kernel_avx2(int64_t kc, const float* __restrict Ap,
                                const float* __restrict Bp, float* C, int64_t ldc, float alpha,
                                float beta) {
  __m256 c0[kMR], c1[kMR];  // c0[i] = C[i, 0:8], c1[i] = C[i, 8:16]
#pragma GCC unroll 8
  for (int i = 0; i < kMR; ++i) {
    c0[i] = _mm256_setzero_ps();
    c1[i] = _mm256_setzero_ps();
  }

  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_load_ps(Bp);
    const __m256 b1 = _mm256_load_ps(Bp + 8);
#pragma GCC unroll 8
    for (int i = 0; i < kMR; ++i) {
      const __m256 a = _mm256_broadcast_ss(Ap + i);
      c0[i] = _mm256_fmadd_ps(a, b0, c0[i]);
      c1[i] = _mm256_fmadd_ps(a, b1, c1[i]);
    }
    Ap += kMR;
    Bp += kNR;
  }

  const __m256 va = _mm256_set1_ps(alpha);
  if (beta == 0.0f) {
#pragma GCC unroll 8
    for (int i = 0; i < kMR; ++i) {
      _mm256_storeu_ps(C + i * ldc, _mm256_mul_ps(va, c0[i]));
      _mm256_storeu_ps(C + i * ldc + 8, _mm256_mul_ps(va, c1[i]));
    }
  } else {
    const __m256 vb = _mm256_set1_ps(beta);
#pragma GCC unroll 8
    for (int i = 0; i < kMR; ++i) {
      float* c = C + i * ldc;
      _mm256_storeu_ps(c, _mm256_fmadd_ps(va, c0[i], _mm256_mul_ps(vb, _mm256_loadu_ps(c))));
      _mm256_storeu_ps(c + 8,
                       _mm256_fmadd_ps(va, c1[i], _mm256_mul_ps(vb, _mm256_loadu_ps(c + 8))));
    }
  }
}

}  // namespace

KernelSpec avx2_kernel_spec() {
  // mc x kc A block (~288 KiB) in L2; kc x 16 B micro-panel (16 KiB) in L1d; B block in L3.
  return {GemmKernel::Avx2, kMR, kNR, 48 * kMR, 256, 4096, kernel_avx2, "avx2 6x16 packed"};
}

}  // namespace lm::cpu::detail
#endif  // LM_X86
