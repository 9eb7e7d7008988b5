// linear_layer_norm (linear_norm.h): argument checks, the fused CPU float32 path with its
// hand-written backward, and the composed fallback.
#include "ops/linear_norm.h"

#include "autograd/engine.h"
#include "ops/cpu/gemm.h"
#include "ops/cpu/layer_norm_gelu.h"
#include "ops/elementwise.h"
#include "ops/layer_norm.h"
#include "ops/matmul.h"
#include "ops/op_utils.h"
#include "ops/shape.h"

namespace lm {

using namespace ops_detail;
using autograd::needs_grad;
using autograd::record;

// From this many elements of y (4 MiB of float32) the forward's LayerNorm (+ GELU) rows run as
// the GEMM's row epilogue (cpu::sgemm_rows); smaller products keep y in cache anyway.
constexpr int64_t kFuseRowsElems = int64_t(1) << 20;

Tensor linear_layer_norm_composed(const Tensor& x, const Tensor& W, const Tensor& b, const Tensor& gamma,
                                  const Tensor& beta, double eps, bool gelu) {
  Tensor y = layer_norm(linear(x, W, b), gamma, beta, eps);
  return gelu ? ::lm::gelu(y) : y;
}

Tensor linear_layer_norm(const Tensor& x, const Tensor& W, const Tensor& b, const Tensor& gamma, const Tensor& beta,
                         double eps, bool gelu) {
  const char* name = gelu ? "linear_layer_norm_gelu" : "linear_layer_norm";
  check_float(name, x);
  check_dim(name, W, 2, "weight");
  const bool fused = x.device().is_cpu() && x.dtype() == DType::F32 && x.dim() == 2 && gamma.defined() &&
                     beta.defined() && W.dtype() == DType::F32 && gamma.dtype() == DType::F32 &&
                     beta.dtype() == DType::F32 && (!b.defined() || b.dtype() == DType::F32);
  if (!fused) return linear_layer_norm_composed(x, W, b, gamma, beta, eps, gelu);
  const int64_t rows = x.shape()[0], Din = x.shape()[1], D = W.shape()[0];
  if (W.shape()[1] != Din) fail(name, "input " + x.str() + " does not match weight " + W.str());
  if (b.defined() && b.shape() != Shape{D}) fail(name, "bias " + b.str() + " does not match weight " + W.str());
  if (gamma.shape() != Shape{D} || beta.shape() != Shape{D})
    fail(name, "LayerNorm weight " + gamma.str() + " / bias " + beta.str() + " must have shape [" + std::to_string(D) + "]");
  if (!(eps >= 0)) fail(name, "eps must be >= 0");
  Tensor xc = x.contiguous(), Wc = W.contiguous(), bc = b.defined() ? b.contiguous() : Tensor();
  Tensor gc = gamma.contiguous(), betac = beta.contiguous();
  Tensor y = Tensor::empty({rows, D}, DType::F32), out = Tensor::empty({rows, D}, DType::F32);
  Tensor mean = Tensor::empty({rows}, DType::F32), rstd = Tensor::empty({rows}, DType::F32);
  // The rows' LayerNorm (+ GELU) over y rows [r0, r1): the same kernel per row whether it runs
  // after the GEMM or as its row epilogue, so both give the same bits.
  struct Rows {
    float* y;
    const float *lin_bias, *w, *b;
    float eps;
    int64_t D;
    bool gelu;
    float *out, *mean, *rstd;
    static void run(void* ctx, int64_t r0, int64_t r1) {
      const Rows& c = *static_cast<const Rows*>(ctx);
      cpu::layer_norm_gelu_forward(c.y + r0 * c.D, c.lin_bias, c.w, c.b, c.eps, r1 - r0, c.D, c.gelu,
                                   c.out + r0 * c.D, c.mean + r0, c.rstd + r0);
    }
  } row_job{y.data<float>(), bc.defined() ? bc.data<float>() : nullptr, gc.data<float>(), betac.data<float>(),
            (float)eps, D, gelu, out.data<float>(), mean.data<float>(), rstd.data<float>()};
  const profiler::Work gemm_work = work::gemm(rows, D, Din, 4);
  const profiler::Work rows_work = work::linear_norm_rows_forward(rows, D, bc.defined(), gelu);
  // y (rows, D) = x (rows, Din) W^T; W is (D, Din) row-major, i.e. op(B) = W^T.
  if (rows * D >= kFuseRowsElems) {
    // Large y (a bag of thousands of instances): the rows run as the GEMM's row epilogue on each
    // block of rows while it is in L2, instead of reading y back from memory (at 32000 x 512 the
    // separate pass took 6-7 ms of a ~120 ms inference forward). One profiler row for both.
    profiler::Scope prof(gelu ? "linear_layer_norm_gelu.gemm+rows" : "linear_layer_norm.gemm+rows",
                         work::combined(gemm_work, rows_work));
    cpu::sgemm_rows(false, true, rows, D, Din, 1.0f, xc.data<float>(), Din, Wc.data<float>(), Din, 0.0f,
                    y.data<float>(), D, cpu::RowEpilogue{&Rows::run, &row_job});
  } else {
    {
      profiler::Scope prof("linear_layer_norm.gemm", gemm_work);
      cpu::sgemm(false, true, rows, D, Din, 1.0f, xc.data<float>(), Din, Wc.data<float>(), Din, 0.0f, y.data<float>(),
                 D);
    }
    profiler::Scope prof(name, rows_work);
    Rows::run(&row_job, 0, rows);
  }
  if (needs_grad({x, W, b, gamma, beta})) {
    const bool gx_needed = x.requires_grad(), gW_needed = W.requires_grad();
    const bool gb_needed = b.defined() && b.requires_grad(), gg_needed = gamma.requires_grad(),
               gbeta_needed = beta.requires_grad();
    Tensor xs = xc.detach(), Ws = Wc.detach(), gs = gc.detach(), bs = betac.detach();
    record(name, {x, W, b, gamma, beta}, out, [=](const Tensor& g) -> std::vector<Tensor> {
      Tensor gcont = g.contiguous();
      Tensor gW, gb, gg, gbeta, gx;
      Tensor gg_all = Tensor::empty({D}, DType::F32), gbeta_all = Tensor::empty({D}, DType::F32),
             gb_all = Tensor::empty({D}, DType::F32);
      auto other_grads = [&]() -> std::vector<Tensor> {
        if (gb_needed) gb = gb_all;
        if (gg_needed) gg = gg_all;
        if (gbeta_needed) gbeta = gbeta_all;
        return {gx, gW, gb, gg, gbeta};
      };
      if (gW_needed && !gx_needed && cpu::detail::k_split_chunks(D, Din, rows) > 1) {
        // x needs no gradient (a bag's features): gy is made in blocks that go straight into
        // dW's product (ops/cpu/layer_norm_gelu_dw.cpp) instead of being written out whole.
        profiler::Scope prof(prof_label(name, "backward_rows+dW"),
                             work::combined(work::linear_norm_rows_backward(rows, D, gelu), gemm_work));
        gW = Tensor::empty({D, Din}, DType::F32);
        cpu::layer_norm_gelu_backward_dw(gcont.data<float>(), y.data<float>(), gs.data<float>(), bs.data<float>(),
                                         mean.data<float>(), rstd.data<float>(), rows, D, gelu, xs.data<float>(), Din,
                                         gW.data<float>(), gg_all.data<float>(), gbeta_all.data<float>(),
                                         gb_all.data<float>());
        return other_grads();
      }
      Tensor gy = Tensor::empty({rows, D}, DType::F32);
      {
        profiler::Scope prof(prof_label(name, "backward_rows"), work::linear_norm_rows_backward(rows, D, gelu));
        cpu::layer_norm_gelu_backward(gcont.data<float>(), y.data<float>(), gs.data<float>(), bs.data<float>(),
                                      mean.data<float>(), rstd.data<float>(), rows, D, gelu, gy.data<float>(),
                                      gg_all.data<float>(), gbeta_all.data<float>(), gb_all.data<float>());
      }
      if (gW_needed) {
        profiler::Scope prof("linear_layer_norm.gemm_dW", gemm_work);  // D x Din x rows: the same count
        // dW (D, Din) = gy^T (D, rows) x (rows, Din).
        gW = Tensor::empty({D, Din}, DType::F32);
        cpu::sgemm(true, false, D, Din, rows, 1.0f, gy.data<float>(), D, xs.data<float>(), Din, 0.0f, gW.data<float>(),
                   Din);
      }
      if (gx_needed) {
        profiler::Scope prof("linear_layer_norm.gemm_dx", gemm_work);  // rows x Din x D: the same count
        // dx (rows, Din) = gy (rows, D) W (D, Din).
        gx = Tensor::empty({rows, Din}, DType::F32);
        cpu::sgemm(false, false, rows, Din, D, 1.0f, gy.data<float>(), D, Ws.data<float>(), Din, 0.0f, gx.data<float>(),
                   Din);
      }
      return other_grads();
    });
  }
  return out;
}

}  // namespace lm
