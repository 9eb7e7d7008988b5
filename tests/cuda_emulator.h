// A tiny CPU emulation of CUDA's block model, for checking the logic of block-level kernels on
// machines without a GPU (CI). Include it before a self-contained kernel header
// (cuda/sinkhorn_kernels.cuh); the kernels then compile with g++ as ordinary functions, and
// emu::launch runs each block's threads as std::threads, one block after another:
//   - threadIdx / blockIdx are per std::thread, blockDim / gridDim global;
//   - __syncthreads() is a std::barrier over the block's threads;
//   - __shared__ variables become function-static (one block runs at a time, so one copy is
//     the block's copy), LM_DYNAMIC_SHARED(name) the launch's dynamic shared bytes.
// What it checks: indexing, the recurrences, that every thread reaches the same barriers (a
// barrier skipped by some threads deadlocks here too: the launch then times out and fails).
// What it cannot check: warp intrinsics (not provided: such kernels do not compile here),
// memory-model races that the barrier's full fence hides, launch limits, device arithmetic
// (the CPU's libm stands in for CUDA's). Not part of the library; tests only.
#pragma once
#define LM_CUDA_EMULATION 1

#include <barrier>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
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

using std::isinf;

struct emu_dim3 {
  unsigned x = 0, y = 0, z = 0;
};
// The CUDA built-ins.
inline thread_local emu_dim3 threadIdx;
inline thread_local emu_dim3 blockIdx;
inline emu_dim3 blockDim{1, 1, 1};
inline emu_dim3 gridDim{1, 1, 1};

// Host-side CUDA names the kernel headers' declarations mention (never called here).
using cudaError_t = int;
using cudaStream_t = void*;

namespace emu {
inline std::barrier<>* block_barrier = nullptr;
inline std::vector<unsigned char>& dynamic_shared() {
  static std::vector<unsigned char> bytes;
  return bytes;
}
}  // namespace emu

inline void __syncthreads() { emu::block_barrier->arrive_and_wait(); }

#define LM_DYNAMIC_SHARED(name) unsigned char* name = emu::dynamic_shared().data()

namespace emu {

// Runs kernel() as `grid` blocks of `block` threads (x dimension only) with `shared_bytes` of
// dynamic shared memory (16-byte aligned, zero-filled per block so that results cannot depend
// on a previous block's leftovers). Throws if a block does not finish within `timeout`.
// One block's synchronisation state. A deadlocked block's state is kept alive (its threads
// are blocked in it and cannot be joined), reachable from `abandoned()` so that LeakSanitizer
// does not report it.
struct BlockState {
  explicit BlockState(unsigned threads) : barrier(static_cast<std::ptrdiff_t>(threads)) {}
  std::barrier<> barrier;
  std::mutex m;
  std::condition_variable cv;
  unsigned done = 0;
};
inline std::vector<std::unique_ptr<BlockState>>& abandoned() {
  static auto* v = new std::vector<std::unique_ptr<BlockState>>;  // never destroyed
  return *v;
}

template <class Kernel>
void launch(unsigned grid, unsigned block, size_t shared_bytes, Kernel kernel,
            std::chrono::seconds timeout = std::chrono::seconds(120)) {
  if (grid == 0 || block == 0) throw std::invalid_argument("emu::launch: empty grid or block");
  gridDim = {grid, 1, 1};
  blockDim = {block, 1, 1};
  for (unsigned bx = 0; bx < grid; ++bx) {
    dynamic_shared().assign(shared_bytes, 0);  // exact size: ASan sees overruns
    auto state = std::make_unique<BlockState>(block);
    BlockState* st = state.get();
    block_barrier = &st->barrier;
    std::vector<std::thread> threads;
    threads.reserve(block);
    for (unsigned tx = 0; tx < block; ++tx)
      threads.emplace_back([st, tx, bx, kernel] {
        threadIdx = {tx, 0, 0};
        blockIdx = {bx, 0, 0};
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
      throw std::runtime_error("emu::launch: block " + std::to_string(bx) + " did not finish (" +
                               std::to_string(done) + " of " + std::to_string(block) +
                               " threads returned): a __syncthreads not reached by every thread?");
    }
    for (auto& t : threads) t.join();
    block_barrier = nullptr;
  }
}

}  // namespace emu
