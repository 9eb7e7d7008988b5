// scaled_dot_product_attention, composed from matmul (k enters as a transposed view, passed
// to the GEMM as a flag, never copied), a scalar multiply, the optional additive mask,
// softmax over the keys and a second matmul. Autograd comes from the composition; the
// resulting backward is derived in docs/ops/attention.md.
#include "ops/attention.h"

#include <cmath>

#include "ops/elementwise.h"
#include "ops/matmul.h"
#include "ops/op_utils.h"
#include "ops/shape.h"
#include "ops/softmax.h"

namespace lm {

using namespace ops_detail;

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
  Tensor scores = mul(matmul(q, transpose(k, -1, -2)), s);  // (B, H, Lq, Lk)
  if (mask.defined()) scores = add(scores, mask);
  Tensor p = softmax(scores, -1);
  return matmul(p, v);  // (B, H, Lq, dv)
}

}  // namespace lm
