// GEMM on the GPU (cuda/gemm.h): cuBLAS (default) and a hand-written tiled kernel, chosen by
// LIBRAMIL_CUDA_GEMM=cublas|tiled or set_gemm_backend. Both follow the row-major convention
// of ops/cpu/gemm.h with alpha = 1, beta = 0.
//
// cuBLAS is column-major: a row-major (R, C) matrix with leading dimension ld is the
// column-major (C, R) matrix with the same ld. So row-major C = op(A) op(B) is computed as
// column-major C^T = op(B)^T op(A)^T, i.e. cublas<t>gemm(opB, opA, N, M, K, B, ldb, A, lda,
// C, ldc), with opX = T exactly when trans_x.
//
// cuBLAS is loaded with dlopen on first use, not linked: linking it maps libcublasLt into every
// process, ~200 MB of resident memory before any work, GPU or not (the CPU memory benchmarks
// saw it). Only the five entry points below are used.
//
// Tiled kernel: a block computes a 64 x 64 tile of C; per step it stages a 64 x 16 tile of
// op(A) and a 16 x 64 tile of op(B) in shared memory (loaded so that consecutive threads read
// consecutive addresses for either transpose), and each of its 16 x 16 threads accumulates a
// 4 x 4 register block (rows ty + 16 i, columns tx + 16 j) in the input dtype, like the CPU
// sgemm. Out-of-range elements are loaded as zeros, so any M, N, K (K = 0 gives zeros) works.
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <dlfcn.h>

#include <cstdlib>
#include <limits>
#include <mutex>
#include <string>

#include "cuda/common.cuh"
#include "cuda/gemm.h"
#include "cuda/kernels.h"

namespace lm::cuda {

namespace {

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

template <class T>
void gemm_tiled(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb,
                T* C, int64_t ldc, cudaStream_t s) {
  const int64_t tiles_m = (M + kTileM - 1) / kTileM, tiles_n = (N + kTileN - 1) / kTileN;
  const int64_t tiles = tiles_m * tiles_n;
  const unsigned blocks = (unsigned)(tiles < (1LL << 30) ? tiles : (1LL << 30));
  gemm_tiled_kernel<T><<<blocks, kThreadsX * kThreadsY, 0, s>>>(ta, tb, M, N, K, A, lda, B, ldb, C, ldc, tiles_m,
                                                                tiles_n);
  check_launch("gemm_tiled_kernel");
}

// ---- cuBLAS --------------------------------------------------------------------------------
constexpr int kMaxDevices = 64;

void check_cublas(cublasStatus_t st, const char* what) {
  if (st != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(std::string("cuBLAS error in ") + what + ": status " + std::to_string((int)st));
}

// The cuBLAS entry points, resolved from libcublas.so.<major> on first use (the directory of
// the CUDA toolkit we were built against is tried after the default search path).
struct CublasApi {
  decltype(&cublasCreate_v2) create = nullptr;
  decltype(&cublasSetMathMode) set_math_mode = nullptr;
  decltype(&cublasSetStream_v2) set_stream = nullptr;
  decltype(&cublasSgemm_v2) sgemm = nullptr;
  decltype(&cublasDgemm_v2) dgemm = nullptr;
};

const CublasApi& cublas_api() {
  static std::mutex mu;
  static CublasApi api;
  std::lock_guard<std::mutex> lock(mu);
  if (api.sgemm) return api;
  const std::string name = "libcublas.so." + std::to_string(CUBLAS_VER_MAJOR);
  void* lib = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
#ifdef LIBRAMIL_CUDA_LIBDIR
  if (!lib) lib = dlopen((std::string(LIBRAMIL_CUDA_LIBDIR) + "/" + name).c_str(), RTLD_NOW | RTLD_LOCAL);
#endif
  if (!lib)
    throw std::runtime_error("cannot load " + name + " (" + std::string(dlerror()) +
                             "); LIBRAMIL_CUDA_GEMM=tiled uses the hand-written GEMM instead");
  auto sym = [&](const char* n) {
    void* p = dlsym(lib, n);
    if (!p) throw std::runtime_error(name + " has no symbol " + n);
    return p;
  };
  CublasApi a;
  a.create = reinterpret_cast<decltype(a.create)>(sym("cublasCreate_v2"));
  a.set_math_mode = reinterpret_cast<decltype(a.set_math_mode)>(sym("cublasSetMathMode"));
  a.set_stream = reinterpret_cast<decltype(a.set_stream)>(sym("cublasSetStream_v2"));
  a.sgemm = reinterpret_cast<decltype(a.sgemm)>(sym("cublasSgemm_v2"));
  a.dgemm = reinterpret_cast<decltype(a.dgemm)>(sym("cublasDgemm_v2"));
  api = a;
  return api;
}

// One handle per device, created on first use and kept for the process lifetime.
cublasHandle_t cublas_handle(int device) {
  static std::mutex mu;
  static cublasHandle_t handles[kMaxDevices] = {};
  if (device < 0 || device >= kMaxDevices) throw std::runtime_error("cublas_handle: bad device index");
  std::lock_guard<std::mutex> lock(mu);
  if (!handles[device]) {
    check_cublas(cublas_api().create(&handles[device]), "cublasCreate");
    check_cublas(cublas_api().set_math_mode(handles[device], CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
  }
  return handles[device];
}

bool fits_int(int64_t v) { return v >= 0 && v <= (int64_t)std::numeric_limits<int>::max(); }

std::mutex& backend_mutex() {
  static std::mutex m;
  return m;
}
bool g_backend_set = false;
GemmBackend g_backend = GemmBackend::Cublas;

}  // namespace

const char* gemm_backend_name(GemmBackend backend) { return backend == GemmBackend::Tiled ? "tiled" : "cublas"; }

GemmBackend gemm_backend() {
  std::lock_guard<std::mutex> lock(backend_mutex());
  if (!g_backend_set) {
    const char* env = std::getenv("LIBRAMIL_CUDA_GEMM");
    std::string v = env ? env : "";
    if (v.empty() || v == "cublas") g_backend = GemmBackend::Cublas;
    else if (v == "tiled") g_backend = GemmBackend::Tiled;
    else throw std::invalid_argument("LIBRAMIL_CUDA_GEMM must be 'cublas' or 'tiled', got '" + v + "'");
    g_backend_set = true;
  }
  return g_backend;
}

void set_gemm_backend(GemmBackend backend) {
  std::lock_guard<std::mutex> lock(backend_mutex());
  g_backend = backend;
  g_backend_set = true;
}

void gemm_with(GemmBackend backend, Device device, DType dtype, bool trans_a, bool trans_b, int64_t M, int64_t N,
               int64_t K, const void* A, int64_t lda, const void* B, int64_t ldb, void* C, int64_t ldc) {
  ensure_registered();
  if (!device.is_cuda()) throw std::invalid_argument("cuda::gemm: device " + device.str() + " is not a CUDA device");
  if (dtype != DType::F32 && dtype != DType::F64)
    throw std::invalid_argument(std::string("cuda::gemm: float32 or float64 only, got ") + dtype_name(dtype));
  if (M < 0 || N < 0 || K < 0) throw std::invalid_argument("cuda::gemm: negative size");
  if (M == 0 || N == 0) return;
  DeviceGuard guard(device.index);
  cudaStream_t stream = current_stream(device.index);
  const bool use_cublas = backend == GemmBackend::Cublas && K > 0 && fits_int(M) && fits_int(N) && fits_int(K) &&
                          fits_int(lda) && fits_int(ldb) && fits_int(ldc);
  if (!use_cublas) {  // also K == 0 (zeros) and sizes beyond cuBLAS's int range
    if (dtype == DType::F32)
      gemm_tiled<float>(trans_a, trans_b, M, N, K, static_cast<const float*>(A), lda, static_cast<const float*>(B),
                        ldb, static_cast<float*>(C), ldc, stream);
    else
      gemm_tiled<double>(trans_a, trans_b, M, N, K, static_cast<const double*>(A), lda,
                         static_cast<const double*>(B), ldb, static_cast<double*>(C), ldc, stream);
    return;
  }
  cublasHandle_t h = cublas_handle(device.index);
  const CublasApi& api = cublas_api();
  check_cublas(api.set_stream(h, stream), "cublasSetStream");
  const cublasOperation_t opA = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t opB = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  // Column-major C^T (N, M) = op(B)^T (N, K) * op(A)^T (K, M).
  if (dtype == DType::F32) {
    const float one = 1.0f, zero = 0.0f;
    check_cublas(api.sgemm(h, opB, opA, (int)N, (int)M, (int)K, &one, static_cast<const float*>(B), (int)ldb,
                             static_cast<const float*>(A), (int)lda, &zero, static_cast<float*>(C), (int)ldc),
                 "cublasSgemm");
  } else {
    const double one = 1.0, zero = 0.0;
    check_cublas(api.dgemm(h, opB, opA, (int)N, (int)M, (int)K, &one, static_cast<const double*>(B), (int)ldb,
                             static_cast<const double*>(A), (int)lda, &zero, static_cast<double*>(C), (int)ldc),
                 "cublasDgemm");
  }
}

void gemm(Device device, DType dtype, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const void* A,
          int64_t lda, const void* B, int64_t ldb, void* C, int64_t ldc) {
  gemm_with(gemm_backend(), device, dtype, trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc);
}

}  // namespace lm::cuda
