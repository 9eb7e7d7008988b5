// Matrix multiplication on the GPU (cuda/gemm.cu): cuBLAS, cuBLASLt, our hand-written tiled
// GEMM, or our tensor-core (TF32) GEMM, chosen by a flag; and a BF16-input tensor-core GEMM. No CUDA headers.
//
// Convention (the CPU's, ops/cpu/gemm.h, with alpha = 1 and beta = 0), row-major:
//   C(M,N) = op(A)(M,K) * op(B)(K,N)
//   A: (M, K) with leading dimension lda, or (K, M) when trans_a
//   B: (K, N) with leading dimension ldb, or (N, K) when trans_b
//   C: (M, N) with leading dimension ldc; written, never read (K == 0 gives zeros).
// All pointers are device memory of `device`; float32 or float64 (`dtype`). Asynchronous on
// the current stream. cuBLAS runs in its default (full float32, no TF32) math mode.
//
// Backends (kernels and tiling: cuda/gemm_kernels.cuh):
//   Cublas      cuBLAS sgemm / dgemm, full precision (the default).
//   CublasLt    cuBLASLt matmul (libcublasLt.so.<major>, loaded on first use), compute type
//               32F / 64F (full precision, no TF32), the algorithm its heuristic ranks first,
//               with a 32 MiB workspace per device.
//   Tiled       hand-written SIMT kernel, 64 x 64 block tiles, 4 x 4 register blocks, computes
//               in the input dtype (float32 or float64).
//   TensorCore  float32: hand-written tensor-core kernel (nvcuda::wmma m16n16k8, TF32 inputs,
//               float32 accumulate), 128 x 128 block tiles, K step 32, 8 warps of 64 x 32.
//               float64: falls back to the Tiled kernel (tensor cores have no float64 path
//               here). Needs compute capability 8.0+ (throws otherwise).
// Precision of TensorCore: A and B are rounded to TF32 (10-bit mantissa, round to nearest,
// unit roundoff 2^-11 ~ 4.9e-4) before each product, so a result differs from the float32 GEMM
// by ~1e-3 relative per product, growing like sqrt(K) for random signs (accumulation stays
// float32). That is why it is opt-in and never the default: the op-table tolerances (1e-5)
// assume float32 products. Tests compare it to a float64 reference with an error bound
// derived from K and the input scale (tests/test_gemm.cpp).
#pragma once
#include <cstdint>

#include "tensor/device.h"
#include "tensor/dtype.h"

namespace lm::cuda {

enum class GemmBackend { Cublas, Tiled, TensorCore, CublasLt };

// The backend gemm() uses: the environment variable LIBRAMIL_CUDA_GEMM=cublas|cublaslt|tiled|tensorcore
// (read once; default cublas; any other value throws), unless set_gemm_backend was called.
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

// gemm with an explicit backend (tests and benchmarks compare them).
void gemm_with(GemmBackend backend, Device device, DType dtype, bool trans_a, bool trans_b, int64_t M, int64_t N,
               int64_t K, const void* A, int64_t lda, const void* B, int64_t ldb, void* C, int64_t ldc);

// BF16 inputs on tensor cores (nvcuda::wmma m16n16k16, float32 accumulate), float32 output:
// C = op(A) op(B) in the convention above, A and B holding bfloat16 (DType::BF16 storage, the
// upper 16 bits of a float32), C float32. Any M, N, K; compute capability 8.0+ (throws
// otherwise). Precision: inputs already are bf16 (8-bit mantissa), products are exact in float32
// and sums are float32, so against the bf16 values the error is float32 accumulation only;
// against the float32 values the inputs were rounded from it is ~2^-8 relative per product,
// ~1e-2 relative overall (the dev study and tests check 2e-2). Not behind any backend flag.
void gemm_bf16(Device device, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
               const void* A,  // bf16, (M, K) or (K, M) when trans_a, leading dimension lda
               int64_t lda,
               const void* B,  // bf16, (K, N) or (N, K) when trans_b, leading dimension ldb
               int64_t ldb,
               float* C,       // float32, (M, N), leading dimension ldc
               int64_t ldc);

}  // namespace lm::cuda
