// Device-side layout copies of the CUDA backend (cuda/copy.cu). No CUDA headers.
#pragma once
#include "tensor/tensor.h"

namespace lm::cuda {

// dst[idx] = src[idx] for every logical index; src, dst: same shape and dtype, on the same
// CUDA device, any strides (e.g. a transposed view into a packed tensor). Asynchronous on the
// current stream.
void copy_strided(const Tensor& src, Tensor& dst);

// x itself when packed, else a packed copy made on the device (no host round trip).
Tensor contiguous(const Tensor& x);

// out = src converted element by element to out's dtype (float32 / float64 / float16 /
// bfloat16), both packed, same shape and CUDA device. Rounding is that of the CPU's
// Tensor::copy_from (round to nearest even, through float32 for float16 / bfloat16), so a
// conversion gives the same bits on either device. Asynchronous on the current stream. This is
// the DeviceHooks::convert hook that Tensor::to(DType) uses for packed CUDA tensors.
void convert(const Tensor& src, Tensor& out);
// The same on raw device pointers: n packed elements of src_t at src -> dst_t at dst.
void convert_raw(void* dst, DType dst_t, const void* src, DType src_t, int64_t n, int device);

// copy_strided on raw pointers (DeviceHooks::copy_strided): dst[idx] = src[idx] over `shape`,
// strides in elements, elements of elem_size (2, 4 or 8) bytes, on `device`.
void copy_strided_raw(void* dst, const int64_t* dst_strides, const void* src, const int64_t* src_strides,
                      const int64_t* shape, int ndim, size_t elem_size, int device);

// Raw-pointer helpers behind DeviceHooks::add / fill (tensor/storage.h), asynchronous on the
// current stream of `device`: z[i] = x[i] + y[i] for n packed float32 / float64 elements (z may
// be x), and the elem_size-byte `pattern` (2, 4 or 8 bytes, read on the host) written to n
// packed elements.
void add_raw(void* z, const void* x, const void* y, DType t, int64_t n, int device);
void fill_raw(void* dst, const void* pattern, size_t elem_size, int64_t n, int device);

// A packed copy of the CPU tensor `host` on CUDA `device`, staged through one of two pinned
// (page-locked) host buffers and copied with cudaMemcpyAsync on the current stream: the call
// returns as soon as `host` has been copied into pinned memory, and the transfer overlaps
// whatever the device is still doing (later kernels on the stream are ordered after it). The
// two buffers alternate, so preparing the next upload overlaps the previous transfer; a buffer
// is reused only after its transfer has finished (an event per buffer).
Tensor upload_pinned(const Tensor& host, Device device);
// Bytes of pinned staging memory held (both buffers), for statistics and tests.
int64_t pinned_staging_bytes();

}  // namespace lm::cuda
