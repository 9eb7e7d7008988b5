// bench_train_step: builds the model on random data and times the steps (median of repeats).
#include "bench/drivers/benchmark.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <optional>

#include "models/mil/baselines.h"
#include "models/nn/optim.h"
#include "ops/ops.h"
#include "tensor/profiler.h"
#include "tensor/storage.h"
#ifdef LIBRAMIL_WITH_CUDA
#include "cuda/device.h"
#include "cuda/graph.h"
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

StepTimes time_forward_backward(Device d, int warmup, int repeats, const std::function<void()>& before,
                                const std::function<Tensor()>& forward,
                                const std::function<void(const Tensor&)>& backward) {
  using Clock = std::chrono::steady_clock;
  std::vector<double> steps, fwds;
  for (int i = 0; i < warmup + repeats; ++i) {
    before();
    auto t0 = Clock::now();
    Tensor out = forward();
    sync_device(d);
    auto t1 = Clock::now();
    backward(out);
    sync_device(d);
    auto t2 = Clock::now();
    if (i >= warmup) {
      steps.push_back(std::chrono::duration<double, std::milli>(t2 - t0).count());
      fwds.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    }
  }
  StepTimes t;
  t.median_ms = median(steps);
  t.min_ms = steps.empty() ? 0 : *std::min_element(steps.begin(), steps.end());
  t.forward_median_ms = median(fwds);
  return t;
}

namespace {

// The benchmark's model, data and optimizer, the same for the same options (seeded).
struct StepSetup {
  std::unique_ptr<nn::Module> model;
  Tensor x, y;
  std::unique_ptr<optim::AdamW> opt;
};

StepSetup make_setup(const TrainStepOptions& o) {
  Generator gen(o.seed);
  StepSetup s;
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
    s.model = std::make_unique<models::LibraMIL>(c, z_ins, z_bag, gen);
  } else {
    s.model = models::make_baseline(o.model, o.dim, o.classes, gen);
  }
  s.model->to(o.device);
  s.x = Tensor::randn({o.instances, o.dim}, gen).to(o.device);
  s.y = Tensor::from_vector(std::vector<int64_t>{1 % o.classes}, {1}).to(o.device);
  s.opt = std::make_unique<optim::AdamW>(s.model->parameters(), 1e-4, std::pair<double, double>{0.9, 0.999}, 1e-8,
                                         0.01);
  return s;
}

// Eager training steps before the timed ones. With cuda_graph at least 1 (the graph run needs
// cuBLAS handles, a warm allocator cache and AdamW state before its capture), and the eager run
// takes as many so that both runs' losses line up step by step.
int train_warmup(const TrainStepOptions& o) { return o.cuda_graph ? std::max(o.warmup, 1) : o.warmup; }

// zero_grad, forward, backward (no optimizer step); returns the loss.
Tensor forward_backward(StepSetup& s) {
  s.opt->zero_grad();
  Tensor loss = cross_entropy(unsqueeze((*s.model)(s.x), 0), s.y);
  backward(loss);
  return loss;
}

// TrainStepOptions::fusion: the model's transport fusion alone, forward + backward.
StepTimes fusion_run(const TrainStepOptions& o) {
  StepSetup s = make_setup(o);
  auto* m = dynamic_cast<models::LibraMIL*>(s.model.get());
  if (!m) throw std::runtime_error("bench train-step: --fusion times Libra-MIL's fusion (--model libramil)");
  Generator gen(o.seed + 1);
  auto leaf = [&](const Shape& shape) { return Tensor::randn(shape, gen).to(o.device).set_requires_grad(true); };
  Tensor V = leaf({o.instances, o.dim}), Pv = leaf({o.visual_prototypes, o.dim}), Pt = leaf({o.text_prototypes, o.dim});
  const Tensor r = Tensor::randn({o.instances}, gen).to(o.device);
  const bool paper = o.mode == "paper";
  return time_forward_backward(
      o.device, std::max(o.warmup, 1), o.repeats,
      [&] {
        for (Tensor* x : {&V, &Pv, &Pt}) x->set_grad(Tensor());
        s.opt->zero_grad();
      },
      [&] { return sum(mul(paper ? m->fuse_paper(V, Pv, Pt) : m->fuse_reference(V, Pv, Pt), r)); },
      [](const Tensor& loss) { backward(loss); });
}

#ifdef LIBRAMIL_WITH_CUDA
// The graph run of TrainStepOptions::cuda_graph; `eager_losses` are the eager run's.
void graph_run(const TrainStepOptions& o, const std::vector<double>& eager_losses, TrainStepResult& r) {
  using Clock = std::chrono::steady_clock;
  StepSetup s = make_setup(o);
  cuda::StreamScope scope(o.device.index);  // a capturable stream for everything below
  std::vector<double> losses, steps;
  for (int i = 0; i < train_warmup(o); ++i) {
    Tensor loss = forward_backward(s);
    s.opt->step();
    losses.push_back(loss.item());
  }
  Tensor loss;  // written by every replay
  cuda::Graph graph(o.device.index, [&] { loss = forward_backward(s); });
  r.graph_nodes = static_cast<int64_t>(graph.num_nodes());
  for (int i = 0; i < o.repeats; ++i) {
    auto t0 = Clock::now();
    graph.replay();
    s.opt->step();
    sync_device(o.device);
    steps.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    losses.push_back(loss.item());
  }
  r.graph_median_ms = median(steps);
  const size_t n = std::min(losses.size(), eager_losses.size());
  for (size_t i = 0; i < n; ++i)
    r.graph_max_abs_loss_diff = std::max(r.graph_max_abs_loss_diff, std::abs(losses[i] - eager_losses[i]));
  r.graph_steps_compared = static_cast<int64_t>(n);
}
#endif

}  // namespace

TrainStepResult bench_train_step(const TrainStepOptions& o) {
  using Clock = std::chrono::steady_clock;
  check_device_available(o.device);
  if (o.cuda_graph && !o.device.is_cuda())
    throw std::runtime_error("bench train-step: --cuda-graph needs --device cuda");
  if (o.cuda_graph && o.forward_only) throw std::runtime_error("bench train-step: --cuda-graph times training steps");
  if (o.fusion && o.model != "libramil")
    throw std::runtime_error("bench train-step: --fusion times Libra-MIL's fusion (--model libramil)");
  TrainStepResult r;
  std::vector<double> eager_losses;
  {
    std::optional<profiler::Scope> setup_scope(std::in_place, "bench.setup (model, random data)");
    StepSetup s = make_setup(o);
    r.parameters = s.model->num_parameters();
    std::vector<double> steps, fwds;
    sync_device(o.device);
    setup_scope.reset();
    reset_device_peak(o.device);
    const int warmup = train_warmup(o);
    for (int i = 0; i < (o.forward_only ? 0 : warmup + o.repeats); ++i) {
      auto t0 = Clock::now();
      Tensor loss = forward_backward(s);
      s.opt->step();
      sync_device(o.device);
      double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
      if (i >= warmup) steps.push_back(ms);
      if (o.cuda_graph) eager_losses.push_back(loss.item());
    }
    {
      NoGradGuard ng;
      s.model->eval();
      for (int i = 0; i < o.warmup + o.repeats; ++i) {
        auto t0 = Clock::now();
        Tensor logits = (*s.model)(s.x);
        sync_device(o.device);
        double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        if (i >= o.warmup) fwds.push_back(ms);
      }
    }
    r.median_ms = median(steps);
    r.min_ms = steps.empty() ? 0 : *std::min_element(steps.begin(), steps.end());
    r.forward_median_ms = median(fwds);
    r.peak_bytes = device_peak_bytes(o.device);
  }
#ifdef LIBRAMIL_WITH_CUDA
  if (o.cuda_graph) graph_run(o, eager_losses, r);
#endif
  if (o.fusion) r.fusion = fusion_run(o);
  return r;
}

}  // namespace lm::bench
