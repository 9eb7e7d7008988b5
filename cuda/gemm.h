// Matrix multiplication on the GPU (cuda/gemm.cu): cuBLAS, or our hand-written tiled GEMM,
// chosen by a flag. No CUDA headers.
//
// Convention (the CPU's, ops/cpu/gemm.h, with alpha = 1 and beta = 0), row-major:
//   C(M,N) = op(A)(M,K) * op(B)(K,N)
//   A: (M, K) with leading dimension lda, or (K, M) when trans_a
//   B: (K, N) with leading dimension ldb, or (N, K) when trans_b
//   C: (M, N) with leading dimension ldc; written, never read (K == 0 gives zeros).
// All pointers are device memory of `device`; float32 or float64 (`dtype`). Asynchronous on
// the current stream. cuBLAS runs in its default (full float32, no TF32) math mode.
#pragma once
#include <cstdint>

#include "tensor/device.h"
#include "tensor/dtype.h"

namespace lm::cuda {

enum class GemmBackend { Cublas, Tiled };

// The backend gemm() uses: the environment variable LIBRAMIL_CUDA_GEMM=cublas|tiled (read
// once; default cublas; any other value throws), unless set_gemm_backend was called.
GemmBackend gemm_backend();
void set_gemm_backend(GemmBackend backend);
const char* gemm_backend_name(GemmBackend backend);

void gemm(Device device, DType dtype, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
          const void* A,  // A: (M, K) or (K, M) when trans_a, leading dimension lda
          int64_t lda,
          const void* B,  // B: (K, N) or (N, K) when trans_b, leading dimension ldb
          int64_t ldb,
          void* C,        // C: (M, N), leading dimension ldc
          int64_t ldc);

// gemm with an explicit backend (tests and benchmarks compare both).
void gemm_with(GemmBackend backend, Device device, DType dtype, bool trans_a, bool trans_b, int64_t M, int64_t N,
               int64_t K, const void* A, int64_t lda, const void* B, int64_t ldb, void* C, int64_t ldc);

}  // namespace lm::cuda
