// FLOP and byte counts that ops give their profiler scopes (tensor/profiler.h): the minimal
// work of one call, not what a kernel happens to do. The convention, also in docs/profiler.md:
//
//   * one FLOP per add, subtract, multiply, divide, compare / max / min, square root; an FMA is 2;
//   * one transcendental (exp, log, erf, tanh) is kTranscendental = 20 FLOPs, about what the
//     float32 polynomial forms in ops/cpu/fast_math.h cost (erf ~25 operations, exp ~23);
//   * GELU (erf form) forward 24 per element (erf + 4), backward 48 (erf + exp + 8);
//   * work done once per row (a row's 1/sqrt, log of a row sum) is left out against the
//     per-element work;
//   * bytes: every input read once and every output written once, at the tensors' element
//     size; per-row statistics saved for the backward (LayerNorm's mean and rstd,
//     cross-entropy's log-sum-exp) and in-place scratch writes are left out;
//   * a backward count assumes every gradient of the op is wanted; a count that depends on an
//     iteration count (Sinkhorn) uses the maximum.
#pragma once
#include <cstdint>

#include "tensor/op_kinds.h"
#include "tensor/profiler.h"

namespace lm::work {

using profiler::Work;

// Two pieces of work counted as one call (both counted; working sets add, an uncounted one
// being its bytes).
inline Work combined(const Work& a, const Work& b) {
  auto ws = [](const Work& w) { return w.working_set >= 0 ? w.working_set : w.bytes; };
  return {a.flops + b.flops, a.bytes + b.bytes, ws(a) + ws(b)};
}

// A GEMM C(M, N) = op(A)(M, K) op(B)(K, N), `batches` times: 2 M N K FLOPs; reads A and B,
// writes C.
inline Work gemm(int64_t M, int64_t N, int64_t K, int64_t elem, int64_t batches = 1) {
  return {2.0 * M * N * K * batches, (double)elem * (M * K + K * N + M * N) * batches};
}

inline constexpr double kTranscendental = 20;
inline constexpr double kGeluForward = kTranscendental + 4;       // 0.5 x (1 + erf(x / sqrt 2))
inline constexpr double kGeluBackward = 2 * kTranscendental + 8;  // erf and the Gaussian density, times g
inline constexpr double kLayerNormForward = 8;    // mean 1, variance 3, normalise 2, affine 2
inline constexpr double kLayerNormBackward = 13;  // x^ 2, g w 1, two row sums 3, dx 4, dw 2, db 1

// Elementwise maps: FLOPs per element of the forward and of the backward (g -> gx).
inline double unary_flops(UnaryOp op, double exponent, bool backward) {
  const bool square = exponent == 2.0;
  switch (op) {
    case UnaryOp::Neg: case UnaryOp::AddScalar: case UnaryOp::MulScalar: case UnaryOp::RSubScalar:
      return backward ? (op == UnaryOp::AddScalar ? 0 : 1) : 1;
    case UnaryOp::Abs: case UnaryOp::Relu: return backward ? 2 : 1;  // backward: sign / mask, times g
    case UnaryOp::Clamp: case UnaryOp::Relu6: return 2;
    case UnaryOp::Sqrt: return backward ? 2 : 1;                     // g * 0.5 / y
    case UnaryOp::Exp: case UnaryOp::Log: return backward ? 1 : kTranscendental;  // g y, g / x
    case UnaryOp::Pow:  // x^e = exp(e log x), a square 1; backward g e x^(e-1)
      return square ? (backward ? 2 : 1) : (backward ? 2 * kTranscendental + 3 : 2 * kTranscendental + 1);
    case UnaryOp::Sigmoid: return backward ? 3 : kTranscendental + 2;  // 1 / (1 + exp(-x)); g y (1 - y)
    case UnaryOp::Tanh: return backward ? 3 : kTranscendental;         // g (1 - y^2)
    case UnaryOp::Gelu: return backward ? kGeluBackward : kGeluForward;
  }
  return 1;
}
inline Work unary_forward(UnaryOp op, double exponent, int64_t n, int64_t elem) {
  return {unary_flops(op, exponent, false) * n, 2.0 * elem * n};
}
// Reads g and one of x / y, writes gx (AddScalar: g only).
inline Work unary_backward(UnaryOp op, double exponent, int64_t n, int64_t elem) {
  return {unary_flops(op, exponent, true) * n, (op == UnaryOp::AddScalar ? 2.0 : 3.0) * elem * n};
}
// a and b read once each (broadcast operands at their own size), out written.
inline Work binary(int64_t a_n, int64_t b_n, int64_t out_n, int64_t elem) {
  return {(double)out_n, (double)elem * (a_n + b_n + out_n)};
}

// Reductions of `in_n` elements to `out_n`: one FLOP per input element (log-sum-exp: max,
// subtract, exp, add).
inline Work reduce(ReduceOp op, int64_t in_n, int64_t out_n, int64_t elem) {
  const double per = op == ReduceOp::LogSumExp ? kTranscendental + 3 : 1;
  return {per * in_n, (double)elem * (in_n + out_n)};
}
inline Work argmax(int64_t in_n, int64_t out_n, int64_t elem) { return {(double)in_n, (double)elem * in_n + 8.0 * out_n}; }

// softmax / log_softmax over n elements: max, subtract, exp, sum, scale (log: subtract).
inline Work softmax_forward(int64_t n, int64_t elem) { return {(kTranscendental + 4) * n, 2.0 * elem * n}; }
// softmax: gx = y (g - sum g y): 4 per element; log_softmax: gx = g - exp(y) sum g: 23.
inline Work softmax_backward(int64_t n, int64_t elem, bool log) {
  return {(log ? kTranscendental + 3 : 4) * n, 3.0 * elem * n};
}

// LayerNorm over (rows, D), optional weight and bias (D).
inline Work layer_norm_forward(int64_t rows, int64_t D, bool weight, bool bias, int64_t elem) {
  const double flops = (kLayerNormForward - (weight ? 0 : 1) - (bias ? 0 : 1)) * rows * D;
  return {flops, (double)elem * (2.0 * rows * D + D * (int(weight) + int(bias)))};
}
// Reads g, x, w; writes dx, dw, db.
inline Work layer_norm_backward(int64_t rows, int64_t D, int64_t elem) {
  return {kLayerNormBackward * rows * D, (double)elem * (3.0 * rows * D + 3.0 * D)};
}

// The fused rows of linear_layer_norm[_gelu] (ops/linear_norm.cpp), float32, after the GEMM:
// forward: bias add 1 + LayerNorm 8 (+ GELU 24) per element; reads y, the linear bias and the
// LayerNorm weight and bias, writes out.
inline Work linear_norm_rows_forward(int64_t rows, int64_t D, bool lin_bias, bool gelu) {
  const double per = (lin_bias ? 1 : 0) + kLayerNormForward + (gelu ? kGeluForward : 0);
  return {per * rows * D, 4.0 * (2.0 * rows * D + (lin_bias ? 3.0 : 2.0) * D)};
}
// backward: LayerNorm backward 13 + the linear bias's column sum 1 (+ GELU: recompute the
// LayerNorm output 2, GELU backward 48) per element; reads g, y, w (and b for GELU), writes
// gy and the three column gradients.
inline Work linear_norm_rows_backward(int64_t rows, int64_t D, bool gelu) {
  const double per = kLayerNormBackward + 1 + (gelu ? 2 + kGeluBackward : 0);
  return {per * rows * D, 4.0 * (3.0 * rows * D + (gelu ? 5.0 : 4.0) * D)};
}

// L2 normalisation of rows: sum of squares 2 + scale 1; backward: dot(g, y) 2, (g - y dot) / n 3.
inline Work l2_normalize_forward(int64_t n, int64_t elem) { return {3.0 * n, 2.0 * elem * n}; }
inline Work l2_normalize_backward(int64_t n, int64_t elem) { return {5.0 * n, 3.0 * elem * n}; }

// Adam / AdamW on n parameters: m 3, v 4, denominator 3, update 3 (+1 decoupled decay, +2 L2
// term); reads p, g, m, v and writes p, m, v in place (working set: the 4 arrays).
inline Work adam(int64_t n, int64_t elem, bool decoupled, bool weight_decay) {
  const double per = 13 + (decoupled ? 1 : weight_decay ? 2 : 0);
  return {per * n, 7.0 * elem * n, 4.0 * elem * n};
}

// Mean cross-entropy of (B, C) logits: log-sum-exp per row (23 per element); reads the logits
// and the int64 targets, writes the loss. Backward: exp(x - lse) - onehot, times g/B (23).
inline Work cross_entropy_forward(int64_t B, int64_t C, int64_t elem) {
  return {(kTranscendental + 3) * B * C, (double)elem * (B * C + 1) + 8.0 * B};
}
inline Work cross_entropy_backward(int64_t B, int64_t C, int64_t elem) {
  return {(kTranscendental + 3) * B * C, 2.0 * elem * B * C + 8.0 * B};
}

// Sinkhorn (docs/ops/sinkhorn.md) for B problems of (K1, K2), `costs` distinct cost matrices (1
// shared or B), n iterations. Forward: Kmat = exp(-C / eps) 21 per entry and cost; per
// iteration two matrix-vector products (4 K1 K2) and the divisions (2 (K1 + K2)); the plan
// (u_i K_ij w_j, 2 K1 K2) or the column sums (K^T u then times w: 2 K1 K2 + K2). The log
// domain's products are log-sum-exps: their K1 K2 terms count 11x (exp + 2 against 2).
inline Work sinkhorn_forward(int64_t B, int64_t K1, int64_t K2, int64_t costs, int n, bool log_domain, bool plan_out,
                             int64_t elem) {
  const double kk = (double)K1 * K2, lg = log_domain ? 11 : 1;
  const double per_problem = n * (4 * kk * lg + 2.0 * (K1 + K2)) + (plan_out ? 2 * kk : 2 * kk + K2);
  const double bytes = (double)elem * (B * (K1 + K2) + costs * kk + (plan_out ? B * kk : (double)B * K2));
  return {(kTranscendental + 1) * kk * costs + B * per_problem, bytes};
}
// Backward: the adjoint recurrence alone (the forward it recomputes is not counted): the plan
// gradient's products 8 K1 K2, per iteration two products and two rank-1 updates (8 K1 K2) and
// 8 (K1 + K2) vector operations, and C-bar = -K-bar o K / eps (3 K1 K2 per cost). Reads a, b,
// the cost and the output gradient; writes da, db and (if wanted) the cost's gradient.
inline Work sinkhorn_backward(int64_t B, int64_t K1, int64_t K2, int64_t costs, int n, bool log_domain, bool plan_out,
                              bool cost_grad, int64_t elem) {
  const double kk = (double)K1 * K2, lg = log_domain ? 11 : 1;
  const double per_problem = n * (8 * kk * lg + 8.0 * (K1 + K2)) + 8 * kk * lg;
  const double out_n = plan_out ? B * kk : (double)B * K2;
  const double bytes = (double)elem * (2.0 * B * (K1 + K2) + costs * kk * (cost_grad ? 2 : 1) + out_n);
  return {3 * kk * costs + B * per_problem, bytes};
}

// conv2d: 2 FLOPs per multiply-add of every output; reads x, weight, bias, writes out. The
// backward (dx and dw) does twice the forward's multiply-adds; reads g, x, w, writes dx, dw, db.
inline Work conv2d_forward(const Conv2dGeometry& g, bool bias, int64_t elem) {
  const double macs = (double)g.N * g.C_out * g.OH * g.OW * (g.C_in / g.groups) * g.KH * g.KW;
  const double x = (double)g.N * g.C_in * g.H * g.W, w = (double)g.C_out * (g.C_in / g.groups) * g.KH * g.KW;
  const double out = (double)g.N * g.C_out * g.OH * g.OW;
  return {2 * macs + (bias ? out : 0), (double)elem * (x + w + (bias ? g.C_out : 0) + out)};
}
inline Work conv2d_backward(const Conv2dGeometry& g, int64_t elem) {
  const double macs = (double)g.N * g.C_out * g.OH * g.OW * (g.C_in / g.groups) * g.KH * g.KW;
  const double x = (double)g.N * g.C_in * g.H * g.W, w = (double)g.C_out * (g.C_in / g.groups) * g.KH * g.KW;
  const double out = (double)g.N * g.C_out * g.OH * g.OW;
  return {4 * macs + out, (double)elem * (out + 2 * x + 2 * w + g.C_out)};
}

}  // namespace lm::work
