// Fused CPU kernels for the row-wise tail of Linear -> LayerNorm [-> GELU] (float32):
// the bias add, the normalisation, the affine map and the exact (erf) GELU in one pass over
// each row, and the whole backward of that tail in two passes per row. The matrix products
// around them (x W^T, dW = dy^T x, dx = dy W) are ordinary sgemm calls made by the op
// (ops/linear_norm.cpp). Derivation: docs/ops/layernorm.md, "Fused Linear + LayerNorm + GELU".
#pragma once
#include <cstdint>

namespace lm::cpu {

// y: (rows, D) holds x W^T on entry; the linear bias `lin_bias` (D, may be null) is added in
// place, so on return y is the pre-normalisation activation that backward needs.
// w, b: LayerNorm weight and bias (D, both required). out: (rows, D). mean, rstd: (rows).
void layer_norm_gelu_forward(float* y, const float* lin_bias, const float* w, const float* b, float eps, int64_t rows,
                             int64_t D, bool gelu, float* out, float* mean, float* rstd);

// g: dL/d(out) (rows, D). Writes gy = dL/dy (rows, D); and, when non-null, gw, gb = dL/d(LN
// weight, LN bias) and gcol = column sums of gy (= dL/d(linear bias)), each (D). The column
// reductions go through fixed chunks of rows added in a fixed order: the same bits for any
// thread count.
void layer_norm_gelu_backward(const float* g, const float* y, const float* w, const float* b, const float* mean,
                              const float* rstd, int64_t rows, int64_t D, bool gelu, float* gy, float* gw, float* gb,
                              float* gcol);

// The backward's two halves, for callers that produce gy block by block (layer_norm_gelu_dw.cpp).
// The column reductions run over chunks of kLnBackwardChunkRows rows: chunk i's partial sums
// [gw | gb | gcol] (3 D floats) live at part + 3 D i.
constexpr int64_t kLnBackwardChunkRows = 32;
// Rows [r0, r1) on the calling thread (r0 a multiple of kLnBackwardChunkRows): gy rows from gy
// (gy points at row r0's output) and the partials of the chunks they cover.
void layer_norm_gelu_backward_rows(const float* g, const float* y, const float* w, const float* b,
                                   const float* mean, const float* rstd, int64_t r0, int64_t r1, int64_t D, bool gelu,
                                   float* gy, float* part);
// gw, gb, gcol (each may be null) from the partials of all ceil(rows / kLnBackwardChunkRows)
// chunks, added in chunk order in float64.
void layer_norm_gelu_backward_reduce(const float* part, int64_t rows, int64_t D, float* gw, float* gb, float* gcol);

// linear_layer_norm's backward when x needs no gradient (a bag's features): dW (D, Din) = gy^T x
// with gy made in blocks of rows that go straight into the product while in L2, never written
// out whole; gw, gb, gcol as above (the same bits). Blocking fixed by the shape (the same bits for
// any thread count); see layer_norm_gelu_dw.cpp. Meant for the shapes where dW takes sgemm's
// K-split form, detail::k_split_chunks(D, Din, rows) > 1 (rows >= 4096 for D = Din = 512): the
// rows split into those chunks and threads take them whole (with one chunk it is correct, but on
// several threads it only makes gy first and then runs the blocks' products one by one).
void layer_norm_gelu_backward_dw(const float* g, const float* y, const float* w, const float* b, const float* mean,
                                 const float* rstd, int64_t rows, int64_t D, bool gelu, const float* x, int64_t Din,
                                 float* dW, float* gw, float* gb, float* gcol);

}  // namespace lm::cpu
