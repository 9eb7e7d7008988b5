// CPU kernels of l2_normalize over the last dimension of a packed (rows, D) tensor
// (ops/normalize.cpp): y = x / max(||x||, eps), one pass per row forward, two backward.
#pragma once
#include <cstdint>

namespace lm::cpu {

// y (rows, D); denom (rows) = max(||x_r||, eps), kept for backward, negated for rows whose
// norm was clamped to eps (those get no gradient through the norm).
template <class T>
void l2_normalize_rows_forward(const T* x, int64_t rows, int64_t D, double eps, T* y, T* denom);

// gx = (g - y (g . y)) / denom for rows with ||x|| > eps, g / denom for clamped rows.
template <class T>
void l2_normalize_rows_backward(const T* g, const T* y, const T* denom, int64_t rows, int64_t D, T* gx);

// norms (rows) = max(||x_r||, eps), negated for clamped rows (as denom above); and its
// backward gx_r = (g_r / n_r) x_r for unclamped rows, 0 for clamped ones.
template <class T>
void l2_norm_rows_forward(const T* x, int64_t rows, int64_t D, double eps, T* norms);
template <class T>
void l2_norm_rows_backward(const T* g, const T* x, const T* norms, int64_t rows, int64_t D, T* gx,
                           bool accumulate = false);

}  // namespace lm::cpu
