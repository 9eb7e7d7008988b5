// Central-difference gradient check (see gradcheck.h). Uses only tensor/ and the engine.
#include "autograd/gradcheck.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>

#include "autograd/engine.h"
#include "tensor/rng.h"

namespace lm::autograd {

namespace {

// Storage offsets (relative to data<double>()) of every logical element, row-major order.
std::vector<int64_t> element_offsets(const Tensor& t) {
  const Shape& sh = t.shape();
  const Shape& st = t.strides();
  int64_t n = t.numel();
  std::vector<int64_t> offs;
  offs.reserve((size_t)n);
  std::vector<int64_t> idx(sh.size(), 0);
  for (int64_t k = 0; k < n; ++k) {
    int64_t off = 0;
    for (size_t d = 0; d < sh.size(); ++d) off += idx[d] * st[d];
    offs.push_back(off);
    for (int64_t d = (int64_t)sh.size() - 1; d >= 0; --d) {
      if (++idx[d] < sh[d]) break;
      idx[d] = 0;
    }
  }
  return offs;
}

double weighted_sum(const Tensor& out, const std::vector<double>& r) {
  std::vector<double> o = out.to_double_vector();
  if (o.size() != r.size())
    throw std::runtime_error("gradcheck: the function's output changed size between evaluations");
  double s = 0.0;
  for (size_t i = 0; i < o.size(); ++i) s += o[i] * r[i];
  return s;
}

}  // namespace

GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f, std::vector<Tensor> inputs,
                          double eps, double atol, double rtol) {
  GradcheckResult res;
  std::vector<bool> check(inputs.size(), false);
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& x = inputs[i];
    if (!x.defined() || !x.requires_grad()) continue;
    if (!x.is_leaf()) throw std::invalid_argument("gradcheck: input " + std::to_string(i) + " is not a leaf");
    if (x.dtype() != DType::F64 || !x.device().is_cpu())
      throw std::invalid_argument("gradcheck: input " + std::to_string(i) + " must be a float64 CPU tensor, got " + x.str());
    for (int64_t d = 0; d < x.dim(); ++d)
      if (x.strides()[d] == 0 && x.shape()[d] > 1)
        throw std::invalid_argument("gradcheck: input " + std::to_string(i) + " has overlapping elements (stride 0)");
    check[i] = true;
    inputs[i].set_grad(Tensor());
  }

  // Analytic: backward(f(x), R).
  Tensor out;
  {
    // Grad mode on for the analytic pass even if the caller is under a NoGradGuard.
    bool prev = grad_enabled();
    set_grad_enabled(true);
    try {
      out = f(inputs);
    } catch (...) {
      set_grad_enabled(prev);
      throw;
    }
    set_grad_enabled(prev);
  }
  Generator gen(0x6a09e667f3bcc908ull);
  Tensor R = Tensor::randn(out.shape(), gen, DType::F64);
  std::vector<double> r = R.to_double_vector();
  bool any = false;
  for (bool c : check) any = any || c;
  if (!any) {
    res.message = "gradcheck: no input requires grad; nothing checked";
    return res;
  }
  if (!out.requires_grad()) {
    res.ok = false;
    res.message = "gradcheck: the output " + out.str() + " does not require grad although inputs do";
    return res;
  }
  backward(out, out.dtype() == DType::F64 ? R : R.to(out.dtype()));
  out = Tensor();

  NoGradGuard no_grad;
  double floor = rtol > 0 ? atol / rtol : 1.0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!check[i]) continue;
    Tensor& x = inputs[i];
    std::vector<double> analytic;
    if (x.grad().defined()) {
      if (x.grad().shape() != x.shape()) {
        res.ok = false;
        res.message = "gradcheck: gradient of input " + std::to_string(i) + " has shape " + shape_str(x.grad().shape()) +
                      ", input " + shape_str(x.shape());
        return res;
      }
      analytic = x.grad().to_double_vector();
    } else {
      analytic.assign((size_t)x.numel(), 0.0);  // no gradient reached this input
    }
    double* p = x.data<double>();
    std::vector<int64_t> offs = element_offsets(x);
    for (size_t k = 0; k < offs.size(); ++k) {
      double orig = p[offs[k]];
      p[offs[k]] = orig + eps;
      double lp = weighted_sum(f(inputs), r);
      p[offs[k]] = orig - eps;
      double lm = weighted_sum(f(inputs), r);
      p[offs[k]] = orig;
      double numeric = (lp - lm) / (2.0 * eps);
      double a = analytic[k];
      double err = std::abs(a - numeric);
      double rel = err / std::max(std::abs(numeric), floor);
      bool pass = err <= atol + rtol * std::abs(numeric);
      if (!std::isfinite(a) || !std::isfinite(numeric)) {
        pass = false;
        err = rel = std::numeric_limits<double>::infinity();
      }
      ++res.checked;
      res.max_abs_err = std::max(res.max_abs_err, err);
      if (rel > res.max_rel_err || res.worst_input < 0) {
        res.max_rel_err = std::max(res.max_rel_err, rel);
        res.worst_input = (int)i;
        res.worst_element = (int64_t)k;
        res.worst_analytic = a;
        res.worst_numeric = numeric;
      }
      if (!pass) res.ok = false;
    }
  }
  std::ostringstream ss;
  ss << (res.ok ? "ok" : "FAILED") << ": " << res.checked << " elements, max abs err " << res.max_abs_err
     << ", max rel err " << res.max_rel_err;
  if (res.worst_input >= 0)
    ss << "; worst: input " << res.worst_input << " element " << res.worst_element << " analytic " << res.worst_analytic
       << " numeric " << res.worst_numeric;
  res.message = ss.str();
  return res;
}

}  // namespace lm::autograd
