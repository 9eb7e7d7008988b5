// The kinds and plain parameters of kernel families that both backends implement: the CPU
// kernels (ops/cpu/) and the CUDA kernels (cuda/, including the self-contained kernel headers
// that the emulator tests and the cuda/dev studies compile). Plain types only, no includes, so
// nvcc and g++ both take this header anywhere. The ops (ops/*.cpp) fill them in.
#pragma once
#include <cstdint>

namespace lm {

// Elementwise binary ops (ops/cpu/elementwise.h). Eq: 1 where x == y, else 0 (NaN equals
// nothing); not differentiable (ops::eq records no grad).
enum class BinaryOp { Add, Sub, Mul, Div, Eq };
// Elementwise unary maps, forward and backward (ops/cpu/elementwise.h).
enum class UnaryOp { Neg, Exp, Log, Sqrt, Pow, Abs, Clamp, Relu, Relu6, Sigmoid, Tanh, Gelu, AddScalar, MulScalar, RSubScalar };
struct UnaryParams {
  double p0 = 0, p1 = 0;  // Pow: exponent; Clamp: lo, hi; *Scalar: the scalar
};

// Reductions over one dim (ops/cpu/reduce.h).
enum class ReduceOp { Sum, Max, LogSumExp };

// The geometry of one conv2d call (ops/cpu/conv2d.h), filled and checked by ops/conv2d.cpp:
// every size >= 1 except N (>= 0); C_in and C_out divisible by groups; strides >= 1;
// paddings >= 0. The bottom / right paddings are implied by OH / OW (positions past H / W
// read zero).
struct Conv2dGeometry {
  int64_t N = 0, C_in = 0, H = 0, W = 0;  // x: (N, C_in, H, W)
  int64_t C_out = 0, KH = 0, KW = 0;      // weight: (C_out, C_in / groups, KH, KW)
  int64_t OH = 0, OW = 0;                 // out: (N, C_out, OH, OW)
  int64_t stride_h = 1, stride_w = 1, pad_top = 0, pad_left = 0;
  int64_t groups = 1;
  // 1x1, stride 1, no padding, one group: out[n] = W x[n] as a (C_out, C_in) x (C_in, H W) GEMM.
  bool pointwise() const {
    return KH == 1 && KW == 1 && stride_h == 1 && stride_w == 1 && pad_top == 0 && pad_left == 0 && groups == 1 &&
           OH == H && OW == W;
  }
  // One input channel per group and one output channel per input channel.
  bool depthwise() const { return groups == C_in && groups == C_out && groups > 1; }
};

// The per-step constants of one parameter's Adam / AdamW update (ops/adam.h; torch's bias
// corrections, computed by models/nn/optim.cpp).
struct AdamStep {
  double step_size;  // lr / (1 - beta1^step)
  double bc2_sqrt;   // sqrt(1 - beta2^step)
  double decay;      // 1 - lr * weight_decay for AdamW, else 1
  double beta1, beta2, eps, weight_decay;
  bool decoupled;    // AdamW (decay the parameter) rather than Adam's L2 term on the gradient
};

// ---- Sinkhorn (ops/sinkhorn.h; ops/cpu/sinkhorn.h; cuda/sinkhorn.cu) --------------------------

// The stabiliser of the SPEC's recurrence: u = a / (Kmat w + 1e-8), w = b / (Kmat^T u + 1e-8).
inline constexpr double kSinkhornStabiliser = 1e-8;

// One set of Sinkhorn settings from the op (ops/sinkhorn.h) down to both backends' kernels.
struct SinkhornOptions {
  double epsilon = 0.05;  // entropic regularisation; Kmat = exp(-C / epsilon)
  int iterations = 20;    // maximum (and, with tol == 0, exact) number of (u, w) updates
  // Early stopping: before each iteration after the first, stop a problem when the L1 error
  // of the ROW marginal ||u o (Kmat w) - a||_1 < tol (plan row sums vs a). Not the column
  // marginal: after every full iteration (w updated last) its error is b_j d / (R'_j + d),
  // R' = Kmat^T u, d = 1e-8 -- it measures the 1e-8 terms, not convergence (POT, which updates
  // v then u, checks its b marginal for the same reason). Free: Kmat w is the next iteration's
  // product. The backward re-runs the same test, so it differentiates the same iterations.
  // Note the 1e-8 terms bias the plain fixed point (docs/ops/sinkhorn.md): a tol below that
  // bias is never reached. 0 = always run `iterations`.
  double tol = 0.0;
  // Stabilised log-domain iterations (potentials f = eps log u, g = eps log w, updated by
  // log-sum-exp), for small epsilon; without the 1e-8 terms unless the next flag is set.
  bool log_domain = false;
  // Log domain only: include the 1e-8 terms as log(exp(LSE) + 1e-8) (logaddexp). Then the
  // log-domain recurrence is the same function as the plain one (same values and gradients
  // up to rounding) but inherits its behaviour for small epsilon (Kmat w << 1e-8 swamps
  // everything). Default false: pure Sinkhorn, u = a / (Kmat w), which is what small epsilon
  // needs.
  bool log_domain_stabiliser = false;
};

// The one validation of SinkhornOptions (the op, the CPU kernels and the CUDA kernels all ask
// it): nullptr when valid, else what is wrong.
inline const char* sinkhorn_options_problem(const SinkhornOptions& o) {
  if (!(o.epsilon > 0.0) || o.epsilon - o.epsilon != 0.0) return "epsilon must be finite and > 0";
  if (o.iterations < 0) return "iterations must be >= 0";  // 0: the plan of the initial u, w
  if (!(o.tol >= 0.0)) return "tol must be >= 0";
  return nullptr;
}

}  // namespace lm
