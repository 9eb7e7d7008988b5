// The Sinkhorn op's CPU entry points (see sinkhorn.h, "the op's entry points"): from tensors to
// the raw plain-domain (sinkhorn.cpp) or log-domain (sinkhorn_log.cpp) kernels.
#include "ops/cpu/sinkhorn.h"

namespace lm::cpu {

namespace {

template <class T>
T* ptr_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

// a (B, K1), b (B, K2) and cost give B, K1, K2 and whether the cost is shared.
struct Sizes {
  int64_t B, K1, K2;
  bool shared;
};
Sizes sizes(const Tensor& a, const Tensor& b, const Tensor& cost) {
  return {a.shape()[0], a.shape()[1], b.shape()[1], cost.dim() == 2};
}

template <class T>
void forward_typed(const Tensor& a, const Tensor& b, const Tensor& cost, const SinkhornOptions& o, Tensor& plan,
                   Tensor& cols) {
  const Sizes s = sizes(a, b, cost);
  if (o.log_domain)
    sinkhorn_log_forward<T>(a.data<T>(), b.data<T>(), cost.data<T>(), s.B, s.K1, s.K2, s.shared, o, nullptr, nullptr,
                            ptr_or_null<T>(plan), ptr_or_null<T>(cols), nullptr, nullptr);
  else
    sinkhorn_forward<T>(a.data<T>(), b.data<T>(), cost.data<T>(), s.B, s.K1, s.K2, s.shared, o, nullptr, nullptr,
                        ptr_or_null<T>(plan), ptr_or_null<T>(cols), nullptr, nullptr);
}

template <class T>
void backward_typed(const Tensor& a, const Tensor& b, const Tensor& cost, const SinkhornOptions& o,
                    const Tensor& gplan, const Tensor& gcols, Tensor& ga, Tensor& gb, Tensor& gc) {
  const Sizes s = sizes(a, b, cost);
  if (o.log_domain)
    sinkhorn_log_backward<T>(a.data<T>(), b.data<T>(), cost.data<T>(), s.B, s.K1, s.K2, s.shared, o,
                             ptr_or_null<T>(gplan), ptr_or_null<T>(gcols), nullptr, nullptr, nullptr, ga.data<T>(),
                             gb.data<T>(), ptr_or_null<T>(gc));
  else
    sinkhorn_backward<T>(a.data<T>(), b.data<T>(), cost.data<T>(), s.B, s.K1, s.K2, s.shared, o, ptr_or_null<T>(gplan),
                         ptr_or_null<T>(gcols), nullptr, nullptr, nullptr, ga.data<T>(), gb.data<T>(),
                         ptr_or_null<T>(gc));
}

}  // namespace

void sinkhorn_tensor_forward(const Tensor& a, const Tensor& b, const Tensor& cost, const SinkhornOptions& o,
                             Tensor& plan, Tensor& col_sums) {
  if (a.dtype() == DType::F32) forward_typed<float>(a, b, cost, o, plan, col_sums);
  else forward_typed<double>(a, b, cost, o, plan, col_sums);
}

void sinkhorn_tensor_backward(const Tensor& a, const Tensor& b, const Tensor& cost, const SinkhornOptions& o,
                              const Tensor& grad_plan, const Tensor& grad_col_sums, Tensor& grad_a, Tensor& grad_b,
                              Tensor& grad_cost) {
  if (a.dtype() == DType::F32) backward_typed<float>(a, b, cost, o, grad_plan, grad_col_sums, grad_a, grad_b, grad_cost);
  else backward_typed<double>(a, b, cost, o, grad_plan, grad_col_sums, grad_a, grad_b, grad_cost);
}

}  // namespace lm::cpu
