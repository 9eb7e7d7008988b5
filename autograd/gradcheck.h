// Numerical gradient check: compares the gradients the autograd engine computes for a
// function of float64 tensors with central differences. The function's output is reduced to
// the scalar L = sum(f(inputs) * R) with a fixed, seeded random R, so every output element
// (and every gradient path) contributes with a distinct weight. The analytic gradient is
// backward(f(inputs), R); the numeric one perturbs each input element by +-eps and forms
// (L(x + eps) - L(x - eps)) / (2 eps), with sum(out * R) computed on the CPU without ops/.
#pragma once
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace lm::autograd {

struct GradcheckResult {
  bool ok = true;
  double max_abs_err = 0.0;  // max |analytic - numeric| over all checked elements
  // max |analytic - numeric| / max(|numeric|, atol / rtol): below rtol means the element passed
  double max_rel_err = 0.0;
  int worst_input = -1;        // input index of the element with the largest relative error
  int64_t worst_element = -1;  // its logical (row-major) index within that input
  double worst_analytic = 0.0, worst_numeric = 0.0;
  int64_t checked = 0;         // number of elements compared
  std::string message;         // "ok: ..." or what failed, with the worst element
};

// inputs: CPU tensors; those with requires_grad() must be float64 leaves (any strides, but no
// overlapping elements, e.g. no expanded views); the others (int64 indices, masks) are passed
// through unchanged and skipped. Existing .grad of the inputs is cleared.
// An element passes when |analytic - numeric| <= atol + rtol * |numeric|.
GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f, std::vector<Tensor> inputs,
                          double eps = 1e-6, double atol = 1e-7, double rtol = 1e-5);

// A list of flags after the inputs (the shape of tests/test_nn_ops.cpp's local helper, whose
// third argument says which inputs to differentiate) would otherwise convert silently to
// eps = 1; it does not compile. Here, differentiation follows requires_grad() of each input.
GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f, std::vector<Tensor> inputs,
                          std::initializer_list<bool> wrt, double atol = 1e-7, double rtol = 1e-5) = delete;

}  // namespace lm::autograd
