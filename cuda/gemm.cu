// GEMM on the GPU (cuda/gemm.h): cuBLAS (default), a hand-written tiled kernel and a
// tensor-core (TF32) kernel, chosen by LIBRAMIL_CUDA_GEMM=cublas|tiled|tensorcore or
// set_gemm_backend; plus gemm_bf16 (BF16 inputs, tensor cores, float32 output). All follow the
// row-major convention of ops/cpu/gemm.h with alpha = 1, beta = 0.
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
// The hand-written kernels (tiled SIMT, tensor-core TF32 / BF16) live in cuda/gemm_kernels.cuh,
// which also documents their tiling; the kernel study cuda/dev/gemm.cu includes the same header.
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdlib>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <string>
#include <type_traits>
#include <vector>

#include "cuda/common.cuh"
#include "cuda/gemm.h"
#include "cuda/gemm_kernels.cuh"
#include "cuda/library.h"
#include "cuda/kernels.h"

namespace lm::cuda {

namespace {

using namespace gemm_kernels;  // gemm_tiled_kernel, gemm_tc_kernel and their launchers

template <class T>
void gemm_tiled(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb,
                T* C, int64_t ldc, cudaStream_t s) {
  launch_gemm_tiled<T>(ta, tb, M, N, K, A, lda, B, ldb, C, ldc, s);
  check_launch("gemm_tiled_kernel");
}

// Tensor-core MMAs (TF32, BF16) need compute capability 8.0+.
void require_tensor_cores(int device, const char* what) {
  int major = 0, minor = 0;
  check(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device), "cudaDeviceGetAttribute");
  check(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device), "cudaDeviceGetAttribute");
  if (major < 8)
    throw std::runtime_error(std::string(what) + ": tensor-core GEMM needs compute capability 8.0+, device " +
                             std::to_string(device) + " has " + std::to_string(major) + "." + std::to_string(minor));
}

template <class T>
void gemm_tc(int device, bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B,
             int64_t ldb, float* C, int64_t ldc, cudaStream_t s) {
  require_tensor_cores(device, std::is_same<T, float>::value ? "cuda::gemm (tensorcore)" : "cuda::gemm_bf16");
  launch_gemm_tc<T>(ta, tb, M, N, K, A, lda, B, ldb, C, ldc, s);
  check_launch("gemm_tc_kernel");
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

// A cuBLAS library by soname, from the default search path, then the toolkit's library
// directory we were built against.
std::vector<std::string> cuda_library_candidates(const std::string& soname) {
#ifdef LIBRAMIL_CUDA_LIBDIR
  return {soname, std::string(LIBRAMIL_CUDA_LIBDIR) + "/" + soname};
#else
  return {soname};
#endif
}
constexpr const char* kGemmHint = "LIBRAMIL_CUDA_GEMM=tiled uses the hand-written GEMM instead";

const CublasApi& cublas_api() {
  const auto candidates = cuda_library_candidates("libcublas.so." + std::to_string(CUBLAS_VER_MAJOR));
  return load_api<CublasApi>(candidates, kGemmHint, [](const CudaLibrary& lib, CublasApi& a) {
    LM_RESOLVE(lib, a.create, "cublasCreate_v2");
    LM_RESOLVE(lib, a.set_math_mode, "cublasSetMathMode");
    LM_RESOLVE(lib, a.set_stream, "cublasSetStream_v2");
    LM_RESOLVE(lib, a.sgemm, "cublasSgemm_v2");
    LM_RESOLVE(lib, a.dgemm, "cublasDgemm_v2");
  });
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

// ---- cuBLASLt ------------------------------------------------------------------------------
struct CublasLtApi {
  decltype(&cublasLtCreate) create = nullptr;
  decltype(&cublasLtMatmulDescCreate) desc_create = nullptr;
  decltype(&cublasLtMatmulDescDestroy) desc_destroy = nullptr;
  decltype(&cublasLtMatmulDescSetAttribute) desc_set = nullptr;
  decltype(&cublasLtMatrixLayoutCreate) layout_create = nullptr;
  decltype(&cublasLtMatrixLayoutDestroy) layout_destroy = nullptr;
  decltype(&cublasLtMatmulPreferenceCreate) pref_create = nullptr;
  decltype(&cublasLtMatmulPreferenceDestroy) pref_destroy = nullptr;
  decltype(&cublasLtMatmulPreferenceSetAttribute) pref_set = nullptr;
  decltype(&cublasLtMatmulAlgoGetHeuristic) heuristic = nullptr;
  decltype(&cublasLtMatmul) matmul = nullptr;
};

const CublasLtApi& cublaslt_api() {
  const auto candidates = cuda_library_candidates("libcublasLt.so." + std::to_string(CUBLAS_VER_MAJOR));
  return load_api<CublasLtApi>(candidates, kGemmHint, [](const CudaLibrary& lib, CublasLtApi& a) {
    LM_RESOLVE(lib, a.create, "cublasLtCreate");
    LM_RESOLVE(lib, a.desc_create, "cublasLtMatmulDescCreate");
    LM_RESOLVE(lib, a.desc_destroy, "cublasLtMatmulDescDestroy");
    LM_RESOLVE(lib, a.desc_set, "cublasLtMatmulDescSetAttribute");
    LM_RESOLVE(lib, a.layout_create, "cublasLtMatrixLayoutCreate");
    LM_RESOLVE(lib, a.layout_destroy, "cublasLtMatrixLayoutDestroy");
    LM_RESOLVE(lib, a.pref_create, "cublasLtMatmulPreferenceCreate");
    LM_RESOLVE(lib, a.pref_destroy, "cublasLtMatmulPreferenceDestroy");
    LM_RESOLVE(lib, a.pref_set, "cublasLtMatmulPreferenceSetAttribute");
    LM_RESOLVE(lib, a.heuristic, "cublasLtMatmulAlgoGetHeuristic");
    LM_RESOLVE(lib, a.matmul, "cublasLtMatmul");
  });
}

constexpr size_t kLtWorkspaceBytes = size_t(32) << 20;

// One cuBLASLt handle and workspace per device, made on first use and kept for the process
// lifetime (cudaMalloc'ed outside the caching allocator, before any graph capture needs it).
struct LtDevice {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
};
const LtDevice& cublaslt_device(int device) {
  static std::mutex mu;
  static LtDevice devices[kMaxDevices];
  if (device < 0 || device >= kMaxDevices) throw std::runtime_error("cublaslt_device: bad device index");
  std::lock_guard<std::mutex> lock(mu);
  LtDevice& d = devices[device];
  if (!d.handle) {
    check_cublas(cublaslt_api().create(&d.handle), "cublasLtCreate");
    check(cudaMalloc(&d.workspace, kLtWorkspaceBytes), "cudaMalloc (cuBLASLt workspace)");
  }
  return d;
}

// Frees cuBLASLt descriptors at scope exit.
struct LtDescriptors {
  const CublasLtApi& api;
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  ~LtDescriptors() {
    if (pref) api.pref_destroy(pref);
    if (c) api.layout_destroy(c);
    if (b) api.layout_destroy(b);
    if (a) api.layout_destroy(a);
    if (op) api.desc_destroy(op);
  }
};

// The largest power of two up to 256 that divides an address: cuBLASLt's heuristic assumes
// 256-byte aligned operands unless told otherwise, and an algorithm chosen under that
// assumption refuses (or misreads) a view that starts mid-allocation.
uint32_t lt_alignment(const void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  uint32_t al = 256;
  while (al > 1 && a % al != 0) al >>= 1;
  return al;
}

// The descriptors and the heuristic's algorithm for one problem shape.
struct LtPlan {
  explicit LtPlan(const CublasLtApi& api) : d{api} {}
  LtDescriptors d;
  cublasLtMatmulAlgo_t algo{};
};

// Row-major C = op(A) op(B) as the column-major C^T (N, M) = op(B)^T (N, K) op(A)^T (K, M), the
// same mapping as the cuBLAS call below; "first" / "second" are cuBLASLt's A / B operands.
// al_a, al_b, al_c: the operands' alignments (lt_alignment), passed to the heuristic.
std::unique_ptr<LtPlan> make_lt_plan(const CublasLtApi& api, const LtDevice& dev, bool f32, bool ta, bool tb, int64_t M,
                                     int64_t N, int64_t K, int64_t lda, int64_t ldb, int64_t ldc, uint32_t al_a,
                                     uint32_t al_b, uint32_t al_c) {
  auto p = std::make_unique<LtPlan>(api);
  LtDescriptors& d = p->d;
  const cudaDataType_t type = f32 ? CUDA_R_32F : CUDA_R_64F;
  check_cublas(api.desc_create(&d.op, f32 ? CUBLAS_COMPUTE_32F : CUBLAS_COMPUTE_64F, type), "cublasLtMatmulDescCreate");
  const cublasOperation_t op_first = tb ? CUBLAS_OP_T : CUBLAS_OP_N, op_second = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  check_cublas(api.desc_set(d.op, CUBLASLT_MATMUL_DESC_TRANSA, &op_first, sizeof op_first),
               "cublasLtMatmulDescSetAttribute");
  check_cublas(api.desc_set(d.op, CUBLASLT_MATMUL_DESC_TRANSB, &op_second, sizeof op_second),
               "cublasLtMatmulDescSetAttribute");
  // Stored (column-major) shapes: first = B as (N, K) or, when tb, (K, N); second = A as (K, M)
  // or, when ta, (M, K); C as (N, M).
  check_cublas(api.layout_create(&d.a, type, tb ? K : N, tb ? N : K, ldb), "cublasLtMatrixLayoutCreate");
  check_cublas(api.layout_create(&d.b, type, ta ? M : K, ta ? K : M, lda), "cublasLtMatrixLayoutCreate");
  check_cublas(api.layout_create(&d.c, type, N, M, ldc), "cublasLtMatrixLayoutCreate");
  check_cublas(api.pref_create(&d.pref), "cublasLtMatmulPreferenceCreate");
  const size_t ws = kLtWorkspaceBytes;
  check_cublas(api.pref_set(d.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws),
               "cublasLtMatmulPreferenceSetAttribute");
  // cuBLASLt's A is our B and its B our A; C and D are both our C.
  for (auto [attr, al] : {std::pair{CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, al_b},
                          std::pair{CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, al_a},
                          std::pair{CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, al_c},
                          std::pair{CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, al_c}})
    check_cublas(api.pref_set(d.pref, attr, &al, sizeof al), "cublasLtMatmulPreferenceSetAttribute");
  cublasLtMatmulHeuristicResult_t best{};
  int found = 0;
  check_cublas(api.heuristic(dev.handle, d.op, d.a, d.b, d.c, d.c, d.pref, 1, &best, &found),
               "cublasLtMatmulAlgoGetHeuristic");
  if (found < 1)
    throw std::runtime_error("cuBLASLt has no algorithm for M=" + std::to_string(M) + " N=" + std::to_string(N) +
                             " K=" + std::to_string(K));
  p->algo = best.algo;
  return p;
}

// Plans by (device, dtype, transposes, sizes, leading dimensions, alignments), made once and kept
// for the process (never destroyed: cuBLASLt's own state may be gone at exit). Past kLtMaxPlans
// shapes a call makes a plan and releases it.
constexpr size_t kLtMaxPlans = 4096;
using LtKey = std::tuple<int, bool, bool, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, uint32_t,
                         uint32_t, uint32_t>;

void gemm_cublaslt(int device, DType dtype, bool ta, bool tb, int64_t M, int64_t N, int64_t K, const void* A,
                   int64_t lda, const void* B, int64_t ldb, void* C, int64_t ldc, cudaStream_t stream) {
  const CublasLtApi& api = cublaslt_api();
  const LtDevice& dev = cublaslt_device(device);
  const bool f32 = dtype == DType::F32;
  const uint32_t al_a = lt_alignment(A), al_b = lt_alignment(B), al_c = lt_alignment(C);
  static std::mutex mu;
  static std::map<LtKey, LtPlan*> plans;
  const LtKey key{device, f32, ta, tb, M, N, K, lda, ldb, ldc, al_a, al_b, al_c};
  std::unique_ptr<LtPlan> local;
  const LtPlan* plan = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (auto it = plans.find(key); it != plans.end()) plan = it->second;
  }
  if (!plan) {
    local = make_lt_plan(api, dev, f32, ta, tb, M, N, K, lda, ldb, ldc, al_a, al_b, al_c);
    std::lock_guard<std::mutex> lock(mu);
    if (auto it = plans.find(key); it != plans.end()) plan = it->second;  // made meanwhile by another thread
    else if (plans.size() < kLtMaxPlans) plan = plans[key] = local.release();
    else plan = local.get();
  }
  const LtDescriptors& d = plan->d;
  if (f32) {
    const float one = 1.0f, zero = 0.0f;
    check_cublas(api.matmul(dev.handle, d.op, &one, B, d.a, A, d.b, &zero, C, d.c, C, d.c, &plan->algo,
                            dev.workspace, kLtWorkspaceBytes, stream),
                 "cublasLtMatmul");
  } else {
    const double one = 1.0, zero = 0.0;
    check_cublas(api.matmul(dev.handle, d.op, &one, B, d.a, A, d.b, &zero, C, d.c, C, d.c, &plan->algo,
                            dev.workspace, kLtWorkspaceBytes, stream),
                 "cublasLtMatmul");
  }
}

std::mutex& backend_mutex() {
  static std::mutex m;
  return m;
}
bool g_backend_set = false;
GemmBackend g_backend = GemmBackend::Cublas;

}  // namespace

const char* gemm_backend_name(GemmBackend backend) {
  switch (backend) {
    case GemmBackend::Cublas: return "cublas";
    case GemmBackend::Tiled: return "tiled";
    case GemmBackend::TensorCore: return "tensorcore";
    case GemmBackend::CublasLt: return "cublaslt";
  }
  return "?";
}

GemmBackend gemm_backend() {
  std::lock_guard<std::mutex> lock(backend_mutex());
  if (!g_backend_set) {
    const char* env = std::getenv("LIBRAMIL_CUDA_GEMM");
    std::string v = env ? env : "";
    if (v.empty() || v == "cublas") g_backend = GemmBackend::Cublas;
    else if (v == "tiled") g_backend = GemmBackend::Tiled;
    else if (v == "tensorcore") g_backend = GemmBackend::TensorCore;
    else if (v == "cublaslt") g_backend = GemmBackend::CublasLt;
    else
      throw std::invalid_argument("LIBRAMIL_CUDA_GEMM must be 'cublas', 'cublaslt', 'tiled' or 'tensorcore', got '" +
                                  v + "'");
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
  if (backend == GemmBackend::CublasLt && K > 0) {  // 64-bit sizes; K == 0 (zeros) below
    gemm_cublaslt(device.index, dtype, trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc, stream);
    return;
  }
  const bool use_cublas = backend == GemmBackend::Cublas && K > 0 && fits_int(M) && fits_int(N) && fits_int(K) &&
                          fits_int(lda) && fits_int(ldb) && fits_int(ldc);
  if (backend == GemmBackend::TensorCore && dtype == DType::F32) {  // TF32; any size, K == 0 gives zeros
    gemm_tc<float>(device.index, trans_a, trans_b, M, N, K, static_cast<const float*>(A), lda,
                   static_cast<const float*>(B), ldb, static_cast<float*>(C), ldc, stream);
    return;
  }
  // Tiled: the Tiled backend, float64 under TensorCore, K == 0 (zeros) and sizes beyond
  // cuBLAS's int range.
  if (!use_cublas) {
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

void gemm_bf16(Device device, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const void* A, int64_t lda,
               const void* B, int64_t ldb, float* C, int64_t ldc) {
  ensure_registered();
  if (!device.is_cuda())
    throw std::invalid_argument("cuda::gemm_bf16: device " + device.str() + " is not a CUDA device");
  if (M < 0 || N < 0 || K < 0) throw std::invalid_argument("cuda::gemm_bf16: negative size");
  if (M == 0 || N == 0) return;
  DeviceGuard guard(device.index);
  gemm_tc<__nv_bfloat16>(device.index, trans_a, trans_b, M, N, K, static_cast<const __nv_bfloat16*>(A), lda,
                         static_cast<const __nv_bfloat16*>(B), ldb, C, ldc, current_stream(device.index));
}

void gemm(Device device, DType dtype, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const void* A,
          int64_t lda, const void* B, int64_t ldb, void* C, int64_t ldc) {
  gemm_with(gemm_backend(), device, dtype, trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc);
}

}  // namespace lm::cuda
