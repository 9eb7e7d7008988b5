// Attention shapes shared by the tests of the fused CUDA kernels: test_cuda_attention (on a GPU,
// fused vs composed) and test_cuda_emulated (the same kernels on the CPU emulator): a
// Libra-MIL shape and odd ones (size-1 dims, d not a multiple of 32, dv != d, wide rows,
// broadcast masks, a fully masked query row). Also the scope that picks the attention path
// (AttentionMode) and one profiled forward + backward (run_attention), used by
// test_cuda_attention and test_cudnn_attention.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "ops/ops.h"
#include "tensor/profiler.h"
#include "tensor/rng.h"
#include "tensor/tensor.h"

namespace lm::test {

// Sets LIBRAMIL_CUDA_ATTENTION (the attention path, ops/attention.cpp) for a scope; restores the
// previous value (or its absence).
struct AttentionMode {
  static constexpr const char* kEnv = "LIBRAMIL_CUDA_ATTENTION";
  std::string prev;
  bool had = false;
  explicit AttentionMode(const char* value) {
    if (const char* p = std::getenv(kEnv)) {
      had = true;
      prev = p;
    }
    setenv(kEnv, value, 1);
  }
  ~AttentionMode() {
    if (had) setenv(kEnv, prev.c_str(), 1);
    else unsetenv(kEnv);
  }
  AttentionMode(const AttentionMode&) = delete;
  AttentionMode& operator=(const AttentionMode&) = delete;
};

// One forward + backward of scaled_dot_product_attention (out, the gradients of q, k, v given
// the output gradient R, on the inputs' device) under the profiler, with the names of the
// profiler scopes that ran, which tell the path: attention_forward(_cudnn), ...
struct AttentionRun {
  Tensor out, dq, dk, dv;
  std::vector<std::string> scopes;
  bool ran(const std::string& s) const { return std::find(scopes.begin(), scopes.end(), s) != scopes.end(); }
};
inline AttentionRun run_attention(const Tensor& q0, const Tensor& k0, const Tensor& v0, const Tensor& mask,
                                  const Tensor& R) {
  Tensor q = q0.detach(), k = k0.detach(), v = v0.detach();
  q.set_requires_grad(true);
  k.set_requires_grad(true);
  v.set_requires_grad(true);
  const bool was = profiler::enabled();
  profiler::reset();
  profiler::set_enabled(true);
  AttentionRun r;
  r.out = scaled_dot_product_attention(q, k, v, mask);
  backward(r.out, R);
  profiler::set_enabled(was);
  for (const profiler::Row& row : profiler::snapshot())
    if (row.calls > 0) r.scopes.push_back(row.name);
  profiler::reset();
  r.out = r.out.detach();
  r.dq = q.grad();
  r.dk = k.grad();
  r.dv = v.grad();
  return r;
}

struct AttentionCase {
  int64_t B, H, Lq, Lk, d, dv;
  int mask;  // 0 none, 1 random 0/-inf (Lq, Lk), 2 random (B, 1, Lq, Lk), 3 (Lq, Lk) with query row 1 all -inf
  const char* what;
};

inline const std::vector<AttentionCase>& attention_cases() {
  static const std::vector<AttentionCase> c = {
      {1, 1, 56, 5000, 512, 512, 0, "Libra-MIL: 56 prototypes x 5000 instances, d = dv = 512"},
      {2, 3, 5, 77, 7, 9, 1, "d = 7, dv = 9, mask (Lq, Lk)"},
      {1, 2, 1, 1, 1, 1, 0, "Lq = Lk = d = dv = 1"},
      {1, 1, 33, 300, 37, 64, 2, "d = 37, mask (B, 1, Lq, Lk), key splits"},
      {2, 1, 150, 3, 64, 40, 0, "Lq = 150 over 3 keys (query splits in dk / dv)"},
      {1, 1, 4, 100, 600, 520, 0, "d = 600, dv = 520 (several column chunks)"},
      {1, 2, 6, 90, 16, 8, 3, "a fully masked query row"},
  };
  return c;
}

// The mask of a case (CPU, float64 values; converted by the caller), or undefined.
inline Tensor attention_case_mask(const AttentionCase& c, Generator& g) {
  if (c.mask == 0) return Tensor();
  const Shape s = c.mask == 2 ? Shape{c.B, 1, c.Lq, c.Lk} : Shape{c.Lq, c.Lk};
  const double ninf = -std::numeric_limits<double>::infinity();
  std::vector<double> v((size_t)shape_numel(s));
  for (size_t x = 0; x < v.size(); ++x) {
    const int64_t j = (int64_t)x % c.Lk, i = ((int64_t)x / c.Lk) % c.Lq;
    if (c.mask == 3) v[x] = (i == 1 || (j % 3 == 2)) ? ninf : 0.0;
    else v[x] = (j != 0 && g.next_uniform() < 0.4) ? ninf : 0.0;
  }
  return Tensor::from_vector(v, s);
}

}  // namespace lm::test
