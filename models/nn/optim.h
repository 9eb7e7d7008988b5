// Optimizers (SGD, Adam, AdamW) with torch.optim 1.13 semantics, learning-rate schedules
// and gradient clipping. Updates are in place on the parameters' storage (raw loops over
// float32 / float64 data, the arithmetic done in double); the parameters are leaves, so no
// graph is recorded. Adam / AdamW update through the adam_update op (ops/adam.h): CPU
// parameters in one parallel loop, parameters on a CUDA device there, by one fused kernel per
// parameter, never through a host copy.
//
// Update rules (g = grad, t = this parameter's step count after increment):
//   SGD:   g += wd*p; buf = g (first step) or momentum*buf + (1-dampening)*g;
//          d = nesterov ? g + momentum*buf : buf (or g without momentum); p -= lr*d
//   Adam:  g += wd*p (L2, coupled); m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g*g;
//          p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
//   AdamW: p *= 1 - lr*wd (decoupled, before the moments); then Adam without the L2 term.
// Parameters whose grad is undefined are skipped (their step count does not advance).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "tensor/kernel_args.h"
#include "tensor/tensor.h"

namespace lm::optim {

class Optimizer {
 public:
  Optimizer(std::vector<Tensor> params, double lr);
  virtual ~Optimizer() = default;
  virtual void step() = 0;
  // Drops (set_to_none, the default, as torch 2.x) or zero-fills the gradients.
  void zero_grad(bool set_to_none = true);
  void set_lr(double lr) { lr_ = lr; }
  double lr() const { return lr_; }
  const std::vector<Tensor>& params() const { return params_; }

  // Optimizer state for checkpoints, by "<param index>.<field>" (fields: "step" as an int64
  // scalar, "exp_avg", "exp_avg_sq", "momentum_buffer"); entries exist only for parameters
  // that have stepped. The tensors are copies.
  std::map<std::string, Tensor> state_tensors() const;
  // Restores what state_tensors() returned; throws naming the key on an unknown field, a
  // bad index or a shape mismatch. Clears state not present in the map.
  void load_state_tensors(const std::map<std::string, Tensor>& state);

 protected:
  struct ParamState {
    int64_t step = 0;
    std::map<std::string, Tensor> buffers;  // same shape as the parameter, float64 or param dtype
  };
  virtual std::vector<std::string> state_fields() const = 0;
  std::vector<Tensor> params_;
  std::vector<ParamState> state_;
  double lr_;
};

class SGD : public Optimizer {
 public:
  SGD(std::vector<Tensor> params, double lr, double momentum = 0.0, double weight_decay = 0.0,
      double dampening = 0.0, bool nesterov = false);
  void step() override;
  double momentum, weight_decay, dampening;
  bool nesterov;

 protected:
  std::vector<std::string> state_fields() const override { return {"momentum_buffer"}; }
};

class Adam : public Optimizer {
 public:
  Adam(std::vector<Tensor> params, double lr = 1e-3, std::pair<double, double> betas = {0.9, 0.999},
       double eps = 1e-8, double weight_decay = 0.0);
  void step() override;
  double beta1, beta2, eps, weight_decay;

 protected:
  std::vector<std::string> state_fields() const override { return {"exp_avg", "exp_avg_sq"}; }
  bool decoupled_ = false;  // AdamW
  // Parameter i's update where it lives (a packed CUDA parameter): its gradient and state
  // moved beside it (state loaded from a checkpoint arrives on the CPU).
  AdamParam device_update(size_t i, const char* who, const AdamStep& step);
};

class AdamW : public Adam {
 public:
  AdamW(std::vector<Tensor> params, double lr = 1e-3, std::pair<double, double> betas = {0.9, 0.999},
        double eps = 1e-8, double weight_decay = 0.01);
};

// ---- learning-rate schedules (step = number of optimizer steps taken so far) ----------
class LRSchedule {
 public:
  virtual ~LRSchedule() = default;
  virtual double lr_at(int64_t step) const = 0;
  // Sets the optimizer's lr for the given step (call before that step's optimizer.step()).
  void apply(Optimizer& opt, int64_t step) const { opt.set_lr(lr_at(step)); }
};

class ConstantSchedule : public LRSchedule {
 public:
  explicit ConstantSchedule(double lr) : lr_(lr) {}
  double lr_at(int64_t) const override { return lr_; }

 private:
  double lr_;
};

// transformers.get_cosine_schedule_with_warmup (num_cycles 0.5): base*step/warmup during the
// warm-up, then base * max(0, 0.5*(1 + cos(pi * (step-warmup)/max(1, total-warmup)))).
class CosineWithWarmup : public LRSchedule {
 public:
  CosineWithWarmup(double base_lr, int64_t warmup_steps, int64_t total_steps);
  double lr_at(int64_t step) const override;
  // The multiplier alone (the LambdaLR lambda).
  double factor(int64_t step) const;

 private:
  double base_;
  int64_t warmup_, total_;
};

// Scales all gradients by max_norm / (norm + 1e-6) when that is below 1, where norm is the
// global L2 norm over every defined gradient (torch.nn.utils.clip_grad_norm_). Returns the
// norm before clipping.
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm);

}  // namespace lm::optim
