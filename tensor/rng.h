// Counter-based random numbers (Philox4x32-10, Salmon et al. 2011). Element i of a draw
// depends only on (seed, offset + i), so the CPU and a CUDA kernel produce the same stream
// and a draw can be split across threads without changing it.
#pragma once
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define LM_HOST_DEVICE __host__ __device__
#else
#define LM_HOST_DEVICE
#endif

namespace lm {

struct Philox4x32 {
  uint32_t c[4];
};

LM_HOST_DEVICE inline Philox4x32 philox4x32_10(uint64_t counter, uint64_t key) {
  uint32_t c0 = (uint32_t)counter, c1 = (uint32_t)(counter >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
  for (int r = 0; r < 10; ++r) {
    uint64_t p0 = (uint64_t)0xD2511F53u * c0;
    uint64_t p1 = (uint64_t)0xCD9E8D57u * c2;
    uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
    uint32_t n1 = (uint32_t)p1;
    uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
    uint32_t n3 = (uint32_t)p0;
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return {{c0, c1, c2, c3}};
}

// Uniform in (0, 1] from 32 random bits (never 0, so log() is safe).
LM_HOST_DEVICE inline double uint_to_unit(uint32_t x) { return ((double)x + 1.0) / 4294967296.0; }

// The i-th standard normal of stream (key, counter offset): Box-Muller on one Philox block.
LM_HOST_DEVICE inline double philox_normal(uint64_t key, uint64_t index) {
  Philox4x32 r = philox4x32_10(index, key);
  double u1 = uint_to_unit(r.c[0]), u2 = uint_to_unit(r.c[1]);
  return ::sqrt(-2.0 * ::log(u1)) * ::cos(6.283185307179586 * u2);  // :: so lm::log(Tensor) cannot hide them
}

// The i-th uniform in [0, 1).
LM_HOST_DEVICE inline double philox_uniform(uint64_t key, uint64_t index) {
  Philox4x32 r = philox4x32_10(index, key);
  return (double)r.c[0] / 4294967296.0;
}

// A seeded stream position. Each draw of n values advances the offset by n.
class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : seed_(seed) {}
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  void set_state(uint64_t seed, uint64_t offset) { seed_ = seed; offset_ = offset; }
  // Reserves n consecutive indices; returns the first.
  uint64_t advance(uint64_t n) { uint64_t o = offset_; offset_ += n; return o; }
  double next_uniform() { return philox_uniform(seed_, advance(1)); }
  // Uniform integer in [0, n).
  uint64_t next_below(uint64_t n) { return (uint64_t)(next_uniform() * (double)n) % n; }

 private:
  uint64_t seed_ = 0;
  uint64_t offset_ = 0;
};

}  // namespace lm
