// scaled_dot_product_attention, composed from matmul (k enters as a transposed view, passed
// to the GEMM as a flag, never copied), a scalar multiply, the optional additive mask,
// softmax over the keys and a second matmul. Autograd comes from the composition; the
// resulting backward is derived in docs/ops/attention.md.
// CUDA tensors take the fused kernels of cuda/attention.cu instead (online softmax, no
// (Lq, Lk) matrix; backward recomputes it from the saved log-sum-exp), unless the mask needs a
// gradient or LIBRAMIL_CUDA_ATTENTION=composed; the CPU always runs the composition.
#include "ops/attention.h"

#include <cmath>
#include <cstdlib>
#include <string>

#include "autograd/engine.h"
#include "ops/elementwise.h"
#include "ops/matmul.h"
#include "ops/op_utils.h"
#include "ops/shape.h"
#include "ops/softmax.h"

namespace lm {

using namespace ops_detail;

namespace {

// LIBRAMIL_CUDA_ATTENTION: "fused" (default, also when unset or empty) or "composed"; read at
// every call so that a test can compare both. Anything else throws, in every build and on
// every device, so that a typo cannot silently pick a path.
bool fused_attention_selected(const char* name) {
  const char* env = std::getenv("LIBRAMIL_CUDA_ATTENTION");
  const std::string v = env ? env : "";
  if (v.empty() || v == "fused") return true;
  if (v == "composed") return false;
  fail(name, "LIBRAMIL_CUDA_ATTENTION must be 'fused' or 'composed', got '" + v + "'");
}

#ifdef LIBRAMIL_WITH_CUDA
// The fused CUDA path (cuda/attention.cu): one forward kernel writes out and the per-row
// log-sum-exp; the recorded backward saves q, k, v, out, lse (no (Lq, Lk) tensor) and returns
// gradients for q, k, v. The mask (if any) needs no gradient here and is read in place.
Tensor fused_cuda_attention(const char* name, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                            double s) {
  Tensor qc = q.contiguous(), kc = k.contiguous(), vc = v.contiguous();
  const Shape &sq = q.shape(), &sv = v.shape();
  Tensor out = Tensor::empty({sq[0], sq[1], sq[2], sv[3]}, q.dtype(), q.device());
  Tensor lse = Tensor::empty({sq[0], sq[1], sq[2]}, q.dtype(), q.device());
  {
    profiler::Scope prof("attention_forward");
    cuda::attention_forward(qc, kc, vc, mask, s, out, lse);
  }
  if (autograd::needs_grad({q, k, v})) {
    const bool gq = q.requires_grad(), gk = k.requires_grad(), gv = v.requires_grad();
    Tensor qs = qc.detach(), ks = kc.detach(), vs = vc.detach(), os = out.detach();
    Tensor ms = mask.defined() ? mask.detach() : Tensor();
    autograd::record(name, {q, k, v}, out, [=](const Tensor& g) -> std::vector<Tensor> {
      Tensor gc = g.contiguous();
      Tensor dq = gq ? Tensor::empty(qs.shape(), qs.dtype(), qs.device()) : Tensor();
      Tensor dk = gk ? Tensor::empty(ks.shape(), ks.dtype(), ks.device()) : Tensor();
      Tensor dv = gv ? Tensor::empty(vs.shape(), vs.dtype(), vs.device()) : Tensor();
      profiler::Scope prof("attention_backward");
      cuda::attention_backward(qs, ks, vs, ms, s, os, lse, gc, dq, dk, dv);
      return {dq, dk, dv};
    });
  }
  return out;
}
#endif

}  // namespace

Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                                    double scale) {
  const char* name = "scaled_dot_product_attention";
  check_float(name, q);
  check_float(name, k);
  check_float(name, v);
  check_same(name, q, k);
  check_same(name, q, v);
  check_cpu_or_cuda(name, q);
  check_dim(name, q, 4, "q (B, H, Lq, d)");
  check_dim(name, k, 4, "k (B, H, Lk, d)");
  check_dim(name, v, 4, "v (B, H, Lk, dv)");
  const Shape &sq = q.shape(), &sk = k.shape(), &sv = v.shape();
  const std::string shapes = "q " + q.str() + ", k " + k.str() + ", v " + v.str();
  if (sq[0] != sk[0] || sq[0] != sv[0]) fail(name, "batch sizes B differ: " + shapes);
  if (sq[1] != sk[1] || sq[1] != sv[1]) fail(name, "head counts H differ: " + shapes);
  if (sq[3] != sk[3]) fail(name, "q and k head dims d differ: " + shapes);
  if (sk[2] != sv[2]) fail(name, "k and v key lengths Lk differ: " + shapes);
  if (std::isnan(scale) || std::isinf(scale) || scale < 0)
    fail(name, "scale must be > 0 (or 0 for 1/sqrt(d)), got " + std::to_string(scale));
  const Shape score_shape{sq[0], sq[1], sq[2], sk[2]};
  if (mask.defined()) {
    check_float(name, mask);
    check_same(name, q, mask);
    bool ok = mask.dim() <= 4;
    for (int64_t i = 1; ok && i <= mask.dim(); ++i) {
      const int64_t have = mask.shape()[mask.dim() - i], want = score_shape[4 - i];
      ok = have == want || have == 1;
    }
    if (!ok)
      fail(name, "mask " + mask.str() + " does not broadcast to the score shape (B, H, Lq, Lk) = " +
                     shape_str(score_shape));
  }
  const double s = scale > 0 ? scale : 1.0 / std::sqrt((double)std::max<int64_t>(sq[3], 1));
  const bool fused = fused_attention_selected(name);
#ifdef LIBRAMIL_WITH_CUDA
  // Empty shapes (any size 0) keep the composition, whose matmuls define them (e.g. Lk = 0
  // gives zeros); so does a mask that needs a gradient (the fused backward has no dmask).
  const bool nonempty = sq[0] > 0 && sq[1] > 0 && sq[2] > 0 && sq[3] > 0 && sk[2] > 0 && sv[3] > 0;
  if (fused && q.device().is_cuda() && nonempty && !(mask.defined() && autograd::needs_grad({mask})))
    return fused_cuda_attention(name, q, k, v, mask, s);
#else
  (void)fused;
#endif
  Tensor scores = mul(matmul(q, transpose(k, -1, -2)), s);  // (B, H, Lq, Lk)
  if (mask.defined()) scores = add(scores, mask);
  Tensor p = softmax(scores, -1);
  return matmul(p, v);  // (B, H, Lq, dv)
}

}  // namespace lm
