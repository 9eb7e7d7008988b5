// A tiny CPU emulation of CUDA's block model, for checking the logic of block-level kernels on
// machines without a GPU (CI). Include it before a self-contained kernel header
// (cuda/sinkhorn_kernels.cuh); the kernels then compile with g++ as ordinary functions, and
// emu::launch runs each block's threads on a pool of std::threads (worker i is thread i of
// every block; made once and reused: creating 256 threads per block cost ~0.1 ms each), one
// block after another:
//   - threadIdx / blockIdx are per std::thread, blockDim / gridDim global;
//   - __syncthreads() is a std::barrier over the block's threads; __syncwarp(),
//     __shfl_xor_sync() and __shfl_down_sync() one over the warp's 32 threads (a full-warp exchange through a slot per
//     lane), so kernels with warp reductions run too;
//   - __shared__ variables become function-static (one block runs at a time, so one copy is
//     the block's copy), LM_DYNAMIC_SHARED(name) the launch's dynamic shared bytes.
// What it checks: indexing, the recurrences, that every thread reaches the same barriers (a
// barrier skipped by some threads deadlocks here too: the launch then times out and fails).
//   - the tensor-core fragments of nvcuda::wmma (fill / load / mma / store, the m16n16k8 TF32
//     and m16n16k16 BF16 shapes) are warp-collective: each call is a warp barrier (a lane that
//     skips one deadlocks); every lane loads the whole A / B tiles, and lane l owns the
//     accumulator elements e with e % 32 == l (row-major in the 16 x 16 tile): mma_sync computes
//     and store_matrix_sync writes only those, so a tile is only right if all 32 lanes took part;
//     __float_to_tf32 rounds as cvt.rna does.
// What it cannot check: warp intrinsics beyond those (others do not compile here; partial
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
#include <functional>
#include <mutex>
#include <semaphore>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#define __device__
#define __global__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))

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
struct alignas(16) uint4 {
  unsigned x, y, z, w;
};
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }
// bfloat16 as its bits (the kernels only move it; the wmma fragments below widen it).
struct __nv_bfloat16 {
  uint16_t bits;
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
  explicit BlockState(unsigned threads_) : barrier(static_cast<std::ptrdiff_t>(threads_)), threads(threads_) {
    for (unsigned w0 = 0; w0 < threads; w0 += kWarpSize)
      warps.push_back(std::make_unique<WarpState>(std::min(kWarpSize, threads - w0)));
  }
  std::barrier<> barrier;
  unsigned threads;
  std::vector<std::unique_ptr<WarpState>> warps;
  std::mutex m;
  std::condition_variable cv;
  unsigned done = 0;
};
inline std::vector<std::unique_ptr<BlockState>>& abandoned() {
  static auto* v = new std::vector<std::unique_ptr<BlockState>>;  // never destroyed
  return *v;
}

// The worker threads: worker i runs thread i of each block it is released for. Made on
// demand, never destroyed (detached; process exit ends them), so nothing here can block exit.
struct Pool {
  struct Worker {
    std::binary_semaphore go{0};
  };
  std::vector<std::unique_ptr<Worker>> workers;
  // The block being run; written by launch() before it releases the workers, and not again
  // until every released worker has reported back.
  const std::function<void()>* kernel = nullptr;
  emu_dim3 block{};
  BlockState* state = nullptr;

  void grow(unsigned n) {
    while (workers.size() < n) {
      workers.push_back(std::make_unique<Worker>());
      Worker* w = workers.back().get();
      const unsigned tx = static_cast<unsigned>(workers.size() - 1);
      std::thread([this, w, tx] {
        for (;;) {
          w->go.acquire();
          threadIdx = {tx, 0, 0};
          blockIdx = block;
          BlockState* st = state;
          (*kernel)();
          std::lock_guard<std::mutex> lock(st->m);
          if (++st->done == st->threads) st->cv.notify_all();
        }
      }).detach();
    }
  }
};
// The current pool; a pool whose threads are stuck in a deadlocked block is moved to
// abandoned_pools() (kept reachable: its threads still use it) and a fresh one is made.
inline std::unique_ptr<Pool>& current_pool() {
  static auto* p = new std::unique_ptr<Pool>;  // never destroyed
  return *p;
}
inline std::vector<std::unique_ptr<Pool>>& abandoned_pools() {
  static auto* v = new std::vector<std::unique_ptr<Pool>>;  // never destroyed
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
  const std::function<void()> job = kernel;
  if (!current_pool()) current_pool() = std::make_unique<Pool>();
  Pool& pool = *current_pool();
  pool.grow(block);
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        dynamic_shared().assign(shared_bytes, 0);
        auto state = std::make_unique<BlockState>(block);
        BlockState* st = state.get();
        block_barrier = &st->barrier;
        block_warps = &st->warps;
        pool.kernel = &job;
        pool.block = {bx, by, bz};
        pool.state = st;
        for (unsigned tx = 0; tx < block; ++tx) pool.workers[tx]->go.release();
        bool finished;
        unsigned done;
        {
          std::unique_lock<std::mutex> lock(st->m);
          finished = st->cv.wait_for(lock, timeout, [&] { return st->done == block; });
          done = st->done;
        }
        if (!finished) {  // workers stuck at a barrier: keep their block and pool, start afresh
          abandoned().push_back(std::move(state));
          abandoned_pools().push_back(std::move(current_pool()));
          block_barrier = nullptr;
          block_warps = nullptr;
          throw std::runtime_error("emu::launch: block (" + std::to_string(bx) + ", " + std::to_string(by) + ", " +
                                   std::to_string(bz) + ") did not finish (" + std::to_string(done) + " of " +
                                   std::to_string(block) +
                                   " threads returned): a barrier not reached by every thread?");
        }
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

// ---- tensor-core fragments (nvcuda::wmma), see the top comment -------------------------------
namespace nvcuda::wmma {
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };
namespace precision {
struct tf32 {};
}  // namespace precision

// float -> TF32: keep 10 mantissa bits, round to nearest with ties away from zero (cvt.rna);
// NaN and infinities pass through.
inline float __float_to_tf32(float x) {
  uint32_t u = __float_as_uint(x);
  if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & ~0x1fffu;
  return __uint_as_float(u);
}

namespace detail {
// Rows x columns of a fragment's tile: matrix_a is M x K, matrix_b K x N, accumulator M x N.
template <class Use, int M, int N, int K> struct Shape;
template <int M, int N, int K> struct Shape<matrix_a, M, N, K> { static constexpr int R = M, C = K; };
template <int M, int N, int K> struct Shape<matrix_b, M, N, K> { static constexpr int R = K, C = N; };
template <int M, int N, int K> struct Shape<accumulator, M, N, K> { static constexpr int R = M, C = N; };
inline float widen(float v) { return v; }
inline float widen(__nv_bfloat16 v) { return __uint_as_float(static_cast<uint32_t>(v.bits) << 16); }
inline void collective() { emu::my_warp().barrier.arrive_and_wait(); }
}  // namespace detail

template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
  static constexpr int R = detail::Shape<Use, M, N, K>::R, C = detail::Shape<Use, M, N, K>::C;
  static constexpr int num_elements = R * C;
  float x[R * C];  // the tile, row-major (accumulators: only this lane's elements are kept)
};

template <class Use, int M, int N, int K, class T, class L>
void fill_fragment(fragment<Use, M, N, K, T, L>& f, float v) {
  for (float& e : f.x) e = v;
}

// matrix_a / matrix_b: the tile at p with leading dimension ldm, in the fragment's layout.
template <class Use, int M, int N, int K, class T, class L, class E>
void load_matrix_sync(fragment<Use, M, N, K, T, L>& f, const E* p, unsigned ldm) {
  detail::collective();
  using F = fragment<Use, M, N, K, T, L>;
  for (int r = 0; r < F::R; ++r)
    for (int c = 0; c < F::C; ++c)
      f.x[r * F::C + c] = detail::widen(std::is_same_v<L, col_major> ? p[c * ldm + r] : p[r * ldm + c]);
}

// d = a b + c on this lane's accumulator elements (float accumulation, k in order); d may be c.
template <int M, int N, int K, class T, class LA, class LB>
void mma_sync(fragment<accumulator, M, N, K, float>& d, const fragment<matrix_a, M, N, K, T, LA>& a,
              const fragment<matrix_b, M, N, K, T, LB>& b, const fragment<accumulator, M, N, K, float>& c) {
  detail::collective();
  const unsigned lane = threadIdx.x % emu::kWarpSize;
  for (unsigned e = lane; e < static_cast<unsigned>(M * N); e += emu::kWarpSize) {
    const unsigned m = e / N, n = e % N;
    float acc = c.x[e];
    for (int k = 0; k < K; ++k) acc += a.x[m * K + k] * b.x[k * N + n];
    d.x[e] = acc;
  }
}

template <int M, int N, int K>
void store_matrix_sync(float* p, const fragment<accumulator, M, N, K, float>& f, unsigned ldm, layout_t layout) {
  detail::collective();
  const unsigned lane = threadIdx.x % emu::kWarpSize;
  for (unsigned e = lane; e < static_cast<unsigned>(M * N); e += emu::kWarpSize) {
    const unsigned r = e / N, c = e % N;
    p[layout == mem_row_major ? r * ldm + c : c * ldm + r] = f.x[e];
  }
}
}  // namespace nvcuda::wmma
