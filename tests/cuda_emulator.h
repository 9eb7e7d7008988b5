// A tiny CPU emulation of CUDA's block model, for checking the logic of block-level kernels on
// machines without a GPU (CI). Include it before a self-contained kernel header
// (cuda/sinkhorn_kernels.cuh); the kernels then compile with g++ as ordinary functions, and
// emu::launch runs each block's threads as std::threads, one block after another:
//   - threadIdx / blockIdx are per std::thread, blockDim / gridDim global;
//   - __syncthreads() is a std::barrier over the block's threads; __syncwarp(),
//     __shfl_xor_sync() and __shfl_down_sync() one over the warp's 32 threads (a full-warp exchange through a slot per
//     lane), so kernels with warp reductions run too;
//   - __shared__ variables become function-static (one block runs at a time, so one copy is
//     the block's copy), LM_DYNAMIC_SHARED(name) the launch's dynamic shared bytes.
// What it checks: indexing, the recurrences, that every thread reaches the same barriers (a
// barrier skipped by some threads deadlocks here too: the launch then times out and fails).
// What it cannot check: warp intrinsics beyond those three (others do not compile here; partial
// masks are not modelled), memory-model races that the barriers' full fences hide, launch
// limits, register / shared-memory budgets, device arithmetic (the CPU's libm stands in for
// CUDA's). Not part of the library; tests only.
#pragma once
#define LM_CUDA_EMULATION 1
// The kernel headers' device code goes to lm::cuda_emulated (cuda/device_math.cuh): its CPU
// build must not share symbols with the library's CUDA objects linked into the same binary.
#define LM_CUDA_NS lm::cuda_emulated

#include <barrier>
#include <chrono>
#include <cmath>
#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#define __device__
#define __global__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)

// Device-side names that CUDA provides for any type and g++ only in std::.
using std::isinf;
using std::max;
using std::min;

struct emu_dim3 {
  unsigned x = 0, y = 0, z = 0;
};
struct dim3 {
  unsigned x, y, z;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
// CUDA's 16-byte vector types (same size and alignment).
struct alignas(16) float4 {
  float x, y, z, w;
};
struct alignas(16) double2 {
  double x, y;
};
// Bit casts CUDA provides as intrinsics.
inline float __uint_as_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
inline uint32_t __float_as_uint(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
// The CUDA built-ins.
inline thread_local emu_dim3 threadIdx;
inline thread_local emu_dim3 blockIdx;
inline emu_dim3 blockDim{1, 1, 1};
inline emu_dim3 gridDim{1, 1, 1};

// Host-side CUDA names the kernel headers' declarations mention (never called here).
using cudaError_t = int;
using cudaStream_t = void*;

namespace emu {
constexpr unsigned kWarpSize = 32;
// A warp's barrier and one 8-byte exchange slot per lane.
struct WarpState {
  explicit WarpState(unsigned threads) : barrier(static_cast<std::ptrdiff_t>(threads)) {}
  std::barrier<> barrier;
  unsigned char slot[kWarpSize][8] = {};
};
inline std::vector<std::unique_ptr<WarpState>>* block_warps = nullptr;
inline WarpState& my_warp() { return *(*block_warps)[threadIdx.x / kWarpSize]; }
inline std::barrier<>* block_barrier = nullptr;
inline std::vector<unsigned char>& dynamic_shared() {
  static std::vector<unsigned char> bytes;
  return bytes;
}
}  // namespace emu

inline void __syncthreads() { emu::block_barrier->arrive_and_wait(); }
inline void __syncwarp(unsigned = 0xffffffffu) { emu::my_warp().barrier.arrive_and_wait(); }

namespace emu {
// A full-warp exchange: every lane posts v, then reads lane src_lane(lane)'s value (its own
// where that is past the warp).
template <class T, class Src>
T warp_exchange(T v, Src src_lane) {
  static_assert(sizeof(T) <= 8, "emulated shuffles carry up to 8 bytes");
  WarpState& w = my_warp();
  const unsigned lane = threadIdx.x % kWarpSize;
  std::memcpy(w.slot[lane], &v, sizeof(T));
  w.barrier.arrive_and_wait();  // every lane has written
  T r = v;
  const unsigned src = src_lane(lane);
  if (src < kWarpSize) std::memcpy(&r, w.slot[src], sizeof(T));
  w.barrier.arrive_and_wait();  // every lane has read before the next exchange writes
  return r;
}
}  // namespace emu

// Lane `lane ^ lane_mask`'s value; every lane of the warp must call it (full mask).
template <class T>
T __shfl_xor_sync(unsigned, T v, int lane_mask, int width = 32) {
  if (width != 32) throw std::logic_error("emulated __shfl_xor_sync: width must be 32");
  return emu::warp_exchange(
      v, [&](unsigned lane) { return (lane ^ static_cast<unsigned>(lane_mask)) % emu::kWarpSize; });
}

// Lane `lane + delta`'s value, or the caller's own where that is past the warp (CUDA's rule).
template <class T>
T __shfl_down_sync(unsigned, T v, unsigned delta, int width = 32) {
  if (width != 32) throw std::logic_error("emulated __shfl_down_sync: width must be 32");
  return emu::warp_exchange(v, [&](unsigned lane) { return lane + delta; });
}

#define LM_DYNAMIC_SHARED(name) unsigned char* name = emu::dynamic_shared().data()

namespace emu {

// One block's synchronisation state. A deadlocked block's state is kept alive (its threads
// are blocked in it and cannot be joined), reachable from `abandoned()` so that LeakSanitizer
// does not report it.
struct BlockState {
  explicit BlockState(unsigned threads) : barrier(static_cast<std::ptrdiff_t>(threads)) {
    for (unsigned w0 = 0; w0 < threads; w0 += kWarpSize)
      warps.push_back(std::make_unique<WarpState>(std::min(kWarpSize, threads - w0)));
  }
  std::barrier<> barrier;
  std::vector<std::unique_ptr<WarpState>> warps;
  std::mutex m;
  std::condition_variable cv;
  unsigned done = 0;
};
inline std::vector<std::unique_ptr<BlockState>>& abandoned() {
  static auto* v = new std::vector<std::unique_ptr<BlockState>>;  // never destroyed
  return *v;
}

// Runs kernel() over a grid of blocks (x fastest, then y, z) of `block` threads (x dimension
// only) with `shared_bytes` of dynamic shared memory (zero-filled per block so that results
// cannot depend on a previous block's leftovers; exact size, so ASan sees overruns). Throws if
// a block does not finish within `timeout`.
template <class Kernel>
void launch(dim3 grid, unsigned block, size_t shared_bytes, Kernel kernel,
            std::chrono::seconds timeout = std::chrono::seconds(120)) {
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || block == 0)
    throw std::invalid_argument("emu::launch: empty grid or block");
  gridDim = {grid.x, grid.y, grid.z};
  blockDim = {block, 1, 1};
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        dynamic_shared().assign(shared_bytes, 0);
        auto state = std::make_unique<BlockState>(block);
        BlockState* st = state.get();
        block_barrier = &st->barrier;
        block_warps = &st->warps;
        std::vector<std::thread> threads;
        threads.reserve(block);
        const emu_dim3 b{bx, by, bz};
        for (unsigned tx = 0; tx < block; ++tx)
          threads.emplace_back([st, tx, b, kernel] {
            threadIdx = {tx, 0, 0};
            blockIdx = b;
            kernel();
            std::lock_guard<std::mutex> lock(st->m);
            ++st->done;
            st->cv.notify_all();
          });
        bool finished;
        unsigned done;
        {
          std::unique_lock<std::mutex> lock(st->m);
          finished = st->cv.wait_for(lock, timeout, [&] { return st->done == block; });
          done = st->done;
        }
        if (!finished) {  // threads stuck at a barrier: cannot join them
          for (auto& t : threads) t.detach();
          abandoned().push_back(std::move(state));
          block_barrier = nullptr;
          block_warps = nullptr;
          throw std::runtime_error("emu::launch: block (" + std::to_string(bx) + ", " + std::to_string(by) + ", " +
                                   std::to_string(bz) + ") did not finish (" + std::to_string(done) + " of " +
                                   std::to_string(block) +
                                   " threads returned): a barrier not reached by every thread?");
        }
        for (auto& t : threads) t.join();
        block_barrier = nullptr;
        block_warps = nullptr;
      }
}

}  // namespace emu

// Host-side names of lm::cuda the kernel headers use (constants such as kSinkhornStabiliser).
namespace lm::cuda {}
namespace lm::cuda_emulated {
using namespace ::lm::cuda;
}

