// nn building blocks: a Module base with a parameter/buffer registry that produces PyTorch
// state_dict names ("proj_v.0.weight", "classification_head.3.bias"), and the layers the
// models are made of: Linear, LayerNorm, GELU, ReLU, Sequential, multi-head cross-attention.
// Initialisations follow PyTorch's defaults in distribution (not in values: every draw comes
// from the lm::Generator passed in, so a seed gives the same model on every machine).
//
// Ownership rules (read these before writing a model):
// - Parameters and buffers are Tensor handles shared between the registry and the module's
//   own fields (e.g. Linear::weight). Module::to() and load_state_dict() change them in place
//   (same TensorImpl), so those fields and any optimizer holding the parameters stay valid.
//   Never assign a new tensor to a registered field; copy values into it instead.
// - A submodule is registered either by reference (a member field of the parent, which then
//   must not move: Module is neither copyable nor movable) or by shared_ptr (owned).
#pragma once
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tensor/device.h"
#include "tensor/dtype.h"
#include "tensor/rng.h"
#include "tensor/tensor.h"

namespace lm::nn {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;
using StateDict = std::map<std::string, Tensor>;

// What a non-strict load_state_dict left out (a strict load throws instead).
struct LoadResult {
  std::vector<std::string> missing_keys;     // in the module, absent from the dict
  std::vector<std::string> unexpected_keys;  // in the dict, absent from the module
};

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;
  Module(Module&&) = delete;
  Module& operator=(Module&&) = delete;

  // Single-input modules override this; the default throws naming the module type.
  virtual Tensor forward(const Tensor& x);
  Tensor operator()(const Tensor& x) { return forward(x); }
  // A short type name used in error messages ("Linear", "LayerNorm", ...).
  virtual std::string type_name() const { return "Module"; }

  // ---- registration (call from constructors, in the order PyTorch would) -----------
  // Stores the handle and flags it requires_grad; returns the handle (store it in a field).
  Tensor register_parameter(const std::string& name, Tensor t, bool requires_grad = true);
  // A persistent buffer: in state_dict, never in parameters().
  Tensor register_buffer(const std::string& name, Tensor t);
  // Non-owning: `m` is normally a member of this module.
  Module& register_module(const std::string& name, Module& m);
  // Owning.
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    add_child(name, m.get(), m);
    return m;
  }

  // ---- traversal (registration order, depth first, like PyTorch) ---------------------
  NamedTensors named_parameters(const std::string& prefix = "", bool recurse = true) const;
  std::vector<Tensor> parameters(bool recurse = true) const;
  NamedTensors named_buffers(const std::string& prefix = "", bool recurse = true) const;
  std::vector<std::pair<std::string, Module*>> named_children() const;
  // This module ("" or prefix) and every descendant, with dotted names.
  std::vector<std::pair<std::string, Module*>> named_modules(const std::string& prefix = "");
  int64_t num_parameters() const;  // total element count

  // ---- state dict ------------------------------------------------------------------
  // Parameters and buffers by full name; the tensors share storage with the module
  // (detached, like torch's state_dict()).
  StateDict state_dict() const;
  NamedTensors ordered_state_dict() const;  // same entries, registration order
  // Copies values into the existing tensors (dtype converted). Always throws on a shape
  // mismatch; strict also throws on missing / unexpected keys. Error messages name the key.
  LoadResult load_state_dict(const StateDict& dict, bool strict = true);

  // ---- misc --------------------------------------------------------------------------
  // Drops (set_to_none, the default) or zero-fills every parameter's gradient.
  void zero_grad(bool set_to_none = true);
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  // Moves / converts every parameter and buffer in place (handles stay valid); gradients
  // are dropped. Floating conversion only (integer buffers keep their dtype).
  Module& to(Device device);
  Module& to(DType dtype);

 protected:
  struct Child {
    std::string name;
    Module* module;
    std::shared_ptr<Module> owner;  // null for member submodules
  };
  void add_child(const std::string& name, Module* m, std::shared_ptr<Module> owner);
  const std::vector<Child>& children() const { return children_; }

 private:
  void collect(const std::string& prefix, bool recurse, bool params, bool buffers, NamedTensors& out) const;
  std::vector<std::pair<std::string, Tensor>> params_;
  std::vector<std::pair<std::string, Tensor>> buffers_;
  std::vector<Child> children_;
  bool training_ = true;
};

// y = x W^T + b; W (out, in), b (out). Init: W, b ~ U(-1/sqrt(in), 1/sqrt(in)) (PyTorch's
// kaiming_uniform_(a=sqrt(5)) and its bias rule), weight drawn before bias.
class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, Generator& gen, bool bias = true,
         DType dtype = DType::F32);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Linear"; }
  // Redraws the parameters as at construction.
  void reset_parameters(Generator& gen);
  int64_t in_features, out_features;
  Tensor weight, bias;  // bias undefined when built without one
};

// Layer normalisation over the last dimension (PyTorch nn.LayerNorm(D)): weight 1, bias 0.
class LayerNorm : public Module {
 public:
  explicit LayerNorm(int64_t dim, double eps = 1e-5, bool elementwise_affine = true,
                     DType dtype = DType::F32);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "LayerNorm"; }
  int64_t dim;
  double eps;
  Tensor weight, bias;  // undefined without elementwise_affine
};

class GELU : public Module {  // exact (erf) form
 public:
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "GELU"; }
};

class ReLU : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "ReLU"; }
};

class Identity : public Module {
 public:
  Tensor forward(const Tensor& x) override { return x; }
  std::string type_name() const override { return "Identity"; }
};

// Children named "0", "1", ...; forward chains them.
class Sequential : public Module {
 public:
  Sequential() = default;
  // Appends a module; returns it.
  template <class M>
  std::shared_ptr<M> push_back(std::shared_ptr<M> m) {
    register_module(std::to_string(size()), m);
    return m;
  }
  // Constructs and appends an M(args...); returns a reference to it.
  template <class M, class... Args>
  M& emplace_back(Args&&... args) {
    return *push_back(std::make_shared<M>(std::forward<Args>(args)...));
  }
  size_t size() const { return children().size(); }
  Module& operator[](size_t i) const;
  template <class M>
  M& at(size_t i) const {
    M* p = dynamic_cast<M*>(&(*this)[i]);
    if (!p) throw std::runtime_error("Sequential::at(" + std::to_string(i) + "): module is a " + (*this)[i].type_name());
    return *p;
  }
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Sequential"; }
};

// Multi-head attention with separate projections, queries from one sequence and keys /
// values from another:
//   q_in (Lq, D) or (B, Lq, D); kv_in (Lk, D) or (B, Lk, D) -> same leading shape, (.., Lq, D)
//   out = o(merge_heads(sdpa(split(q(q_in)), split(k(kv_in)), split(v(kv_in)))))
// with `heads` heads of width D/heads and the 1/sqrt(D/heads) scale. mask (optional) is
// additive, broadcastable to (B, heads, Lq, Lk). Equal to torch.nn.MultiheadAttention with
// in_proj = [q;k;v] weights and out_proj = o (no dropout, no bias_kv).
Tensor multi_head_attention(const Tensor& q_in, const Tensor& kv_in, Linear& q, Linear& k, Linear& v,
                            Linear& o, int heads, const Tensor& mask = Tensor());

// The four projections as children q_proj, k_proj, v_proj, o_proj (Linear(D, D) each, drawn
// in that order).
class MultiHeadCrossAttention : public Module {
 public:
  MultiHeadCrossAttention(int64_t dim, int heads, Generator& gen, DType dtype = DType::F32);
  Tensor forward(const Tensor& q_in, const Tensor& kv_in, const Tensor& mask = Tensor());
  Tensor forward(const Tensor& x) override { return forward(x, x); }  // self-attention
  std::string type_name() const override { return "MultiHeadCrossAttention"; }
  int64_t dim;
  int heads;
  Linear q_proj, k_proj, v_proj, o_proj;
};

}  // namespace lm::nn
