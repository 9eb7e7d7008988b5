// Argument checks shared by all ops (each error names the op and the offending tensors),
// broadcasting rules, and the device dispatch seam.
#pragma once
#include <stdexcept>
#include <string>
#include <vector>

#include "autograd/engine.h"
#include "tensor/profiler.h"
#include "ops/work_counts.h"
#include "tensor/tensor.h"

namespace lm::ops_detail {

[[noreturn]] inline void fail(const char* op, const std::string& msg) {
  throw std::invalid_argument(std::string(op) + ": " + msg);
}

// Float32 or float64 (compute dtypes).
inline void check_float(const char* op, const Tensor& x) {
  if (!x.defined()) fail(op, "undefined tensor argument");
  if (!is_compute_float(x.dtype()))
    fail(op, std::string("expected a float32 or float64 tensor, got ") + x.str() + " (convert float16/bfloat16 with .to(DType::F32))");
}

inline void check_same(const char* op, const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype()) fail(op, "dtype mismatch: " + a.str() + " vs " + b.str());
  if (a.device() != b.device()) fail(op, "device mismatch: " + a.str() + " vs " + b.str());
}

inline void check_dim(const char* op, const Tensor& x, int64_t ndim, const char* what) {
  if (x.dim() != ndim)
    fail(op, std::string(what) + " must be " + std::to_string(ndim) + "-d, got " + x.str());
}

// NumPy broadcasting of two shapes; throws naming the op.
Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b);

// The strides that read `x` as if expanded to `out` (0 on broadcast dims).
Shape broadcast_strides(const Tensor& x, const Shape& out);

// Throws for devices this build cannot compute on.
inline void check_cpu_or_cuda(const char* op, const Tensor& x) {
#ifndef LIBRAMIL_WITH_CUDA
  if (!x.device().is_cpu()) fail(op, "tensor on " + x.device().str() + " but libramil was built without CUDA");
#endif
}

// A backward function for ops whose gradient is not implemented on some path.
// "<op>.<suffix>" as a stable string for profiler scopes, built only while profiling.
inline const char* prof_label(const char* op, const char* suffix) {
  return profiler::enabled() ? profiler::intern(std::string(op) + "." + suffix) : op;
}

[[noreturn]] inline void no_cuda(const char* op) {
  throw std::runtime_error(std::string(op) + ": no CUDA kernel in this build");
}

}  // namespace lm::ops_detail

// Device dispatch: `LM_DISPATCH(device, kernel_name, args...)` calls lm::cuda::kernel_name for
// CUDA tensors (declared in cuda/kernels.h with the same signature as the CPU kernel) and
// lm::cpu::kernel_name otherwise.
// Every dispatch is also a profiler scope (tensor/profiler.h) named after the kernel, or after
// `label` with LM_DISPATCH_NAMED (e.g. "gelu" rather than "unary_forward"). LM_DISPATCH_COUNTED
// also gives the scope the call's profiler::Work (FLOPs, bytes; ops/work_counts.h), an
// expression evaluated only while profiling.
#define LM_DISPATCH(dev, name, ...) LM_DISPATCH_NAMED(#name, dev, name, __VA_ARGS__)
#define LM_DISPATCH_NAMED(label, dev, name, ...) LM_DISPATCH_COUNTED(label, ::lm::profiler::Work{}, dev, name, __VA_ARGS__)
#ifdef LIBRAMIL_WITH_CUDA
#include "cuda/kernels.h"
#define LM_DISPATCH_COUNTED(label, work, dev, name, ...)                                                   \
  do {                                                                                                    \
    ::lm::profiler::Scope lm_prof_scope_(label, ::lm::profiler::enabled() ? (work) : ::lm::profiler::Work{}); \
    if ((dev).is_cuda()) ::lm::cuda::name(__VA_ARGS__);                                                    \
    else ::lm::cpu::name(__VA_ARGS__);                                                                    \
  } while (0)
#else
#define LM_DISPATCH_COUNTED(label, work, dev, name, ...)                                                   \
  do {                                                                                                    \
    ::lm::profiler::Scope lm_prof_scope_(label, ::lm::profiler::enabled() ? (work) : ::lm::profiler::Work{}); \
    if (!(dev).is_cpu()) ::lm::ops_detail::no_cuda(#name);                                                \
    ::lm::cpu::name(__VA_ARGS__);                                                                         \
  } while (0)
#endif
