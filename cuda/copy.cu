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
#include "cuda/kernels.h"

namespace lm::cuda {

namespace {

constexpr int kMaxDims = 8;

struct CopyIndex {
  int nd = 0;
  int64_t shape[kMaxDims];
  int64_t ss[kMaxDims];  // src element strides
  int64_t ds[kMaxDims];  // dst element strides
};

// src, dst: any layout described by ix; E: an unsigned integer of the element size.
template <class E>
__global__ void strided_copy_kernel(int64_t n, CopyIndex ix, const E* __restrict__ src, E* __restrict__ dst) {
  const int64_t stride = (int64_t)blockDim.x * gridDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
    int64_t rem = i, os = 0, od = 0;
    for (int d = ix.nd - 1; d >= 0; --d) {
      const int64_t idx = rem % ix.shape[d];
      rem /= ix.shape[d];
      os += idx * ix.ss[d];
      od += idx * ix.ds[d];
    }
    dst[od] = src[os];
  }
}

CopyIndex make_index(const Shape& shape, const Shape& ss, const Shape& ds) {
  Shape s, a, b;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    if (!s.empty() && a.back() == ss[d] * shape[d] && b.back() == ds[d] * shape[d]) {
      s.back() *= shape[d];
      a.back() = ss[d];
      b.back() = ds[d];
    } else {
      s.push_back(shape[d]);
      a.push_back(ss[d]);
      b.push_back(ds[d]);
    }
  }
  if (s.size() > (size_t)kMaxDims)
    throw std::runtime_error("cuda::copy_strided: more than " + std::to_string(kMaxDims) +
                             " non-mergeable dims in shape " + shape_str(shape));
  CopyIndex ix;
  ix.nd = (int)s.size();
  for (int d = 0; d < ix.nd; ++d) {
    ix.shape[d] = s[d];
    ix.ss[d] = a[d];
    ix.ds[d] = b[d];
  }
  return ix;
}

template <class E>
void launch_raw(int64_t n, const CopyIndex& ix, const void* src, void* dst, cudaStream_t s) {
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
  const CopyIndex ix = make_index(sh, ss, ds);
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

// The CPU's conversions (tensor/dtype.h: float_to_half, float_to_bf16, half_to_float), bit for
// bit, so that a tensor converted on either device holds the same bits.
__device__ __forceinline__ float half_bits_to_float(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do {
        mant <<= 1;
        ++e;
      } while (!(mant & 0x400));
      mant &= 0x3ff;
      bits = sign | ((uint32_t)(127 - 15 - e) << 23) | (mant << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  return __uint_as_float(bits);
}

__device__ __forceinline__ uint16_t float_to_half_bits(float f) {
  const uint32_t x = __float_as_uint(f);
  const uint32_t sign = (x >> 16) & 0x8000, absx = x & 0x7fffffffu;
  if (absx >= 0x7f800000u) return (uint16_t)(sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 : 0));  // inf / NaN
  if (absx >= 0x477ff000u) return (uint16_t)(sign | 0x7c00);                                     // overflow
  if (absx < 0x38800000u) {  // subnormal or zero in half
    if (absx < 0x33000000u) return (uint16_t)sign;
    const uint32_t mant = (absx & 0x7fffff) | 0x800000;
    const int shift = 126 - (int)(absx >> 23);
    uint32_t half_mant = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1), halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (half_mant & 1))) ++half_mant;
    return (uint16_t)(sign | half_mant);
  }
  uint32_t h = (absx - 0x38000000u) >> 13;
  const uint32_t rem = absx & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) ++h;
  return (uint16_t)(sign | h);
}

__device__ __forceinline__ uint16_t float_to_bf16_bits(float f) {
  const uint32_t x = __float_as_uint(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40);  // quiet NaN
  return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
}

// Element codes for the kernel (a runtime switch per element is cheap next to the memory
// traffic, and keeps one kernel for all 12 pairs).
enum : int { kF32 = 0, kF64 = 1, kF16 = 2, kBF16 = 3 };

int code_of(DType t) {
  switch (t) {
    case DType::F32: return kF32;
    case DType::F64: return kF64;
    case DType::F16: return kF16;
    case DType::BF16: return kBF16;
    default: throw std::invalid_argument(std::string("cuda::convert: unsupported dtype ") + dtype_name(t));
  }
}

// Loads element i as double, the CPU's load_as_double.
__device__ __forceinline__ double load_elem(const void* p, int code, int64_t i) {
  switch (code) {
    case kF32: return (double)static_cast<const float*>(p)[i];
    case kF64: return static_cast<const double*>(p)[i];
    case kF16: return (double)half_bits_to_float(static_cast<const uint16_t*>(p)[i]);
    default: return (double)__uint_as_float((uint32_t)static_cast<const uint16_t*>(p)[i] << 16);
  }
}

// Stores v as element i, the CPU's store_from_double (float16 / bfloat16 through float32).
__device__ __forceinline__ void store_elem(void* p, int code, int64_t i, double v) {
  switch (code) {
    case kF32: static_cast<float*>(p)[i] = (float)v; break;
    case kF64: static_cast<double*>(p)[i] = v; break;
    case kF16: static_cast<uint16_t*>(p)[i] = float_to_half_bits((float)v); break;
    default: static_cast<uint16_t*>(p)[i] = float_to_bf16_bits((float)v); break;
  }
}

// src, dst: (n) packed, element codes sc / dc.
__global__ void convert_kernel(int64_t n, const void* __restrict__ src, int sc, void* __restrict__ dst, int dc) {
  const int64_t stride = (int64_t)blockDim.x * gridDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
    store_elem(dst, dc, i, load_elem(src, sc, i));
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

// z, x, y: (n) packed; z may alias x.
template <class T>
__global__ void add_kernel(int64_t n, T* z, const T* x, const T* __restrict__ y) {
  const int64_t stride = (int64_t)blockDim.x * gridDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) z[i] = x[i] + y[i];
}

// dst: (n) packed elements of the unsigned type E, each set to `bits`.
template <class E>
__global__ void fill_kernel(int64_t n, E* __restrict__ dst, E bits) {
  const int64_t stride = (int64_t)blockDim.x * gridDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) dst[i] = bits;
}

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
