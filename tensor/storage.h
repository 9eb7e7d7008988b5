// Reference-counted memory shared by a tensor and all its views. CPU memory is 64-byte
// aligned (one cache line, one AVX-512 register). Device memory is obtained through hooks
// that the CUDA backend registers at start-up, so this layer never includes CUDA headers.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "tensor/device.h"
#include "tensor/dtype.h"

namespace lm {

// What a non-CPU backend provides. Registered once by the backend (cuda/device_hooks.cpp).
struct DeviceHooks {
  std::function<void*(size_t nbytes, int device)> allocate;
  std::function<void(void* ptr, int device)> release;
  // Copies nbytes between host and device memory (either side may be the device).
  std::function<void(void* dst, Device dst_dev, const void* src, Device src_dev, size_t nbytes)> copy;
  std::function<int()> device_count;
  // Optional: converts n packed elements of dtype src_t at src to dtype dst_t at dst, both in
  // device memory of `device`, with the CPU's rounding (Tensor::to(DType) uses it for packed
  // device tensors; without it the conversion goes through the host).
  std::function<void(void* dst, DType dst_t, const void* src, DType src_t, int64_t n, int device)> convert;
  // Optional: z[i] = x[i] + y[i] for n packed float32 / float64 elements of dtype t (z may be
  // x: in place). add_same_shape(_inplace) use it for device tensors (autograd's gradient
  // accumulation); without it the sum goes through the host.
  std::function<void(void* z, const void* x, const void* y, DType t, int64_t n, int device)> add;
  // Optional: writes the elem_size-byte pattern (one element, already converted on the host)
  // to each of n packed elements at dst (Tensor::fill of a packed device tensor).
  std::function<void(void* dst, const void* pattern, size_t elem_size, int64_t n, int device)> fill;
  // Optional: dst[idx] = src[idx] for every index of `shape` (ndim dims), each side read or
  // written through its own element strides, elements of elem_size bytes, both in device
  // memory of `device` (clone / contiguous / copy_from of non-packed device tensors). Without
  // it such copies throw.
  std::function<void(void* dst, const int64_t* dst_strides, const void* src, const int64_t* src_strides,
                     const int64_t* shape, int ndim, size_t elem_size, int device)>
      copy_strided;
  // Optional: whether work on the current stream of `device` is being captured into a graph
  // (cuda/graph.h) right now. Nothing may read device memory back to the host then (the
  // capture would fail), so host-side checks of device values are skipped during a capture.
  std::function<bool(int device)> capturing;
};
void register_device_hooks(DeviceType type, DeviceHooks hooks);
const DeviceHooks* device_hooks(DeviceType type);  // nullptr when that backend is absent
// Throws a clear error when `device` cannot be used in this build / on this machine.
void check_device_available(Device device);
// True while `device`'s current stream is being captured into a CUDA graph (DeviceHooks::capturing).
bool device_capturing(Device device);

class Storage {
 public:
  Storage(size_t nbytes, Device device);
  // Wraps memory owned elsewhere (e.g. a memory-mapped file); `keep_alive` owns it.
  Storage(void* data, size_t nbytes, Device device, std::shared_ptr<void> keep_alive);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

  // Bytes currently held / the high-water mark of CPU tensor storage in this process.
  static int64_t cpu_bytes_in_use();
  static int64_t cpu_peak_bytes();
  static void reset_cpu_peak();

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
  bool owned_ = true;
  std::shared_ptr<void> keep_alive_;
};

}  // namespace lm
