// SGD / Adam / AdamW, schedules and gradient clipping; the update rules are listed in optim.h
// and follow torch/optim/{sgd,adam,adamw}.py (_single_tensor_* of torch 1.13).
#include "models/nn/optim.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <stdexcept>
#include <type_traits>

#include "autograd/node.h"
#include "ops/adam.h"
#include "ops/ops.h"
#include "tensor/profiler.h"

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

// The per-step constants of one parameter's Adam update (torch's bias corrections).
AdamStep adam_step(int64_t step, double lr, double b1, double b2, double eps, double wd, bool decoupled) {
  const double bc1 = 1.0 - std::pow(b1, (double)step);
  return {lr / bc1, std::sqrt(1.0 - std::pow(b2, (double)step)), decoupled ? 1.0 - lr * wd : 1.0, b1, b2, eps, wd,
          decoupled};
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
  profiler::Scope prof("optimizer.step", 0, 0);  // the update itself is the adam_update row
  autograd::NoGradGuard no_grad;
  const char* who = decoupled_ ? "AdamW" : "Adam";
  // Every parameter's working buffers first, then one update of them all (ops/adam.h).
  std::vector<HostParam> hosts;
  std::vector<AdamParam> updates;
  hosts.reserve(params_.size());
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i];
    if (!p.grad().defined()) continue;
    ParamState& st = state_[i];
    ++st.step;
    const AdamStep c = adam_step(st.step, lr_, beta1, beta2, eps, weight_decay, decoupled_);
    if (p.device().is_cuda() && p.is_contiguous()) {
      updates.push_back(device_update(i, who, c));
      continue;
    }
    Tensor g = host_grad(p, i, who);
    hosts.emplace_back(p);
    Tensor& m = state_buffer(st.buffers, "exp_avg", hosts.back().host);
    Tensor& v = state_buffer(st.buffers, "exp_avg_sq", hosts.back().host);
    updates.push_back({hosts.back().host, g, m, v, c});
  }
  adam_update(updates);
  for (HostParam& hp : hosts) hp.finish();
}

AdamParam Adam::device_update(size_t i, const char* who, const AdamStep& c) {
  Tensor p = params_[i].detach();
  Tensor g = params_[i].grad();
  if (g.shape() != p.shape())
    throw std::runtime_error(std::string(who) + ": gradient of parameter " + std::to_string(i) + " has shape " +
                             shape_str(g.shape()) + ", the parameter " + shape_str(p.shape()));
  g = contiguous(g.to(p.device()).to(p.dtype()));
  ParamState& st = state_[i];
  Tensor* buf[2];
  const char* names[2] = {"exp_avg", "exp_avg_sq"};
  for (int k = 0; k < 2; ++k) {
    auto it = st.buffers.find(names[k]);
    if (it == st.buffers.end()) it = st.buffers.emplace(names[k], Tensor::zeros(p.shape(), p.dtype(), p.device())).first;
    else if (it->second.device() != p.device()) it->second = contiguous(it->second.to(p.device()));
    buf[k] = &it->second;
  }
  return {p, g, *buf[0], *buf[1], c};
}

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
