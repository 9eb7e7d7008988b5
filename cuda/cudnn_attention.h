// cuDNN's fused ("flash") attention, the optional fast path of scaled_dot_product_attention on
// CUDA (LIBRAMIL_CUDA_ATTENTION=cudnn). ops/attention.cpp decides when it applies and falls back
// to the hand-written kernels of cuda/attention.cu otherwise; docs/cuda.md lists the rules.
//
// It uses cuDNN's backend graph API with its single-operation SDPA descriptors
// (CUDNN_BACKEND_OPERATION_SDPA_FWD_DESCRIPTOR since cuDNN 9.13, ..._BWD_ since 9.17): one
// operation graph per direction and shape, the heuristics' first engine configuration that
// finalizes, plans cached per (device, shape, direction). cuDNN's attention runs on 16-bit
// inputs: q, k, v, out, dout and the gradients are bfloat16 here (float32 accumulation inside
// cuDNN), the statistics (per-row log-sum-exp of the scaled scores) float32.
//
// libcudnn is dlopen'ed on first use (cuda/library.h): LIBRAMIL_CUDNN_LIBRARY (a path) if set,
// then libcudnn.so.<major> on the default search path, then the directory CMake found cuDNN in.
// Building needs only cuDNN's graph header (cudnn_graph.h); without it the build still succeeds
// and every call throws CudnnUnavailable ("built without cuDNN headers").
#pragma once
#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "tensor/tensor.h"

namespace lm::cuda {

// Thrown when cuDNN cannot take a call at all (no headers at build time, library not found,
// runtime too old, no engine for the shape): the caller may take another path. Failures while
// running a plan are plain std::runtime_error.
struct CudnnUnavailable : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The sizes of one attention call: q (B, H, Lq, d), k (B, H, Lk, d), v (B, H, Lk, dv).
struct SdpaShape {
  int64_t B = 0, H = 0, Lq = 0, Lk = 0, d = 0, dv = 0;
};

// cuDNN versions (cudnnGetVersion) that have the SDPA forward / backward operations.
constexpr int64_t kCudnnSdpaForwardVersion = 91300, kCudnnSdpaBackwardVersion = 91700;

// Why this build's cuDNN path does not take a call of this shape and dtype ("" if it does):
// float32 only (computed in bfloat16), no mask, d and dv multiples of 8 and at most 128, every
// size >= 1. Host logic only; the runtime can still refuse (CudnnUnavailable).
std::string cudnn_sdpa_unsupported(const SdpaShape& s, DType dtype, bool has_mask);

// The loaded cuDNN's version (e.g. 91900), loading the library on first use; throws
// CudnnUnavailable naming the reason when it cannot be loaded.
int64_t cudnn_version();

// The dims of the tensors of one SDPA operation (4-d each, packed strides); a test can pass
// mismatched ones to see cuDNN refuse them.
struct SdpaDims {
  std::array<int64_t, 4> q, k, v, o;
};
SdpaDims sdpa_dims(const SdpaShape& s);

// Builds and finalizes only the tensor and operation descriptors of the forward (with the
// statistics output when `stats`) or the backward: no handle and no GPU needed. Returns "" or
// "<step>: <cuDNN status>" for the first step that fails.
std::string cudnn_sdpa_check_operation(const SdpaDims& dims, bool backward, bool stats);

// Makes sure a plan exists for this shape and direction on `device` (loading the library,
// checking its version, building and caching the plan); throws CudnnUnavailable with the
// reason when cuDNN cannot take it. The forward / backward below do the same on their own;
// calling this first lets a caller decide on a fallback before anything runs.
void cudnn_sdpa_prepare(const Device& device, const SdpaShape& s, bool backward, bool stats);

// out = softmax(q k^T * scale) v. q (B, H, Lq, d), k (B, H, Lk, d), v (B, H, Lk, dv) packed
// bfloat16 on one CUDA device; out packed bfloat16 (B, H, Lq, dv); stats, when defined, packed
// float32 (B, H, Lq, 1) receives the log-sum-exp of each row of q k^T * scale.
void cudnn_sdpa_forward(const Tensor& q, const Tensor& k, const Tensor& v, double scale, Tensor& out,
                        Tensor& stats);

// The gradients of the forward above: from q, k, v, out, dout (bfloat16) and stats (float32)
// to dq, dk, dv (packed bfloat16, all three defined).
void cudnn_sdpa_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& dout,
                         const Tensor& stats, double scale, Tensor& dq, Tensor& dk, Tensor& dv);

}  // namespace lm::cuda
