// The GEMM kernels of cuda/gemm.cu, in a header so that the standalone kernel study
// cuda/dev/gemm.cu runs exactly the library's code (it is compiled by plain nvcc without the
// library). Self-contained: CUDA headers only, no tensor/ or error-checking code; launchers
// only enqueue, and the caller checks cudaGetLastError(). Needs C++17.
//
// Row-major convention of cuda/gemm.h (alpha = 1, beta = 0): C(M,N) = op(A)(M,K) op(B)(K,N),
//   A: (M, K) with leading dimension lda, or (K, M) when ta
//   B: (K, N) with leading dimension ldb, or (N, K) when tb
//   C: (M, N) with leading dimension ldc; written, never read (K == 0 gives zeros).
//
// 1. gemm_tiled_kernel<T> (float / double, SIMT): a block computes a 64 x 64 tile of C; per
//    step it stages a 64 x 16 tile of op(A) and a 16 x 64 tile of op(B) in shared memory
//    (loaded so that consecutive threads read consecutive addresses for either transpose), and
//    each of its 16 x 16 threads accumulates a 4 x 4 register block (rows ty + 16 i, columns
//    tx + 16 j) in the input dtype, like the CPU sgemm.
//
// 2. gemm_tc_kernel<T, TA, TB> (tensor cores via nvcuda::wmma, sm_80+): T = float runs TF32
//    (m16n16k8, inputs rounded to TF32 with cvt.rna), T = __nv_bfloat16 runs BF16 (m16n16k16);
//    both accumulate and write float32.
//    - Block tile 128 x 128 of C, K step 32, 256 threads = 8 warps as 2 (M) x 4 (N); a warp
//      owns a 64 x 32 warp tile = 4 x 2 accumulator fragments of 16 x 16 (64 floats/thread).
//    - Shared tiles keep the global layout of each operand, so global loads are coalesced 16-byte
//      vectors and shared stores are plain copies: op(A) is staged as (128 m x 32 k) when A is
//      row-major and as (32 k x 128 m) when ta (then read as a col_major matrix_a fragment);
//      likewise op(B) as (32 k x 128 n), or (128 n x 32 k) read as col_major when tb.
//    - Rows are padded (32-wide rows by 4 floats / 8 bf16, 128-wide rows by 8 elements) so
//      that the 8 x 4 lane pattern of a fragment load hits 32 different banks, and every
//      fragment pointer stays 32-byte aligned as wmma requires.
//    - Register prefetch: the next K step's global loads are issued before the current step's
//      MMAs, then written to shared memory after the barrier (one shared buffer).
//    - TF32 rounding (wmma::__float_to_tf32) happens once per element when the tile is written
//      to shared memory, instead of once per fragment load (each element is loaded into
//      fragments by 2 or 4 warps); the values the MMAs see are the same.
//    - Edges: elements outside M, N, K are loaded as zeros (scalar loads when a 16-byte vector
//      could cross the edge or is misaligned), so any M, N, K works. A fragment that lies fully
//      inside C goes straight to global memory (store_matrix_sync) when C is 32-byte aligned
//      and ldc a multiple of 4; otherwise it is staged through shared memory and written with
//      guarded scalar stores.
//
// tests/test_cuda_emulated.cpp runs both kernels on the CPU (tests/cuda_emulator.h emulates
// the wmma fragments warp-collectively), with the grids and flags of the launch plans below.
#pragma once
#ifndef LM_CUDA_EMULATION  // tests/cuda_emulator.h provides the CUDA names on the CPU
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <mma.h>
#endif

#include <cstdint>
#include <type_traits>

#include "device_math.cuh"  // LM_CUDA_NS

namespace LM_CUDA_NS::gemm_kernels {

// ---- 1. tiled SIMT kernel -------------------------------------------------------------------
constexpr int kTileM = 64, kTileN = 64, kTileK = 16;
constexpr int kThreadsX = 16, kThreadsY = 16;  // 256 threads
constexpr int kRegM = kTileM / kThreadsY, kRegN = kTileN / kThreadsX;  // 4 x 4 per thread

// A: (M, K) or (K, M) when ta; B: (K, N) or (N, K) when tb; C: (M, N), leading dim ldc.
// 1-d grid over the tiles of C (tiles_n tiles per row of tiles), grid-stride.
template <class T>
__global__ void __launch_bounds__(kThreadsX* kThreadsY)
    gemm_tiled_kernel(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* __restrict__ A, int64_t lda,
                      const T* __restrict__ B, int64_t ldb, T* __restrict__ C, int64_t ldc, int64_t tiles_m,
                      int64_t tiles_n) {
  __shared__ T As[kTileK][kTileM + 1];  // As[k][m] = op(A)(row0 + m, k0 + k)
  __shared__ T Bs[kTileK][kTileN + 1];  // Bs[k][n] = op(B)(k0 + k, col0 + n)
  const int tid = threadIdx.x;
  const int tx = tid % kThreadsX, ty = tid / kThreadsX;
  const int nthreads = kThreadsX * kThreadsY;
  for (int64_t tile = blockIdx.x; tile < tiles_m * tiles_n; tile += gridDim.x) {
    const int64_t row0 = (tile / tiles_n) * kTileM, col0 = (tile % tiles_n) * kTileN;
    T acc[kRegM][kRegN];
#pragma unroll
    for (int i = 0; i < kRegM; ++i)
#pragma unroll
      for (int j = 0; j < kRegN; ++j) acc[i][j] = (T)0;
    for (int64_t k0 = 0; k0 < K; k0 += kTileK) {
      for (int idx = tid; idx < kTileM * kTileK; idx += nthreads) {
        int m, k;
        if (!ta) { m = idx / kTileK; k = idx % kTileK; }  // A row-major (M, K): k fastest
        else { k = idx / kTileM; m = idx % kTileM; }      // A stored (K, M): m fastest
        const int64_t gm = row0 + m, gk = k0 + k;
        T v = (T)0;
        if (gm < M && gk < K) v = ta ? A[gk * lda + gm] : A[gm * lda + gk];
        As[k][m] = v;
      }
      for (int idx = tid; idx < kTileK * kTileN; idx += nthreads) {
        int k, n;
        if (!tb) { k = idx / kTileN; n = idx % kTileN; }  // B row-major (K, N): n fastest
        else { n = idx / kTileK; k = idx % kTileK; }      // B stored (N, K): k fastest
        const int64_t gk = k0 + k, gn = col0 + n;
        T v = (T)0;
        if (gk < K && gn < N) v = tb ? B[gn * ldb + gk] : B[gk * ldb + gn];
        Bs[k][n] = v;
      }
      __syncthreads();
#pragma unroll
      for (int k = 0; k < kTileK; ++k) {
        T a[kRegM], b[kRegN];
#pragma unroll
        for (int i = 0; i < kRegM; ++i) a[i] = As[k][ty + kThreadsY * i];
#pragma unroll
        for (int j = 0; j < kRegN; ++j) b[j] = Bs[k][tx + kThreadsX * j];
#pragma unroll
        for (int i = 0; i < kRegM; ++i)
#pragma unroll
          for (int j = 0; j < kRegN; ++j) acc[i][j] += a[i] * b[j];
      }
      __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < kRegM; ++i) {
      const int64_t gm = row0 + ty + kThreadsY * i;
      if (gm >= M) continue;
#pragma unroll
      for (int j = 0; j < kRegN; ++j) {
        const int64_t gn = col0 + tx + kThreadsX * j;
        if (gn < N) C[gm * ldc + gn] = acc[i][j];
      }
    }
  }
}

// Launch geometry of the tiled kernel: one block per tile of C (grid-stride past 2^30 tiles).
struct TiledPlan {
  int64_t tiles_m, tiles_n;
  unsigned blocks;
};
inline TiledPlan tiled_plan(int64_t M, int64_t N) {
  const int64_t tiles_m = (M + kTileM - 1) / kTileM, tiles_n = (N + kTileN - 1) / kTileN;
  const int64_t tiles = tiles_m * tiles_n;
  return {tiles_m, tiles_n, (unsigned)(tiles < (1LL << 30) ? tiles : (1LL << 30))};
}

#ifndef LM_CUDA_EMULATION
// Enqueues the tiled kernel on `s` (M, N > 0; the caller checks the launch).
template <class T>
inline void launch_gemm_tiled(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B,
                              int64_t ldb, T* C, int64_t ldc, cudaStream_t s) {
  const TiledPlan p = tiled_plan(M, N);
  gemm_tiled_kernel<T><<<p.blocks, kThreadsX * kThreadsY, 0, s>>>(ta, tb, M, N, K, A, lda, B, ldb, C, ldc, p.tiles_m,
                                                                  p.tiles_n);
}
#endif

// ---- 2. tensor-core kernel (TF32 / BF16 via wmma) ---------------------------------------------
constexpr int kTcBM = 128, kTcBN = 128, kTcBK = 32;  // block tile of C, K step
constexpr int kTcWarpsN = 4;                         // warps: 2 along M x 4 along N
constexpr int kTcThreads = 256;
constexpr int kTcWM = 64, kTcWN = 32;                // warp tile
constexpr int kTcFragsM = kTcWM / 16, kTcFragsN = kTcWN / 16;  // 4 x 2 fragments of 16 x 16
static_assert(kTcBM == 2 * kTcWM && kTcBN == kTcWarpsN * kTcWN && kTcThreads == 8 * 32, "warp layout");

// Leading dimension (elements) of a shared tile whose rows hold `cols` elements of `bytes` each.
__host__ __device__ constexpr int tc_ld(int cols, int bytes) { return cols + (bytes == 4 && cols == kTcBK ? 4 : 8); }
// Shared elements per operand: the larger of its two layouts (BM == BN).
__host__ __device__ constexpr int tc_smem_elems(int bytes) {
  return kTcBM * tc_ld(kTcBK, bytes) > kTcBK * tc_ld(kTcBM, bytes) ? kTcBM * tc_ld(kTcBK, bytes)
                                                                     : kTcBK * tc_ld(kTcBM, bytes);
}
static_assert(kTcBN == kTcBM, "tc_smem_elems assumes square block tiles");

// Per input type: wmma precision tag and the K of one MMA.
template <class T> struct TcTraits;
template <> struct TcTraits<float> {
  using Prec = nvcuda::wmma::precision::tf32;
  static constexpr int kFK = 8;
};
template <> struct TcTraits<__nv_bfloat16> {
  using Prec = __nv_bfloat16;
  static constexpr int kFK = 16;
};

// float -> TF32 (round to nearest, ties away: cvt.rna), the rounding the MMAs then see.
__device__ __forceinline__ float tc_round(float x) {
#if (defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800) || defined(LM_CUDA_EMULATION)
  return nvcuda::wmma::__float_to_tf32(x);
#else
  return x;
#endif
}

// One R x C tile (C contiguous in global memory) of a matrix G with leading dimension ld, moved
// global -> registers (load) -> shared memory with leading dimension LD (store). Elements at
// rows >= rmax or columns >= cmax are zeros. `vec`: G is 16-byte aligned and ld and cmax are
// multiples of the vector width, so a 16-byte vector is either fully inside or fully outside.
template <class T, int R, int C, int LD>
struct TcTileLoader {
  static constexpr int kVec = 16 / (int)sizeof(T);  // elements per 16-byte vector
  static constexpr int kVecsPerRow = C / kVec;
  static constexpr int kPerThread = R * C / kVec / kTcThreads;
  static_assert((R * C) % (kVec * kTcThreads) == 0 && C % kVec == 0 && LD % kVec == 0, "tile shape");
  uint4 reg[kPerThread];

  __device__ __forceinline__ void load(const T* __restrict__ G, int64_t ld, int64_t r0, int64_t c0, int64_t rmax,
                                       int64_t cmax, bool vec) {
#pragma unroll
    for (int i = 0; i < kPerThread; ++i) {
      const int v = threadIdx.x + i * kTcThreads;
      const int64_t gr = r0 + v / kVecsPerRow, gc = c0 + (v % kVecsPerRow) * kVec;
      reg[i] = make_uint4(0u, 0u, 0u, 0u);
      if (gr >= rmax) continue;
      if (vec) {
        if (gc < cmax) reg[i] = *reinterpret_cast<const uint4*>(G + gr * ld + gc);
      } else {
        T* e = reinterpret_cast<T*>(&reg[i]);
#pragma unroll
        for (int j = 0; j < kVec; ++j)
          if (gc + j < cmax) e[j] = G[gr * ld + gc + j];
      }
    }
  }

  __device__ __forceinline__ void store(T* S) {
#pragma unroll
    for (int i = 0; i < kPerThread; ++i) {
      const int v = threadIdx.x + i * kTcThreads;
      const int r = v / kVecsPerRow, c = (v % kVecsPerRow) * kVec;
      if constexpr (std::is_same<T, float>::value) {
        float* e = reinterpret_cast<float*>(&reg[i]);
#pragma unroll
        for (int j = 0; j < 4; ++j) e[j] = tc_round(e[j]);
      }
      *reinterpret_cast<uint4*>(S + r * LD + c) = reg[i];
    }
  }
};

// C(M,N) float32 = op(A) op(B), A and B of type T (float: TF32 MMAs; __nv_bfloat16: BF16 MMAs).
// TA / TB: the transposes (compile time: they fix the shared layouts and fragment layouts).
// 1-d grid-stride loop over the tiles of C (tiles_n per row of tiles). vec_a / vec_b: see
// TcTileLoader; direct_c: C is 32-byte aligned and ldc % 4 == 0 (whole fragments may be stored
// straight to global memory).
template <class T, bool TA, bool TB>
__global__ void __launch_bounds__(kTcThreads)
    gemm_tc_kernel(int64_t M, int64_t N, int64_t K, const T* __restrict__ A, int64_t lda, const T* __restrict__ B,
                   int64_t ldb, float* __restrict__ C, int64_t ldc, int64_t tiles_n, int64_t tiles, bool vec_a,
                   bool vec_b, bool direct_c) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  __trap();  // tensor-core TF32 / BF16 MMAs need sm_80+ (the host side refuses older GPUs)
#else
  namespace wmma = nvcuda::wmma;
  using Prec = typename TcTraits<T>::Prec;
  constexpr int FK = TcTraits<T>::kFK;
  constexpr int kBytes = (int)sizeof(T);
  // Shared layouts: A as (BM m x BK k) or, when TA, (BK k x BM m); B as (BK k x BN n) or, when
  // TB, (BN n x BK k).
  constexpr int LDA = TA ? tc_ld(kTcBM, kBytes) : tc_ld(kTcBK, kBytes);
  constexpr int LDB = TB ? tc_ld(kTcBK, kBytes) : tc_ld(kTcBN, kBytes);
  constexpr int kSmem = tc_smem_elems(kBytes);
  static_assert((size_t)kSmem * sizeof(T) >= 8 * 256 * sizeof(float), "epilogue staging must fit in As");
  using LoaderA = std::conditional_t<TA, TcTileLoader<T, kTcBK, kTcBM, LDA>, TcTileLoader<T, kTcBM, kTcBK, LDA>>;
  using LoaderB = std::conditional_t<TB, TcTileLoader<T, kTcBN, kTcBK, LDB>, TcTileLoader<T, kTcBK, kTcBN, LDB>>;
  using LayoutA = std::conditional_t<TA, wmma::col_major, wmma::row_major>;
  using LayoutB = std::conditional_t<TB, wmma::col_major, wmma::row_major>;

  __shared__ __align__(128) T As[kSmem];
  __shared__ __align__(128) T Bs[kSmem];

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int wm = warp / kTcWarpsN, wn = warp % kTcWarpsN;  // warp tile (wm, wn) of the block tile

  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const int64_t row0 = (tile / tiles_n) * kTcBM, col0 = (tile % tiles_n) * kTcBN;
    wmma::fragment<wmma::accumulator, 16, 16, FK, float> acc[kTcFragsM][kTcFragsN];
#pragma unroll
    for (int i = 0; i < kTcFragsM; ++i)
#pragma unroll
      for (int j = 0; j < kTcFragsN; ++j) wmma::fill_fragment(acc[i][j], 0.0f);

    LoaderA la;
    LoaderB lb;
    // Global coordinates of the tiles at K offset k0 (rows, columns in the stored layout).
    auto load_tiles = [&](int64_t k0) {
      if (TA) la.load(A, lda, k0, row0, K, M, vec_a);
      else la.load(A, lda, row0, k0, M, K, vec_a);
      if (TB) lb.load(B, ldb, col0, k0, N, K, vec_b);
      else lb.load(B, ldb, k0, col0, K, N, vec_b);
    };
    if (K > 0) load_tiles(0);
    for (int64_t k0 = 0; k0 < K; k0 += kTcBK) {
      la.store(As);
      lb.store(Bs);
      __syncthreads();
      if (k0 + kTcBK < K) load_tiles(k0 + kTcBK);  // in flight during the MMAs below
#pragma unroll
      for (int kk = 0; kk < kTcBK; kk += FK) {
        wmma::fragment<wmma::matrix_a, 16, 16, FK, Prec, LayoutA> fa[kTcFragsM];
        wmma::fragment<wmma::matrix_b, 16, 16, FK, Prec, LayoutB> fb[kTcFragsN];
#pragma unroll
        for (int i = 0; i < kTcFragsM; ++i) {
          const int m = wm * kTcWM + i * 16;
          wmma::load_matrix_sync(fa[i], TA ? As + kk * LDA + m : As + m * LDA + kk, LDA);
        }
#pragma unroll
        for (int j = 0; j < kTcFragsN; ++j) {
          const int n = wn * kTcWN + j * 16;
          wmma::load_matrix_sync(fb[j], TB ? Bs + n * LDB + kk : Bs + kk * LDB + n, LDB);
        }
#pragma unroll
        for (int i = 0; i < kTcFragsM; ++i)
#pragma unroll
          for (int j = 0; j < kTcFragsN; ++j) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
      }
      __syncthreads();
    }

    // Epilogue. As is free here (the loop ended with a barrier); each warp stages through its
    // own 16 x 16 float slice of it.
    float* stage = reinterpret_cast<float*>(As) + warp * 256;
#pragma unroll
    for (int i = 0; i < kTcFragsM; ++i) {
#pragma unroll
      for (int j = 0; j < kTcFragsN; ++j) {
        const int64_t gm = row0 + wm * kTcWM + i * 16, gn = col0 + wn * kTcWN + j * 16;
        if (gm >= M || gn >= N) continue;  // warp-uniform
        if (direct_c && gm + 16 <= M && gn + 16 <= N) {
          wmma::store_matrix_sync(C + gm * ldc + gn, acc[i][j], (unsigned)ldc, wmma::mem_row_major);
        } else {
          wmma::store_matrix_sync(stage, acc[i][j], 16, wmma::mem_row_major);
          __syncwarp();
          for (int e = lane; e < 256; e += 32) {
            const int r = e / 16, c = e % 16;
            if (gm + r < M && gn + c < N) C[(gm + r) * ldc + gn + c] = stage[e];
          }
          __syncwarp();
        }
      }
    }
    __syncthreads();  // the next tile overwrites As
  }
#endif
}

// Launch plan of the tensor-core kernel: grid and the kernel's vector / direct-store flags.
// The contiguous dimension of each stored operand bounds its vectors: K for row-major A, M
// when ta; N for row-major B, K when tb.
struct TcPlan {
  int64_t tiles_n, tiles;
  unsigned blocks;
  bool vec_a, vec_b, direct_c;
};
template <class T>
inline TcPlan tc_plan(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B,
                      int64_t ldb, const float* C, int64_t ldc) {
  constexpr int kVec = 16 / (int)sizeof(T);
  auto aligned16 = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  TcPlan p;
  p.vec_a = aligned16(A) && lda % kVec == 0 && (ta ? M : K) % kVec == 0;
  p.vec_b = aligned16(B) && ldb % kVec == 0 && (tb ? K : N) % kVec == 0;
  p.direct_c = reinterpret_cast<uintptr_t>(C) % 32 == 0 && ldc % 4 == 0;
  const int64_t tiles_m = (M + kTcBM - 1) / kTcBM;
  p.tiles_n = (N + kTcBN - 1) / kTcBN;
  p.tiles = tiles_m * p.tiles_n;
  p.blocks = (unsigned)(p.tiles < (1LL << 30) ? p.tiles : (1LL << 30));
  return p;
}

#ifndef LM_CUDA_EMULATION
// Enqueues the tensor-core kernel on `s` (M, N > 0; sm_80+; the caller checks the launch).
// T = float: TF32 inputs; T = __nv_bfloat16: BF16 inputs; C is float32 either way.
template <class T>
inline void launch_gemm_tc(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B,
                           int64_t ldb, float* C, int64_t ldc, cudaStream_t s) {
  const TcPlan p = tc_plan(ta, tb, M, N, K, A, lda, B, ldb, C, ldc);
#define LM_TC_LAUNCH(TA_, TB_)                                                                                 \
  gemm_tc_kernel<T, TA_, TB_><<<p.blocks, kTcThreads, 0, s>>>(M, N, K, A, lda, B, ldb, C, ldc, p.tiles_n, p.tiles, \
                                                              p.vec_a, p.vec_b, p.direct_c)
  if (!ta && !tb) LM_TC_LAUNCH(false, false);
  else if (!ta && tb) LM_TC_LAUNCH(false, true);
  else if (ta && !tb) LM_TC_LAUNCH(true, false);
  else LM_TC_LAUNCH(true, true);
#undef LM_TC_LAUNCH
}
#endif

}  // namespace LM_CUDA_NS::gemm_kernels
