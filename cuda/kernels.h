// Declarations of every CUDA kernel entry point the ops dispatch to (LM_DISPATCH in
// ops/op_utils.h calls lm::cuda::<name> with exactly the CPU kernel's arguments), plus the
// GPU GEMM, the device-side layout copy and the device layer. Each function has the contract
// of its lm::cpu namesake (see the ops/cpu/*.h header named beside it); all tensors live on
// one CUDA device; kernels are asynchronous on that device's current stream (cuda/device.h).
// Implementations: cuda/<family>.cu. This header includes no CUDA headers.
//
// The existence of this file switches the build to CUDA dispatch (CMakeLists.txt defines
// LIBRAMIL_WITH_CUDA for lm_cuda and everything above it), so every LM_DISPATCH kernel must be
// declared here and implemented in cuda/.
#pragma once
#include <vector>

#include "cuda/copy.h"
#include "cuda/device.h"
#include "cuda/gemm.h"
#include "tensor/kernel_args.h"
#include "tensor/op_kinds.h"
#include "tensor/tensor.h"

namespace lm::cuda {

// ---- elementwise (ops/cpu/elementwise.h; cuda/elementwise.cu) -------------------------------
// a, b: any layout, broadcastable to out's shape; out: packed broadcast shape.
void binary_forward(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out);
// x, out: (n) packed.
void unary_forward(UnaryOp op, const UnaryParams& p, const Tensor& x, Tensor& out);
// x, y, grad_y, grad_x: (n) packed.
void unary_backward(UnaryOp op, const UnaryParams& p, const Tensor& x, const Tensor& y,
                    const Tensor& grad_y, Tensor& grad_x);

// ---- reductions (ops/cpu/reduce.h; cuda/reduce.cu) -----------------------------------------
// x: (outer, reduced, inner) packed; out: (outer, inner) packed.
void reduce_forward(ReduceOp op, const Tensor& x, int64_t outer, int64_t reduced, int64_t inner, Tensor& out);
// x: (outer, reduced, inner) packed; out: (outer, inner) int64.
void argmax_forward(const Tensor& x, int64_t outer, int64_t reduced, int64_t inner, Tensor& out);

// ---- softmax / log_softmax (ops/cpu/softmax.h; cuda/softmax.cu) -----------------------------
// x, out: (outer, n, inner) packed.
void softmax_forward(const Tensor& x, int64_t outer, int64_t n, int64_t inner, bool log, Tensor& out);
// y, grad_y, grad_x: (outer, n, inner) packed.
void softmax_backward(const Tensor& y, const Tensor& grad_y, int64_t outer, int64_t n, int64_t inner, bool log,
                      Tensor& grad_x);

// ---- layer norm (ops/cpu/layer_norm.h; cuda/layer_norm.cu) ----------------------------------
// x, out: (rows, D) packed; weight, bias: (D) or undefined; mean, rstd: (rows).
void layer_norm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, int64_t rows,
                        int64_t D, Tensor& out, Tensor& mean, Tensor& rstd);
// grad_y, x, grad_x: (rows, D); weight, grad_weight, grad_bias: (D); mean, rstd: (rows);
// undefined outputs are skipped.
void layer_norm_backward(const Tensor& grad_y, const Tensor& x, const Tensor& weight, const Tensor& mean,
                         const Tensor& rstd, int64_t rows, int64_t D, Tensor& grad_x, Tensor& grad_weight,
                         Tensor& grad_bias);

// ---- conv2d and adaptive pooling (ops/cpu/conv2d.h, ops/cpu/pool.h; cuda/conv2d.cu) ------
// x: (N, C_in, H, W), weight: (C_out, C_in / groups, KH, KW), bias: (C_out) or undefined,
// out: (N, C_out, OH, OW); all packed.
void conv2d_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dGeometry& g, Tensor& out);
// grad_out: (N, C_out, OH, OW); x / weight: undefined when grad_weight / grad_x is; grad_x,
// grad_weight, grad_bias: packed, shaped like x, weight, bias, or undefined to skip.
void conv2d_backward(const Tensor& grad_out, const Tensor& x, const Tensor& weight, const Conv2dGeometry& g,
                     Tensor& grad_x, Tensor& grad_weight, Tensor& grad_bias);
// x: (rows, H, W) packed; out: (rows, OH, OW) packed.
void adaptive_avg_pool2d_forward(const Tensor& x, int64_t rows, int64_t H, int64_t W, int64_t OH, int64_t OW,
                                 Tensor& out);
// grad_out: (rows, OH, OW) packed; grad_x: (rows, H, W) packed.
void adaptive_avg_pool2d_backward(const Tensor& grad_out, int64_t rows, int64_t H, int64_t W, int64_t OH, int64_t OW,
                                  Tensor& grad_x);

// ---- Adam / AdamW update (ops/cpu/adam.h; cuda/optim.cu) -------------------------------------
// Every parameter on this device; p, g, m, v packed, one dtype. One kernel per parameter.
void adam_update(const std::vector<AdamParam>& params);

// ---- Sinkhorn (ops/cpu/sinkhorn.h, "the op's entry points"; cuda/sinkhorn.cu) ----------------
// a: (B, K1), b: (B, K2), cost: (K1, K2) shared or (B, K1, K2), all packed; exactly one of
// plan (B, K1, K2) / col_sums (B, K2) defined, written.
void sinkhorn_tensor_forward(const Tensor& a, const Tensor& b, const Tensor& cost, const SinkhornOptions& o,
                             Tensor& plan, Tensor& col_sums);
// Exactly one of grad_plan / grad_col_sums defined; grad_a, grad_b written; grad_cost written
// when defined.
void sinkhorn_tensor_backward(const Tensor& a, const Tensor& b, const Tensor& cost, const SinkhornOptions& o,
                              const Tensor& grad_plan, const Tensor& grad_col_sums, Tensor& grad_a, Tensor& grad_b,
                              Tensor& grad_cost);

// ---- cross-entropy (ops/cpu/loss.h; cuda/loss.cu) -------------------------------------------
// logits: (B, C) packed; target: (B) int64; loss: one element; lse: (B) float64.
void cross_entropy_forward(const Tensor& logits, const Tensor& target, int64_t B, int64_t C, Tensor& loss,
                           Tensor& lse);
// grad_loss: one element; grad_logits: (B, C) packed.
void cross_entropy_backward(const Tensor& grad_loss, const Tensor& logits, const Tensor& target, const Tensor& lse,
                            int64_t B, int64_t C, Tensor& grad_logits);

// ---- index (index_select; cuda/index.cu, kernels in cuda/index_kernels.cuh) -----------------
// No lm::cpu namesake: the CPU op copies rows (ops/shape.cpp). x: (outer, n, inner) packed, any
// dtype; idx: (K) int64 on x's device, every entry in [0, n) (checked by the op); out:
// (outer, K, inner) packed, x's dtype: out[o, k, i] = x[o, idx[k], i].
void index_select_forward(const Tensor& x, int64_t outer, int64_t n, int64_t inner, const Tensor& idx, Tensor& out);
// grad_out: (outer, K, inner) packed float; offsets (n + 1), ks (K): int64 on its device, the
// CSR inversion of idx (row j's k in ks[offsets[j] .. offsets[j+1] - 1], ascending);
// grad_x: (outer, n, inner) packed, overwritten with the per-row sums in that order (no atomics).
void index_select_backward(const Tensor& grad_out, int64_t outer, int64_t n, int64_t inner, const Tensor& offsets,
                           const Tensor& ks, Tensor& grad_x);

// ---- attention (fused scaled dot-product attention; cuda/attention.cu) -----------------------
// No lm::cpu namesake: the CPU op is composed (ops/attention.cpp); math in docs/ops/attention.md.
// q: (B, H, Lq, d), k: (B, H, Lk, d), v: (B, H, Lk, dv), all packed, one float dtype, one CUDA
// device, every size >= 1. mask: undefined, or a tensor of the same dtype and device with at
// most 4 dims, broadcastable to (B, H, Lq, Lk), any layout (read in place through its strides,
// 0 on broadcast dims). scale: the resolved score scale (> 0).
// out: (B, H, Lq, dv) packed = softmax(scale q k^T + mask) v, never materialising (Lq, Lk);
// lse: (B, H, Lq) packed, same dtype = log-sum-exp over the keys of the scaled + masked scores.
// A row whose scores are all -inf gives out = NaN and lse = -inf (like the composed op).
void attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, double scale,
                       Tensor& out, Tensor& lse);
// The same q, k, v, mask, scale and the forward's out, lse; grad_out: (B, H, Lq, dv) packed.
// grad_q / grad_k / grad_v: packed, shaped like q / k / v, overwritten; an undefined one is not
// computed. FlashAttention-2 algebra with p recomputed from lse; deterministic (no atomics).
void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, double scale,
                        const Tensor& out, const Tensor& lse, const Tensor& grad_out, Tensor& grad_q, Tensor& grad_k,
                        Tensor& grad_v);

// ---- image resize and normalize_channels (ops/cpu/resize.h; cuda/resize.cu) -----------------
// x: (rows, axis.src_size) packed; out: (rows, axis.dst_size); axis: the table on x's device.
void resize_horizontal_pass(const Tensor& x, int64_t rows, const ResizeAxis& axis, Tensor& out);
// x: (planes, axis.src_size, width) packed; out: (planes, axis.dst_size, width).
void resize_vertical_pass(const Tensor& x, int64_t planes, int64_t width, const ResizeAxis& axis, Tensor& out);
// x, out: (planes, hw) packed, channel p % C; mean, sd: (C), x's dtype.
void normalize_channels_forward(const Tensor& x, int64_t planes, int64_t C, int64_t hw, const Tensor& mean,
                                const Tensor& sd, Tensor& out);
// grad_y, grad_x: (planes, hw) packed; sd: (C).
void normalize_channels_backward(const Tensor& grad_y, int64_t planes, int64_t C, int64_t hw, const Tensor& sd,
                                 Tensor& grad_x);

}  // namespace lm::cuda
