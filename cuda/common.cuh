// Internal helpers shared by the cuda/*.cu files (never included by host-only code):
// error checking, the device guard, launch sizes; with cuda/device_math.cuh (float/double math
// overloads) and cuda/block_reduce.cuh (the deterministic warp-shuffle / block reductions every
// reduction-style kernel uses).
//
// Determinism: a block reduction combines each thread's partial in a fixed tree (warp
// shuffles, then one warp over the per-warp partials in shared memory). With a fixed
// blockDim the same inputs always give the same bits; no kernel here uses atomics.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "cuda/device.h"
#include "cuda/block_reduce.cuh"
#include "cuda/device_math.cuh"
#include "tensor/tensor.h"

namespace lm::cuda {

// Throws std::runtime_error naming `what` when `err` is not cudaSuccess.
inline void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess)
    throw std::runtime_error(std::string("CUDA error in ") + what + ": " + cudaGetErrorName(err) + " (" +
                             cudaGetErrorString(err) + ")");
}
// Checks the last kernel launch (launch-configuration errors; execution errors surface at the
// next synchronising call).
inline void check_launch(const char* kernel) { check(cudaGetLastError(), kernel); }

// The stream every kernel of this backend is launched on (see device.h).
cudaStream_t current_stream(int device);

// Makes `device` current for the guard's lifetime and restores the previous one after.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    check(cudaGetDevice(&prev_), "cudaGetDevice");
    if (prev_ != device) check(cudaSetDevice(device), "cudaSetDevice");
    changed_ = prev_ != device;
  }
  explicit DeviceGuard(const Tensor& t) : DeviceGuard(t.device().index) {}
  ~DeviceGuard() {
    if (changed_) cudaSetDevice(prev_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int prev_ = 0;
  bool changed_ = false;
};

// Entry-point preamble of every kernel wrapper: the backend is registered and `t`'s device is
// current for the scope (usage: `KernelScope scope(x);`).
struct KernelScope {
  explicit KernelScope(const Tensor& t) : guard((ensure_registered(), t.device().index)), stream(current_stream(t.device().index)) {}
  DeviceGuard guard;
  cudaStream_t stream;
};

constexpr int kThreads = 256;  // default block size (a multiple of 32)

// Blocks for a 1-d grid-stride loop over n items (capped; the kernels loop).
inline unsigned grid_for(int64_t n, int threads = kThreads) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  if (b > 65535LL * 32) b = 65535LL * 32;
  return (unsigned)b;
}
// Blocks for one-block-per-row kernels (they loop over rows with a stride of gridDim.x).
inline unsigned grid_rows(int64_t rows) {
  if (rows < 1) return 1;
  return (unsigned)(rows > 65535LL * 32 ? 65535LL * 32 : rows);
}

}  // namespace lm::cuda
