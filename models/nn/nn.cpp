// Module registry (names, state dicts, device/dtype moves) and the basic layers of nn.h.
#include "models/nn/nn.h"

#include <cmath>
#include <set>
#include <stdexcept>

#include "ops/ops.h"

namespace lm::nn {

namespace {

void check_name(const std::string& name, const char* what) {
  if (name.empty() || name.find('.') != std::string::npos)
    throw std::invalid_argument(std::string("Module::") + what + ": invalid name '" + name + "' (must be non-empty, no '.')");
}

std::string join(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

// Replaces the contents of `dst`'s TensorImpl with `src`'s layout and storage, keeping the
// handle (and so every copy of it) valid. Gradients are dropped.
void rebind(Tensor& dst, const Tensor& src) {
  TensorImpl& d = dst.impl();
  const TensorImpl& s = src.impl();
  d.storage = s.storage;
  d.shape = s.shape;
  d.strides = s.strides;
  d.offset = s.offset;
  d.dtype = s.dtype;
  d.grad.reset();
}

}  // namespace

// ---- Module -------------------------------------------------------------------------

Tensor Module::forward(const Tensor&) {
  throw std::logic_error(type_name() + " has no single-input forward()");
}

Tensor Module::register_parameter(const std::string& name, Tensor t, bool requires_grad) {
  check_name(name, "register_parameter");
  if (!t.defined()) throw std::invalid_argument("Module::register_parameter: '" + name + "' is undefined");
  if (!t.is_leaf()) t = t.detach();
  for (auto& [n, _] : params_)
    if (n == name) throw std::invalid_argument("Module::register_parameter: '" + name + "' registered twice");
  t.set_requires_grad(requires_grad);
  params_.emplace_back(name, t);
  return t;
}

Tensor Module::register_buffer(const std::string& name, Tensor t) {
  check_name(name, "register_buffer");
  if (!t.defined()) throw std::invalid_argument("Module::register_buffer: '" + name + "' is undefined");
  for (auto& [n, _] : buffers_)
    if (n == name) throw std::invalid_argument("Module::register_buffer: '" + name + "' registered twice");
  buffers_.emplace_back(name, t);
  return t;
}

Module& Module::register_module(const std::string& name, Module& m) {
  add_child(name, &m, nullptr);
  return m;
}

void Module::add_child(const std::string& name, Module* m, std::shared_ptr<Module> owner) {
  check_name(name, "register_module");
  if (!m) throw std::invalid_argument("Module::register_module: '" + name + "' is null");
  if (m == this) throw std::invalid_argument("Module::register_module: '" + name + "' is the module itself");
  for (auto& c : children_)
    if (c.name == name) throw std::invalid_argument("Module::register_module: '" + name + "' registered twice");
  children_.push_back({name, m, std::move(owner)});
}

void Module::collect(const std::string& prefix, bool recurse, bool params, bool buffers, NamedTensors& out) const {
  if (params)
    for (auto& [n, t] : params_) out.emplace_back(join(prefix, n), t);
  if (buffers)
    for (auto& [n, t] : buffers_) out.emplace_back(join(prefix, n), t);
  if (recurse)
    for (auto& c : children_) c.module->collect(join(prefix, c.name), true, params, buffers, out);
}

NamedTensors Module::named_parameters(const std::string& prefix, bool recurse) const {
  NamedTensors out;
  collect(prefix, recurse, true, false, out);
  return out;
}

std::vector<Tensor> Module::parameters(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [n, t] : named_parameters("", recurse)) out.push_back(t);
  return out;
}

NamedTensors Module::named_buffers(const std::string& prefix, bool recurse) const {
  NamedTensors out;
  collect(prefix, recurse, false, true, out);
  return out;
}

std::vector<std::pair<std::string, Module*>> Module::named_children() const {
  std::vector<std::pair<std::string, Module*>> out;
  for (auto& c : children_) out.emplace_back(c.name, c.module);
  return out;
}

std::vector<std::pair<std::string, Module*>> Module::named_modules(const std::string& prefix) {
  std::vector<std::pair<std::string, Module*>> out{{prefix, this}};
  for (auto& c : children_)
    for (auto& e : c.module->named_modules(join(prefix, c.name))) out.push_back(e);
  return out;
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (auto& t : parameters()) n += t.numel();
  return n;
}

NamedTensors Module::ordered_state_dict() const {
  // PyTorch order: per module, its parameters then its buffers, then the children.
  NamedTensors out;
  collect("", true, true, true, out);
  for (auto& e : out) e.second = e.second.detach();
  return out;
}

StateDict Module::state_dict() const {
  StateDict d;
  for (auto& [n, t] : ordered_state_dict()) d.emplace(n, t);
  return d;
}

LoadResult Module::load_state_dict(const StateDict& dict, bool strict) {
  NamedTensors mine;
  collect("", true, true, true, mine);
  LoadResult r;
  std::set<std::string> known;
  // Check everything before copying anything, so a failed load leaves the module as it was.
  for (auto& [name, t] : mine) {
    known.insert(name);
    auto it = dict.find(name);
    if (it == dict.end()) {
      r.missing_keys.push_back(name);
      continue;
    }
    if (!it->second.defined())
      throw std::runtime_error("load_state_dict: entry '" + name + "' is an undefined tensor");
    if (it->second.shape() != t.shape())
      throw std::runtime_error("load_state_dict: size mismatch for '" + name + "': checkpoint has shape " +
                               shape_str(it->second.shape()) + ", the model has " + shape_str(t.shape()));
  }
  for (auto& [name, _] : dict)
    if (!known.count(name)) r.unexpected_keys.push_back(name);
  if (strict && (!r.missing_keys.empty() || !r.unexpected_keys.empty())) {
    std::string msg = "load_state_dict (strict): ";
    if (!r.missing_keys.empty()) {
      msg += "missing key(s):";
      for (auto& k : r.missing_keys) msg += " '" + k + "'";
    }
    if (!r.unexpected_keys.empty()) {
      if (!r.missing_keys.empty()) msg += "; ";
      msg += "unexpected key(s):";
      for (auto& k : r.unexpected_keys) msg += " '" + k + "'";
    }
    throw std::runtime_error(msg);
  }
  NoGradGuard no_grad;
  for (auto& [name, t] : mine) {
    auto it = dict.find(name);
    if (it == dict.end()) continue;
    if (it->second.same(t) || it->second.impl().storage == t.impl().storage) {
      if (it->second.offset() == t.offset() && it->second.strides() == t.strides() && it->second.dtype() == t.dtype())
        continue;  // loading a module's own state dict into itself
    }
    Tensor src = it->second;
    if (src.device() != t.device() && !src.device().is_cpu()) src = src.to(Device::cpu());
    if (src.device() != t.device()) src = src.to(t.dtype()).contiguous();
    t.detach().copy_from(src);
  }
  return r;
}

void Module::zero_grad(bool set_to_none) {
  for (auto& t : parameters()) {
    if (set_to_none) {
      t.impl().grad.reset();
    } else if (t.grad().defined()) {
      t.grad().fill(0.0);
    }
  }
}

void Module::train(bool on) {
  training_ = on;
  for (auto& c : children_) c.module->train(on);
}

Module& Module::to(Device device) {
  NamedTensors all;
  collect("", true, true, true, all);
  for (auto& [n, t] : all)
    if (t.device() != device) rebind(t, t.to(device));
  return *this;
}

Module& Module::to(DType dtype) {
  if (!is_floating(dtype)) throw std::invalid_argument(std::string("Module::to: not a floating dtype: ") + dtype_name(dtype));
  NamedTensors all;
  collect("", true, true, true, all);
  for (auto& [n, t] : all)
    if (is_floating(t.dtype()) && t.dtype() != dtype) rebind(t, t.to(dtype));
  return *this;
}

// ---- layers -----------------------------------------------------------------------

Linear::Linear(int64_t in, int64_t out, Generator& gen, bool with_bias, DType dtype)
    : in_features(in), out_features(out) {
  if (in < 0 || out < 0) throw std::invalid_argument("Linear: negative size (" + std::to_string(in) + ", " + std::to_string(out) + ")");
  weight = register_parameter("weight", Tensor::zeros({out, in}, dtype));
  if (with_bias) bias = register_parameter("bias", Tensor::zeros({out}, dtype));
  reset_parameters(gen);
}

void Linear::reset_parameters(Generator& gen) {
  // kaiming_uniform_(a = sqrt(5)): gain = sqrt(2 / (1 + 5)), bound = gain * sqrt(3 / fan_in)
  // = 1 / sqrt(fan_in). Bias: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), 0 bound when fan_in = 0.
  double bound = in_features > 0 ? 1.0 / std::sqrt((double)in_features) : 0.0;
  NoGradGuard no_grad;
  weight.detach().copy_from(Tensor::uniform(weight.shape(), -bound, bound, gen, DType::F64));
  if (bias.defined()) bias.detach().copy_from(Tensor::uniform(bias.shape(), -bound, bound, gen, DType::F64));
}

Tensor Linear::forward(const Tensor& x) {
  if (x.dim() < 1 || x.size(-1) != in_features)
    throw std::invalid_argument("Linear(" + std::to_string(in_features) + ", " + std::to_string(out_features) +
                                "): input " + x.str() + " does not end in " + std::to_string(in_features));
  return linear(x, weight, bias);
}

LayerNorm::LayerNorm(int64_t d, double e, bool affine, DType dtype) : dim(d), eps(e) {
  if (affine) {
    weight = register_parameter("weight", Tensor::ones({d}, dtype));
    bias = register_parameter("bias", Tensor::zeros({d}, dtype));
  }
}

Tensor LayerNorm::forward(const Tensor& x) {
  if (x.dim() < 1 || x.size(-1) != dim)
    throw std::invalid_argument("LayerNorm(" + std::to_string(dim) + "): input " + x.str() + " does not end in " + std::to_string(dim));
  return layer_norm(x, weight, bias, eps);
}

Tensor GELU::forward(const Tensor& x) { return gelu(x); }
Tensor ReLU::forward(const Tensor& x) { return relu(x); }

Module& Sequential::operator[](size_t i) const {
  if (i >= children().size())
    throw std::out_of_range("Sequential: index " + std::to_string(i) + " out of range (size " + std::to_string(size()) + ")");
  return *children()[i].module;
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor y = x;
  for (auto& c : children()) y = c.module->forward(y);
  return y;
}

// ---- attention ----------------------------------------------------------------------

Tensor multi_head_attention(const Tensor& q_in, const Tensor& kv_in, Linear& q, Linear& k, Linear& v, Linear& o,
                            int heads, const Tensor& mask) {
  if (q_in.dim() != kv_in.dim() || (q_in.dim() != 2 && q_in.dim() != 3))
    throw std::invalid_argument("multi_head_attention: inputs must both be (L, D) or (B, L, D), got " + q_in.str() +
                                " and " + kv_in.str());
  const bool batched = q_in.dim() == 3;
  Tensor Q = q(q_in), K = k(kv_in), V = v(kv_in);
  const int64_t D = Q.size(-1);
  if (heads <= 0 || D % heads != 0)
    throw std::invalid_argument("multi_head_attention: width " + std::to_string(D) + " is not divisible by " +
                                std::to_string(heads) + " heads");
  if (K.size(-1) != D || V.size(-1) % heads != 0)
    throw std::invalid_argument("multi_head_attention: projection widths differ (" + Q.str() + ", " + K.str() + ", " + V.str() + ")");
  const int64_t B = batched ? Q.size(0) : 1;
  // (B, L, D) -> (B, heads, L, D/heads)
  auto split = [&](const Tensor& x) {
    const int64_t L = x.size(-2), W = x.size(-1);
    return permute(reshape(x, {B, L, (int64_t)heads, W / heads}), {0, 2, 1, 3});
  };
  Tensor out = scaled_dot_product_attention(split(Q), split(K), split(V), mask);  // (B, H, Lq, dv)
  const int64_t Lq = Q.size(-2), Dv = V.size(-1);
  out = reshape(permute(out, {0, 2, 1, 3}), {B, Lq, Dv});
  if (!batched) out = reshape(out, {Lq, Dv});
  return o(out);
}

MultiHeadCrossAttention::MultiHeadCrossAttention(int64_t d, int h, Generator& gen, DType dtype)
    : dim(d),
      heads(h),
      q_proj(d, d, gen, true, dtype),
      k_proj(d, d, gen, true, dtype),
      v_proj(d, d, gen, true, dtype),
      o_proj(d, d, gen, true, dtype) {
  if (h <= 0 || d % h != 0)
    throw std::invalid_argument("MultiHeadCrossAttention: width " + std::to_string(d) + " is not divisible by " +
                                std::to_string(h) + " heads");
  register_module("q_proj", q_proj);
  register_module("k_proj", k_proj);
  register_module("v_proj", v_proj);
  register_module("o_proj", o_proj);
}

Tensor MultiHeadCrossAttention::forward(const Tensor& q_in, const Tensor& kv_in, const Tensor& mask) {
  return multi_head_attention(q_in, kv_in, q_proj, k_proj, v_proj, o_proj, heads, mask);
}

}  // namespace lm::nn
