// The CUDA device layer: a caching device allocator behind DeviceHooks.allocate / release,
// host <-> device copies behind DeviceHooks.copy, device_count, the per-device current stream,
// and the registration of these hooks with tensor/storage (cuda/device.h).
//
// Allocator: requests are rounded up to a size class (512 B steps up to 1 MiB, 2 MiB steps
// above); a released block goes to its class's free list and is handed out again to the next
// request of the same class without calling cudaFree / cudaMalloc. When cudaMalloc fails, all
// cached blocks of the device are freed and the allocation is retried once; then it throws
// with the statistics. Blocks are reused immediately on release, which is correct because
// every kernel and copy of this backend runs on one stream per device (stream order).
// Cached blocks are never returned at process exit (the driver reclaims them). The
// bookkeeping (free lists, CUDA-graph pools, statistics) is cuda/block_cache.h, tested without
// a GPU; this file adds the locking and the CUDA calls.
#include <cuda_runtime.h>
#include <nvtx3/nvToolsExt.h>

#include <cstdio>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "cuda/block_cache.h"
#include "cuda/common.cuh"
#include "cuda/copy.h"
#include "cuda/device.h"
#include "tensor/profiler.h"
#include "tensor/storage.h"

namespace lm::cuda {

namespace {

constexpr int kMaxDevices = 64;

struct DeviceCache {
  std::mutex mu;
  BlockCache blocks;
};

// Heap-allocated and never destroyed: Storage destructors may run during static destruction.
DeviceCache& cache_of(int device) {
  static DeviceCache* caches = new DeviceCache[kMaxDevices];
  if (device < 0 || device >= kMaxDevices)
    throw std::runtime_error("CUDA allocator: device index " + std::to_string(device) + " out of range");
  return caches[device];
}

std::mutex& stream_mutex() {
  static std::mutex* m = new std::mutex;
  return *m;
}
cudaStream_t g_streams[kMaxDevices] = {};  // nullptr: the legacy default stream

std::string stats_str(const AllocatorStats& s) {
  return "current " + std::to_string(s.current) + " B, peak " + std::to_string(s.peak) + " B, reserved " +
         std::to_string(s.reserved) + " B, cached " + std::to_string(s.reserved - s.current) + " B";
}

// Frees every cached block of the general cache of `device`; the caller holds c.mu.
void release_cached_locked(DeviceCache& c, int device) {
  DeviceGuard guard(device);
  for (const auto& [p, size] : c.blocks.drain_general()) cudaFree(p);
}

void* allocate(size_t nbytes, int device) {
  if (nbytes == 0) return nullptr;
  const size_t size = size_class(nbytes);
  DeviceCache& c = cache_of(device);
  std::lock_guard<std::mutex> lock(c.mu);
  if (void* p = c.blocks.take(size)) return p;
  DeviceGuard guard(device);
  void* p = nullptr;
  cudaError_t err = cudaMalloc(&p, size);
  if (err == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // clear the sticky-free error state
    release_cached_locked(c, device);
    err = cudaMalloc(&p, size);
  }
  if (err != cudaSuccess) {
    cudaGetLastError();
    throw std::runtime_error("CUDA allocator: cudaMalloc of " + std::to_string(size) + " bytes on cuda:" +
                             std::to_string(device) + " failed: " + cudaGetErrorString(err) + " (" +
                             stats_str(c.blocks.stats()) + ")");
  }
  c.blocks.add_new(p, size);
  return p;
}

void release(void* p, int device) {
  if (!p) return;
  DeviceCache& c = cache_of(device);
  std::lock_guard<std::mutex> lock(c.mu);
  if (!c.blocks.release(p))
    std::fprintf(stderr, "libramil CUDA allocator: release of unknown pointer %p on cuda:%d ignored\n", p, device);
}

void copy(void* dst, Device dst_dev, const void* src, Device src_dev, size_t nbytes) {
  if (nbytes == 0) return;
  const int device = dst_dev.is_cuda() ? dst_dev.index : src_dev.index;
  DeviceGuard guard(device);
  cudaStream_t stream = current_stream(device);
  // An error names the copy's direction and size (a CUDA graph capture refuses the host ones).
  const auto checked = [&](cudaError_t err, const char* call) {
    if (err != cudaSuccess)
      check(err, (std::string(call) + " (tensor copy " + src_dev.str() + " -> " + dst_dev.str() + ", " +
                  std::to_string(nbytes) + " bytes)").c_str());
  };
  checked(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDefault, stream), "cudaMemcpyAsync");
  // Host memory is pageable and may be freed as soon as we return: wait for the transfer.
  if (dst_dev.is_cpu() || src_dev.is_cpu()) checked(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
}

std::mutex& registration_mutex() {
  static std::mutex* m = new std::mutex;
  return *m;
}

bool hooks_ok() {
  const DeviceHooks* h = device_hooks(DeviceType::CUDA);
  return h && h->allocate && h->release && h->copy && h->device_count;
}

// Registers at static-initialisation time as well (see ensure_registered in device.h).
struct Registrar {
  Registrar() { ensure_registered(); }
} g_registrar;

}  // namespace

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

void ensure_registered() {
  if (hooks_ok()) return;
  std::lock_guard<std::mutex> lock(registration_mutex());
  if (hooks_ok()) return;
  DeviceHooks hooks;
  hooks.allocate = [](size_t nbytes, int device) { return allocate(nbytes, device); };
  hooks.release = [](void* p, int device) { release(p, device); };
  hooks.copy = [](void* dst, Device dd, const void* src, Device sd, size_t n) { copy(dst, dd, src, sd, n); };
  hooks.device_count = [] { return device_count(); };
  hooks.convert = [](void* dst, DType dt, const void* src, DType st, int64_t n, int device) {
    convert_raw(dst, dt, src, st, n, device);  // copy.cu
  };
  hooks.add = [](void* z, const void* x, const void* y, DType t, int64_t n, int device) {
    add_raw(z, x, y, t, n, device);  // copy.cu
  };
  hooks.fill = [](void* dst, const void* pattern, size_t elem_size, int64_t n, int device) {
    fill_raw(dst, pattern, elem_size, n, device);  // copy.cu
  };
  hooks.copy_strided = [](void* dst, const int64_t* ds, const void* src, const int64_t* ss, const int64_t* shape,
                         int ndim, size_t elem_size, int device) {
    copy_strided_raw(dst, ds, src, ss, shape, ndim, elem_size, device);  // copy.cu
  };
  hooks.capturing = [](int device) {
    cudaStream_t s = current_stream(device);
    if (!s) return false;  // the legacy default stream is never captured (cuda/graph.h)
    cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
    check(cudaStreamIsCapturing(s, &status), "cudaStreamIsCapturing");
    return status != cudaStreamCaptureStatusNone;
  };
  register_device_hooks(DeviceType::CUDA, std::move(hooks));
  // Profiler (tensor/profiler.h): wait for the device at scope boundaries so that host
  // timings cover the kernels, and name the same scopes as NVTX ranges.
  profiler::Hooks ph;
  ph.sync = [] {
    static const bool has_device = device_count() > 0;
    if (has_device) cudaDeviceSynchronize();
  };
  ph.range_push = [](const char* name) { nvtxRangePushA(name); };
  ph.range_pop = [] { nvtxRangePop(); };
  profiler::set_hooks(ph);
}

AllocatorStats allocator_stats(int device) {
  DeviceCache& c = cache_of(device);
  std::lock_guard<std::mutex> lock(c.mu);
  return c.blocks.stats();
}

void reset_peak(int device) {
  DeviceCache& c = cache_of(device);
  std::lock_guard<std::mutex> lock(c.mu);
  c.blocks.reset_peak();
}

void empty_cache(int device) {
  DeviceCache& c = cache_of(device);
  std::lock_guard<std::mutex> lock(c.mu);
  release_cached_locked(c, device);
}

cudaStream_t current_stream(int device) {
  if (device < 0 || device >= kMaxDevices) throw std::runtime_error("current_stream: bad device index");
  std::lock_guard<std::mutex> lock(stream_mutex());
  return g_streams[device];
}

void* current_stream_handle(int device) { return (void*)current_stream(device); }

void set_current_stream_handle(void* stream, int device) {
  if (device < 0 || device >= kMaxDevices) throw std::runtime_error("set_current_stream: bad device index");
  std::lock_guard<std::mutex> lock(stream_mutex());
  g_streams[device] = (cudaStream_t)stream;
}

void synchronize(int device) {
  ensure_registered();
  DeviceGuard guard(device);
  check(cudaStreamSynchronize(current_stream(device)), "synchronize");
}

int begin_graph_pool(int device) {
  DeviceCache& c = cache_of(device);
  std::lock_guard<std::mutex> lock(c.mu);
  return c.blocks.begin_pool();
}

void end_graph_pool(int device) {
  DeviceCache& c = cache_of(device);
  std::lock_guard<std::mutex> lock(c.mu);
  c.blocks.end_pool();
}

void release_graph_pool(int device, int pool) {
  DeviceCache& c = cache_of(device);
  std::lock_guard<std::mutex> lock(c.mu);
  c.blocks.release_pool(pool);
}

}  // namespace lm::cuda
