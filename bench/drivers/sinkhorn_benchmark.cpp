// bench_sinkhorn / sinkhorn_step: see sinkhorn_benchmark.h.
#include "bench/drivers/sinkhorn_benchmark.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <vector>

#include "bench/drivers/benchmark.h"
#include "ops/ops.h"
#include "tensor/storage.h"

namespace lm::bench {

namespace {

Tensor leaf(const Tensor& x) {
  Tensor l = x.detach().contiguous().clone();
  l.set_requires_grad(true);
  return l;
}

// Current resident set size from /proc/self/statm (0 where unavailable).
int64_t current_rss_bytes() {
  std::ifstream f("/proc/self/statm");
  int64_t size = 0, resident = 0;
  if (!(f >> size >> resident)) return 0;
  return resident * (int64_t)sysconf(_SC_PAGESIZE);
}

}  // namespace

SinkhornStepResult sinkhorn_step(const Tensor& a_t, const Tensor& a_v, const Tensor& cost, const Tensor& weights,
                                 const SinkhornOptions& config, Device device) {
  check_device_available(device);
  Tensor at = leaf(a_t.to(device)), av = leaf(a_v.to(device)), c = leaf(cost.to(device));
  Tensor cols = sinkhorn_column_sums(at, av, c, config);
  backward(sum(mul(cols, weights.detach().to(device))));
  const Device cpu = Device::cpu();
  return {cols.detach().to(cpu), at.grad().to(cpu), av.grad().to(cpu), c.grad().to(cpu)};
}

SinkhornBenchResult bench_sinkhorn(const SinkhornBenchOptions& o) {
  check_device_available(o.device);
  Generator gen(o.seed);
  const int64_t N = o.instances, Kt = o.text_prototypes, Kv = o.visual_prototypes;
  Tensor a_t, a_v, cost, W;
  {
    NoGradGuard ng;
    a_t = leaf(softmax(Tensor::randn({N, Kt}, gen), -1));
    a_v = leaf(softmax(Tensor::randn({N, Kv}, gen), -1));
    Tensor Pt = Tensor::randn({Kt, o.proto_dim}, gen), Pv = Tensor::randn({Kv, o.proto_dim}, gen);
    cost = leaf(rsub(1.0, matmul(l2_normalize(Pt, 1), t(l2_normalize(Pv, 1)))));
    W = Tensor::randn({N, Kv}, gen);
    if (!o.device.is_cpu()) {  // the same values on the device
      a_t = leaf(a_t.to(o.device)), a_v = leaf(a_v.to(o.device)), cost = leaf(cost.to(o.device));
      W = W.to(o.device);
    }
  }
  sync_device(o.device);
  SinkhornBenchResult r;
  r.inputs_bytes = device_bytes_in_use(o.device);
  r.rss_before_bytes = current_rss_bytes();
  reset_device_peak(o.device);
  static_cast<StepTimes&>(r) = time_forward_backward(
      o.device, o.warmup, o.repeats, [&] { for (Tensor* x : {&a_t, &a_v, &cost}) x->set_grad(Tensor()); },
      [&] { return sum(mul(sinkhorn_column_sums(a_t, a_v, cost, o.config), W)); },
      [](const Tensor& loss) { backward(loss); });
  r.peak_bytes = device_peak_bytes(o.device);
  return r;
}

}  // namespace lm::bench
