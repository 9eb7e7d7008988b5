// Packed, cache-blocked SGEMM in the GotoBLAS / BLIS style.
//
//   C(M,N) = alpha * op(A)(M,K) * op(B)(K,N) + beta * C        (all row-major)
//
// Loop nest of one thread (gemm_serial), outermost first:
//
//   for jc in [0,N) step NC:                 B block  op(B)[pc:pc+kc, jc:jc+nc]
//     for pc in [0,K) step KC:                 packed once into Bp  -> lives in L3
//       pack_b  -> Bp: nc/NR micro-panels, each (kc, NR)
//       for ic in [0,M) step MC:             A block  op(A)[ic:ic+mc, pc:pc+kc]
//         pack_a -> Ap: mc/MR micro-panels, each (kc, MR)        -> lives in L2
//         for jr in [0,nc) step NR:          one B micro-panel (kc, NR) -> stays in L1
//           for ir in [0,mc) step MR:        one A micro-panel streamed from L2
//             micro-kernel: C[ic+ir : +MR, jc+jr : +NR] (+)= Ap_panel^T * Bp_panel
//
// The micro-kernel keeps the whole MR x NR tile of C in vector registers for the full kc
// loop: per k it loads NR/W vectors of B (W = 16 floats for AVX-512, 8 for AVX2), broadcasts
// MR scalars of A and issues MR*NR/W fused multiply-adds. With the AVX-512 14x32 tile that is
// 28 accumulators + 2 B vectors + 1 broadcast = 31 of the 32 zmm registers.
//
// Packing handles both transposes (so no transposed copy of a whole matrix is made) and pads
// edge micro-panels with zeros, so the micro-kernel always runs a full tile; partial tiles at
// the right/bottom edge of C are computed into a small scratch tile and copied out. The
// portable packers below copy one float at a time; a kernel family may supply faster ones
// (gemm_avx512.cpp packs with 16x16 in-register transposes).
// beta is applied on the first K block only (later K blocks accumulate with beta = 1).
//
// Parallelism: the M x N output is cut into one contiguous slab per thread (along M or N,
// whichever has more register tiles), and each thread runs gemm_serial on its slab with its
// own thread_local packing buffers; no barriers, no shared mutable state. Small problems and
// calls made inside an OpenMP parallel region run on the calling thread only.
//
// K-split form: a small C with a long K (a Linear layer's weight gradient over a bag, dW =
// gy^T x, 512x512x16000 tA) is cut along K into a fixed number of chunks (k_split_chunks, a
// function of the shape alone): chunk 0 goes into C, chunk c > 0 into its own partial C, and
// the partials are added to C in chunk order. Threads take whole chunks (or share one chunk's
// slabs when there are more threads than chunks), so each streams its own part of both
// operands once, where slabs along M would each pack all of op(B) from memory (512x512x16000
// tA: 42-43 ms against 48-49 ms on two AVX-512 cores).
//
// Every form's blocking and summation order depend on the shape only, never on the thread
// count, so C is bit-identical for any number of threads.
//
// Row epilogue (sgemm_rows): after the last K block of an A block, at the last N block, rows
// [ic, ic+mc) of C are final and still in L2: the caller's row-wise op runs on them there.
#include "ops/cpu/gemm.h"
#include "ops/cpu/isa.h"

#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

namespace lm::cpu {
namespace {

using detail::KernelSpec;

// ---- portable micro-kernel ------------------------------------------------------------
// Plain C++: the compiler auto-vectorises the NR-wide inner loop with whatever the baseline
// ISA offers (SSE2 on x86-64). Register tile 4 x 16.
constexpr int kPortableMR = 4;
constexpr int kPortableNR = 16;

// Ap: (kc, 4) packed A panel.  Bp: (kc, 16) packed B panel.  C: (4, 16) tile, stride ldc.
void kernel_portable(int64_t kc, const float* Ap, const float* Bp, float* C, int64_t ldc,
                     float alpha, float beta) {
  float acc[kPortableMR][kPortableNR] = {};
  for (int64_t k = 0; k < kc; ++k) {
    for (int i = 0; i < kPortableMR; ++i) {
      const float a = Ap[k * kPortableMR + i];
      for (int j = 0; j < kPortableNR; ++j) acc[i][j] += a * Bp[k * kPortableNR + j];
    }
  }
  for (int i = 0; i < kPortableMR; ++i) {
    float* c = C + i * ldc;
    if (beta == 0.0f) {
      for (int j = 0; j < kPortableNR; ++j) c[j] = alpha * acc[i][j];
    } else {
      for (int j = 0; j < kPortableNR; ++j) c[j] = alpha * acc[i][j] + beta * c[j];
    }
  }
}

KernelSpec portable_spec() {
  return {GemmKernel::Portable, kPortableMR, kPortableNR, 128, 256, 2048, kernel_portable,
          "portable 4x16 packed"};
}

// ---- kernel selection -----------------------------------------------------------------
// Below the process's ISA ceiling (ops/cpu/isa.h: the hardware, or LIBRAMIL_CPU_ISA).
bool cpu_has_avx512() { return isa_allows(CpuIsa::Avx512); }
bool cpu_has_avx2() { return isa_allows(CpuIsa::Avx2); }

KernelSpec spec_for(GemmKernel k);

// The kernel chosen for plain sgemm(): LIBRAMIL_GEMM_KERNEL if set (and supported), else the
// best one available. Decided once per process.
GemmKernel default_kernel() {
  static const GemmKernel chosen = [] {
    GemmKernel best = cpu_has_avx512() ? GemmKernel::Avx512
                      : cpu_has_avx2() ? GemmKernel::Avx2
                                       : GemmKernel::Portable;
    const char* env = std::getenv("LIBRAMIL_GEMM_KERNEL");
    if (env == nullptr || *env == '\0') return best;
    std::string s(env);
    GemmKernel want = s == "portable" ? GemmKernel::Portable
                      : s == "avx2"   ? GemmKernel::Avx2
                      : s == "avx512" ? GemmKernel::Avx512
                                      : GemmKernel::Auto;
    if (want == GemmKernel::Auto || !gemm_kernel_supported(want)) {
      std::fprintf(stderr, "libramil: LIBRAMIL_GEMM_KERNEL=%s unknown or unsupported, using %s\n",
                   env, spec_for(best).name);
      return best;
    }
    return want;
  }();
  return chosen;
}

KernelSpec spec_for(GemmKernel k) {
  switch (k) {
#if LM_X86
    case GemmKernel::Avx512: return detail::avx512_kernel_spec();
    case GemmKernel::Avx2: return detail::avx2_kernel_spec();
#else
    case GemmKernel::Avx512:  // never supported off x86 (gemm_kernel_supported)
    case GemmKernel::Avx2:
#endif
    case GemmKernel::Portable: return portable_spec();
    case GemmKernel::Auto: break;
  }
  return spec_for(default_kernel());
}

// ---- packing buffers --------------------------------------------------------------------
// One pair of detail::AlignedBuffer per thread (thread_local), so concurrent sgemm calls never
// share packing memory.
using detail::AlignedBuffer;
struct PackBuffers {
  AlignedBuffer a, b;
  AlignedBuffer partials;  // the K-split form's partial Cs, on the calling thread
};
PackBuffers& thread_pack_buffers() {
  thread_local PackBuffers buffers;
  return buffers;
}

// ---- packing ----------------------------------------------------------------------------
// pack_a: the A block op(A)[ic:ic+mc, pc:pc+kc] -> Ap as ceil(mc/MR) micro-panels, each
// (kc, MR): panel p holds, for every k, the MR values op(A)(ic + p*MR + i, pc + k), i < MR.
// Rows past mc are zero so the micro-kernel can always compute a full tile.
// A: (M, K) row-major, or (K, M) when trans_a; already offset to element op(A)(ic, pc).
void pack_a(bool trans_a, const float* A, int64_t lda, int64_t mc, int64_t kc, int mr,
            float* Ap) {
  for (int64_t p0 = 0; p0 < mc; p0 += mr) {
    const int64_t rows = std::min<int64_t>(mr, mc - p0);
    if (trans_a) {
      // op(A)(i, k) = A[k*lda + i]: the MR rows of a k-column are contiguous in memory.
      for (int64_t k = 0; k < kc; ++k) {
        const float* src = A + k * lda + p0;
        float* dst = Ap + k * mr;
        int64_t i = 0;
        for (; i < rows; ++i) dst[i] = src[i];
        for (; i < mr; ++i) dst[i] = 0.0f;
      }
    } else {
      // op(A)(i, k) = A[i*lda + k]: read each row contiguously, write with stride MR.
      for (int64_t i = 0; i < rows; ++i) {
        const float* src = A + (p0 + i) * lda;
        for (int64_t k = 0; k < kc; ++k) Ap[k * mr + i] = src[k];
      }
      for (int64_t i = rows; i < mr; ++i)
        for (int64_t k = 0; k < kc; ++k) Ap[k * mr + i] = 0.0f;
    }
    Ap += kc * mr;
  }
}

// pack_b: the B block op(B)[pc:pc+kc, jc:jc+nc] -> Bp as ceil(nc/NR) micro-panels, each
// (kc, NR): panel q holds, for every k, the NR values op(B)(pc + k, jc + q*NR + j), j < NR.
// Columns past nc are zero.
// B: (K, N) row-major, or (N, K) when trans_b; already offset to element op(B)(pc, jc).
void pack_b(bool trans_b, const float* B, int64_t ldb, int64_t kc, int64_t nc, int nr,
            float* Bp) {
  for (int64_t q0 = 0; q0 < nc; q0 += nr) {
    const int64_t cols = std::min<int64_t>(nr, nc - q0);
    if (trans_b) {
      // op(B)(k, j) = B[j*ldb + k]: read each stored row (a column of op(B)) contiguously.
      for (int64_t j = 0; j < cols; ++j) {
        const float* src = B + (q0 + j) * ldb;
        for (int64_t k = 0; k < kc; ++k) Bp[k * nr + j] = src[k];
      }
      for (int64_t j = cols; j < nr; ++j)
        for (int64_t k = 0; k < kc; ++k) Bp[k * nr + j] = 0.0f;
    } else {
      // op(B)(k, j) = B[k*ldb + j]: NR contiguous values per k.
      for (int64_t k = 0; k < kc; ++k) {
        const float* src = B + k * ldb + q0;
        float* dst = Bp + k * nr;
        int64_t j = 0;
        for (; j < cols; ++j) dst[j] = src[j];
        for (; j < nr; ++j) dst[j] = 0.0f;
      }
    }
    Bp += kc * nr;
  }
}

// ---- macro-kernel -----------------------------------------------------------------------
// Multiplies a packed A block (mc, kc) by a packed B block (kc, nc) into C (mc, nc), one
// MR x NR register tile at a time. Edge tiles go through a scratch tile.
// Ap: ceil(mc/MR) panels of (kc, MR).  Bp: ceil(nc/NR) panels of (kc, NR).
// C: (mc, nc) sub-matrix of the output, leading dimension ldc.
void macro_kernel(const KernelSpec& ks, int64_t mc, int64_t nc, int64_t kc, float alpha,
                  const float* Ap, const float* Bp, float beta, float* C, int64_t ldc) {
  alignas(64) float tile[16 * 64];  // scratch for partial tiles (MR*NR <= 16*64)
  const int mr = ks.mr, nr = ks.nr;
  for (int64_t jr = 0; jr < nc; jr += nr) {
    const int64_t cols = std::min<int64_t>(nr, nc - jr);
    const float* bp = Bp + (jr / nr) * nr * kc;
    for (int64_t ir = 0; ir < mc; ir += mr) {
      const int64_t rows = std::min<int64_t>(mr, mc - ir);
      const float* ap = Ap + (ir / mr) * mr * kc;
      float* c = C + ir * ldc + jr;
      if (rows == mr && cols == nr) {
        ks.fn(kc, ap, bp, c, ldc, alpha, beta);
        continue;
      }
      ks.fn(kc, ap, bp, tile, nr, alpha, 0.0f);  // tile = alpha * A*B
      for (int64_t i = 0; i < rows; ++i) {
        for (int64_t j = 0; j < cols; ++j) {
          const float v = tile[i * nr + j];
          c[i * ldc + j] = beta == 0.0f ? v : v + beta * c[i * ldc + j];
        }
      }
    }
  }
}

// ---- single-thread driver ---------------------------------------------------------------
// The five-loop nest described at the top of the file, on the calling thread.
// A: (M, K) or (K, M) when trans_a.  B: (K, N) or (N, K) when trans_b.  C: (M, N), ldc.
// ep (may be null): called for rows [row0 + ic, row0 + ic + mc) once they are final.
void gemm_serial(const KernelSpec& ks, bool trans_a, bool trans_b, int64_t M, int64_t N,
                 int64_t K, float alpha, const float* A, int64_t lda, const float* B,
                 int64_t ldb, float beta, float* C, int64_t ldc,
                 const RowEpilogue* ep = nullptr, int64_t row0 = 0) {
  const int mr = ks.mr, nr = ks.nr;
  const int64_t MC = ks.mc, KC = ks.kc, NC = ks.nc;
  PackBuffers& buf = thread_pack_buffers();
  const int64_t mc_max = std::min(MC, M), nc_max = std::min(NC, N), kc_max = std::min(KC, K);
  float* Ap = buf.a.get(((mc_max + mr - 1) / mr) * mr * kc_max);
  float* Bp = buf.b.get(((nc_max + nr - 1) / nr) * nr * kc_max);

  for (int64_t jc = 0; jc < N; jc += NC) {
    const int64_t nc = std::min(NC, N - jc);
    for (int64_t pc = 0; pc < K; pc += KC) {
      const int64_t kc = std::min(KC, K - pc);
      const float* b_blk = trans_b ? B + jc * ldb + pc : B + pc * ldb + jc;
      if (ks.pack_b)
        ks.pack_b(trans_b, b_blk, ldb, kc, nc, Bp);
      else
        pack_b(trans_b, b_blk, ldb, kc, nc, nr, Bp);
      const float beta_blk = pc == 0 ? beta : 1.0f;
      for (int64_t ic = 0; ic < M; ic += MC) {
        const int64_t mc = std::min(MC, M - ic);
        const float* a_blk = trans_a ? A + pc * lda + ic : A + ic * lda + pc;
        if (ks.pack_a)
          ks.pack_a(trans_a, a_blk, lda, mc, kc, Ap);
        else
          pack_a(trans_a, a_blk, lda, mc, kc, mr, Ap);
        macro_kernel(ks, mc, nc, kc, alpha, Ap, Bp, beta_blk, C + ic * ldc + jc, ldc);
        if (ep && jc + NC >= N && pc + KC >= K) ep->fn(ep->ctx, row0 + ic, row0 + ic + mc);
      }
    }
  }
}

// C = beta * C over an (M, N) block (beta == 0 writes zeros without reading C).
template <typename T>
void scale_c(int64_t M, int64_t N, T beta, T* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i) {
    T* c = C + i * ldc;
    if (beta == T(0)) {
      std::fill(c, c + N, T(0));
    } else if (beta != T(1)) {
      for (int64_t j = 0; j < N; ++j) c[j] *= beta;
    }
  }
}

// LIBRAMIL_GEMM_SKINNY=0 sends skinny shapes through the packed path as well.
[[maybe_unused]] bool skinny_enabled() {  // unused off x86
  static const bool on = [] {
    const char* e = std::getenv("LIBRAMIL_GEMM_SKINNY");
    return !(e && std::string(e) == "0");
  }();
  return on;
}

// ---- multi-thread driver ----------------------------------------------------------------
// Slabs split C along M when it has at least as many register tiles of rows as of columns.
bool slabs_split_m(const KernelSpec& ks, int64_t M, int64_t N) {
  return (M + ks.mr - 1) / ks.mr >= (N + ks.nr - 1) / ks.nr;
}

// Thread t of nt: the t-th contiguous slab of C's register tiles along M or N
// (slabs_split_m), on gemm_serial. Along M, ep runs on the slab's rows; along N the caller runs
// it once every slab is done.
void run_slab(const KernelSpec& ks, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
              float alpha, const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
              float* C, int64_t ldc, const RowEpilogue* ep, int t, int nt) {
  const bool split_m = slabs_split_m(ks, M, N);
  const int64_t tiles = split_m ? (M + ks.mr - 1) / ks.mr : (N + ks.nr - 1) / ks.nr;
  const int64_t t0 = tiles * t / nt, t1 = tiles * (t + 1) / nt;
  if (split_m) {
    const int64_t m0 = t0 * ks.mr, m1 = std::min(M, t1 * ks.mr);
    if (m1 > m0) {
      const float* a = trans_a ? A + m0 : A + m0 * lda;
      gemm_serial(ks, trans_a, trans_b, m1 - m0, N, K, alpha, a, lda, B, ldb, beta, C + m0 * ldc, ldc, ep, m0);
    }
  } else {
    const int64_t n0 = t0 * ks.nr, n1 = std::min(N, t1 * ks.nr);
    if (n1 > n0) {
      const float* b = trans_b ? B + n0 * ldb : B + n0;
      gemm_serial(ks, trans_a, trans_b, M, n1 - n0, K, alpha, A, lda, b, ldb, beta, C + n0, ldc);
    }
  }
}

// The K-split form (top of the file): `chunks` (> 1) chunks of K, chunk c = [K c / chunks,
// K (c + 1) / chunks). With nt >= chunks threads, chunk c is computed by threads
// [c g, c g + g), g = nt / chunks, as g slabs; with fewer, thread t takes chunks t, t + nt, ...
void sgemm_k_split(const KernelSpec& ks, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                   float alpha, const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
                   float* C, int64_t ldc, int64_t chunks) {
  const int64_t MN = M * N;
  float* partials = thread_pack_buffers().partials.get(static_cast<size_t>((chunks - 1) * MN));
  auto run_chunk = [&](int64_t c, int t, int nt) {
    const int64_t k0 = K * c / chunks, k1 = K * (c + 1) / chunks;
    const float* a = trans_a ? A + k0 * lda : A + k0;
    const float* b = trans_b ? B + k0 : B + k0 * ldb;
    if (c == 0)
      run_slab(ks, trans_a, trans_b, M, N, k1 - k0, alpha, a, lda, b, ldb, beta, C, ldc, nullptr, t, nt);
    else
      run_slab(ks, trans_a, trans_b, M, N, k1 - k0, alpha, a, lda, b, ldb, 0.0f, partials + (c - 1) * MN, N,
               nullptr, t, nt);
  };
  const int threads = gemm_threads(M, N, K);
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    if (nt >= chunks) {
      const int g = static_cast<int>(nt / chunks);
      if (t < g * chunks) run_chunk(t / g, t % g, g);
    } else {
      for (int64_t c = t; c < chunks; c += nt) run_chunk(c, 0, 1);
    }
  }
  detail::add_partials(C, ldc, M, N, partials, chunks - 1, threads);
}

// ep (may be null): the row epilogue of sgemm_rows, called for every row of C exactly once.
void sgemm_impl(const KernelSpec& ks, bool trans_a, bool trans_b, int64_t M, int64_t N,
                int64_t K, float alpha, const float* A, int64_t lda, const float* B,
                int64_t ldb, float beta, float* C, int64_t ldc, const RowEpilogue* ep = nullptr) {
  if (M <= 0) return;
  auto all_rows = [&] {
    if (ep) ep->fn(ep->ctx, 0, M);
  };
  if (N <= 0) return all_rows();
  if (K <= 0 || alpha == 0.0f) {
    scale_c(M, N, beta, C, ldc);
    return all_rows();
  }
#if LM_X86
  if (ks.id == GemmKernel::Avx512 && skinny_enabled() &&
      detail::sgemm_skinny_avx512(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, gemm_threads(M, N, K)))
    return all_rows();
  if (ks.id == GemmKernel::Avx2 && skinny_enabled() &&
      detail::sgemm_skinny_avx2(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, gemm_threads(M, N, K)))
    return all_rows();
#endif
  if (const int64_t chunks = detail::k_split_chunks(M, N, K); chunks > 1) {
    sgemm_k_split(ks, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, chunks);
    return all_rows();
  }
  const int64_t tiles = std::max((M + ks.mr - 1) / ks.mr, (N + ks.nr - 1) / ks.nr);
  const int threads = static_cast<int>(std::min<int64_t>(gemm_threads(M, N, K), tiles));
  if (threads <= 1) {
    gemm_serial(ks, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, ep);
    return;
  }
#pragma omp parallel num_threads(threads)
  run_slab(ks, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, ep, omp_get_thread_num(),
           omp_get_num_threads());
  if (!slabs_split_m(ks, M, N)) all_rows();  // a row is final only when every thread's columns are
}

}  // namespace

namespace detail {
void add_partials(float* C, int64_t ldc, int64_t M, int64_t N, const float* partials, int64_t count,
                  int threads) {
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1 && count > 0)
  for (int64_t i = 0; i < M; ++i) {
    float* __restrict c = C + i * ldc;
    for (int64_t p = 0; p < count; ++p) {
      const float* __restrict q = partials + p * M * N + i * N;
      for (int64_t j = 0; j < N; ++j) c[j] += q[j];
    }
  }
}

int64_t k_split_chunks(int64_t M, int64_t N, int64_t K) {
  if (M * N > kSplitMaxC || K < 2 * kSplitChunkK || K < 8 * std::max(M, N)) return 1;
  int64_t chunks = 2;
  while (chunks * 2 <= std::min(kSplitMaxChunks, K / kSplitChunkK) && (chunks * 2 - 1) * M * N <= kSplitMaxPartials)
    chunks *= 2;
  return chunks;
}
}  // namespace detail

int gemm_threads(int64_t M, int64_t N, int64_t K) {
  if (omp_in_parallel()) return 1;
  const double macs = double(M) * double(N) * double(K);
  if (macs < 4.0 * 1024.0 * 1024.0) return 1;  // too small to amortise waking the second core
  return std::max(1, omp_get_max_threads());
}

// ---- public API -------------------------------------------------------------------------
bool gemm_kernel_supported(GemmKernel k) {
  switch (k) {
    case GemmKernel::Avx512: return cpu_has_avx512();
    case GemmKernel::Avx2: return cpu_has_avx2();
    case GemmKernel::Portable:
    case GemmKernel::Auto: return true;
  }
  return false;
}

void sgemm_with_kernel(GemmKernel k, bool trans_a, bool trans_b, int64_t M, int64_t N,
                       int64_t K, float alpha, const float* A, int64_t lda, const float* B,
                       int64_t ldb, float beta, float* C, int64_t ldc) {
  if (!gemm_kernel_supported(k))
    throw std::runtime_error(std::string("sgemm: kernel not supported on this CPU: ") +
                             sgemm_kernel_name(k));
  const KernelSpec ks = spec_for(k);
  sgemm_impl(ks, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
           const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
           int64_t ldc) {
  static const KernelSpec ks = spec_for(default_kernel());
  sgemm_impl(ks, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void sgemm_rows(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                int64_t ldc, const RowEpilogue& epilogue) {
  static const KernelSpec ks = spec_for(default_kernel());
  sgemm_impl(ks, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, &epilogue);
}

const char* sgemm_kernel_name(GemmKernel k) { return spec_for(k).name; }

const char* sgemm_kernel_name() { return sgemm_kernel_name(GemmKernel::Auto); }

// ---- DGEMM ------------------------------------------------------------------------------
// Float64 is only used for gradient checks, so this is a plain blocked loop: scale C by
// beta, then for each (KB x NB) block of op(B) copy it into a contiguous buffer (which also
// undoes trans_b) and accumulate rows of C with a vectorisable j-loop. Rows of C are split
// across OpenMP threads.
void dgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha,
           const double* A, int64_t lda, const double* B, int64_t ldb, double beta,
           double* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  scale_c(M, N, beta, C, ldc);
  if (K <= 0 || alpha == 0.0) return;
  constexpr int64_t KB = 128, NB = 256;
  const bool parallel = gemm_threads(M, N, K) > 1;
  std::unique_ptr<double[]> bblk(new double[KB * NB]);  // (kb, nb) block of op(B)
  for (int64_t j0 = 0; j0 < N; j0 += NB) {
    const int64_t nb = std::min(NB, N - j0);
    for (int64_t k0 = 0; k0 < K; k0 += KB) {
      const int64_t kb = std::min(KB, K - k0);
      for (int64_t k = 0; k < kb; ++k)
        for (int64_t j = 0; j < nb; ++j)
          bblk[k * nb + j] = trans_b ? B[(j0 + j) * ldb + k0 + k] : B[(k0 + k) * ldb + j0 + j];
      const double* bp = bblk.get();
#pragma omp parallel for schedule(static) if (parallel)
      for (int64_t i = 0; i < M; ++i) {
        double* c = C + i * ldc + j0;
        for (int64_t k = 0; k < kb; ++k) {
          const double a = alpha * (trans_a ? A[(k0 + k) * lda + i] : A[i * lda + k0 + k]);
          const double* b = bp + k * nb;
          for (int64_t j = 0; j < nb; ++j) c[j] += a * b[j];
        }
      }
    }
  }
}

}  // namespace lm::cpu
