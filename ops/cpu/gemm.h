// CPU matrix multiplication: our own packed, cache-blocked SGEMM (GotoBLAS/BLIS style) with
// AVX-512, AVX2+FMA and portable micro-kernels chosen at run time, plus a simple DGEMM used
// by float64 gradient checks. See gemm.cpp for the blocking scheme.
//
// Convention (row-major everywhere):
//   C(M,N) = alpha * op(A)(M,K) * op(B)(K,N) + beta * C
//   op(A) = A   (A stored M x K, leading dimension lda)   when !trans_a
//         = A^T (A stored K x M, leading dimension lda)   when  trans_a
//   op(B) = B   (B stored K x N, leading dimension ldb)   when !trans_b
//         = B^T (B stored N x K, leading dimension ldb)   when  trans_b
//   beta == 0 means C is not read (it may hold NaN or garbage).
// Both functions are safe to call from several threads at once; inside an OpenMP parallel
// region they run single-threaded.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>

namespace lm::cpu {

// A: (M, K) row-major, or (K, M) when trans_a.  B: (K, N), or (N, K) when trans_b.
// C: (M, N) row-major with leading dimension ldc.
void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
           const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
           int64_t ldc);

// A row epilogue: fn(ctx, r0, r1) is called once rows [r0, r1) of C are final (every K block,
// every column), while they are still in the cache, possibly from several threads at once for
// disjoint row ranges (then inside an OpenMP parallel region: fn should not expect to start
// threads of its own). Every row of C is passed exactly once.
struct RowEpilogue {
  void (*fn)(void* ctx, int64_t r0, int64_t r1);
  void* ctx;
};

// sgemm, then the epilogue over every row of C: the packed path calls it per A block (MC rows)
// right after that block's last K block, so a row-wise op on C (linear_layer_norm's LayerNorm +
// GELU) reads C from L2 instead of memory; the skinny forms, and products split over threads
// along N, call it once over all rows at the end.
void sgemm_rows(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                int64_t ldc, const RowEpilogue& epilogue);

// Same contract in float64 (straightforward blocked loops, OpenMP over rows of C).
void dgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha,
           const double* A, int64_t lda, const double* B, int64_t ldb, double beta,
           double* C, int64_t ldc);

// How many threads sgemm gives an M x N x K product: 1 inside a parallel region or for products
// too small to amortise waking the second core (callers with many small products, like conv2d's
// per-image GEMMs, parallelise over the products instead).
int gemm_threads(int64_t M, int64_t N, int64_t K);

// The micro-kernel families. Auto = best the CPU supports, unless the environment variable
// LIBRAMIL_GEMM_KERNEL=portable|avx2|avx512 forces one.
enum class GemmKernel { Auto, Portable, Avx2, Avx512 };

// Whether this CPU can run kernel k (Portable and Auto: always).
bool gemm_kernel_supported(GemmKernel k);

// sgemm with an explicit micro-kernel (tests use it to cover every code path).
// k must be supported (see gemm_kernel_supported); Auto behaves like sgemm.
void sgemm_with_kernel(GemmKernel k, bool trans_a, bool trans_b, int64_t M, int64_t N,
                       int64_t K, float alpha, const float* A, int64_t lda, const float* B,
                       int64_t ldb, float beta, float* C, int64_t ldc);

// Human-readable name of the kernel sgemm uses, e.g. "avx512 14x32 packed".
const char* sgemm_kernel_name();
const char* sgemm_kernel_name(GemmKernel k);

// ---- internals shared by gemm.cpp and the per-ISA gemm_*.cpp files ----------------------
namespace detail {

// 64-byte aligned float scratch that grows on demand (contents not kept when it grows).
struct AlignedBuffer {
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  std::unique_ptr<float, Free> data;
  size_t capacity = 0;  // in floats

  float* get(size_t n) {
    if (n > capacity) {
      const size_t bytes = ((n * sizeof(float) + 63) / 64) * 64;
      data.reset(static_cast<float*>(std::aligned_alloc(64, bytes)));
      if (!data) throw std::bad_alloc();
      capacity = bytes / sizeof(float);
    }
    return data.get();
  }
};

// The K-split form (gemm.cpp): how many chunks of K an M x N x K product is cut into, 1 when
// it is not split. Split: C of at most kSplitMaxC floats, K >= 2 kSplitChunkK and K >= 8 max(M,
// N); then the largest power of two <= min(kSplitMaxChunks, K / kSplitChunkK), at least 2, whose
// chunks - 1 partial Cs fit in kSplitMaxPartials floats (beyond 2 chunks), so chunks hold at
// least kSplitChunkK rows of K. A function of the shape only.
constexpr int64_t kSplitMaxC = int64_t(1) << 20;
constexpr int64_t kSplitChunkK = 2048;
constexpr int64_t kSplitMaxChunks = 16;
constexpr int64_t kSplitMaxPartials = int64_t(1) << 22;  // 16 MiB of scratch at most
int64_t k_split_chunks(int64_t M, int64_t N, int64_t K);
// C (M x N, leading dimension ldc) += partials[0] + partials[1] + ... + partials[count - 1], each
// a packed M x N block, added in that order for every element (so the same bits for any
// `threads`, which > 1 allows an OpenMP loop over rows). The K-split form's last step.
void add_partials(float* C, int64_t ldc, int64_t M, int64_t N, const float* partials, int64_t count,
                  int threads);

// A micro-kernel computes one MR x NR tile of C from packed panels:
//   Ap: (kc, MR) -- for each k, MR consecutive values op(A)(i0..i0+MR-1, k)
//   Bp: (kc, NR) -- for each k, NR consecutive values op(B)(k, j0..j0+NR-1)
//   C : (MR, NR) tile, row-major with leading dimension ldc
//   C = alpha * Ap^T Bp + beta * C, and C is not read when beta == 0.
using MicroKernel = void (*)(int64_t kc, const float* Ap, const float* Bp, float* C,
                             int64_t ldc, float alpha, float beta);

// Packing routines (layouts described in gemm.cpp, pack_a / pack_b):
//   PackA: A block op(A)(mc, kc) -> ceil(mc/MR) panels of (kc, MR), zero-padded rows.
//          A: (M, K) row-major, or (K, M) when trans_a; offset to the block's first element.
//   PackB: B block op(B)(kc, nc) -> ceil(nc/NR) panels of (kc, NR), zero-padded columns.
//          B: (K, N) row-major, or (N, K) when trans_b; offset to the block's first element.
using PackA = void (*)(bool trans_a, const float* A, int64_t lda, int64_t mc, int64_t kc,
                       float* Ap);
using PackB = void (*)(bool trans_b, const float* B, int64_t ldb, int64_t kc, int64_t nc,
                       float* Bp);

// A kernel family: register tile MR x NR, the cache blocks it is tuned for, and optional
// ISA-specific packing routines (nullptr = the portable ones in gemm.cpp).
struct KernelSpec {
  GemmKernel id;
  int mr, nr;          // register tile of C
  int64_t mc, kc, nc;  // cache blocks: A block (mc, kc) in L2, B block (kc, nc) in L3
  MicroKernel fn;
  const char* name;
  PackA pack_a = nullptr;
  PackB pack_b = nullptr;
};

// Skinny products, the large operand streamed without packing (gemm_skinny.h; tiles in
// gemm_skinny_avx512.cpp / gemm_skinny_avx2.cpp): return false when the shape is not one they
// handle. `threads` > 1 allows an OpenMP loop. Only called after checking the ISA's support;
// LIBRAMIL_GEMM_SKINNY=0 turns them off. x86 builds only.
bool sgemm_skinny_avx512(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                         int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc, int threads);
bool sgemm_skinny_avx2(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                       int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc, int threads);

// Defined in gemm_avx512.cpp / gemm_avx2.cpp; compiled with per-function target attributes,
// so only call them after checking __builtin_cpu_supports. x86 builds only (LM_X86, isa.h).
KernelSpec avx512_kernel_spec();
KernelSpec avx2_kernel_spec();

}  // namespace detail
}  // namespace lm::cpu
