// Kernel study: float32 GEMM C(M,N) = A(M,K) op(B)(K,N), row-major (llm.c dev/cuda style): a
// CPU float64 reference, kernel versions 1..7, validation of each against the reference, then
// timing (ms, TFLOP/s, and the fraction of cuBLAS's time).
// Standalone program, not part of the library build. Compile and run (on a GPU machine):
//   nvcc -O3 -std=c++17 -arch=sm_90 -o /tmp/gemm_dev cuda/dev/gemm.cu -lcublas && /tmp/gemm_dev [version]
// (use -arch=sm_80 for A100; sm_80+ is needed for versions 3, 4, 6, 7). Versions 2, 3 and 4 are
// the library's own kernels: this file includes cuda/gemm_kernels.cuh, which cuda/gemm.cu
// includes too, so what is timed here is what LIBRAMIL_CUDA_GEMM=tiled|tensorcore and
// lm::cuda::gemm_bf16 run.
//
//   1: naive, one thread per output, float32 sum over K (no reuse).
//   2: library tiled SIMT kernel (64 x 64 block tiles, 4 x 4 register blocks, float32).
//   3: library tensor-core kernel, TF32 inputs (wmma m16n16k8, 128 x 128 x 32 block tiles,
//      8 warps of 64 x 32), float32 accumulate.
//   4: library tensor-core kernel, BF16 inputs (wmma m16n16k16), float32 accumulate and output;
//      A and B are converted to bf16 once before timing.
//   5: cuBLAS sgemm, default math mode (full float32; the library's default backend).
//   6: cuBLAS sgemm with CUBLAS_TF32_TENSOR_OP_MATH (what version 3 competes with).
//   7: cuBLAS GemmEx BF16 inputs, float32 compute and output (what version 4 competes with).
//
// Shapes: the issue's 8192x512x512 and 4096x4096x4096 (plain A B), the Libra-MIL linear-layer
// shapes 8000x56x512 and 8000x512x512 as x W^T (trans_b, like ops/linear), and an odd
// 1001x77x515 (edge tiles, unaligned rows: the scalar-load paths). Validation: every output must
// be finite (C is NaN-filled before each run) and 4096 sampled entries (the four corners plus
// pseudo-random ones) must match the float64 reference within atol = c * sqrt(K) (inputs are
// uniform in [-1, 1), so max|a| max|b| = 1):
//   float32 (1, 2, 5): c = 1e-5   (float32 sums: ~6e-8 * K / 3 for random signs)
//   TF32    (3, 6):    c = 5e-3   (inputs rounded to a 10-bit mantissa: ~4e-4 * sqrt(K) * rms(ab))
//   BF16    (4, 7):    c = 2e-2   (inputs rounded to an 8-bit mantissa: ~2e-3 * sqrt(K) * rms(ab))
#include <cublas_v2.h>
#include <cuda_bf16.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "../gemm_kernels.cuh"
#include "common.h"

namespace gk = lm::cuda::gemm_kernels;

#define CUBLAS_CHECK(call)                                                                        \
  do {                                                                                            \
    cublasStatus_t st_ = (call);                                                                  \
    if (st_ != CUBLAS_STATUS_SUCCESS) {                                                           \
      std::fprintf(stderr, "cuBLAS error %d at %s:%d\n", (int)st_, __FILE__, __LINE__);           \
      std::exit(1);                                                                               \
    }                                                                                             \
  } while (0)

constexpr int kVersions = 7;
const char* kNames[kVersions + 1] = {"",
                                     "naive (thread per output)",
                                     "tiled SIMT (library)",
                                     "tensor core TF32 (library)",
                                     "tensor core BF16 (library)",
                                     "cuBLAS fp32",
                                     "cuBLAS TF32",
                                     "cuBLAS BF16"};
const double kTolC[kVersions + 1] = {0, 1e-5, 1e-5, 5e-3, 2e-2, 1e-5, 5e-3, 2e-2};

struct Shape {
  int M, N, K;
  bool tb;  // B stored (N, K): C = A B^T (linear layer), else B (K, N)
};

// ---- CPU reference at sampled entries ---------------------------------------------------------
// A: (M, K); B: (K, N) or (N, K) when tb. Entries: the four corners, then pseudo-random.
struct Samples {
  std::vector<int> i, j;
  std::vector<double> ref;
};

Samples reference_samples(const Shape& s, const std::vector<float>& A, const std::vector<float>& B, int count) {
  Samples out;
  unsigned x = 12345;
  auto next = [&] {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return x;
  };
  for (int n = 0; n < count; ++n) {
    int i, j;
    if (n < 4) {
      i = (n & 1) ? s.M - 1 : 0;
      j = (n & 2) ? s.N - 1 : 0;
    } else {
      i = (int)(next() % (unsigned)s.M);
      j = (int)(next() % (unsigned)s.N);
    }
    double acc = 0;
    for (int k = 0; k < s.K; ++k)
      acc += (double)A[(size_t)i * s.K + k] * (double)(s.tb ? B[(size_t)j * s.K + k] : B[(size_t)k * s.N + j]);
    out.i.push_back(i);
    out.j.push_back(j);
    out.ref.push_back(acc);
  }
  return out;
}

// ---- version 1: naive -------------------------------------------------------------------------
// A: (M, K); B: (K, N) or (N, K) when tb; C: (M, N); all packed row-major.
__global__ void gemm_naive_kernel(int M, int N, int K, bool tb, const float* A, const float* B, float* C) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x, i = blockIdx.y * blockDim.y + threadIdx.y;
  if (i >= M || j >= N) return;
  float acc = 0.f;
  for (int k = 0; k < K; ++k) acc += A[(size_t)i * K + k] * (tb ? B[(size_t)j * K + k] : B[(size_t)k * N + j]);
  C[(size_t)i * N + j] = acc;
}

struct Buffers {
  const float* A;
  const float* B;
  const __nv_bfloat16* A16;
  const __nv_bfloat16* B16;
  float* C;
};

void run(int version, const Shape& s, const Buffers& b, cublasHandle_t fp32, cublasHandle_t tf32) {
  const int M = s.M, N = s.N, K = s.K;
  const int lda = K, ldb = s.tb ? K : N, ldc = N;
  const float one = 1.f, zero = 0.f;
  const cublasOperation_t opB = s.tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  switch (version) {
    case 1: {
      dim3 block(16, 16), grid(ceil_div(N, 16), ceil_div(M, 16));
      gemm_naive_kernel<<<grid, block>>>(M, N, K, s.tb, b.A, b.B, b.C);
      break;
    }
    case 2: gk::launch_gemm_tiled<float>(false, s.tb, M, N, K, b.A, lda, b.B, ldb, b.C, ldc, 0); break;
    case 3: gk::launch_gemm_tc<float>(false, s.tb, M, N, K, b.A, lda, b.B, ldb, b.C, ldc, 0); break;
    case 4: gk::launch_gemm_tc<__nv_bfloat16>(false, s.tb, M, N, K, b.A16, lda, b.B16, ldb, b.C, ldc, 0); break;
    // Row-major C = A op(B) is column-major C^T = op(B)^T A^T (see cuda/gemm.cu).
    case 5: CUBLAS_CHECK(cublasSgemm(fp32, opB, CUBLAS_OP_N, N, M, K, &one, b.B, ldb, b.A, lda, &zero, b.C, ldc)); break;
    case 6: CUBLAS_CHECK(cublasSgemm(tf32, opB, CUBLAS_OP_N, N, M, K, &one, b.B, ldb, b.A, lda, &zero, b.C, ldc)); break;
    case 7:
      CUBLAS_CHECK(cublasGemmEx(fp32, opB, CUBLAS_OP_N, N, M, K, &one, b.B16, CUDA_R_16BF, ldb, b.A16, CUDA_R_16BF,
                                lda, &zero, b.C, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
      break;
    default: std::fprintf(stderr, "unknown version %d\n", version); std::exit(1);
  }
  DEV_CHECK(cudaGetLastError());
}

// Every entry finite (C was NaN-filled) and the sampled entries within atol of the reference.
bool validate_samples(int version, const Shape& s, const float* d_C, const Samples& smp) {
  std::vector<float> got((size_t)s.M * s.N);
  DEV_CHECK(cudaMemcpy(got.data(), d_C, got.size() * sizeof(float), cudaMemcpyDeviceToHost));
  size_t nonfinite = 0;
  for (float v : got) nonfinite += !std::isfinite(v);
  const double atol = kTolC[version] * std::sqrt((double)s.K);
  double worst = 0;
  size_t worst_n = 0, bad = 0;
  for (size_t n = 0; n < smp.ref.size(); ++n) {
    const double g = got[(size_t)smp.i[n] * s.N + smp.j[n]];
    const double e = std::fabs(g - smp.ref[n]);
    if (!(e <= atol)) ++bad;
    if (!(e <= worst)) { worst = e; worst_n = n; }
  }
  const bool ok = bad == 0 && nonfinite == 0;
  std::printf("    v%d %-28s max |err| %.3e (atol %.2e) at (%d,%d) got %.7g ref %.7g%s%s\n", version, kNames[version],
              worst, atol, smp.i[worst_n], smp.j[worst_n], got[(size_t)smp.i[worst_n] * s.N + smp.j[worst_n]],
              smp.ref[worst_n], nonfinite ? "  NON-FINITE OUTPUTS" : "", ok ? "  ok" : "  FAIL");
  return ok;
}

int main(int argc, char** argv) {
  const int only = argc > 1 ? std::atoi(argv[1]) : 0;
  int dev = 0, major = 0;
  DEV_CHECK(cudaGetDevice(&dev));
  DEV_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  cudaDeviceProp prop;
  DEV_CHECK(cudaGetDeviceProperties(&prop, dev));
  std::printf("GEMM study on %s (sm_%d%d)\n", prop.name, prop.major, prop.minor);
  const bool tensor_cores = major >= 8;
  if (!tensor_cores) std::printf("compute capability < 8.0: versions 3, 4, 6, 7 skipped\n");

  cublasHandle_t h_fp32, h_tf32;
  CUBLAS_CHECK(cublasCreate(&h_fp32));
  CUBLAS_CHECK(cublasSetMathMode(h_fp32, CUBLAS_DEFAULT_MATH));
  CUBLAS_CHECK(cublasCreate(&h_tf32));
  CUBLAS_CHECK(cublasSetMathMode(h_tf32, CUBLAS_TF32_TENSOR_OP_MATH));

  const Shape shapes[] = {
      {8192, 512, 512, false}, {4096, 4096, 4096, false}, {8000, 56, 512, true}, {8000, 512, 512, true},
      {1001, 77, 515, false},  {1001, 77, 515, true},
  };
  bool all_ok = true;
  for (const Shape& s : shapes) {
    const double flop = 2.0 * s.M * s.N * s.K;
    std::printf("M=%d N=%d K=%d %s\n", s.M, s.N, s.K, s.tb ? "(C = A B^T)" : "(C = A B)");
    std::vector<float> A = random_vector((size_t)s.M * s.K, -1.f, 1.f, 1u + s.M);
    std::vector<float> B = random_vector((size_t)s.K * s.N, -1.f, 1.f, 7u + s.N);
    std::vector<__nv_bfloat16> A16(A.size()), B16(B.size());
    for (size_t i = 0; i < A.size(); ++i) A16[i] = __float2bfloat16(A[i]);
    for (size_t i = 0; i < B.size(); ++i) B16[i] = __float2bfloat16(B[i]);
    const Samples smp = reference_samples(s, A, B, 4096);
    Buffers b;
    float* dA = to_device(A);
    float* dB = to_device(B);
    __nv_bfloat16 *dA16 = nullptr, *dB16 = nullptr;
    DEV_CHECK(cudaMalloc(&dA16, A16.size() * sizeof(__nv_bfloat16)));
    DEV_CHECK(cudaMalloc(&dB16, B16.size() * sizeof(__nv_bfloat16)));
    DEV_CHECK(cudaMemcpy(dA16, A16.data(), A16.size() * sizeof(__nv_bfloat16), cudaMemcpyHostToDevice));
    DEV_CHECK(cudaMemcpy(dB16, B16.data(), B16.size() * sizeof(__nv_bfloat16), cudaMemcpyHostToDevice));
    float* dC = nullptr;
    DEV_CHECK(cudaMalloc(&dC, (size_t)s.M * s.N * sizeof(float)));
    b.A = dA; b.B = dB; b.A16 = dA16; b.B16 = dB16; b.C = dC;

    double ms[kVersions + 1] = {};
    for (int v = 1; v <= kVersions; ++v) {
      // cuBLAS fp32 (5) always runs: the other versions are reported as fractions of it.
      if (only && v != only && v != 5) continue;
      if (!tensor_cores && (v == 3 || v == 4 || v == 6 || v == 7)) continue;
      DEV_CHECK(cudaMemset(dC, 0xff, (size_t)s.M * s.N * sizeof(float)));  // NaN
      run(v, s, b, h_fp32, h_tf32);
      DEV_CHECK(cudaDeviceSynchronize());
      all_ok &= validate_samples(v, s, dC, smp);
      const int repeats = v == 1 ? 3 : (flop > 1e11 ? 10 : 30);
      ms[v] = time_ms([&] { run(v, s, b, h_fp32, h_tf32); }, repeats);
    }
    for (int v = 1; v <= kVersions; ++v) {
      if (ms[v] <= 0) continue;
      const double tflops = flop / (ms[v] * 1e-3) / 1e12;
      std::printf("    v%d %-28s %9.4f ms %7.2f TFLOP/s", v, kNames[v], ms[v], tflops);
      if (ms[5] > 0) std::printf("  %.3f of cuBLAS fp32", ms[5] / ms[v]);  // speed fraction: >1 is faster
      if (v == 3 && ms[6] > 0) std::printf(", %.3f of cuBLAS TF32", ms[6] / ms[v]);
      if (v == 4 && ms[7] > 0) std::printf(", %.3f of cuBLAS BF16", ms[7] / ms[v]);
      std::printf("\n");
    }
    // machine-readable lines for tools/gpu_check.sh
    for (int v = 1; v <= kVersions; ++v)
      if (ms[v] > 0)
        std::printf("BENCH gemm v%d %dx%dx%d%s ms=%.4f tflops=%.2f\n", v, s.M, s.N, s.K, s.tb ? "t" : "", ms[v],
                    flop / (ms[v] * 1e-3) / 1e12);
    DEV_CHECK(cudaFree(dA));
    DEV_CHECK(cudaFree(dB));
    DEV_CHECK(cudaFree(dA16));
    DEV_CHECK(cudaFree(dB16));
    DEV_CHECK(cudaFree(dC));
  }
  CUBLAS_CHECK(cublasDestroy(h_fp32));
  CUBLAS_CHECK(cublasDestroy(h_tf32));
  std::printf(all_ok ? "all versions match the CPU reference\n" : "SOME VERSIONS FAILED\n");
  return all_ok ? 0 : 1;
}
