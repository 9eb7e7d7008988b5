// CUDA strided copy: dst[idx] = src[idx] for every logical index of two same-shape,
// same-dtype tensors on the same device, each read / written through its own strides. This is
// the device-side transpose / contiguous(): Tensor::clone() / contiguous() / copy_from() of a
// non-packed CUDA tensor reach it through DeviceHooks::copy_strided (tensor/storage.h).
// Also here: dtype conversion on the device (Tensor::to(DType) of a packed CUDA tensor) and
// uploads through pinned staging buffers (cudaMemcpyAsync that overlaps device work).
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <mutex>

#include "cuda/common.cuh"
#include "cuda/copy.h"
#include "cuda/copy_kernels.cuh"
#include "cuda/kernels.h"

namespace lm::cuda {

using namespace copy_kernels;

namespace {

template <class E>
void launch_raw(int64_t n, const Index2& ix, const void* src, void* dst, cudaStream_t s) {
  strided_copy_kernel<E><<<grid_for(n), kThreads, 0, s>>>(n, ix, static_cast<const E*>(src), static_cast<E*>(dst));
  check_launch("strided_copy_kernel");
}

}  // namespace

void copy_strided_raw(void* dst, const int64_t* dst_strides, const void* src, const int64_t* src_strides,
                      const int64_t* shape, int ndim, size_t elem_size, int device) {
  ensure_registered();
  const Shape sh(shape, shape + ndim), ss(src_strides, src_strides + ndim), ds(dst_strides, dst_strides + ndim);
  int64_t n = 1;
  for (int64_t e : sh) n *= e;
  if (n == 0) return;
  DeviceGuard guard(device);
  cudaStream_t stream = current_stream(device);
  const Index2 ix = make_index2(sh, ss, ds, "cuda::copy_strided");
  switch (elem_size) {
    case 2: launch_raw<uint16_t>(n, ix, src, dst, stream); break;
    case 4: launch_raw<uint32_t>(n, ix, src, dst, stream); break;
    case 8: launch_raw<uint64_t>(n, ix, src, dst, stream); break;
    default: throw std::invalid_argument("cuda::copy_strided_raw: element size must be 2, 4 or 8 bytes");
  }
}

void copy_strided(const Tensor& src, Tensor& dst) {
  KernelScope scope(dst);
  if (src.shape() != dst.shape() || src.dtype() != dst.dtype() || src.device() != dst.device() ||
      !src.device().is_cuda())
    throw std::invalid_argument("cuda::copy_strided: need same shape, dtype and CUDA device: " + src.str() + " -> " +
                                dst.str());
  const int64_t n = dst.numel();
  if (n == 0) return;
  if (src.is_contiguous() && dst.is_contiguous()) {
    check(cudaMemcpyAsync(dst.raw_data(), src.raw_data(), dst.nbytes(), cudaMemcpyDeviceToDevice, scope.stream),
          "copy_strided (packed)");
    return;
  }
  copy_strided_raw(dst.raw_data(), dst.strides().data(), src.raw_data(), src.strides().data(), dst.shape().data(),
                   (int)dst.dim(), dtype_size(dst.dtype()), dst.device().index);
}

Tensor contiguous(const Tensor& x) {
  if (x.is_contiguous()) return x;
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  copy_strided(x, out);
  return out;
}

// ---- dtype conversion ----------------------------------------------------------------------

namespace {

int code_of(DType t) {
  switch (t) {
    case DType::F32: return kF32;
    case DType::F64: return kF64;
    case DType::F16: return kF16;
    case DType::BF16: return kBF16;
    default: throw std::invalid_argument(std::string("cuda::convert: unsupported dtype ") + dtype_name(t));
  }
}

}  // namespace

void convert_raw(void* dst, DType dst_t, const void* src, DType src_t, int64_t n, int device) {
  ensure_registered();
  const int sc = code_of(src_t), dc = code_of(dst_t);
  if (n <= 0) return;
  DeviceGuard guard(device);
  cudaStream_t stream = current_stream(device);
  if (sc == dc) {
    check(cudaMemcpyAsync(dst, src, (size_t)n * dtype_size(dst_t), cudaMemcpyDeviceToDevice, stream),
          "convert (same dtype)");
    return;
  }
  convert_kernel<<<grid_for(n), kThreads, 0, stream>>>(n, src, sc, dst, dc);
  check_launch("convert_kernel");
}

void convert(const Tensor& src, Tensor& out) {
  if (src.shape() != out.shape() || src.device() != out.device() || !src.device().is_cuda() ||
      !src.is_contiguous() || !out.is_contiguous())
    throw std::invalid_argument("cuda::convert: need packed tensors of one shape on one CUDA device: " + src.str() +
                                " -> " + out.str());
  convert_raw(out.raw_data(), out.dtype(), src.raw_data(), src.dtype(), out.numel(), out.device().index);
}

// ---- elementwise helpers for tensor/ (DeviceHooks::add / fill) ------------------------------

namespace {

template <class E>
void launch_fill(int64_t n, void* dst, const void* pattern, cudaStream_t s) {
  E bits;
  std::memcpy(&bits, pattern, sizeof(E));
  fill_kernel<E><<<grid_for(n), kThreads, 0, s>>>(n, static_cast<E*>(dst), bits);
  check_launch("fill_kernel");
}

}  // namespace

void add_raw(void* z, const void* x, const void* y, DType t, int64_t n, int device) {
  ensure_registered();
  if (n <= 0) return;
  DeviceGuard guard(device);
  cudaStream_t s = current_stream(device);
  if (t == DType::F32)
    add_kernel<float><<<grid_for(n), kThreads, 0, s>>>(n, static_cast<float*>(z), static_cast<const float*>(x),
                                                       static_cast<const float*>(y));
  else if (t == DType::F64)
    add_kernel<double><<<grid_for(n), kThreads, 0, s>>>(n, static_cast<double*>(z), static_cast<const double*>(x),
                                                        static_cast<const double*>(y));
  else
    throw std::invalid_argument(std::string("cuda::add_raw: float32 or float64 only, got ") + dtype_name(t));
  check_launch("add_kernel");
}

void fill_raw(void* dst, const void* pattern, size_t elem_size, int64_t n, int device) {
  ensure_registered();
  if (n <= 0) return;
  DeviceGuard guard(device);
  cudaStream_t s = current_stream(device);
  switch (elem_size) {
    case 2: launch_fill<uint16_t>(n, dst, pattern, s); break;
    case 4: launch_fill<uint32_t>(n, dst, pattern, s); break;
    case 8: launch_fill<uint64_t>(n, dst, pattern, s); break;
    default: throw std::invalid_argument("cuda::fill_raw: element size must be 2, 4 or 8 bytes");
  }
}

// ---- pinned uploads --------------------------------------------------------------------------

namespace {

// Two page-locked staging buffers, used in turn; each has an event recorded after the transfer
// that reads it, so it is refilled only once that transfer is done. Never freed (process
// lifetime), like the allocator's cache.
struct Staging {
  std::mutex mu;
  void* buf[2] = {nullptr, nullptr};
  size_t cap[2] = {0, 0};
  cudaEvent_t done[2] = {nullptr, nullptr};
  int next = 0;
};

Staging& staging() {
  static Staging* s = new Staging;
  return *s;
}

}  // namespace

Tensor upload_pinned(const Tensor& host, Device device) {
  if (!host.device().is_cpu()) throw std::invalid_argument("cuda::upload_pinned: source must be a CPU tensor, got " + host.str());
  if (!device.is_cuda()) throw std::invalid_argument("cuda::upload_pinned: target must be a CUDA device");
  ensure_registered();
  const Tensor src = host.contiguous();
  Tensor out = Tensor::empty(src.shape(), src.dtype(), device);
  const size_t nbytes = src.nbytes();
  if (nbytes == 0) return out;
  KernelScope scope(out);
  Staging& st = staging();
  std::lock_guard<std::mutex> lock(st.mu);
  const int i = st.next;
  st.next ^= 1;
  if (st.done[i]) check(cudaEventSynchronize(st.done[i]), "upload_pinned: wait for the staging buffer");
  else check(cudaEventCreateWithFlags(&st.done[i], cudaEventDisableTiming), "upload_pinned: cudaEventCreate");
  if (st.cap[i] < nbytes) {
    if (st.buf[i]) check(cudaFreeHost(st.buf[i]), "upload_pinned: cudaFreeHost");
    st.buf[i] = nullptr;
    st.cap[i] = 0;
    const size_t want = nbytes + nbytes / 4;  // headroom: bags differ in size
    check(cudaHostAlloc(&st.buf[i], want, cudaHostAllocDefault), "upload_pinned: cudaHostAlloc");
    st.cap[i] = want;
  }
  std::memcpy(st.buf[i], src.raw_data(), nbytes);
  check(cudaMemcpyAsync(out.raw_data(), st.buf[i], nbytes, cudaMemcpyHostToDevice, scope.stream),
        "upload_pinned: cudaMemcpyAsync");
  check(cudaEventRecord(st.done[i], scope.stream), "upload_pinned: cudaEventRecord");
  return out;
}

int64_t pinned_staging_bytes() {
  Staging& st = staging();
  std::lock_guard<std::mutex> lock(st.mu);
  return (int64_t)(st.cap[0] + st.cap[1]);
}

}  // namespace lm::cuda
