// linear_layer_norm's backward when x needs no gradient (layer_norm_gelu.h): the LayerNorm
// (+ GELU) backward rows and the weight gradient dW = gy^T x, interleaved so that gy never goes
// to memory whole.
//
// Unfused, the rows write gy (rows x D, 32 MB for a 16000-instance bag) and the dW GEMM reads it
// back; both stream g and y, or gy and x, from memory. Here gy is made kBlockRows rows at a time
// into a block that stays in L2 and goes straight into dW's product:
//
//   rows split into `chunks` contiguous chunks (the GEMM's K-split chunk count for dW,
//   detail::k_split_chunks(D, Din, rows): a power of two fixed by the shape), chunk c's rows in
//   blocks of kBlockRows:
//     for each block:  gy_blk = rows backward (g, y rows of the block)      (kBlockRows, D)
//                      dW_c  (+)= gy_blk^T x_blk                               (D, Din)
//   dW = dW_0 + dW_1 + ... in chunk order; gw, gb, gcol from the rows' 32-row partials.
//
// With at most `chunks` threads, each thread takes whole chunks, makes its blocks and runs their
// products on its own (the GEMM runs single-threaded inside the parallel region): rows
// backward on one core overlaps the other's GEMM, and both stream their own rows of g, y and x.
// With more threads than chunks, all of gy is made first (every thread) and each block's product
// is one multi-threaded GEMM: the same blocks and the same products, so the same bits (a GEMM's
// elements do not depend on how it is split over threads).
// 16000-instance paper step on two AVX-512 cores (profile of 6 steps, alternating binaries):
// rows backward + dW 53-55 ms per step unfused, 50-51 ms fused; and gy's 32 MB is never allocated.
#include "ops/cpu/gemm.h"
#include "ops/cpu/layer_norm_gelu.h"

#include <omp.h>

#include <algorithm>
#include <memory>

namespace lm::cpu {

namespace {

constexpr int64_t kBlockRows = 256;  // gy block: 256 x 512 floats = 512 KiB, half an L2
static_assert(kBlockRows % kLnBackwardChunkRows == 0, "blocks must hold whole reduction chunks");

// First row of chunk c (block-aligned; chunk `chunks` starts at rows).
int64_t chunk_start(int64_t c, int64_t chunks, int64_t rows) {
  return c >= chunks ? rows : rows * c / chunks / kBlockRows * kBlockRows;
}

}  // namespace

void layer_norm_gelu_backward_dw(const float* g, const float* y, const float* w, const float* b, const float* mean,
                                 const float* rstd, int64_t rows, int64_t D, bool gelu, const float* x, int64_t Din,
                                 float* dW, float* gw, float* gb, float* gcol) {
  const int64_t chunks = detail::k_split_chunks(D, Din, rows);
  const int64_t nred = (rows + kLnBackwardChunkRows - 1) / kLnBackwardChunkRows;
  // The rows' column partials, each chunk's written (zeroed first) by layer_norm_gelu_backward_rows.
  std::unique_ptr<float[]> part(new float[static_cast<size_t>(nred * 3 * D)]);
  // dW_c for c >= 1 (64-byte aligned, like every buffer the GEMM and the row kernels touch here).
  detail::AlignedBuffer partials;
  float* partial_dw = partials.get(static_cast<size_t>((chunks - 1) * D * Din));
  auto dw_of = [&](int64_t c) { return c == 0 ? dW : partial_dw + (c - 1) * D * Din; };
  // dW_c (+)= gy_blk^T x_blk for the block at row r0 of chunk c (gy_blk: n rows, leading dim D).
  auto block_product = [&](int64_t c, int64_t r0, int64_t n, const float* gy_blk) {
    sgemm(true, false, D, Din, n, 1.0f, gy_blk, D, x + r0 * Din, Din, r0 == chunk_start(c, chunks, rows) ? 0.0f : 1.0f,
          dw_of(c), Din);
  };
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  if (threads <= chunks) {
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
      detail::AlignedBuffer block_buffer;
      float* block = block_buffer.get(static_cast<size_t>(kBlockRows * D));
      const int t = omp_get_thread_num(), nt = omp_get_num_threads();
      for (int64_t c = t; c < chunks; c += nt)
        for (int64_t r0 = chunk_start(c, chunks, rows), end = chunk_start(c + 1, chunks, rows); r0 < end;
             r0 += kBlockRows) {
          const int64_t n = std::min(kBlockRows, end - r0);
          layer_norm_gelu_backward_rows(g, y, w, b, mean, rstd, r0, r0 + n, D, gelu, block, part.get());
          block_product(c, r0, n, block);  // single-threaded inside the region
        }
    }
  } else {
    detail::AlignedBuffer gy_buffer;
    float* gy = gy_buffer.get(static_cast<size_t>(rows * D));
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < nred; ++i) {
      const int64_t r0 = i * kLnBackwardChunkRows, r1 = std::min(rows, r0 + kLnBackwardChunkRows);
      layer_norm_gelu_backward_rows(g, y, w, b, mean, rstd, r0, r1, D, gelu, gy + r0 * D, part.get());
    }
    for (int64_t c = 0; c < chunks; ++c)
      for (int64_t r0 = chunk_start(c, chunks, rows), end = chunk_start(c + 1, chunks, rows); r0 < end;
           r0 += kBlockRows)
        block_product(c, r0, std::min(kBlockRows, end - r0), gy + r0 * D);
  }
  detail::add_partials(dW, Din, D, Din, partial_dw, chunks - 1, threads);  // dW += dW_1 + dW_2 + ...
  layer_norm_gelu_backward_reduce(part.get(), rows, D, gw, gb, gcol);
}

}  // namespace lm::cpu
