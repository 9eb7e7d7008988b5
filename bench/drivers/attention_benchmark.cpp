// bench_attention: see attention_benchmark.h.
#include "bench/drivers/attention_benchmark.h"

#include <algorithm>
#include <cstdlib>
#include <stdexcept>
#include <vector>

#include "bench/drivers/benchmark.h"
#include "ops/ops.h"
#include "tensor/profiler.h"
#include "tensor/storage.h"

namespace lm::bench {

namespace {

// Sets LIBRAMIL_CUDA_ATTENTION for the benchmark and restores it after.
struct PathScope {
  bool set = false, had = false;
  std::string prev;
  explicit PathScope(const std::string& path) {
    if (path.empty()) return;
    if (path != "fused" && path != "composed" && path != "cudnn")
      throw std::invalid_argument("bench attention: --path must be fused, composed or cudnn, got '" + path + "'");
    if (const char* p = std::getenv("LIBRAMIL_CUDA_ATTENTION")) had = true, prev = p;
    setenv("LIBRAMIL_CUDA_ATTENTION", path.c_str(), 1);
    set = true;
  }
  ~PathScope() {
    if (!set) return;
    if (had) setenv("LIBRAMIL_CUDA_ATTENTION", prev.c_str(), 1);
    else unsetenv("LIBRAMIL_CUDA_ATTENTION");
  }
  PathScope(const PathScope&) = delete;
  PathScope& operator=(const PathScope&) = delete;
};

// Which implementation the profiler saw: the cuDNN scope, the fused kernels' scope, or neither
// (the composition: matmul, softmax, matmul).
std::string which(const std::vector<profiler::Row>& rows, const char* cudnn, const char* fused) {
  bool c = false, f = false;
  for (const profiler::Row& r : rows) {
    if (r.calls == 0) continue;
    c = c || r.name == cudnn;
    f = f || r.name == fused;
  }
  return c ? "cudnn" : f ? "fused" : "composed";
}

}  // namespace

AttentionBenchResult bench_attention(const AttentionBenchOptions& o) {
  check_device_available(o.device);
  for (int64_t s : {o.B, o.H, o.Lq, o.Lk, o.d, o.dv})
    if (s < 1) throw std::invalid_argument("bench attention: every size must be >= 1");
  if (o.repeats < 1 || o.warmup < 0) throw std::invalid_argument("bench attention: --repeats must be >= 1");
  PathScope path(o.path);
  Generator gen(o.seed);
  Tensor q = Tensor::randn({o.B, o.H, o.Lq, o.d}, gen).to(o.device);
  Tensor k = Tensor::randn({o.B, o.H, o.Lk, o.d}, gen).to(o.device);
  Tensor v = Tensor::randn({o.B, o.H, o.Lk, o.dv}, gen).to(o.device);
  Tensor go = Tensor::randn({o.B, o.H, o.Lq, o.dv}, gen).to(o.device);
  for (Tensor* x : {&q, &k, &v}) x->set_requires_grad(!o.forward_only);
  AttentionBenchResult r;
  // One untimed step under the profiler says which path ran (its scopes), then the warm-up
  // and timed steps run without it.
  {
    const bool was = profiler::enabled();
    profiler::reset();
    profiler::set_enabled(true);
    Tensor out = scaled_dot_product_attention(q, k, v);
    if (!o.forward_only) backward(out, go);
    sync_device(o.device);
    profiler::set_enabled(was);
    const std::vector<profiler::Row> rows = profiler::snapshot();
    profiler::reset();
    r.forward_ran = which(rows, "attention_forward_cudnn", "attention_forward");
    if (!o.forward_only) r.backward_ran = which(rows, "attention_backward_cudnn", "attention_backward");
  }
  reset_device_peak(o.device);
  static_cast<StepTimes&>(r) = time_forward_backward(
      o.device, o.warmup, o.repeats, [&] { for (Tensor* x : {&q, &k, &v}) x->set_grad(Tensor()); },
      [&] { return scaled_dot_product_attention(q, k, v); },
      [&](const Tensor& out) {
        if (!o.forward_only) backward(out, go);
      });
  r.peak_bytes = device_peak_bytes(o.device);
  return r;
}

}  // namespace lm::bench
