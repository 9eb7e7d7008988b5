// The autograd graph. Every differentiable op that runs with grad enabled on an input that
// requires grad records one Node on its output: the edges to its inputs' producers (or to
// the leaf tensors themselves) and a backward function that maps the output gradient to
// one gradient per input. Saved tensors live inside that function's captures and are
// freed after the first backward pass unless retain_graph is asked for.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace lm::autograd {

// Maps dL/d(output) to dL/d(input_i) for each recorded input (an undefined Tensor where an
// input needs no gradient). Runs with grad mode off.
using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_output)>;

struct Node;

// Where one input's gradient goes: to the node that produced it, or into a leaf's .grad.
struct Edge {
  std::shared_ptr<Node> node;
  std::shared_ptr<TensorImpl> leaf;
  Shape shape;  // the input's shape, to check gradients
  bool active() const { return node || leaf; }
};

struct Node {
  std::string name;
  std::vector<Edge> inputs;
  BackwardFn backward;
  bool released = false;  // saved tensors freed by a previous backward
  ~Node();                // tears long chains down iteratively (no deep recursion)
};

// Grad mode (thread-local). Off inside backward and under NoGradGuard.
bool grad_enabled();
void set_grad_enabled(bool on);
class NoGradGuard {
 public:
  NoGradGuard() : prev_(grad_enabled()) { set_grad_enabled(false); }
  ~NoGradGuard() { set_grad_enabled(prev_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;
 private:
  bool prev_;
};

// True when grad mode is on and any of the inputs requires grad.
bool needs_grad(const std::vector<Tensor>& inputs);

// Accumulation into a running sum. A tensor used by several ops gets one gradient from each;
// the engine sums them. While a node's backward runs, accumulation_target(i) is the running
// sum of input i's gradient so far when there is one that nobody else holds (packed, CPU,
// float32/float64), else an undefined Tensor. A backward may add its contribution for input i
// into that tensor in place (a GEMM with beta = 1 instead of a fresh product and a separate
// addition pass) and return the same tensor as gradient i; the engine then knows the sum is
// already complete for that contribution.
Tensor accumulation_target(size_t input);

// Records `output` as produced by op `name` from `inputs`. The caller captures in `fn`
// whatever backward needs. Never capture `output` itself: capture output.detach(), or the
// node would keep itself alive through its own output.
void record(const std::string& name, const std::vector<Tensor>& inputs, Tensor& output, BackwardFn fn);

}  // namespace lm::autograd
