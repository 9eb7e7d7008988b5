// The CUDA caching allocator's bookkeeping (cuda/block_cache.h) on fake block addresses: size
// classes, reuse, statistics, the general cache's draining, and the CUDA-graph pools' rule
// that a pool's memory is never handed to an allocation outside it. No GPU needed: device.cu
// only adds the locking and the cudaMalloc / cudaFree calls around it.
#include <doctest/doctest.h>

#include <cstdint>
#include <set>

#include "cuda/block_cache.h"

namespace {

using lm::cuda::BlockCache;
using lm::cuda::size_class;

// A distinct fake address per call (never dereferenced).
void* fake_block() {
  static uintptr_t next = 0x10000;
  next += 0x1000;
  return reinterpret_cast<void*>(next);
}

// What allocate() in cuda/device.cu does: a cached block, else a new one.
void* allocate(BlockCache& c, size_t nbytes) {
  const size_t size = size_class(nbytes);
  if (void* p = c.take(size)) return p;
  void* p = fake_block();
  c.add_new(p, size);
  return p;
}

}  // namespace

TEST_CASE("block cache: size classes") {
  CHECK(size_class(1) == 512);
  CHECK(size_class(512) == 512);
  CHECK(size_class(513) == 1024);
  CHECK(size_class(size_t(1) << 20) == (size_t(1) << 20));
  CHECK(size_class((size_t(1) << 20) + 1) == (size_t(2) << 20));
  CHECK(size_class((size_t(3) << 20)) == (size_t(4) << 20));
}

TEST_CASE("block cache: reuse by size class, statistics, unknown releases, draining") {
  BlockCache c;
  void* a = allocate(c, 1000);  // class 1024
  void* b = allocate(c, 3000);  // class 3072
  CHECK(a != b);
  auto s = c.stats();
  CHECK(s.current == 1024 + 3072);
  CHECK(s.reserved == 1024 + 3072);
  CHECK(s.num_cuda_mallocs == 2);
  CHECK(s.num_cache_hits == 0);
  CHECK(c.release(a));
  CHECK_FALSE(c.release(a));  // already free
  int dummy;
  CHECK_FALSE(c.release(&dummy));  // never handed out
  CHECK(c.stats().current == 3072);
  CHECK(c.stats().cached == 1024);
  CHECK(allocate(c, 2000) != a);  // class 2048: a new block
  CHECK(allocate(c, 600) == a);   // class 1024: the cached one
  s = c.stats();
  CHECK(s.num_allocs == 4);
  CHECK(s.num_cache_hits == 1);
  CHECK(s.peak == 1024 + 3072 + 2048);
  c.reset_peak();
  CHECK(c.stats().peak == c.stats().current);
  CHECK(c.release(b));
  const auto drained = c.drain_general();
  REQUIRE(drained.size() == 1);
  CHECK(drained[0].first == b);
  CHECK(drained[0].second == 3072);
  CHECK(c.stats().reserved == 1024 + 2048);
  CHECK(c.drain_general().empty());
}

TEST_CASE("block cache: a graph pool's memory never reaches allocations outside it") {
  BlockCache c;
  void* before = allocate(c, 512);    // allocated before the capture, live through it
  void* cached = allocate(c, 512);
  CHECK(c.release(cached));           // free in the general cache when the capture starts
  const int pool = c.begin_pool();
  CHECK_THROWS_AS(c.begin_pool(), std::runtime_error);  // one capture at a time
  void* from_general = allocate(c, 512);
  CHECK(from_general == cached);      // a general free block may join the capture...
  void* fresh = allocate(c, 512);     // ...or a new one
  CHECK(c.release(fresh));            // freed during the capture: stays the pool's
  CHECK(allocate(c, 512) == fresh);   // and reused within the capture
  CHECK(c.release(fresh));
  CHECK(c.release(before));           // a pre-capture block freed during the capture joins it
  c.end_pool();

  // After the capture: nothing of the pool is handed out, live or free.
  std::set<void*> pool_blocks = {from_general, fresh, before};
  void* outside = allocate(c, 512);
  CHECK(pool_blocks.count(outside) == 0);
  CHECK(c.release(from_general));     // a pool block released later goes back to the pool
  void* outside2 = allocate(c, 512);
  CHECK(pool_blocks.count(outside2) == 0);
  CHECK(c.drain_general().empty());   // outside / outside2 are live; pool blocks are not general

  // The graph is destroyed: its free blocks become general, and so do its live ones on release.
  c.release_pool(pool);
  std::set<void*> got;
  for (int i = 0; i < 3; ++i) got.insert(allocate(c, 512));
  CHECK(got == pool_blocks);
  CHECK(c.stats().num_cuda_mallocs == 5);  // before, cached, fresh, outside, outside2
}
