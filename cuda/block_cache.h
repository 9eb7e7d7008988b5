// The caching allocator's bookkeeping (cuda/device.cu) without any CUDA call, so that it is
// tested on any machine (tests/test_block_cache.cpp): size classes, the free lists of the
// general cache and of each CUDA-graph pool, which block belongs to which pool, and the
// statistics. device.cu asks take() first, calls cudaMalloc only when it returns nullptr, and
// cudaFrees what drain_general() returns. Not thread-safe: device.cu holds its per-device
// mutex around every call.
//
// Graph pools (cuda/graph.h): between begin_pool() and end_pool() (a capture), every block
// handed out, and every block released, belongs to the new pool; a pool's free blocks are
// handed out only while that pool is active, never to allocations outside it, so memory
// allocated after a capture never meets the graph's replays. release_pool() (the graph is
// destroyed) returns the pool's free blocks to the general cache; its live blocks go there when
// they are released.
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <unordered_map>
#include <utility>
#include <vector>

#include "cuda/device.h"  // AllocatorStats (no CUDA headers)

namespace lm::cuda {

// Requests are rounded up to a size class: 512 B steps up to 1 MiB, 2 MiB steps above.
inline size_t size_class(size_t nbytes) {
  constexpr size_t kSmallLimit = size_t(1) << 20, kSmallStep = 512, kLargeStep = size_t(2) << 20;
  if (nbytes <= kSmallLimit) return (nbytes + kSmallStep - 1) / kSmallStep * kSmallStep;
  return (nbytes + kLargeStep - 1) / kLargeStep * kLargeStep;
}

class BlockCache {
 public:
  // A free block of class `size` (a size_class value) for a new allocation, handed out: from the
  // active pool first, then the general cache; nullptr if neither has one (the caller then
  // allocates a block and calls add_new).
  void* take(size_t size) {
    ++stats_.num_allocs;
    void* p = active_ ? pop(pools_[active_], size) : nullptr;
    if (!p) p = pop(general_, size);
    if (p) {
      ++stats_.num_cache_hits;
      hand_out(p, size);
    }
    return p;
  }

  // Records a freshly allocated block of class `size`, handed out.
  void add_new(void* p, size_t size) {
    ++stats_.num_cuda_mallocs;
    stats_.reserved += static_cast<int64_t>(size);
    hand_out(p, size);
  }

  // Takes back a handed-out block; false (and no change) if p is not one.
  bool release(void* p) {
    auto it = live_.find(p);
    if (it == live_.end()) return false;
    const size_t size = it->second;
    live_.erase(it);
    stats_.current -= static_cast<int64_t>(size);
    auto own = owner_.find(p);
    const int pool = own != owner_.end() ? own->second : active_;
    if (pool) {
      owner_[p] = pool;
      pools_[pool][size].push_back(p);
    } else {
      general_[size].push_back(p);
    }
    return true;
  }

  // Removes every free block of the general cache and returns (block, size) for the caller to
  // free; graph pools keep theirs.
  std::vector<std::pair<void*, size_t>> drain_general() {
    std::vector<std::pair<void*, size_t>> out;
    for (auto& [size, blocks] : general_)
      for (void* p : blocks) {
        out.emplace_back(p, size);
        stats_.reserved -= static_cast<int64_t>(size);
      }
    general_.clear();
    return out;
  }

  // Starts a graph pool (one at a time); returns its id.
  int begin_pool() {
    if (active_) throw std::runtime_error("CUDA allocator: a graph pool is already active");
    active_ = next_pool_++;
    pools_[active_];
    return active_;
  }
  void end_pool() { active_ = 0; }
  void release_pool(int pool) {
    if (active_ == pool) active_ = 0;
    auto it = pools_.find(pool);
    if (it == pools_.end()) return;
    for (auto& [size, blocks] : it->second)
      for (void* p : blocks) {
        owner_.erase(p);
        general_[size].push_back(p);
      }
    pools_.erase(it);
    for (auto o = owner_.begin(); o != owner_.end();)  // its live blocks become general
      o = o->second == pool ? owner_.erase(o) : std::next(o);
  }

  AllocatorStats stats() const {
    AllocatorStats s = stats_;
    s.cached = s.reserved - s.current;
    return s;
  }
  void reset_peak() { stats_.peak = stats_.current; }

 private:
  using FreeLists = std::unordered_map<size_t, std::vector<void*>>;  // size class -> free blocks

  static void* pop(FreeLists& lists, size_t size) {
    auto it = lists.find(size);
    if (it == lists.end() || it->second.empty()) return nullptr;
    void* p = it->second.back();
    it->second.pop_back();
    return p;
  }

  void hand_out(void* p, size_t size) {
    live_[p] = size;
    if (active_) owner_[p] = active_;
    stats_.current += static_cast<int64_t>(size);
    if (stats_.current > stats_.peak) stats_.peak = stats_.current;
  }

  FreeLists general_;
  std::unordered_map<int, FreeLists> pools_;  // graph pool id -> its free blocks
  std::unordered_map<void*, size_t> live_;    // handed-out block -> size class
  std::unordered_map<void*, int> owner_;      // block -> graph pool id (absent: general)
  int active_ = 0, next_pool_ = 1;
  AllocatorStats stats_;
};

}  // namespace lm::cuda
