// matmul / linear: operand layout analysis (plain or transposed, leading dimension),
// batch broadcasting, dispatch to our GEMM, and the gradients dA = dC B^T, dB = A^T dC.
#include "ops/matmul.h"

#include "ops/cpu/gemm.h"
#include "ops/elementwise.h"
#include "ops/op_utils.h"
#include "ops/reduce.h"
#include "ops/shape.h"
#include "tensor/profiler.h"

namespace lm {

using namespace ops_detail;
using autograd::needs_grad;
using autograd::record;

namespace {

// How a (rows, cols) matrix view is laid out for the GEMM.
struct MatrixLayout {
  bool transposed = false;  // stored as (cols, rows) row-major
  int64_t ld = 0;
};

bool layout_of(const Tensor& x, MatrixLayout& l) {
  int64_t nd = x.dim();
  int64_t rows = x.shape()[nd - 2], cols = x.shape()[nd - 1];
  int64_t s0 = x.strides()[nd - 2], s1 = x.strides()[nd - 1];
  if ((s1 == 1 || cols == 1) && s0 >= std::max<int64_t>(cols, 1)) { l = {false, std::max<int64_t>(s0, 1)}; return true; }
  if ((s0 == 1 || rows == 1) && s1 >= std::max<int64_t>(rows, 1)) { l = {true, std::max<int64_t>(s1, 1)}; return true; }
  if (rows == 1 && cols == 1) { l = {false, 1}; return true; }
  return false;
}

// C = op(A) op(B), or C += op(A) op(B) when accumulate (CPU only).
void gemm_dispatch(const Tensor& ref, bool ta, bool tb, int64_t M, int64_t N, int64_t K, const void* A, int64_t lda,
                   const void* B, int64_t ldb, void* C, int64_t ldc, bool accumulate = false) {
  if (!ref.device().is_cpu()) {
#ifdef LIBRAMIL_WITH_CUDA
    cuda::gemm(ref.device(), ref.dtype(), ta, tb, M, N, K, A, lda, B, ldb, C, ldc);  // cuda/gemm.h
    return;
#else
    no_cuda("matmul");
#endif
  }
  if (ref.dtype() == DType::F32)
    cpu::sgemm(ta, tb, M, N, K, 1.0f, static_cast<const float*>(A), lda, static_cast<const float*>(B), ldb,
               accumulate ? 1.0f : 0.0f, static_cast<float*>(C), ldc);
  else
    cpu::dgemm(ta, tb, M, N, K, 1.0, static_cast<const double*>(A), lda, static_cast<const double*>(B), ldb,
               accumulate ? 1.0 : 0.0, static_cast<double*>(C), ldc);
}

// A 2-d tensor stored column-major (the transpose of a packed matrix), with more than one row
// and column (otherwise both layouts coincide).
bool is_transposed_2d(const Tensor& x) {
  return x.dim() == 2 && x.shape()[0] > 1 && x.shape()[1] > 1 && x.strides()[0] == 1 && x.strides()[1] == x.shape()[0];
}

// The product a @ b (batched, broadcast). With `into` (a packed CPU tensor of the result's
// shape and dtype, 2-d operands only): into += a @ b, returned.
Tensor matmul_forward(const Tensor& a_in, const Tensor& b_in, const char* prof_name, const Tensor& into = Tensor()) {
  Tensor a = a_in, b = b_in;
  MatrixLayout la, lb;
  if (!layout_of(a, la)) { a = a.contiguous(); layout_of(a, la); }
  if (!layout_of(b, lb)) { b = b.contiguous(); layout_of(b, lb); }
  int64_t M = a.shape()[a.dim() - 2], K = a.shape()[a.dim() - 1], N = b.shape()[b.dim() - 1];
  Shape ba(a.shape().begin(), a.shape().end() - 2), bb(b.shape().begin(), b.shape().end() - 2);
  Shape batch = broadcast_shapes("matmul", ba, bb);
  Shape out_shape = batch;
  out_shape.push_back(M);
  out_shape.push_back(N);
  const bool accumulate = into.defined();
  if (accumulate && (into.shape() != out_shape || into.dtype() != a.dtype() || !into.is_contiguous() ||
                     !a.device().is_cpu() || !batch.empty()))
    throw std::logic_error("matmul: accumulation target " + into.str() + " does not fit " + a.str() + " @ " + b.str());
  Tensor out = accumulate ? into : Tensor::empty(out_shape, a.dtype(), a.device());
  int64_t nb = shape_numel(batch);
  size_t es = dtype_size(a.dtype());
  // Batch offsets through broadcast strides.
  auto batch_offsets = [&](const Tensor& x) {
    Shape bs(batch.size(), 0);
    size_t lead = batch.size() - (size_t)(x.dim() - 2);
    for (size_t i = 0; i + 2 < (size_t)x.dim(); ++i) bs[lead + i] = x.shape()[i] == 1 ? 0 : x.strides()[i];
    std::vector<int64_t> offs(nb);
    for (int64_t k = 0; k < nb; ++k) {
      int64_t rem = k, off = 0;
      for (int64_t d = (int64_t)batch.size() - 1; d >= 0; --d) {
        off += (rem % batch[d]) * bs[d];
        rem /= batch[d];
      }
      offs[k] = off;
    }
    return offs;
  };
  std::vector<int64_t> oa = batch_offsets(a), ob = batch_offsets(b);
  const char* pa = static_cast<const char*>(a.raw_data());
  const char* pb = static_cast<const char*>(b.raw_data());
  char* pc = static_cast<char*>(out.raw_data());
  if (M == 0 || N == 0) return out;
  if (profiler::enabled() && profiler::detail_shapes())  // LIBRAMIL_PROFILE_SHAPES=1: one row per GEMM shape
    prof_name = profiler::intern(std::string(prof_name) + " " + (nb > 1 ? std::to_string(nb) + "x" : "") + std::to_string(M) +
                                 "x" + std::to_string(N) + "x" + std::to_string(K) + (la.transposed ? " tA" : "") +
                                 (lb.transposed ? " tB" : ""));
  profiler::Scope prof(prof_name, work::gemm(M, N, K, es, nb));
  auto one = [&](int64_t k) {
    gemm_dispatch(a, la.transposed, lb.transposed, M, N, K, pa + oa[k] * es, la.ld, pb + ob[k] * es, lb.ld,
                  pc + k * M * N * es, N, accumulate);
  };
  if (nb > 1 && M * N * K < (1 << 21) && a.device().is_cpu()) {
#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < nb; ++k) one(k);
  } else {
    for (int64_t k = 0; k < nb; ++k) one(k);
  }
  return out;
}

}  // namespace

Tensor matmul_untracked(const Tensor& a, const Tensor& b, const char* prof_name, const Tensor& into) {
  check_float("matmul", a);
  check_float("matmul", b);
  check_same("matmul", a, b);
  if (a.dim() < 2 || b.dim() < 2 || a.shape()[a.dim() - 1] != b.shape()[b.dim() - 2])
    fail("matmul", "operands do not chain: " + a.str() + " @ " + b.str());
  return matmul_forward(a.detach(), b.detach(), prof_name, into);
}

Tensor matmul(const Tensor& a, const Tensor& b) {
  check_float("matmul", a);
  check_float("matmul", b);
  check_same("matmul", a, b);
  if (a.dim() < 1 || b.dim() < 1) fail("matmul", "scalars are not matrices: " + a.str() + " @ " + b.str());
  // 1-d @ 1-d is a dot product -> 0-d (the (1) result of the next line has no dim -2).
  if (a.dim() == 1 && b.dim() == 1) return squeeze(squeeze(matmul(unsqueeze(a, 0), unsqueeze(b, 1)), -1), -1);
  if (a.dim() == 1) return squeeze(matmul(unsqueeze(a, 0), b), -2);
  if (b.dim() == 1) return squeeze(matmul(a, unsqueeze(b, 1)), -1);
  if (a.shape()[a.dim() - 1] != b.shape()[b.dim() - 2])
    fail("matmul", "inner dimensions differ: " + a.str() + " @ " + b.str());
  Tensor out = matmul_forward(a, b, "matmul");
  if (needs_grad({a, b})) {
    bool ga = a.requires_grad(), gb = b.requires_grad();
    Tensor ad = a.detach(), bd = b.detach();
    Shape sa = a.shape(), sb = b.shape();
    // A 2-d operand that is a transposed view (t(X) of a packed X) gets its gradient as the
    // transpose of a packed product, so that X's gradient arrives packed: the transpose node
    // turns it back, and summing it with X's other gradients needs no strided copy.
    const bool a_t = is_transposed_2d(a) && b.dim() == 2, b_t = is_transposed_2d(b) && a.dim() == 2;
    // A 2-d operand whose gradient already has a running sum (it feeds several ops) gets its
    // contribution added into that sum by the GEMM itself (beta = 1; autograd/node.h).
    const bool can_accumulate = a.dim() == 2 && b.dim() == 2 && a.device().is_cpu();
    const DType dt = a.dtype();
    auto target = [can_accumulate, dt](size_t i, const Shape& s) {
      Tensor acc = can_accumulate ? autograd::accumulation_target(i) : Tensor();
      return acc.defined() && acc.shape() == s && acc.dtype() == dt ? acc : Tensor();
    };
    record("matmul", {a, b}, out, [=](const Tensor& g) -> std::vector<Tensor> {
      Tensor da, db;
      if (ga) {
        if (a_t) da = t(matmul_forward(bd, t(g), "matmul.backward"));  // da^T = b g^T
        else if (Tensor acc = target(0, sa); acc.defined()) da = matmul_forward(g, t(bd), "matmul.backward", acc);
        else da = sum_to(matmul_forward(g, transpose(bd, -1, -2), "matmul.backward"), sa);
      }
      if (gb) {
        if (b_t) db = t(matmul_forward(t(g), ad, "matmul.backward"));  // db^T = g^T a
        else if (Tensor acc = target(1, sb); acc.defined()) db = matmul_forward(t(ad), g, "matmul.backward", acc);
        else db = sum_to(matmul_forward(transpose(ad, -1, -2), g, "matmul.backward"), sb);
      }
      return {da, db};
    });
  }
  return out;
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  check_float("linear", x);
  check_dim("linear", weight, 2, "weight");
  if (x.dim() < 1 || x.shape().back() != weight.shape()[1])
    fail("linear", "input " + x.str() + " does not match weight " + weight.str() + " (expected last dim " + std::to_string(weight.shape()[1]) + ")");
  Tensor y = matmul(x, t(weight));
  if (bias.defined()) {
    if (bias.dim() != 1 || bias.shape()[0] != weight.shape()[0]) fail("linear", "bias " + bias.str() + " does not match weight " + weight.str());
    y = add(y, bias);
  }
  return y;
}

}  // namespace lm
