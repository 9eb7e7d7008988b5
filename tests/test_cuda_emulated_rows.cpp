// CUDA row and elementwise kernels run on the CPU through tests/cuda_emulator.h and compared
// with the CPU:
//   - softmax / log_softmax, layer norm, cross-entropy and the reductions (cuda/{softmax,
//     layer_norm,loss,reduce}_kernels.cuh, with the block reductions of cuda/block_reduce.cuh),
//     launched as their .cu files launch them, against the CPU kernels of ops/cpu/ (checked
//     against PyTorch by the op table);
//   - the Adam / AdamW update (cuda/optim_kernels.cuh) against the CPU optimizer
//     (models/nn/optim.h, checked against torch.optim by test_nn_optim);
//   - the elementwise kernels (cuda/elementwise_kernels.cuh: every unary op forward and
//     backward through the packed map, 16-byte vectors and scalar tail; binary ops packed and
//     broadcast through make_index2) against ops/cpu/elementwise.h;
//   - the copy kernels (cuda/copy_kernels.cuh: dtype conversion between float32, float64,
//     float16 and bfloat16, bit for bit against Tensor::to on the CPU over every 16-bit pattern
//     and rounding edge cases; the strided copy of a transposed view; fill; add);
// Runs everywhere, GPU or not: it checks the kernels' logic (indexing, barriers, the
// recurrences, grid-stride loops, block reductions). Whether they compile and run on a device
// is the op table's CUDA column and tools/gpu_check.sh.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "ops/cpu/conv2d.h"
#include "ops/cpu/elementwise.h"
#include "ops/index_csr.h"
#include "ops/cpu/layer_norm.h"
#include "models/nn/optim.h"
#include "ops/cpu/loss.h"
#include "ops/cpu/pool.h"
#include "ops/cpu/reduce.h"
#include "ops/cpu/resize.h"
#include "ops/cpu/resize_table.h"
#include "ops/cpu/sinkhorn.h"
#include "ops/cpu/softmax.h"
#include "ops/ops.h"
#include "tensor/rng.h"
#include "tests/cuda_emulated_util.h"
// Last: the emulator defines __device__, __shared__, ... as macros for what follows.
#include "tests/cuda_emulator.h"
#include "cuda/copy_kernels.cuh"
#include "cuda/elementwise_kernels.cuh"
#include "cuda/layer_norm_kernels.cuh"
#include "cuda/loss_kernels.cuh"
#include "cuda/optim_kernels.cuh"
#include "cuda/reduce_kernels.cuh"
#include "cuda/softmax_kernels.cuh"

// ---- softmax, layer norm, cross-entropy ------------------------------------------------------

using namespace lm::test::emulated;

namespace {



template <class T>
void check_softmax(int64_t outer, int64_t n, int64_t inner, bool log_out, double tol) {
  using lm::Tensor;
  const lm::DType dt = sizeof(T) == 4 ? lm::DType::F32 : lm::DType::F64;
  Tensor x = rand_tensor({outer, n, inner}, dt, 3);
  if (outer > 1 && inner == 1) {  // an all -inf row: the kernels use max 0 and give NaN (as torch)
    std::vector<double> v = x.to_double_vector();
    for (int64_t j = 0; j < n; ++j) v[static_cast<size_t>(n + j)] = -std::numeric_limits<double>::infinity();
    x = Tensor::from_vector(v, {outer, n, inner}).to(dt);
  }
  Tensor g = rand_tensor({outer, n, inner}, dt, 4);
  Tensor y_ref = Tensor::empty({outer, n, inner}, dt), gx_ref = Tensor::empty({outer, n, inner}, dt);
  lm::cpu::softmax_forward(x, outer, n, inner, log_out, y_ref);
  lm::cpu::softmax_backward(y_ref, g, outer, n, inner, log_out, gx_ref);
  Tensor y = Tensor::empty({outer, n, inner}, dt), gx = Tensor::empty({outer, n, inner}, dt);
  namespace sm = lm::cuda_emulated::softmax_kernels;
  const T* xp = x.data<T>();
  T* yp = y.data<T>();
  const sm::RowSplit sp = inner == 1 ? sm::row_split(outer, n) : sm::RowSplit{n, 1};
  if (sp.chunks > 1) {  // few long rows, as cuda/softmax.cu launches them; 3 blocks (grid-stride)
    std::vector<T> part_max(static_cast<size_t>(outer * sp.chunks));
    std::vector<double> part_sum(part_max.size()), part_dot(part_max.size());
    emu::launch(3, kLibThreads, 0, [&] {
      sm::softmax_split_max_kernel<T>(xp, outer, n, sp.per_chunk, sp.chunks, part_max.data());
    });
    emu::launch(3, kLibThreads, 0, [&] {
      sm::softmax_split_sum_kernel<T>(xp, outer, n, sp.per_chunk, sp.chunks, part_max.data(), part_sum.data());
    });
    emu::launch(3, kLibThreads, 0, [&] {
      sm::softmax_split_write_kernel<T>(xp, outer, n, sp.per_chunk, sp.chunks, part_max.data(), part_sum.data(),
                                        log_out, yp);
    });
    emu::launch(3, kLibThreads, 0, [&] {
      sm::softmax_split_backward_dot_kernel<T>(yp, g.data<T>(), outer, n, sp.per_chunk, sp.chunks, log_out,
                                               part_dot.data());
    });
    emu::launch(3, kLibThreads, 0, [&] {
      sm::softmax_split_backward_write_kernel<T>(yp, g.data<T>(), outer, n, sp.per_chunk, sp.chunks, log_out,
                                                 part_dot.data(), gx.data<T>());
    });
  } else if (inner == 1) {  // host: grid_rows(outer) blocks of kThreads; here fewer blocks (grid-stride)
    const unsigned grid = static_cast<unsigned>(std::min<int64_t>(outer, 2));
    emu::launch(grid, kLibThreads, 0, [&] { sm::softmax_rows_kernel<T>(xp, outer, n, log_out, yp); });
    emu::launch(grid, kLibThreads, 0, [&] {
      sm::softmax_backward_rows_kernel<T>(yp, g.data<T>(), outer, n, log_out, gx.data<T>());
    });
  } else {  // a thread per column: 1 block of 64 over more columns (grid-stride)
    emu::launch(1, 64, 0, [&] { sm::softmax_columns_kernel<T>(xp, outer, n, inner, log_out, yp); });
    emu::launch(1, 64, 0, [&] {
      sm::softmax_backward_columns_kernel<T>(yp, g.data<T>(), outer, n, inner, log_out, gx.data<T>());
    });
  }
  INFO("softmax outer " << outer << " n " << n << " inner " << inner << (log_out ? " log" : "") << " chunks "
                         << sp.chunks);
  CHECK(tensor_err(y, y_ref) < tol);
  CHECK(tensor_err(gx, gx_ref) < tol);
}

template <class T>
void check_layer_norm(int64_t rows, int64_t D, bool affine, double tol) {
  using lm::Tensor;
  const lm::DType dt = sizeof(T) == 4 ? lm::DType::F32 : lm::DType::F64;
  Tensor x = rand_tensor({rows, D}, dt, 5), g = rand_tensor({rows, D}, dt, 6);
  Tensor w = affine ? rand_tensor({D}, dt, 7) : Tensor(), b = affine ? rand_tensor({D}, dt, 8) : Tensor();
  const double eps = 1e-5;
  Tensor y_ref = Tensor::empty({rows, D}, dt), mean_ref = Tensor::empty({rows}, dt), rstd_ref = Tensor::empty({rows}, dt);
  lm::cpu::layer_norm_forward(x, w, b, eps, rows, D, y_ref, mean_ref, rstd_ref);
  Tensor gx_ref = Tensor::empty({rows, D}, dt), gw_ref = Tensor::empty({D}, dt), gb_ref = Tensor::empty({D}, dt);
  lm::cpu::layer_norm_backward(g, x, w, mean_ref, rstd_ref, rows, D, gx_ref, gw_ref, gb_ref);

  namespace ln = lm::cuda_emulated::layer_norm_kernels;
  Tensor y = Tensor::empty({rows, D}, dt), mean = Tensor::empty({rows}, dt), rstd = Tensor::empty({rows}, dt);
  const T* wp = affine ? w.data<T>() : nullptr;
  const T* bp = affine ? b.data<T>() : nullptr;
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(rows, 3));
  emu::launch(grid, kLibThreads, 0, [&] {
    ln::layer_norm_forward_kernel<T>(x.data<T>(), wp, bp, eps, rows, D, y.data<T>(), mean.data<T>(), rstd.data<T>());
  });
  Tensor gx = Tensor::empty({rows, D}, dt), gw = Tensor::empty({D}, dt), gb = Tensor::empty({D}, dt);
  emu::launch(grid, kLibThreads, 0, [&] {
    ln::layer_norm_backward_x_kernel<T>(g.data<T>(), x.data<T>(), wp, mean.data<T>(), rstd.data<T>(), rows, D,
                                        gx.data<T>());
  });
  // Parameter gradients: cuda/layer_norm.cu's two kernels (partials per 32-row chunk, then the
  // chunks in order); its grid is (ceil(D / 128), chunks) of 128 threads; here y = 2 blocks.
  const int64_t nchunks = (rows + ln::kRowsPerChunk - 1) / ln::kRowsPerChunk;
  std::vector<double> pw(static_cast<size_t>(nchunks * D)), pb(static_cast<size_t>(nchunks * D));
  const unsigned threads = 128;
  const dim3 pgrid(static_cast<unsigned>((D + threads - 1) / threads), static_cast<unsigned>(std::min<int64_t>(nchunks, 2)));
  emu::launch(pgrid, threads, 0, [&] {
    ln::layer_norm_param_partials_kernel<T>(g.data<T>(), x.data<T>(), mean.data<T>(), rstd.data<T>(), rows, D,
                                            nchunks, pw.data(), pb.data());
  });
  emu::launch(1, 64, 0, [&] {
    ln::layer_norm_param_sum_kernel<T>(pw.data(), pb.data(), nchunks, D, gw.data<T>(), gb.data<T>());
  });
  INFO("layer_norm rows " << rows << " D " << D << (affine ? " affine" : ""));
  CHECK(tensor_err(y, y_ref) < tol);
  CHECK(tensor_err(mean, mean_ref) < tol);
  CHECK(tensor_err(rstd, rstd_ref) < tol);
  CHECK(tensor_err(gx, gx_ref) < tol);
  CHECK(tensor_err(gw, gw_ref) < tol);
  CHECK(tensor_err(gb, gb_ref) < tol);
}

template <class T>
void check_cross_entropy(int64_t B, int64_t C, double tol) {
  using lm::Tensor;
  const lm::DType dt = sizeof(T) == 4 ? lm::DType::F32 : lm::DType::F64;
  Tensor x = rand_tensor({B, C}, dt, 9);
  std::vector<int64_t> tv(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) tv[static_cast<size_t>(b)] = (b * 7 + 3) % C;
  Tensor t = Tensor::from_vector(tv, {B});
  Tensor loss_ref = Tensor::empty({1}, dt), lse_ref = Tensor::empty({B}, lm::DType::F64);
  lm::cpu::cross_entropy_forward(x, t, B, C, loss_ref, lse_ref);
  Tensor gl = Tensor::from_vector(std::vector<double>{0.75}, {1}).to(dt);
  Tensor gx_ref = Tensor::empty({B, C}, dt);
  lm::cpu::cross_entropy_backward(gl, x, t, lse_ref, B, C, gx_ref);

  namespace ce = lm::cuda_emulated::loss_kernels;
  Tensor loss = Tensor::empty({1}, dt), lse = Tensor::empty({B}, lm::DType::F64);
  std::vector<double> row_loss(static_cast<size_t>(B));
  emu::launch(static_cast<unsigned>(std::min<int64_t>(B, 2)), kLibThreads, 0, [&] {
    ce::cross_entropy_rows_kernel<T, double>(x.data<T>(), t.data<int64_t>(), B, C, lse.data<double>(),
                                             row_loss.data());
  });
  emu::launch(1, 1024, 0, [&] { ce::mean_kernel<T>(row_loss.data(), B, loss.data<T>()); });
  // Backward twice: the upstream gradient read on the device (g_dev) and passed by value.
  Tensor gx_dev = Tensor::empty({B, C}, dt), gx_host = Tensor::empty({B, C}, dt);
  emu::launch(2, 64, 0, [&] {
    ce::cross_entropy_backward_kernel<T, double>(gl.data<T>(), 0.0, x.data<T>(), t.data<int64_t>(),
                                                 lse.data<double>(), B, C, gx_dev.data<T>());
  });
  emu::launch(2, 64, 0, [&] {
    ce::cross_entropy_backward_kernel<T, double>(nullptr, 0.75, x.data<T>(), t.data<int64_t>(), lse.data<double>(), B,
                                                 C, gx_host.data<T>());
  });
  INFO("cross_entropy B " << B << " C " << C);
  CHECK(tensor_err(loss, loss_ref) < tol);
  CHECK(tensor_err(lse, lse_ref) < tol);
  CHECK(tensor_err(gx_dev, gx_ref) < tol);
  CHECK(tensor_err(gx_host, gx_ref) < tol);
}

}  // namespace

TEST_CASE("cuda emulated: softmax, layer norm and cross-entropy kernels equal the CPU kernels") {
  for (bool log_out : {false, true}) {
    check_softmax<double>(5, 300, 1, log_out, 1e-12);  // rows (n > block: strided), an all -inf row
    check_softmax<double>(3, 7, 1, log_out, 1e-12);
    check_softmax<double>(3, 5, 40, log_out, 1e-12);   // columns: 120 > 64 threads (grid-stride)
    check_softmax<float>(5, 300, 1, log_out, 1e-5);
    check_softmax<float>(3, 5, 40, log_out, 1e-5);
    // Few long rows: the split kernels (2 chunks of 1250; 4 of 1025 with an all -inf row).
    check_softmax<double>(1, 2500, 1, log_out, 1e-12);
    check_softmax<double>(3, 4100, 1, log_out, 1e-12);
    check_softmax<float>(3, 4100, 1, log_out, 1e-5);
  }
  {  // the split rule: few long rows split, many rows or short ones not
    namespace sm = lm::cuda_emulated::softmax_kernels;
    CHECK(sm::row_split(1, 2500).chunks == 2);
    CHECK(sm::row_split(1, 2500).per_chunk == 1250);
    CHECK(sm::row_split(3, 4100).chunks == 4);
    CHECK(sm::row_split(1, 100000).chunks == 97);    // ~1024-element chunks, 97 blocks
    CHECK(sm::row_split(24, 100000).chunks == 43);   // 24 rows x 43 chunks = 1032 blocks
    CHECK(sm::row_split(1, 2047).chunks == 1);       // short row
    CHECK(sm::row_split(1024, 100000).chunks == 1);  // many rows fill the device already
  }
  for (bool affine : {true, false}) {
    check_layer_norm<double>(70, 300, affine, 1e-11);  // 3 chunks of 32 rows; D > 256 and > 128
    check_layer_norm<double>(1, 5, affine, 1e-11);
    check_layer_norm<float>(70, 300, affine, 1e-4);
  }
  check_cross_entropy<double>(5, 300, 1e-12);
  check_cross_entropy<double>(1, 3, 1e-12);
  check_cross_entropy<float>(5, 300, 1e-5);
  // Targets out of [0, C) (unchecked under a CUDA graph capture, ops/loss.cpp): their rows' loss
  // is NaN, never a read outside the row; the other rows are the CPU's.
  {
    const int64_t B = 4, C = 6;
    lm::Tensor x = rand_tensor({B, C}, lm::DType::F64, 4);
    const std::vector<int64_t> tv{2, C, -1, 5};
    lm::Tensor t = lm::Tensor::from_vector(tv, {B});
    lm::Tensor lse = lm::Tensor::empty({B}, lm::DType::F64);
    std::vector<double> row_loss(static_cast<size_t>(B));
    emu::launch(2, kLibThreads, 0, [&] {
      lm::cuda_emulated::loss_kernels::cross_entropy_rows_kernel<double, double>(
          x.data<double>(), t.data<int64_t>(), B, C, lse.data<double>(), row_loss.data());
    });
    CHECK(std::isnan(row_loss[1]));
    CHECK(std::isnan(row_loss[2]));
    for (int64_t b : {0, 3}) {
      const double want = lse.data<double>()[b] - x.data<double>()[b * C + tv[static_cast<size_t>(b)]];
      CHECK(row_loss[static_cast<size_t>(b)] == doctest::Approx(want).epsilon(1e-15));
    }
  }
}

namespace {

template <class T>
void check_reduce(lm::ReduceOp op, int64_t outer, int64_t red, int64_t inner, double tol) {
  using lm::Tensor;
  const lm::DType dt = sizeof(T) == 4 ? lm::DType::F32 : lm::DType::F64;
  Tensor x = rand_tensor({outer, red, inner}, dt, 21);
  {  // an all -inf row / column, a NaN, a +inf: the kernels' edge paths
    std::vector<double> v = x.to_double_vector();
    const double inf = std::numeric_limits<double>::infinity();
    for (int64_t r = 0; r < red; ++r) v[static_cast<size_t>(r * inner)] = -inf;  // outer 0, inner 0
    if (outer > 1) v[static_cast<size_t>(red * inner + 1)] = std::numeric_limits<double>::quiet_NaN();
    if (outer > 2) v[static_cast<size_t>(2 * red * inner)] = inf;
    x = Tensor::from_vector(v, {outer, red, inner}).to(dt);
  }
  Tensor ref = Tensor::empty({outer, inner}, dt), got = Tensor::empty({outer, inner}, dt);
  lm::cpu::reduce_forward(op, x, outer, red, inner, ref);
  Tensor aref = Tensor::empty({outer, inner}, lm::DType::I64), agot = Tensor::empty({outer, inner}, lm::DType::I64);
  lm::cpu::argmax_forward(x, outer, red, inner, aref);
  namespace rk = lm::cuda_emulated::reduce_kernels;
  if (inner == 1)
    emu::launch(static_cast<unsigned>(std::min<int64_t>(outer, 2)), kLibThreads, 0,
                [&] { rk::reduce_rows_kernel<T>(op, x.data<T>(), outer, red, got.data<T>()); });
  // Columns as cuda/reduce.cu launches them: split into chunks (Sum, Max) when column_split
  // says so, else one thread per output.
  const rk::ColumnSplit split = rk::column_split_for(op, outer, red, inner);
  if (inner > 1 && split.chunks > 1) {
    std::vector<double> partial(static_cast<size_t>(outer * split.chunks * inner));
    emu::launch(2, 64, 0, [&] {
      rk::reduce_column_chunks_kernel<T>(op, x.data<T>(), outer, red, inner, split.rows_per_chunk, split.chunks,
                                         partial.data());
    });
    emu::launch(1, 64, 0,
                [&] { rk::reduce_column_partials_kernel<T>(op, partial.data(), outer, inner, split.chunks, got.data<T>()); });
  } else if (inner > 1) {
    emu::launch(1, 64, 0, [&] { rk::reduce_columns_kernel<T>(op, x.data<T>(), outer, red, inner, got.data<T>()); });
  }
  emu::launch(1, 64, 0, [&] { rk::argmax_kernel<T>(x.data<T>(), outer, red, inner, agot.data<int64_t>()); });
  INFO("reduce op " << static_cast<int>(op) << " outer " << outer << " red " << red << " inner " << inner
                    << " chunks " << split.chunks);
  CHECK(tensor_err(got, ref) < tol);
  CHECK(agot.to_double_vector() == aref.to_double_vector());
}

// Three steps of the CPU optimizer vs the kernel with adam_consts' constants (models/nn/optim.cpp:
// step_size = lr / (1 - b1^t), bc2_sqrt = sqrt(1 - b2^t), decay = 1 - lr wd for AdamW).
template <class T>
void check_adam(bool decoupled, double wd, double tol) {
  using lm::Tensor;
  const lm::DType dt = sizeof(T) == 4 ? lm::DType::F32 : lm::DType::F64;
  const int64_t n = 300;
  const double lr = 0.01, b1 = 0.9, b2 = 0.999, eps = 1e-8;
  Tensor p0 = rand_tensor({n}, dt, 31);
  std::vector<Tensor> grads = {rand_tensor({n}, dt, 32), rand_tensor({n}, dt, 33), rand_tensor({n}, dt, 34)};
  Tensor ref = p0.clone();
  {
    std::unique_ptr<lm::optim::Adam> opt;
    if (decoupled) opt = std::make_unique<lm::optim::AdamW>(std::vector<Tensor>{ref}, lr, std::make_pair(b1, b2), eps, wd);
    else opt = std::make_unique<lm::optim::Adam>(std::vector<Tensor>{ref}, lr, std::make_pair(b1, b2), eps, wd);
    for (const Tensor& g : grads) {
      ref.set_grad(g.clone());
      opt->step();
    }
  }
  Tensor p = p0.clone(), m = Tensor::zeros({n}, dt), v = Tensor::zeros({n}, dt);
  const int mode = decoupled ? 1 : (wd != 0.0 ? 2 : 0);
  for (int t = 1; t <= 3; ++t) {
    const double step_size = lr / (1.0 - std::pow(b1, t)), bc2_sqrt = std::sqrt(1.0 - std::pow(b2, t));
    const double decay = decoupled ? 1.0 - lr * wd : 1.0;
    const Tensor& g = grads[static_cast<size_t>(t - 1)];
    emu::launch(2, 64, 0, [&] {
      lm::cuda_emulated::optim_kernels::adam_kernel<T>(n, p.data<T>(), g.data<T>(), m.data<T>(), v.data<T>(), step_size,
                                              bc2_sqrt, b1, b2, eps, wd, decay, mode);
    });
  }
  INFO((decoupled ? "AdamW" : "Adam") << " wd " << wd);
  CHECK(tensor_err(p, ref) < tol);
}

}  // namespace

TEST_CASE("cuda emulated: reductions, argmax and the Adam update equal the CPU") {
  using lm::ReduceOp;
  for (lm::ReduceOp op : {lm::ReduceOp::Sum, lm::ReduceOp::Max, lm::ReduceOp::LogSumExp}) {
    check_reduce<double>(op, 4, 300, 1, 1e-12);  // rows: n > block (strided), edge rows
    check_reduce<double>(op, 3, 7, 40, 1e-12);   // columns: 120 > 64 threads (grid-stride)
    check_reduce<float>(op, 4, 300, 1, 1e-5);
    check_reduce<float>(op, 3, 7, 40, 1e-5);
    // Long columns, few outputs: the split path for Sum and Max (11 chunks of 64 rows, the last
    // one short; 32 chunks of 63), grid-stride over (outer, chunk, inner).
    check_reduce<double>(op, 3, 700, 3, 1e-12);
    check_reduce<float>(op, 3, 700, 3, 1e-5);
    check_reduce<double>(op, 1, 2000, 50, 1e-12);
  }
  {  // the split rule: few outputs and a long axis split, many outputs or a short axis not
    namespace rk = lm::cuda_emulated::reduce_kernels;
    const rk::ColumnSplit a = rk::column_split(3, 700, 3), b = rk::column_split(1, 2000, 50);
    CHECK(a.chunks == 11);
    CHECK(a.rows_per_chunk == 64);
    CHECK(b.chunks == 32);  // 2000 rows in runs of about 64 (the thread target would allow more)
    CHECK(b.rows_per_chunk == 63);
    CHECK(rk::column_split(1, 100000, 512).chunks == 256);
    CHECK(rk::column_split(1, 100000, 512).rows_per_chunk == 391);
    CHECK(rk::column_split(1, 127, 512).chunks == 1);      // short axis
    CHECK(rk::column_split(200, 5000, 512).chunks == 1);   // 102400 outputs fill the device already
  }
  for (auto [decoupled, wd] : std::vector<std::pair<bool, double>>{{false, 0.0}, {false, 0.1}, {true, 0.01}}) {
    check_adam<double>(decoupled, wd, 1e-12);
    check_adam<float>(decoupled, wd, 1e-6);
  }
}

namespace {

namespace ew = lm::cuda_emulated::elementwise_kernels;

// Every unary op, forward and backward, through map_kernel with and without 16-byte vectors
// (n = 1027: a scalar tail after the vectors), 2 blocks of 64 threads (grid-stride).
template <class T>
void check_unary(double tol) {
  using lm::Tensor;
  using lm::UnaryOp;
  const lm::DType dt = sizeof(T) == 4 ? lm::DType::F32 : lm::DType::F64;
  const int64_t n = 1027;
  const std::vector<std::pair<lm::UnaryOp, lm::UnaryParams>> ops = {
      {lm::UnaryOp::Neg, {}},          {lm::UnaryOp::Exp, {}},           {lm::UnaryOp::Log, {}},
      {lm::UnaryOp::Sqrt, {}},         {lm::UnaryOp::Pow, {2.0, 0}},     {lm::UnaryOp::Pow, {1.5, 0}},
      {lm::UnaryOp::Abs, {}},          {lm::UnaryOp::Clamp, {0.5, 2.5}}, {lm::UnaryOp::Relu, {}},
      {lm::UnaryOp::Relu6, {}},        {lm::UnaryOp::Sigmoid, {}},      {lm::UnaryOp::Tanh, {}},          {lm::UnaryOp::Gelu, {}},
      {lm::UnaryOp::AddScalar, {0.25, 0}}, {lm::UnaryOp::MulScalar, {-3.0, 0}}, {lm::UnaryOp::RSubScalar, {2.0, 0}}};
  lm::Generator gen(41);
  const Tensor x = Tensor::uniform({n}, 0.1, 3.0, gen, dt);  // positive: log, sqrt, pow defined
  const Tensor gy = rand_tensor({n}, dt, 42);
  for (const auto& [op, prm] : ops) {
    Tensor y_ref = Tensor::empty({n}, dt), gx_ref = Tensor::empty({n}, dt);
    lm::cpu::unary_forward(op, prm, x, y_ref);
    lm::cpu::unary_backward(op, prm, x, y_ref, gy, gx_ref);
    for (bool vec : {true, false}) {
      Tensor y = Tensor::empty({n}, dt), gx = Tensor::empty({n}, dt);
      const ew::UnaryF f{op, prm.p0, prm.p1};
      const ew::UnaryGradF fg{op, prm.p0, prm.p1};
      emu::launch(2, 64, 0, [&] {
        ew::map_kernel<T, 1>(n, vec, x.data<T>(), static_cast<const T*>(nullptr), static_cast<const T*>(nullptr),
                             y.data<T>(), f);
      });
      emu::launch(2, 64, 0, [&] {
        ew::map_kernel<T, 3>(n, vec, x.data<T>(), y.data<T>(), gy.data<T>(), gx.data<T>(), fg);
      });
      INFO("unary op " << static_cast<int>(op) << " p0 " << prm.p0 << (vec ? " vec" : " scalar"));
      CHECK(tensor_err(y, y_ref) < tol);
      CHECK(tensor_err(gx, gx_ref) < tol);
    }
  }
}

// Binary ops: packed through the map, broadcast / strided through make_index2 and the index
// kernel (a (3, 1, 5) by a transposed (4, 5)^T view, b (1, 4, 5) -> (3, 4, 5)).
template <class T>
void check_binary(double tol) {
  using lm::Tensor;
  using lm::BinaryOp;
  const lm::DType dt = sizeof(T) == 4 ? lm::DType::F32 : lm::DType::F64;
  for (lm::BinaryOp op : {lm::BinaryOp::Add, lm::BinaryOp::Sub, lm::BinaryOp::Mul, lm::BinaryOp::Div, lm::BinaryOp::Eq}) {
    const Tensor a = rand_tensor({3, 4, 5}, dt, 51);
    Tensor b = lm::add(rand_tensor({3, 4, 5}, dt, 52), 5.0);
    if (op == lm::BinaryOp::Eq) {  // b differs from a at every third element
      b = a.clone();
      for (int64_t i = 0; i < 60; i += 3) b.data<T>()[i] += 1;
    }
    Tensor ref = Tensor::empty({3, 4, 5}, dt), got = Tensor::empty({3, 4, 5}, dt);
    lm::cpu::binary_forward(op, a, b, ref);
    emu::launch(2, 64, 0, [&] {
      ew::map_kernel<T, 2>(60, true, a.data<T>(), b.data<T>(), static_cast<const T*>(nullptr), got.data<T>(),
                           ew::BinaryF{op});
    });
    INFO("binary op " << static_cast<int>(op));
    CHECK(tensor_err(got, ref) < tol);

    const Tensor a3 = rand_tensor({3, 1, 5}, dt, 53);
    Tensor bsrc = lm::add(rand_tensor({5, 4}, dt, 54), 5.0);
    if (op == lm::BinaryOp::Eq)  // equal to a3[1, 0, :] in column 2 of b's (4, 5) view
      for (int64_t j = 0; j < 5; ++j) bsrc.data<T>()[j * 4 + 2] = a3.data<T>()[5 + j];
    const Tensor bt = lm::transpose(bsrc, 0, 1);  // (4, 5), strided
    const Tensor b3 = lm::unsqueeze(bt, 0);                                            // (1, 4, 5)
    Tensor bref = Tensor::empty({3, 4, 5}, dt), bgot = Tensor::empty({3, 4, 5}, dt);
    lm::cpu::binary_forward(op, a3, b3, bref);
    const lm::Shape shape{3, 4, 5};
    auto strides_of = [&](const Tensor& t) {
      lm::Shape st(3, 0);
      for (int64_t i = 0; i < 3; ++i) st[i] = t.shape()[i] == 1 ? 0 : t.strides()[i];
      return st;
    };
    const lm::cuda_emulated::Index2 ix = lm::cuda_emulated::make_index2(shape, strides_of(a3), strides_of(b3), "test");
    emu::launch(1, 32, 0, [&] {
      ew::binary_index_kernel<T>(60, ix, a3.data<T>(), b3.data<T>(), bgot.data<T>(), ew::BinaryF{op});
    });
    CHECK(tensor_err(bgot, bref) < tol);
    if (op == lm::BinaryOp::Eq) {  // both outcomes occur
      CHECK(lm::sum(got).item() == 40);
      CHECK(lm::sum(bgot).item() == 5);
    }
  }
}

}  // namespace

TEST_CASE("cuda emulated: elementwise kernels equal the CPU kernels (unary forward / backward, binary packed / broadcast)") {
  check_unary<double>(1e-12);
  check_unary<float>(1e-5);
  check_binary<double>(1e-15);
  check_binary<float>(1e-6);
}

namespace {

namespace ck = lm::cuda_emulated::copy_kernels;

int code_of(lm::DType t) {
  switch (t) {
    case lm::DType::F32: return ck::kF32;
    case lm::DType::F64: return ck::kF64;
    case lm::DType::F16: return ck::kF16;
    default: return ck::kBF16;
  }
}

// Sources of every dtype: all 65536 bit patterns for float16 / bfloat16; for float32 / float64
// zeros, infinities, NaN, half / bfloat16 rounding ties, overflow, subnormals, and random values.
lm::Tensor conversion_source(lm::DType t) {
  using lm::Tensor;
  if (t == lm::DType::F16 || t == lm::DType::BF16) {
    Tensor x = Tensor::empty({65536}, t);
    auto* p = static_cast<uint16_t*>(x.raw_data());
    for (uint32_t i = 0; i < 65536; ++i) p[i] = static_cast<uint16_t>(i);
    return x;
  }
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> v = {0.0, -0.0, 1.0, -1.0, inf, -inf, std::numeric_limits<double>::quiet_NaN(),
                           65504.0, 65519.99, 65520.0, 1e5, -1e5, 6.103515625e-05, 5.960464477539063e-08,
                           2.9802322387695312e-08, 2.98023223876953125e-08 * 1.5, 1e-9, 1.0 + 1.0 / 2048,
                           1.0 + 3.0 / 2048, 1.0 + 1.0 / 256, 1.0 + 3.0 / 256, 3.0e38, -3.4e38, 1e-40, 1e300};
  std::mt19937 rng(61);
  std::uniform_real_distribution<double> u(-70000.0, 70000.0);
  for (int i = 0; i < 500; ++i) v.push_back(u(rng) * std::pow(10.0, (i % 13) - 8));
  return Tensor::from_vector(v, {static_cast<int64_t>(v.size())}).to(t);
}

}  // namespace

TEST_CASE("cuda emulated: copy kernels (dtype conversion bit for bit, strided copy, fill, add) equal the CPU") {
  using lm::DType;
  using lm::Tensor;
  int pairs = 0;
  for (DType from : {DType::F32, DType::F64, DType::F16, DType::BF16}) {
    const Tensor x = conversion_source(from);
    const int64_t n = x.numel();
    for (DType to : {DType::F32, DType::F64, DType::F16, DType::BF16}) {
      if (to == from) continue;
      const Tensor ref = x.to(to);
      Tensor got = Tensor::empty({n}, to);
      emu::launch(2, 64, 0, [&] { ck::convert_kernel(n, x.raw_data(), code_of(from), got.raw_data(), code_of(to)); });
      const std::string what = std::string("convert ") + lm::dtype_name(from) + " -> " + lm::dtype_name(to);
      INFO(what);
      CHECK(std::memcmp(got.raw_data(), ref.raw_data(), ref.nbytes()) == 0);
      ++pairs;
    }
  }
  CHECK(pairs == 12);

  // Strided copy: a transposed (6, 5) float64 view into a packed tensor, and back into a
  // strided destination.
  const Tensor src = lm::transpose(rand_tensor({5, 6}, DType::F64, 71), 0, 1);  // (6, 5), strides (1, 6)
  const Tensor want = src.contiguous();
  Tensor packed = Tensor::empty({6, 5}, DType::F64);
  const lm::cuda_emulated::Index2 ix =
      lm::cuda_emulated::make_index2(src.shape(), src.strides(), packed.strides(), "test");
  emu::launch(1, 16, 0, [&] {
    ck::strided_copy_kernel<uint64_t>(30, ix, static_cast<const uint64_t*>(src.raw_data()),
                                      static_cast<uint64_t*>(packed.raw_data()));
  });
  CHECK(std::memcmp(packed.raw_data(), want.raw_data(), want.nbytes()) == 0);

  // fill (the bits of 2.5f) and add (z aliasing x).
  Tensor f = Tensor::empty({77}, DType::F32);
  const float val = 2.5f;
  uint32_t bits;
  std::memcpy(&bits, &val, sizeof bits);
  emu::launch(2, 32, 0, [&] { ck::fill_kernel<uint32_t>(77, static_cast<uint32_t*>(f.raw_data()), bits); });
  CHECK(f.to_double_vector() == std::vector<double>(77, 2.5));
  Tensor a = rand_tensor({77}, DType::F32, 72), b = rand_tensor({77}, DType::F32, 73);
  const Tensor sum_ref = lm::add(a, b);
  emu::launch(2, 32, 0, [&] { ck::add_kernel<float>(77, a.data<float>(), a.data<float>(), b.data<float>()); });
  CHECK(std::memcmp(a.raw_data(), sum_ref.raw_data(), sum_ref.nbytes()) == 0);
}

