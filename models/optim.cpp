// SGD / Adam / AdamW, schedules and gradient clipping; the update rules are listed in optim.h
// and follow torch/optim/{sgd,adam,adamw}.py (_single_tensor_* of torch 1.13).
#include "models/optim.h"
#include "ops/cpu/isa.h"
#include "tensor/profiler.h"
#ifdef LIBRAMIL_WITH_CUDA
#include "cuda/copy.h"
#include "cuda/optim.h"
#endif

#include <algorithm>
#include <cmath>
#include <numbers>
#include <stdexcept>
#include <type_traits>

#include "autograd/node.h"

namespace lm::optim {

namespace {

void check_param(const Tensor& p, size_t i, const char* who) {
  if (!p.defined()) throw std::invalid_argument(std::string(who) + ": parameter " + std::to_string(i) + " is undefined");
  if (!is_compute_float(p.dtype()))
    throw std::invalid_argument(std::string(who) + ": parameter " + std::to_string(i) + " is " + p.str() +
                                "; only float32/float64 parameters can be optimised");
  if (!p.is_leaf()) throw std::invalid_argument(std::string(who) + ": parameter " + std::to_string(i) + " is not a leaf tensor");
}

// A CPU, contiguous working view of a parameter: the parameter itself when it already is
// one, else a host copy written back by finish().
struct HostParam {
  Tensor param, host;
  explicit HostParam(const Tensor& p) : param(p) {
    Tensor d = p.detach();
    host = (d.device().is_cpu() && d.is_contiguous()) ? d : d.to(Device::cpu()).contiguous();
    if (host.same(d)) return;
    if (host.impl().storage == d.impl().storage) host = host.clone();
  }
  void finish() {
    Tensor d = param.detach();
    if (host.impl().storage != d.impl().storage) d.copy_from(host);
  }
};

// The gradient as a CPU contiguous tensor of the parameter's dtype.
Tensor host_grad(const Tensor& p, size_t i, const char* who) {
  Tensor g = p.grad();
  if (g.shape() != p.shape())
    throw std::runtime_error(std::string(who) + ": gradient of parameter " + std::to_string(i) + " has shape " +
                             shape_str(g.shape()) + ", the parameter " + shape_str(p.shape()));
  return g.to(Device::cpu()).to(p.dtype()).contiguous();
}

Tensor& state_buffer(std::map<std::string, Tensor>& buffers, const std::string& name, const Tensor& like) {
  auto it = buffers.find(name);
  if (it == buffers.end()) it = buffers.emplace(name, Tensor::zeros(like.shape(), like.dtype())).first;
  return it->second;
}

template <class T>
void sgd_kernel(T* p, const T* g, T* buf, int64_t n, bool first, double lr, double momentum, double wd,
                double dampening, bool nesterov) {
  for (int64_t i = 0; i < n; ++i) {
    double d = (double)g[i];
    if (wd != 0.0) d += wd * (double)p[i];
    if (momentum != 0.0) {
      double b = first ? d : momentum * (double)buf[i] + (1.0 - dampening) * d;
      buf[i] = (T)b;
      d = nesterov ? d + momentum * (double)buf[i] : (double)buf[i];
    }
    p[i] = (T)((double)p[i] - lr * d);
  }
}

// One contiguous range of the Adam update, in float64 arithmetic with the rounding points of
// torch.optim's float32 implementation. Compiled for AVX-512 / AVX2 / baseline (the loader
// picks one); the loop vectorises under `omp simd`.
// Weight decay variants, fixed per call so that the loop has no branches.
enum class Decay { None, Decoupled, L2 };

template <class T, Decay mode>
inline __attribute__((always_inline)) void adam_range(T* __restrict p, const T* __restrict g, T* __restrict m,
                                                      T* __restrict v, int64_t n, double step_size, double bc2_sqrt,
                                                      double b1, double b2, double eps, double wd, double decay) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    double pi = (double)p[i];
    double gi = (double)g[i];
    if constexpr (mode == Decay::Decoupled) pi = (double)(T)(pi * decay);
    if constexpr (mode == Decay::L2) gi = (double)(T)(gi + wd * pi);
    const T mi = (T)(b1 * (double)m[i] + (1.0 - b1) * gi);
    const T vi = (T)(b2 * (double)v[i] + (1.0 - b2) * gi * gi);
    m[i] = mi;
    v[i] = vi;
    const double denom = std::sqrt((double)vi) / bc2_sqrt + eps;
    p[i] = (T)(pi - step_size * (double)mi / denom);
  }
}

template <class T>
inline __attribute__((always_inline)) void adam_range_any(T* p, const T* g, T* m, T* v, int64_t n, double step_size,
                                                          double bc2_sqrt, double b1, double b2, double eps, double wd,
                                                          double decay, bool decoupled) {
  if (decoupled) adam_range<T, Decay::Decoupled>(p, g, m, v, n, step_size, bc2_sqrt, b1, b2, eps, wd, decay);
  else if (wd != 0.0) adam_range<T, Decay::L2>(p, g, m, v, n, step_size, bc2_sqrt, b1, b2, eps, wd, decay);
  else adam_range<T, Decay::None>(p, g, m, v, n, step_size, bc2_sqrt, b1, b2, eps, wd, decay);
}

#if LM_X86  // ops/cpu/isa.h; elsewhere one version, vectorised for the target
#define LM_OPT_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define LM_OPT_CLONES
#endif
LM_OPT_CLONES void adam_range_f32(float* p, const float* g, float* m, float* v, int64_t n, double step_size,
                                  double bc2_sqrt, double b1, double b2, double eps, double wd, double decay,
                                  bool decoupled) {
  adam_range_any(p, g, m, v, n, step_size, bc2_sqrt, b1, b2, eps, wd, decay, decoupled);
}
LM_OPT_CLONES void adam_range_f64(double* p, const double* g, double* m, double* v, int64_t n, double step_size,
                                  double bc2_sqrt, double b1, double b2, double eps, double wd, double decay,
                                  bool decoupled) {
  adam_range_any(p, g, m, v, n, step_size, bc2_sqrt, b1, b2, eps, wd, decay, decoupled);
}

// The per-step constants of one parameter's Adam update (torch's bias corrections).
struct AdamConsts {
  double step_size, bc2_sqrt, decay;
};
AdamConsts adam_consts(int64_t step, double lr, double b1, double b2, double wd, bool decoupled) {
  const double bc1 = 1.0 - std::pow(b1, (double)step);
  return {lr / bc1, std::sqrt(1.0 - std::pow(b2, (double)step)), decoupled ? 1.0 - lr * wd : 1.0};
}

// One parameter's buffers, ready for the update.
struct AdamJob {
  void *p, *g, *m, *v;
  int64_t n;
  bool f32;
  AdamConsts c;
};

// Runs every parameter's update as one parallel loop over 32k-element blocks of all of them,
// so that a model of many mid-sized tensors (512 x 512 weights) still uses every thread; a
// step with little work in total stays on the calling thread (see docs/tour.md "Threads").
void adam_run(const std::vector<AdamJob>& jobs, double b1, double b2, double eps, double wd, bool decoupled) {
  constexpr int64_t kBlock = 1 << 15;
  std::vector<std::pair<int, int64_t>> blocks;  // (job, first element)
  int64_t total = 0;
  for (size_t j = 0; j < jobs.size(); ++j) {
    total += jobs[j].n;
    for (int64_t i0 = 0; i0 < jobs[j].n; i0 += kBlock) blocks.emplace_back((int)j, i0);
  }
  const int64_t nb = (int64_t)blocks.size();
#pragma omp parallel for schedule(static) if (total > (1 << 18))
  for (int64_t b = 0; b < nb; ++b) {
    const AdamJob& jb = jobs[blocks[b].first];
    const int64_t i0 = blocks[b].second, len = std::min(kBlock, jb.n - i0);
    if (jb.f32)
      adam_range_f32((float*)jb.p + i0, (const float*)jb.g + i0, (float*)jb.m + i0, (float*)jb.v + i0, len,
                     jb.c.step_size, jb.c.bc2_sqrt, b1, b2, eps, wd, jb.c.decay, decoupled);
    else
      adam_range_f64((double*)jb.p + i0, (const double*)jb.g + i0, (double*)jb.m + i0, (double*)jb.v + i0, len,
                     jb.c.step_size, jb.c.bc2_sqrt, b1, b2, eps, wd, jb.c.decay, decoupled);
  }
}

}  // namespace

// ---- Optimizer ----------------------------------------------------------------------

Optimizer::Optimizer(std::vector<Tensor> params, double lr) : params_(std::move(params)), lr_(lr) {
  for (size_t i = 0; i < params_.size(); ++i) check_param(params_[i], i, "Optimizer");
  if (lr < 0) throw std::invalid_argument("Optimizer: negative learning rate " + std::to_string(lr));
  state_.resize(params_.size());
}

void Optimizer::zero_grad(bool set_to_none) {
  for (auto& p : params_) {
    if (set_to_none) p.impl().grad.reset();
    else if (p.grad().defined()) p.grad().fill(0.0);
  }
}

std::map<std::string, Tensor> Optimizer::state_tensors() const {
  std::map<std::string, Tensor> out;
  for (size_t i = 0; i < state_.size(); ++i) {
    if (state_[i].step == 0 && state_[i].buffers.empty()) continue;
    const std::string pre = std::to_string(i) + ".";
    out.emplace(pre + "step", Tensor::from_vector(std::vector<int64_t>{state_[i].step}, {}));
    for (auto& [name, t] : state_[i].buffers) out.emplace(pre + name, t.clone());
  }
  return out;
}

void Optimizer::load_state_tensors(const std::map<std::string, Tensor>& state) {
  std::vector<ParamState> fresh(params_.size());
  const auto fields = state_fields();
  for (auto& [key, t] : state) {
    const auto dot = key.find('.');
    size_t idx = 0;
    bool ok = dot != std::string::npos && dot > 0;
    if (ok) {
      try {
        size_t used = 0;
        idx = std::stoul(key.substr(0, dot), &used);
        ok = used == dot;
      } catch (const std::exception&) {
        ok = false;
      }
    }
    if (!ok) throw std::runtime_error("optimizer state: malformed key '" + key + "' (expected '<index>.<field>')");
    if (idx >= params_.size())
      throw std::runtime_error("optimizer state: key '" + key + "' refers to parameter " + std::to_string(idx) +
                               " but the optimizer has " + std::to_string(params_.size()));
    const std::string field = key.substr(dot + 1);
    if (field == "step") {
      if (t.numel() != 1) throw std::runtime_error("optimizer state: '" + key + "' must hold one value");
      fresh[idx].step = (int64_t)std::llround(t.item());
      continue;
    }
    bool known = false;
    for (auto& f : fields) known |= f == field;
    if (!known) throw std::runtime_error("optimizer state: unknown field in key '" + key + "'");
    const Tensor& p = params_[idx];
    if (t.shape() != p.shape())
      throw std::runtime_error("optimizer state: '" + key + "' has shape " + shape_str(t.shape()) + ", parameter has " +
                               shape_str(p.shape()));
    Tensor b = Tensor::empty(p.shape(), p.dtype());
    b.copy_from(t.to(Device::cpu()));
    fresh[idx].buffers[field] = b;
  }
  state_ = std::move(fresh);
}

// ---- SGD ----------------------------------------------------------------------------

SGD::SGD(std::vector<Tensor> params, double lr, double momentum_, double wd, double damp, bool nest)
    : Optimizer(std::move(params), lr), momentum(momentum_), weight_decay(wd), dampening(damp), nesterov(nest) {
  if (momentum < 0 || weight_decay < 0) throw std::invalid_argument("SGD: momentum and weight_decay must be >= 0");
  if (nesterov && (momentum <= 0 || dampening != 0))
    throw std::invalid_argument("SGD: Nesterov momentum requires a momentum and zero dampening");
}

void SGD::step() {
  profiler::Scope prof("optimizer.step");
  autograd::NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i];
    if (!p.grad().defined()) continue;
    Tensor g = host_grad(p, i, "SGD");
    HostParam hp(p);
    ParamState& st = state_[i];
    const bool first = st.buffers.find("momentum_buffer") == st.buffers.end();
    Tensor buf;
    if (momentum != 0.0) buf = state_buffer(st.buffers, "momentum_buffer", hp.host);
    ++st.step;
    const int64_t n = p.numel();
    if (p.dtype() == DType::F32)
      sgd_kernel(hp.host.data<float>(), g.data<float>(), buf.defined() ? buf.data<float>() : nullptr, n, first, lr_,
                 momentum, weight_decay, dampening, nesterov);
    else
      sgd_kernel(hp.host.data<double>(), g.data<double>(), buf.defined() ? buf.data<double>() : nullptr, n, first,
                 lr_, momentum, weight_decay, dampening, nesterov);
    hp.finish();
  }
}

// ---- Adam / AdamW -------------------------------------------------------------------

Adam::Adam(std::vector<Tensor> params, double lr, std::pair<double, double> betas, double eps_, double wd)
    : Optimizer(std::move(params), lr), beta1(betas.first), beta2(betas.second), eps(eps_), weight_decay(wd) {
  if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1))
    throw std::invalid_argument("Adam: betas must lie in [0, 1), got (" + std::to_string(beta1) + ", " + std::to_string(beta2) + ")");
  if (eps < 0 || weight_decay < 0) throw std::invalid_argument("Adam: eps and weight_decay must be >= 0");
}

void Adam::step() {
  profiler::Scope prof("optimizer.step");
  autograd::NoGradGuard no_grad;
  const char* who = decoupled_ ? "AdamW" : "Adam";
  // Gather every parameter's working buffers first, then update them all in one parallel loop.
  std::vector<HostParam> hosts;
  std::vector<Tensor> grads;
  std::vector<AdamJob> jobs;
  hosts.reserve(params_.size());
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i];
    if (!p.grad().defined()) continue;
#ifdef LIBRAMIL_WITH_CUDA
    if (p.device().is_cuda() && p.is_contiguous()) {  // updated on the device (cuda/optim.cu)
      device_step(i, who);
      continue;
    }
#endif
    grads.push_back(host_grad(p, i, who));
    hosts.emplace_back(p);
    ParamState& st = state_[i];
    Tensor& m = state_buffer(st.buffers, "exp_avg", hosts.back().host);
    Tensor& v = state_buffer(st.buffers, "exp_avg_sq", hosts.back().host);
    ++st.step;
    jobs.push_back({hosts.back().host.raw_data(), grads.back().raw_data(), m.raw_data(), v.raw_data(), p.numel(),
                    p.dtype() == DType::F32, adam_consts(st.step, lr_, beta1, beta2, weight_decay, decoupled_)});
  }
  adam_run(jobs, beta1, beta2, eps, weight_decay, decoupled_);
  for (HostParam& hp : hosts) hp.finish();
}

#ifdef LIBRAMIL_WITH_CUDA
// A CUDA parameter's update without leaving the device: gradient, exp_avg and exp_avg_sq live
// beside the parameter (state loaded from a checkpoint arrives on the CPU and moves over here).
void Adam::device_step(size_t i, const char* who) {
  Tensor p = params_[i].detach();
  Tensor g = params_[i].grad();
  if (g.shape() != p.shape())
    throw std::runtime_error(std::string(who) + ": gradient of parameter " + std::to_string(i) + " has shape " +
                             shape_str(g.shape()) + ", the parameter " + shape_str(p.shape()));
  g = g.to(p.device()).to(p.dtype());
  if (!g.is_contiguous()) g = cuda::contiguous(g);
  ParamState& st = state_[i];
  Tensor* buf[2];
  const char* names[2] = {"exp_avg", "exp_avg_sq"};
  for (int k = 0; k < 2; ++k) {
    auto it = st.buffers.find(names[k]);
    if (it == st.buffers.end()) it = st.buffers.emplace(names[k], Tensor::zeros(p.shape(), p.dtype(), p.device())).first;
    else if (it->second.device() != p.device()) it->second = it->second.to(p.device()).contiguous();
    buf[k] = &it->second;
  }
  ++st.step;
  const AdamConsts c = adam_consts(st.step, lr_, beta1, beta2, weight_decay, decoupled_);
  cuda::adam_update(p, g, *buf[0], *buf[1],
                    {c.step_size, c.bc2_sqrt, c.decay, beta1, beta2, eps, weight_decay, decoupled_});
}
#endif

AdamW::AdamW(std::vector<Tensor> params, double lr, std::pair<double, double> betas, double eps, double wd)
    : Adam(std::move(params), lr, betas, eps, wd) {
  decoupled_ = true;
}

// ---- schedules ----------------------------------------------------------------------

CosineWithWarmup::CosineWithWarmup(double base_lr, int64_t warmup_steps, int64_t total_steps)
    : base_(base_lr), warmup_(warmup_steps), total_(total_steps) {
  if (warmup_steps < 0 || total_steps < 0)
    throw std::invalid_argument("CosineWithWarmup: negative step counts (" + std::to_string(warmup_steps) + ", " +
                                std::to_string(total_steps) + ")");
}

double CosineWithWarmup::factor(int64_t step) const {
  if (step < warmup_) return (double)step / (double)std::max<int64_t>(1, warmup_);
  const double progress = (double)(step - warmup_) / (double)std::max<int64_t>(1, total_ - warmup_);
  return std::max(0.0, 0.5 * (1.0 + std::cos(std::numbers::pi * 0.5 * 2.0 * progress)));
}

double CosineWithWarmup::lr_at(int64_t step) const { return base_ * factor(step); }

// ---- clipping -----------------------------------------------------------------------

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm) {
  autograd::NoGradGuard no_grad;
  double sq = 0.0;
  for (auto& p : params) {
    if (!p.defined() || !p.grad().defined()) continue;
    for (double x : p.grad().to_double_vector()) sq += x * x;
  }
  const double norm = std::sqrt(sq);
  const double coef = max_norm / (norm + 1e-6);
  if (coef < 1.0) {
    for (auto& p : params) {
      if (!p.defined() || !p.grad().defined()) continue;
      Tensor g = p.grad();
      Tensor h = g.to(Device::cpu()).to(DType::F64).contiguous();
      if (h.same(g) || h.impl().storage == g.impl().storage) h = h.clone();
      double* d = h.data<double>();
      for (int64_t i = 0, n = h.numel(); i < n; ++i) d[i] *= coef;
      g.copy_from(h);
    }
  }
  return norm;
}

}  // namespace lm::optim
