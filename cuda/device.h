// Host-side API of the CUDA backend's device layer (cuda/device.cu): registration of the
// DeviceHooks that tensor/storage uses for device memory, the caching allocator's statistics,
// synchronisation and the current stream. Includes no CUDA headers (usable from g++ code).
#pragma once
#include <cstdint>

namespace lm::cuda {

// Registers this backend's DeviceHooks (allocate / release / copy / device_count) with
// tensor/storage, once per process; re-registers if the hooks were reset. Cheap after the
// first call. Every lm::cuda kernel entry point calls it, and device.cu calls it from a
// static initializer; code that creates CUDA tensors before any kernel has run should call it
// first (see docs/cuda.md: static-initialisation order).
void ensure_registered();

// Number of visible CUDA devices (0 without a driver or GPU; never throws).
int device_count();

// Caching allocator statistics of one device, in bytes.
struct AllocatorStats {
  int64_t current = 0;         // in live blocks (rounded sizes) handed out to tensors
  int64_t peak = 0;            // high-water mark of `current` since start / reset_peak
  int64_t reserved = 0;        // obtained from cudaMalloc and not returned: live + cached
  int64_t cached = 0;          // reserved - current: free blocks kept for reuse
  int64_t num_allocs = 0;      // allocate() calls
  int64_t num_cache_hits = 0;  // allocate() calls served from the cache
  int64_t num_cuda_mallocs = 0;  // cudaMalloc calls
};
AllocatorStats allocator_stats(int device = 0);
void reset_peak(int device = 0);
// Returns every cached (free) block of `device` to the driver (cudaFree).
void empty_cache(int device = 0);

// Waits for all work on `device`'s current stream.
void synchronize(int device = 0);

// The current stream of `device` as an opaque handle (a cudaStream_t; nullptr is the legacy
// default stream, which is the default). Every kernel, copy and cuBLAS call of this backend
// runs on it. The caching allocator reuses freed blocks immediately, which is safe because
// all work is ordered on this one stream: change it only between fully synchronised phases.
void* current_stream_handle(int device = 0);
void set_current_stream_handle(void* stream, int device = 0);

// Graph pools of the caching allocator (cuda/graph.cu uses them around a capture): between
// begin_graph_pool and end_graph_pool, every allocation on `device`, and every block released,
// belongs to a new pool whose free blocks are reused only by that pool, never by allocations
// outside it, so a graph's replays cannot touch memory allocated after its capture. release_graph_pool hands the
// pool's free blocks (and, when released later, its live ones) back to the general cache.
int begin_graph_pool(int device);
void end_graph_pool(int device);
void release_graph_pool(int device, int pool);

}  // namespace lm::cuda
