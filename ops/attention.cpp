// scaled_dot_product_attention, composed from matmul (k enters as a transposed view, passed
// to the GEMM as a flag, never copied), a scalar multiply, the optional additive mask,
// softmax over the keys and a second matmul. Autograd comes from the composition; the
// resulting backward is derived in docs/ops/attention.md.
// CUDA tensors take the fused kernels of cuda/attention.cu instead (online softmax, no
// (Lq, Lk) matrix; backward recomputes it from the saved log-sum-exp), unless the mask needs a
// gradient or LIBRAMIL_CUDA_ATTENTION=composed; LIBRAMIL_CUDA_ATTENTION=cudnn takes cuDNN's
// fused attention (cuda/cudnn_attention.h, in bfloat16) where it applies and the fused kernels
// elsewhere. The CPU always runs the composition.
#include "ops/attention.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <set>
#include <string>

#include "autograd/engine.h"
#include "ops/elementwise.h"
#include "ops/matmul.h"
#include "ops/op_utils.h"
#include "ops/shape.h"
#include "ops/softmax.h"
#ifdef LIBRAMIL_WITH_CUDA
#include "cuda/cudnn_attention.h"
#endif

namespace lm {

using namespace ops_detail;

namespace {

enum class AttentionPath { Fused, Composed, Cudnn };

// LIBRAMIL_CUDA_ATTENTION: "fused" (default, also when unset or empty), "composed" or "cudnn";
// read at every call so that a test can compare them. Anything else throws, in every build and
// on every device, so that a typo cannot silently pick a path.
AttentionPath attention_path(const char* name) {
  const char* env = std::getenv("LIBRAMIL_CUDA_ATTENTION");
  const std::string v = env ? env : "";
  if (v.empty() || v == "fused") return AttentionPath::Fused;
  if (v == "composed") return AttentionPath::Composed;
  if (v == "cudnn") return AttentionPath::Cudnn;
  fail(name, "LIBRAMIL_CUDA_ATTENTION must be 'fused', 'composed' or 'cudnn', got '" + v + "'");
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

// LIBRAMIL_CUDA_ATTENTION=cudnn falls back to the fused kernels where cuDNN does not apply; each
// distinct reason is printed once per process on stderr, with the shape it was first seen for
// (so that a run over many shapes prints one line per reason, not per shape).
void note_cudnn_fallback(const std::string& why, const std::string& first_seen) {
  static std::mutex mu;
  static std::set<std::string> seen;
  std::lock_guard<std::mutex> lock(mu);
  if (seen.insert(why).second)
    std::fprintf(stderr, "libramil: LIBRAMIL_CUDA_ATTENTION=cudnn: %s (first for %s)\n", why.c_str(),
                 first_seen.c_str());
}

// The cuDNN path: q, k, v rounded to bfloat16, cuDNN's forward (with the per-row log-sum-exp
// when a gradient is needed), the output converted back to q's dtype. The gradient is that of
// attention at the rounded inputs, passed straight through the rounding to q, k, v. Backward:
// cuDNN's SDPA backward; where the runtime has none (cuDNN < 9.17 or no engine), the
// hand-written backward (cuda/attention.cu) at the same rounded inputs, with cuDNN's output and
// log-sum-exp, so that both halves describe the same function.
Tensor cudnn_cuda_attention(const char* name, const Tensor& q, const Tensor& k, const Tensor& v,
                            const cuda::SdpaShape& g, double s) {
  const bool grad = autograd::needs_grad({q, k, v});
  cuda::cudnn_sdpa_prepare(q.device(), g, false, grad);  // CudnnUnavailable: the caller falls back
  Tensor qb = q.to(DType::BF16).contiguous(), kb = k.to(DType::BF16).contiguous(), vb = v.to(DType::BF16).contiguous();
  Tensor ob = Tensor::empty({g.B, g.H, g.Lq, g.dv}, DType::BF16, q.device());
  Tensor stats = grad ? Tensor::empty({g.B, g.H, g.Lq, 1}, DType::F32, q.device()) : Tensor();
  {
    profiler::Scope prof("attention_forward_cudnn");
    cuda::cudnn_sdpa_forward(qb, kb, vb, s, ob, stats);
  }
  Tensor out = ob.to(q.dtype());
  if (grad) {
    const bool gq = q.requires_grad(), gk = k.requires_grad(), gv = v.requires_grad();
    const DType dt = q.dtype();
    autograd::record(name, {q, k, v}, out, [=](const Tensor& g_out) -> std::vector<Tensor> {
      try {
        cuda::cudnn_sdpa_prepare(qb.device(), g, true, true);
        Tensor gb = g_out.to(DType::BF16).contiguous();
        Tensor dq = Tensor::empty(qb.shape(), DType::BF16, qb.device());
        Tensor dk = Tensor::empty(kb.shape(), DType::BF16, kb.device());
        Tensor dv = Tensor::empty(vb.shape(), DType::BF16, vb.device());
        profiler::Scope prof("attention_backward_cudnn");
        cuda::cudnn_sdpa_backward(qb, kb, vb, ob, gb, stats, s, dq, dk, dv);
        return {gq ? dq.to(dt) : Tensor(), gk ? dk.to(dt) : Tensor(), gv ? dv.to(dt) : Tensor()};
      } catch (const cuda::CudnnUnavailable& e) {
        note_cudnn_fallback(std::string("backward: ") + e.what() +
                                "; the hand-written backward runs at the same bfloat16-rounded inputs",
                            "q " + qb.str());
      }
      Tensor q32 = qb.to(dt), k32 = kb.to(dt), v32 = vb.to(dt), o32 = ob.to(dt);
      Tensor lse = stats.to(dt).as_strided({g.B, g.H, g.Lq}, {g.H * g.Lq, g.Lq, 1}, 0);
      Tensor gc = g_out.contiguous();
      Tensor dq = gq ? Tensor::empty(q32.shape(), dt, q32.device()) : Tensor();
      Tensor dk = gk ? Tensor::empty(k32.shape(), dt, k32.device()) : Tensor();
      Tensor dv = gv ? Tensor::empty(v32.shape(), dt, v32.device()) : Tensor();
      profiler::Scope prof("attention_backward");
      cuda::attention_backward(q32, k32, v32, Tensor(), s, o32, lse, gc, dq, dk, dv);
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
  const AttentionPath path = attention_path(name);
#ifdef LIBRAMIL_WITH_CUDA
  // Empty shapes (any size 0) keep the composition, whose matmuls define them (e.g. Lk = 0
  // gives zeros); so does a mask that needs a gradient (the fused backward has no dmask).
  const bool nonempty = sq[0] > 0 && sq[1] > 0 && sq[2] > 0 && sq[3] > 0 && sk[2] > 0 && sv[3] > 0;
  if (path != AttentionPath::Composed && q.device().is_cuda() && nonempty &&
      !(mask.defined() && autograd::needs_grad({mask}))) {
    if (path == AttentionPath::Cudnn) {
      const cuda::SdpaShape shape{sq[0], sq[1], sq[2], sk[2], sq[3], sv[3]};
      std::string why = cuda::cudnn_sdpa_unsupported(shape, q.dtype(), mask.defined());
      if (why.empty()) {
        try {
          return cudnn_cuda_attention(name, q, k, v, shape, s);
        } catch (const cuda::CudnnUnavailable& e) {
          why = e.what();
        }
      }
      note_cudnn_fallback("not used: " + why + "; the hand-written fused kernels run instead",
                          "q " + q.str() + ", v " + v.str());
    }
    return fused_cuda_attention(name, q, k, v, mask, s);
  }
#else
  (void)path;
#endif
  Tensor scores = mul(matmul(q, transpose(k, -1, -2)), s);  // (B, H, Lq, Lk)
  if (mask.defined()) scores = add(scores, mask);
  Tensor p = softmax(scores, -1);
  return matmul(p, v);  // (B, H, Lq, dv)
}

}  // namespace lm
