// Reverse-mode differentiation: backward() from a scalar (or with an explicit output
// gradient) accumulates d(root)/d(leaf) into every leaf's .grad. Nodes are visited in a
// topological order computed without recursion, so graphs thousands of ops deep (unrolled
// Sinkhorn iterations, long sequences) cannot overflow the stack.
#pragma once
#include "autograd/node.h"

namespace lm::autograd {

// grad_output: same shape as root; defaults to 1 for a one-element root.
void backward(const Tensor& root, const Tensor& grad_output = Tensor(), bool retain_graph = false);

}  // namespace lm::autograd

namespace lm {
using autograd::backward;
using autograd::NoGradGuard;
}  // namespace lm
