// Graph bookkeeping (grad mode, recording, iterative teardown) and the backward engine.
#include "autograd/engine.h"
#include "tensor/profiler.h"

#include <stdexcept>
#include <unordered_map>

namespace lm::autograd {

namespace {
thread_local bool t_grad_enabled = true;
// The running sums offered to the backward that is running (see accumulation_target).
thread_local const std::vector<Tensor>* t_targets = nullptr;
}

Tensor accumulation_target(size_t input) {
  if (!t_targets || input >= t_targets->size()) return Tensor();
  return (*t_targets)[input];
}

bool grad_enabled() { return t_grad_enabled; }
void set_grad_enabled(bool on) { t_grad_enabled = on; }

bool needs_grad(const std::vector<Tensor>& inputs) {
  if (!t_grad_enabled) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

void record(const std::string& name, const std::vector<Tensor>& inputs, Tensor& output, BackwardFn fn) {
  auto node = std::make_shared<Node>();
  node->name = name;
  node->inputs.reserve(inputs.size());
  for (const Tensor& t : inputs) {
    Edge e;
    if (t.defined()) {
      e.shape = t.shape();
      if (t.grad_fn()) e.node = t.grad_fn();
      else if (t.impl().requires_grad) e.leaf = t.impl_ptr();
    }
    node->inputs.push_back(std::move(e));
  }
  node->backward = std::move(fn);
  output.impl().grad_fn = std::move(node);
}

Node::~Node() {
  // Move children we solely own onto a local stack before this node dies, so destroying
  // a chain of N nodes takes N iterations instead of N nested destructor calls.
  // Every child reference is taken over, not only the sole ones: a child shared by two
  // consumers (x used twice per step) would otherwise be released from this node's edge
  // after the loop, recursively, one level per step of the chain.
  std::vector<std::shared_ptr<Node>> stack;
  for (Edge& e : inputs)
    if (e.node) stack.push_back(std::move(e.node));
  while (!stack.empty()) {
    std::shared_ptr<Node> n = std::move(stack.back());
    stack.pop_back();
    if (n.use_count() == 1)  // the last reference: take its children before it dies
      for (Edge& e : n->inputs)
        if (e.node) stack.push_back(std::move(e.node));
    // n is released here: either one reference fewer, or destroyed with no children left.
  }
}

// True when `t` is the only handle on a whole, packed buffer: it can then become a leaf's
// .grad, or be added to in place, without anyone else seeing the change.
static bool sole_owner(const Tensor& t) {
  return t.impl_ptr().use_count() == 1 && t.impl().storage.use_count() == 1 && t.is_contiguous() &&
         t.impl().offset == 0 && (size_t)t.numel() * dtype_size(t.dtype()) == t.impl().storage->nbytes() &&
         !t.impl().grad_fn && !t.impl().grad;
}

// acc += g: in place when acc is a buffer nobody else holds, else a fresh sum (acc may alias
// a tensor saved by a node or held by the caller).
static void add_to_sum(Tensor& acc, const Tensor& g) {
  if (!add_same_shape_inplace(acc, g)) acc = add_same_shape(acc, g);
}

// Adds g into leaf.grad. `g` is taken by value: when the caller hands over the only
// reference to a fresh gradient, the first contribution is adopted as .grad without a copy,
// and later ones are added in place while no one else holds the running sum.
static void accumulate_leaf(TensorImpl& leaf, Tensor g, const std::string& from) {
  if (g.shape() != leaf.shape)
    throw std::runtime_error("backward: op '" + from + "' produced a gradient of shape " + shape_str(g.shape()) +
                             " for a leaf of shape " + shape_str(leaf.shape));
  // The first gradient is adopted (or cloned: a "copy" row); later ones are added: n FLOPs, 3n
  // elements moved, 2n touched (in place; docs/profiler.md).
  const double n = (double)g.numel(), added = leaf.grad ? 1 : 0, es = (double)dtype_size(leaf.dtype);
  profiler::Scope prof("grad_accumulate", profiler::Work{added * n, added * 3 * n * es, added * 2 * n * es});
  Tensor gc = g.dtype() == leaf.dtype ? std::move(g) : g.to(leaf.dtype);
  if (!leaf.grad) {
    // Store a packed buffer nobody else holds, so later in-place use cannot alias another tensor.
    leaf.grad = sole_owner(gc) && gc.device() == leaf.storage->device() ? gc.impl_ptr() : gc.clone().impl_ptr();
    return;
  }
  Tensor acc(std::move(leaf.grad));
  add_to_sum(acc, gc);
  leaf.grad = acc.impl_ptr();
}

void backward(const Tensor& root, const Tensor& grad_output, bool retain_graph) {
  if (!root.requires_grad())
    throw std::runtime_error("backward: the tensor does not require grad and has no grad_fn (" + root.str() + ")");
  Tensor g0 = grad_output;
  if (!g0.defined()) {
    if (root.numel() != 1)
      throw std::runtime_error("backward: an output gradient is needed for a non-scalar root " + root.str());
    g0 = Tensor::ones(root.shape(), root.dtype(), root.device());
  } else if (g0.shape() != root.shape()) {
    throw std::runtime_error("backward: output gradient " + shape_str(g0.shape()) + " does not match root " + shape_str(root.shape()));
  }
  NoGradGuard no_grad;
  if (!root.grad_fn()) {  // a leaf
    accumulate_leaf(root.impl(), g0, "<root>");
    return;
  }

  // 1. Count, for every reachable node, how many edges point at it (iterative DFS).
  std::unordered_map<Node*, int> pending;
  std::vector<Node*> stack{root.grad_fn().get()};
  pending[root.grad_fn().get()] = 0;
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (Edge& e : n->inputs) {
      if (!e.node) continue;
      auto [it, inserted] = pending.try_emplace(e.node.get(), 0);
      it->second++;
      if (inserted) stack.push_back(e.node.get());
    }
  }

  // 2. Kahn's algorithm: a node runs once all gradients flowing into it have arrived.
  std::unordered_map<Node*, Tensor> grads;
  grads[root.grad_fn().get()] = g0;
  std::vector<Node*> ready{root.grad_fn().get()};
  while (!ready.empty()) {
    Node* n = ready.back();
    ready.pop_back();
    Tensor g;
    if (auto it = grads.find(n); it != grads.end()) {
      g = std::move(it->second);
      grads.erase(it);
    }
    std::vector<Tensor> in_grads(n->inputs.size());
    if (g.defined()) {  // a node no gradient reached only passes the count on
      if (n->released || !n->backward)
        throw std::runtime_error("backward: trying to go through the graph a second time (op '" + n->name +
                                 "'): its saved tensors were freed after the first backward; pass retain_graph=true to keep them");
      // Offer the running sums of this node's inputs that can be added to in place.
      std::vector<Tensor> targets(n->inputs.size());
      bool any_target = false;
      for (size_t i = 0; i < n->inputs.size(); ++i) {
        const Edge& e = n->inputs[i];
        if (!e.node) continue;
        auto it = grads.find(e.node.get());
        if (it != grads.end() && sole_owner(it->second) && it->second.device().is_cpu() &&
            (it->second.dtype() == DType::F32 || it->second.dtype() == DType::F64) && it->second.shape() == e.shape) {
          targets[i] = Tensor(it->second.impl_ptr());  // a second handle; the map keeps the first
          any_target = true;
        }
      }
      struct TargetScope {  // cleared however backward exits
        explicit TargetScope(const std::vector<Tensor>* t) { t_targets = t; }
        ~TargetScope() { t_targets = nullptr; }
      } target_scope(any_target ? &targets : nullptr);
      // The node's own time (the closure's glue): no counted work; the kernels it calls count theirs.
      profiler::Scope prof(profiler::enabled() ? profiler::intern(n->name + ".backward") : "", 0, 0);
      in_grads = n->backward(g);
      if (in_grads.size() != n->inputs.size())
        throw std::logic_error("backward of '" + n->name + "' returned " + std::to_string(in_grads.size()) + " gradients for " +
                               std::to_string(n->inputs.size()) + " inputs");
    }
    for (size_t i = 0; i < n->inputs.size(); ++i) {
      Edge& e = n->inputs[i];
      if (!e.active()) continue;
      Tensor& gi = in_grads[i];
      if (gi.defined() && gi.shape() != e.shape)
        throw std::logic_error("backward of '" + n->name + "': gradient " + shape_str(gi.shape()) + " for input " +
                               std::to_string(i) + " of shape " + shape_str(e.shape));
      if (e.leaf) {
        if (gi.defined()) accumulate_leaf(*e.leaf, std::move(gi), n->name);
        continue;
      }
      Node* child = e.node.get();
      if (gi.defined()) {
        auto it = grads.find(child);
        if (it == grads.end()) grads.emplace(child, gi);
        else if (gi.same(it->second)) {
          // The backward added its contribution into the running sum (accumulation_target).
        } else {
          profiler::Scope prof("grad_accumulate", profiler::Work{(double)gi.numel(), 3.0 * (double)gi.nbytes(), 2.0 * (double)gi.nbytes()});
          // In place when the running sum is a buffer nobody else holds (the common case
          // after the first addition); a fresh sum otherwise, since the first gradient may
          // alias a tensor saved by another node.
          add_to_sum(it->second, gi);
        }
      }
      if (--pending[child] == 0) ready.push_back(child);
    }
    if (!g.defined()) continue;
    if (!retain_graph) {
      n->backward = nullptr;
      n->released = true;
    }
  }
}

}  // namespace lm::autograd
