// The (index, weight) tables of one axis of a separable image resize, as torch 1.13 computes
// them for F.interpolate(..., align_corners=False) with mode bilinear / bicubic and antialias
// off / on (aten/src/ATen/native/UpSample.h and cpu/UpSampleKernel.cpp). Plain host code (C++17,
// std only): the op (ops/resize.cpp) builds the tables once per call and hands them to the CPU
// kernels (ops/cpu/resize.h) and the CUDA kernels (cuda/resize_kernels.cuh) alike; the emulated
// kernel test builds them here too. Derivation and the backward: docs/ops/resize.md.
//
// A table is a sparse (dst_size, src_size) matrix in CSR form: destination index d reads the
// source indices src[offsets[d] .. offsets[d+1]) with the weights at the same positions.
//   - not antialiased, bilinear: the two neighbours of the source coordinate
//     s = max(scale (d + 0.5) - 0.5, 0), the right one clamped to the last pixel;
//   - not antialiased, bicubic: the four neighbours floor(s) - 1 .. floor(s) + 2 of the
//     unclamped s, each index clamped into [0, src_size) (Keys' kernel, a = -0.75);
//   - antialiased: the filter (triangle, or Keys' cubic with a = -0.5) stretched by the scale
//     when downscaling, over the pixels whose centres fall inside its support around
//     scale (d + 0.5), weights renormalised to sum to one (so truncated borders renormalise).
// T is the tensor's dtype: like torch, float32 tensors get tables computed in float, so that
// the same index is chosen at the same rounding.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace lm::cpu {

template <class T>
struct ResizeTable {
  int64_t src_size = 0, dst_size = 0;
  std::vector<int64_t> offsets;  // (dst_size + 1)
  std::vector<int64_t> src;      // (nnz), each in [0, src_size)
  std::vector<T> weight;         // (nnz)
};

namespace resize_detail {

// Keys' cubic convolution kernel pieces (torch's cubic_convolution1 / 2): |x| <= 1 and 1 < |x| < 2.
template <class T>
T cubic1(T x, T A) {
  return ((A + 2) * x - (A + 3)) * x * x + 1;
}
template <class T>
T cubic2(T x, T A) {
  return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
}
// The antialiasing filters (torch's HelperInterpLinear / HelperInterpCubic::aa_filter).
template <class T>
T aa_triangle(T x) {
  if (x < 0.0) x = -x;
  if (x < 1.0) return 1.0 - x;
  return 0.0;
}
template <class T>
T aa_cubic(T x) {
  if (x < 0.0) x = -x;
  if (x < 1.0) return cubic1<T>(x, T(-0.5));
  if (x < 2.0) return cubic2<T>(x, T(-0.5));
  return 0.0;
}

}  // namespace resize_detail

// The table of one axis resized from src_size to dst_size (both >= 1). The expressions (and
// their mixed float / double arithmetic) are torch's, written out in the same order.
template <class T>
ResizeTable<T> make_resize_table(int64_t src_size, int64_t dst_size, bool cubic, bool antialias) {
  using namespace resize_detail;
  if (src_size < 1 || dst_size < 1)
    throw std::invalid_argument("make_resize_table: sizes must be >= 1, got " + std::to_string(src_size) + " -> " +
                                std::to_string(dst_size));
  ResizeTable<T> t;
  t.src_size = src_size;
  t.dst_size = dst_size;
  t.offsets.assign(1, 0);
  const T scale = static_cast<T>(src_size) / dst_size;  // area_pixel_compute_scale, align_corners=False
  auto push = [&](int64_t s, T w) {
    t.src.push_back(s);
    t.weight.push_back(w);
  };
  for (int64_t i = 0; i < dst_size; ++i) {
    if (antialias) {  // _compute_indices_weights_aa / _compute_weights_aa
      const int interp_size = cubic ? 4 : 2;
      const T support = (scale >= 1.0) ? (interp_size * 0.5) * scale : interp_size * 0.5;
      const T center = scale * (i + 0.5);
      const T invscale = (scale >= 1.0) ? 1.0 / scale : 1.0;
      const int64_t xmin = std::max(static_cast<int64_t>(center - support + 0.5), static_cast<int64_t>(0));
      const int64_t xsize = std::min(static_cast<int64_t>(center + support + 0.5), src_size) - xmin;
      const size_t first = t.weight.size();
      T total = 0.0;
      for (int64_t j = 0; j < xsize; ++j) {
        const T arg = (j + xmin - center + 0.5) * invscale;
        const T w = cubic ? aa_cubic<T>(arg) : aa_triangle<T>(arg);
        push(xmin + j, w);
        total += w;
      }
      if (total != 0.0)
        for (size_t k = first; k < t.weight.size(); ++k) t.weight[k] /= total;
    } else if (!cubic) {  // HelperInterpLinear::compute_indices_weights_linear
      T real = scale * (i + 0.5) - 0.5;  // area_pixel_compute_source_index, cubic=false
      if (real < 0) real = T(0);
      const int64_t i0 = static_cast<int64_t>(real);
      const T lambda = std::min(std::max(real - i0, static_cast<T>(0)), static_cast<T>(1));
      const int64_t i1 = i0 + ((i0 < src_size - 1) ? 1 : 0);
      push(i0, static_cast<T>(1.) - lambda);
      push(i1, lambda);
    } else {  // HelperInterpCubic::compute_indices_weights_cubic
      const T real = scale * (i + 0.5) - 0.5;  // area_pixel_compute_source_index, cubic=true
      const int64_t i0 = static_cast<int64_t>(std::floor(real));
      const T x1 = real - i0;  // get_cubic_upsample_coefficients, A = -0.75
      const T A = -0.75;
      const T x2 = 1.0 - x1;
      const T w[4] = {cubic2<T>(x1 + 1.0, A), cubic1<T>(x1, A), cubic1<T>(x2, A), cubic2<T>(x2 + 1.0, A)};
      for (int64_t j = 0; j < 4; ++j) push(std::min(std::max(i0 - 1 + j, static_cast<int64_t>(0)), src_size - 1), w[j]);
    }
    t.offsets.push_back(static_cast<int64_t>(t.src.size()));
  }
  return t;
}

// The transpose (src_size, dst_size) of a table: for each source index, the destinations that
// read it, in ascending order, with the same weights (a destination that reads one source
// twice, as clamped bicubic borders do, appears twice). Used by the backward: the gradient of
// a linear map is its transpose, gathered here so that no kernel needs atomics.
template <class T>
ResizeTable<T> transpose_resize_table(const ResizeTable<T>& t) {
  ResizeTable<T> r;
  r.src_size = t.dst_size;
  r.dst_size = t.src_size;
  r.offsets.assign(static_cast<size_t>(t.src_size) + 1, 0);
  r.src.resize(t.src.size());
  r.weight.resize(t.weight.size());
  for (int64_t s : t.src) ++r.offsets[static_cast<size_t>(s) + 1];
  for (int64_t s = 0; s < t.src_size; ++s) r.offsets[static_cast<size_t>(s) + 1] += r.offsets[static_cast<size_t>(s)];
  std::vector<int64_t> next(r.offsets.begin(), r.offsets.end() - 1);
  for (int64_t d = 0; d < t.dst_size; ++d)
    for (int64_t e = t.offsets[static_cast<size_t>(d)]; e < t.offsets[static_cast<size_t>(d) + 1]; ++e) {
      const int64_t pos = next[static_cast<size_t>(t.src[static_cast<size_t>(e)])]++;
      r.src[static_cast<size_t>(pos)] = d;
      r.weight[static_cast<size_t>(pos)] = t.weight[static_cast<size_t>(e)];
    }
  return r;
}

}  // namespace lm::cpu
