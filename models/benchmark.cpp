// bench_train_step: builds the model on random data and times the steps (median of repeats).
#include "models/benchmark.h"

#include <algorithm>
#include <chrono>
#include <optional>

#include "models/baselines.h"
#include "models/optim.h"
#include "ops/ops.h"
#include "tensor/profiler.h"
#include "tensor/storage.h"
#ifdef LIBRAMIL_WITH_CUDA
#include "cuda/device.h"
#endif

namespace lm::bench {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

void sync_device(Device d) {
#ifdef LIBRAMIL_WITH_CUDA
  if (d.is_cuda()) cuda::synchronize(d.index);
#else
  (void)d;
#endif
}

int64_t device_peak_bytes(Device d) {
#ifdef LIBRAMIL_WITH_CUDA
  if (d.is_cuda()) return cuda::allocator_stats(d.index).peak;
#endif
  (void)d;
  return Storage::cpu_peak_bytes();
}

int64_t device_bytes_in_use(Device d) {
#ifdef LIBRAMIL_WITH_CUDA
  if (d.is_cuda()) return cuda::allocator_stats(d.index).current;
#endif
  (void)d;
  return Storage::cpu_bytes_in_use();
}

void reset_device_peak(Device d) {
#ifdef LIBRAMIL_WITH_CUDA
  if (d.is_cuda()) cuda::reset_peak(d.index);
#endif
  (void)d;
  Storage::reset_cpu_peak();
}

TrainStepResult bench_train_step(const TrainStepOptions& o) {
  using Clock = std::chrono::steady_clock;
  check_device_available(o.device);
  std::optional<profiler::Scope> setup_scope(std::in_place, "bench.setup (model, random data)");
  Generator gen(o.seed);
  std::unique_ptr<nn::Module> model;
  if (o.model == "libramil") {
    models::LibraMILConfig c;
    c.dim = o.dim;
    c.text_dim = o.dim;
    c.num_vis_prototypes = o.visual_prototypes;
    c.num_text_prototypes = o.text_prototypes;
    c.num_classes = o.classes;
    c.mode = o.mode;
    Tensor z_ins = l2_normalize(Tensor::randn({o.text_prototypes, o.dim}, gen), 1);
    Tensor z_bag = l2_normalize(Tensor::randn({o.classes, o.dim}, gen), 1);
    model = std::make_unique<models::LibraMIL>(c, z_ins, z_bag, gen);
  } else {
    model = models::make_baseline(o.model, o.dim, o.classes, gen);
  }
  model->to(o.device);
  Tensor x = Tensor::randn({o.instances, o.dim}, gen).to(o.device);
  Tensor y = Tensor::from_vector(std::vector<int64_t>{1 % o.classes}, {1}).to(o.device);
  optim::AdamW opt(model->parameters(), 1e-4, {0.9, 0.999}, 1e-8, 0.01);
  TrainStepResult r;
  r.parameters = model->num_parameters();
  std::vector<double> steps, fwds;
  sync_device(o.device);
  setup_scope.reset();
  reset_device_peak(o.device);
  for (int i = 0; i < (o.forward_only ? 0 : o.warmup + o.repeats); ++i) {
    auto t0 = Clock::now();
    opt.zero_grad();
    Tensor loss = cross_entropy(unsqueeze((*model)(x), 0), y);
    backward(loss);
    opt.step();
    sync_device(o.device);
    double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    if (i >= o.warmup) steps.push_back(ms);
  }
  {
    NoGradGuard ng;
    model->eval();
    for (int i = 0; i < o.warmup + o.repeats; ++i) {
      auto t0 = Clock::now();
      Tensor logits = (*model)(x);
      sync_device(o.device);
      double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
      if (i >= o.warmup) fwds.push_back(ms);
    }
  }
  r.median_ms = median(steps);
  r.min_ms = steps.empty() ? 0 : *std::min_element(steps.begin(), steps.end());
  r.forward_median_ms = median(fwds);
  r.peak_bytes = device_peak_bytes(o.device);
  return r;
}

}  // namespace lm::bench
