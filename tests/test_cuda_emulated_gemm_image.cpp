// CUDA GEMM, gather / scatter and image kernels run on the CPU through tests/cuda_emulator.h
// and compared with the CPU:
//   - the GEMM kernels (cuda/gemm_kernels.cuh: the tiled SIMT kernel in float32 / float64 and
//     the tensor-core kernel with TF32 and BF16 inputs through the emulated wmma fragments, all
//     four transposes, edges, padded leading dimensions, vector / scalar loads and direct /
//     staged stores as the launch plan picks them) against a float64 GEMM of the same values
//     (TF32: of the inputs rounded by an independent cvt.rna);
//   - conv2d (im2col, col2im, depthwise forward / backward) and adaptive average pooling
//     (cuda/conv2d_kernels.cuh) against ops/cpu/conv2d.h and pool.h;
//   - index_select's gather (any element size) and its CSR scatter-add backward
//     (cuda/index_kernels.cuh) against the CPU op and its autograd, bit for bit;
//   - the image resize passes (cuda/resize_kernels.cuh: bilinear / bicubic, antialias on / off,
//     up and down, forward and the transposed-table backward) and normalize_channels against
//     the CPU kernels of ops/cpu/resize.h (checked against torch by the op table and test_resize).
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
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunknown-pragmas"  // #pragma unroll
#include "cuda/gemm_kernels.cuh"
#pragma GCC diagnostic pop
#include "cuda/conv2d_kernels.cuh"
#include "cuda/index_kernels.cuh"
#include "cuda/resize_kernels.cuh"

using namespace lm::test::emulated;

namespace {
namespace gk = lm::cuda_emulated::gemm_kernels;

// A buffer whose data starts `offset` elements past a 64-byte boundary.
template <class T>
struct Buffer {
  std::vector<T> storage;
  T* p = nullptr;
  Buffer(size_t n, size_t offset, T fill) : storage(n + offset + 64 / sizeof(T), fill) {
    const auto addr = reinterpret_cast<uintptr_t>(storage.data());
    p = storage.data() + ((64 - addr % 64) % 64) / sizeof(T) + offset;
  }
};

// TF32 rounding written independently of the emulator's bit trick: x = m 2^e with |m| in
// [0.5, 1); keep 11 significant bits, half-way cases away from zero (std::round).
double tf32_round_ref(double x) {
  if (x == 0 || !std::isfinite(x)) return x;
  int e;
  const double m = std::frexp(x, &e);
  return std::ldexp(std::round(std::ldexp(m, 11)), e - 11);
}

struct GemmCase {
  int64_t M, N, K;
  size_t a_offset = 0;  // elements past 64-byte alignment (1: A misaligned, no 16-byte vectors)
  int64_t ldc_pad = 4;  // ldc = N + ldc_pad (odd: the tensor-core kernel stages its stores)
};

// Inputs of element type E made from uniform(-1, 1) floats by make(f), read back as doubles by
// widen(e). run(A, lda, B, ldb, C, ldc) computes C = op(A) op(B); C is compared with a float64
// GEMM of round_in(widen(inputs)) within tol * sum_k |a b| (+1e-300), and every row's columns
// past N must keep their fill value. Returns the largest error over that bound (<= 1 passes).
template <class E, class Out, class Make, class Widen, class Round, class Run>
double check_gemm(const GemmCase& g, bool ta, bool tb, double tol, Make make, Widen widen, Round round_in,
                  uint64_t seed, Run run) {
  const int64_t M = g.M, N = g.N, K = g.K;
  const int64_t lda = (ta ? M : K) + 4, ldb = (tb ? K : N) + 8, ldc = N + g.ldc_pad;
  const int64_t a_rows = ta ? K : M, b_rows = tb ? N : K;
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  Buffer<E> A(static_cast<size_t>(std::max<int64_t>(a_rows * lda, 1)), g.a_offset, make(0.f));
  Buffer<E> B(static_cast<size_t>(std::max<int64_t>(b_rows * ldb, 1)), 0, make(0.f));
  for (auto& v : A.storage) v = make(dist(rng));
  for (auto& v : B.storage) v = make(dist(rng));
  const Out fill = static_cast<Out>(12345);
  Buffer<Out> C(static_cast<size_t>(M * ldc), 0, fill);
  run(A.p, lda, B.p, ldb, C.p, ldc);
  double worst = 0;
  int bad = 0;
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t n = 0; n < N; ++n) {
      double ref = 0, mag = 0;
      for (int64_t k = 0; k < K; ++k) {
        const double a = round_in(widen(ta ? A.p[k * lda + m] : A.p[m * lda + k]));
        const double b = round_in(widen(tb ? B.p[n * ldb + k] : B.p[k * ldb + n]));
        ref += a * b;
        mag += std::abs(a * b);
      }
      const double got = static_cast<double>(C.p[m * ldc + n]);
      const double err = std::abs(got - ref) / (tol * mag + 1e-300);
      worst = std::max(worst, err);
      if (!(err <= 1) && ++bad <= 3)
        FAIL_CHECK("C(" << m << ", " << n << ") = " << got << ", float64 reference " << ref);
    }
    for (int64_t n = N; n < ldc; ++n)
      if (C.p[m * ldc + n] != fill && ++bad <= 3) FAIL_CHECK("C(" << m << ", " << n << ") past N was written");
  }
  CHECK(bad == 0);
  return worst;
}

// The tensor-core kernel with its transposes as template arguments, as launch_gemm_tc picks it.
template <class T>
void run_tc(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb,
            float* C, int64_t ldc, gk::TcPlan* plan_out) {
  const gk::TcPlan p = gk::tc_plan(ta, tb, M, N, K, A, lda, B, ldb, C, ldc);
  *plan_out = p;
  auto go = [&](auto ta_c, auto tb_c) {
    emu::launch(p.blocks, gk::kTcThreads, 0, [&] {
      gk::gemm_tc_kernel<T, decltype(ta_c)::value, decltype(tb_c)::value>(M, N, K, A, lda, B, ldb, C, ldc, p.tiles_n,
                                                                          p.tiles, p.vec_a, p.vec_b, p.direct_c);
    });
  };
  using F = std::false_type;
  using Tr = std::true_type;
  if (!ta && !tb) go(F{}, F{});
  else if (!ta && tb) go(F{}, Tr{});
  else if (ta && !tb) go(Tr{}, F{});
  else go(Tr{}, Tr{});
}

// body(g, ta, tb) for every case and transpose pair, with the case in doctest's failure context.
template <class Body>
void for_each_gemm_case(const std::vector<GemmCase>& cases, Body body) {
  for (const GemmCase& g : cases)
    for (int t = 0; t < 4; ++t) {
      const bool ta = t & 1, tb = t & 2;
      CAPTURE(g.M);
      CAPTURE(g.N);
      CAPTURE(g.K);
      CAPTURE(ta);
      CAPTURE(tb);
      body(g, ta, tb);
    }
}

}  // namespace

TEST_CASE("cuda emulated: GEMM kernels (tiled SIMT f32 / f64, tensor-core TF32 / BF16) equal a float64 GEMM") {
  auto identity = [](double x) { return x; };
  uint64_t seed = 100;

  SUBCASE("tiled SIMT kernel") {
    // Edges on every side of the 64 x 64 x 16 tiles, K = 0 (zeros), a grid smaller than the tiles.
    const std::vector<GemmCase> cases = {{1, 1, 1}, {70, 65, 33}, {64, 64, 16}, {20, 130, 0}, {3, 70, 17}};
    for_each_gemm_case(cases, [&](const GemmCase& g, bool ta, bool tb) {
        const gk::TiledPlan p = gk::tiled_plan(g.M, g.N);
        for (unsigned blocks : {p.blocks, 1u}) {
          auto tiled = [&](const auto* A, int64_t lda, const auto* B, int64_t ldb, auto* C, int64_t ldc) {
            using T = std::remove_cv_t<std::remove_pointer_t<decltype(A)>>;
            emu::launch(blocks, gk::kThreadsX * gk::kThreadsY, 0, [&] {
              gk::gemm_tiled_kernel<T>(ta, tb, g.M, g.N, g.K, A, lda, B, ldb, C, ldc, p.tiles_m, p.tiles_n);
            });
          };
          check_gemm<float, float>(g, ta, tb, 1e-5, [](float f) { return f; }, identity, identity, ++seed, tiled);
          if (blocks == p.blocks)  // (the one-block grid-stride run in float32 only: emulation is slow)
            check_gemm<double, double>(g, ta, tb, 1e-13, [](float f) { return static_cast<double>(f); }, identity,
                                       identity, ++seed, tiled);
        }
      });
  }

  SUBCASE("tensor-core kernel, TF32 and BF16 inputs") {
    // Two tiles each way with K not a multiple of the 32-step; whole tiles stored directly; a
    // tiny problem (no vectors: K = 7); A misaligned by one element (no vectors for A); an odd
    // ldc (staged stores).
    const std::vector<GemmCase> cases = {
        {130, 150, 40}, {128, 128, 64}, {5, 3, 7}, {33, 20, 24, 1}, {40, 36, 16, 0, 3}};
    bool seen_vec_a[2] = {}, seen_direct[2] = {};
    for_each_gemm_case(cases, [&](const GemmCase& g, bool ta, bool tb) {
        gk::TcPlan plan{};
        auto tc = [&](const auto* A, int64_t lda, const auto* B, int64_t ldb, float* C, int64_t ldc) {
          run_tc(ta, tb, g.M, g.N, g.K, A, lda, B, ldb, C, ldc, &plan);
        };
        // TF32: products of inputs rounded to 11 significant bits, float accumulation.
        check_gemm<float, float>(g, ta, tb, 1e-5, [](float f) { return f; }, identity, tf32_round_ref, ++seed, tc);
        seen_vec_a[plan.vec_a] = true;
        seen_direct[plan.direct_c] = true;
        // BF16: inputs are bfloat16 values (the float's top 16 bits), exact products.
        auto make_bf16 = [](float f) {
          uint32_t u;
          std::memcpy(&u, &f, sizeof u);
          return __nv_bfloat16{static_cast<uint16_t>(u >> 16)};
        };
        auto widen_bf16 = [](__nv_bfloat16 v) {
          const uint32_t u = static_cast<uint32_t>(v.bits) << 16;
          float f;
          std::memcpy(&f, &u, sizeof f);
          return static_cast<double>(f);
        };
        check_gemm<__nv_bfloat16, float>(g, ta, tb, 1e-5, make_bf16, widen_bf16, identity, ++seed, tc);
      });
    CHECK((seen_vec_a[0] && seen_vec_a[1]));
    CHECK((seen_direct[0] && seen_direct[1]));
  }

  SUBCASE("the TF32 tolerance tells rounded from unrounded inputs") {
    // Else the TF32 cases above could not catch a kernel that skips the rounding: a float64 GEMM
    // of unrounded inputs must miss the rounded reference by more than 1e-5 sum |a b| somewhere.
    std::mt19937_64 rng(7);
    std::uniform_real_distribution<float> dist(-1.f, 1.f);
    const int K = 40;
    double worst = 0;
    for (int entry = 0; entry < 64; ++entry) {
      double rounded = 0, plain = 0, mag = 0;
      for (int k = 0; k < K; ++k) {
        const float a = dist(rng), b = dist(rng);
        rounded += tf32_round_ref(a) * tf32_round_ref(b);
        plain += static_cast<double>(a) * b;
        mag += std::abs(tf32_round_ref(a) * tf32_round_ref(b));
      }
      worst = std::max(worst, std::abs(plain - rounded) / (1e-5 * mag));
    }
    CHECK(worst > 2);
  }
}

TEST_CASE("cuda emulated: index_select gather and CSR scatter-add kernels equal the CPU op bit for bit") {
  namespace ik = lm::cuda_emulated::index_kernels;
  using lm::DType;
  using lm::Tensor;
  // (outer, n, inner) views of a (2, 7, 3, 5) tensor along dims 0..3, indices with repeats,
  // an unused row, and (dim 3) K = 0.
  const lm::Shape shape{2, 7, 3, 5};
  const std::vector<std::vector<int64_t>> indices = {{1, 0, 1}, {6, 0, 6, 6, 2, 0}, {2}, {}};
  int checked = 0;
  for (DType dt : {DType::F64, DType::F32, DType::BF16}) {
    const Tensor x = rand_tensor(shape, DType::F64, 91).to(dt);
    for (int64_t d = 0; d < 4; ++d) {
      const std::vector<int64_t>& idx = indices[(size_t)d];
      int64_t outer = 1, inner = 1;
      for (int64_t a = 0; a < d; ++a) outer *= shape[(size_t)a];
      for (int64_t a = d + 1; a < 4; ++a) inner *= shape[(size_t)a];
      const int64_t n = shape[(size_t)d], K = (int64_t)idx.size();
      INFO("dtype " << std::string(lm::dtype_name(dt)) << ", dim " << d);
      // Forward against the CPU op.
      Tensor xg = x.detach();
      const bool grad = dt != DType::BF16;
      if (grad) xg.set_requires_grad(true);
      const Tensor want = lm::index_select(xg, d, Tensor::from_vector(idx, {K}));
      Tensor got = Tensor::empty(want.shape(), dt);
      const int64_t total = outer * K * inner;
      if (dt == DType::BF16)
        emu::launch(2, 64, 0, [&] {
          ik::gather_rows_kernel<uint16_t>(outer, n, K, inner, idx.data(), static_cast<const uint16_t*>(x.raw_data()),
                                           static_cast<uint16_t*>(got.raw_data()));
        });
      else if (dt == DType::F32)
        emu::launch(2, 64, 0, [&] {
          ik::gather_rows_kernel<uint32_t>(outer, n, K, inner, idx.data(), static_cast<const uint32_t*>(x.raw_data()),
                                           static_cast<uint32_t*>(got.raw_data()));
        });
      else
        emu::launch(2, 64, 0, [&] {
          ik::gather_rows_kernel<uint64_t>(outer, n, K, inner, idx.data(), static_cast<const uint64_t*>(x.raw_data()),
                                           static_cast<uint64_t*>(got.raw_data()));
        });
      CHECK(total == want.numel());
      CHECK(std::memcmp(got.raw_data(), want.raw_data(), want.nbytes()) == 0);
      ++checked;
      if (!grad) continue;
      // Backward against the CPU autograd (rows added in ascending k from zero in both).
      const Tensor g = rand_tensor(want.shape(), dt, 92 + (unsigned)d);
      lm::backward(want, g);
      const lm::IndexCsr csr = lm::invert_index(idx, n);  // what the op uploads (ops/index_csr.h)
      const std::vector<int64_t>& offsets = csr.offsets;
      const std::vector<int64_t>& ks = csr.ks;
      Tensor gx = Tensor::full(shape, 7.0, dt);  // every element must be overwritten
      if (dt == DType::F32)
        emu::launch(3, 32, 0, [&] {
          ik::scatter_add_rows_kernel<float>(outer, n, K, inner, offsets.data(), ks.data(), g.data<float>(),
                                             gx.data<float>());
        });
      else
        emu::launch(3, 32, 0, [&] {
          ik::scatter_add_rows_kernel<double>(outer, n, K, inner, offsets.data(), ks.data(), g.data<double>(),
                                              gx.data<double>());
        });
      const Tensor gw = xg.grad();
      REQUIRE(gw.defined());
      CHECK(std::memcmp(gx.raw_data(), gw.raw_data(), gw.nbytes()) == 0);
      ++checked;
    }
  }
  CHECK(checked == 4 * 3 + 4 * 2);
}

namespace {

namespace cv = lm::cuda_emulated::conv2d_kernels;

// A conv geometry for both sides: the CPU kernels' struct and the device kernels' plain copy.
lm::Conv2dGeometry conv_geom(int64_t N, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t sh,
                                  int64_t sw, int64_t pt, int64_t pb, int64_t pl, int64_t pr, int64_t groups) {
  lm::Conv2dGeometry g;
  g.N = N, g.C_in = C, g.H = H, g.W = W, g.C_out = C, g.KH = KH, g.KW = KW;
  g.OH = (H + pt + pb - KH) / sh + 1, g.OW = (W + pl + pr - KW) / sw + 1;
  g.stride_h = sh, g.stride_w = sw, g.pad_top = pt, g.pad_left = pl, g.groups = groups;
  return g;
}
cv::ConvGeom dev_geom(const lm::Conv2dGeometry& g) {
  return {g.N, g.C_in, g.H, g.W, g.C_out, g.KH, g.KW, g.OH, g.OW, g.stride_h, g.stride_w, g.pad_top, g.pad_left,
          g.groups};
}

// im2col / col2im of one image, and (groups == C) the depthwise forward / grad_x / grad_weight,
// against the CPU kernels; 2 blocks of 64 threads (grid-stride loops run several rounds).
template <class T>
void check_conv_kernels(const lm::Conv2dGeometry& g, double tol) {
  INFO("C " << g.C_in << ", " << g.H << "x" << g.W << ", kernel " << g.KH << "x" << g.KW << ", stride " << g.stride_h
            << "," << g.stride_w << ", pad top/left " << g.pad_top << "," << g.pad_left << " -> " << g.OH << "x" << g.OW);
  const cv::ConvGeom dg = dev_geom(g);
  const int64_t CHW = g.C_in * g.H * g.W, rows = g.C_in * g.KH * g.KW, P = g.OH * g.OW;
  const auto x = random_vec<T>((size_t)(g.N * CHW), 61);
  const auto col_in = random_vec<T>((size_t)(rows * P), 62);
  std::vector<T> col((size_t)(rows * P), (T)7), rcol = col, im((size_t)CHW, (T)7), rim = im;
  lm::cpu::im2col<T>(x.data(), g.C_in, g, rcol.data());
  emu::launch(2, 64, 0, [&] { cv::im2col_kernel<T>(x.data(), g.C_in, dg, col.data()); });
  CHECK(col == rcol);  // a copy: bit for bit
  lm::cpu::col2im<T>(col_in.data(), g.C_in, g, rim.data());
  emu::launch(2, 64, 0, [&] { cv::col2im_kernel<T>(col_in.data(), g.C_in, dg, im.data()); });
  CHECK(max_err(im, rim) <= tol);
  if (!g.depthwise()) return;
  const auto w = random_vec<T>((size_t)(g.C_in * g.KH * g.KW), 63), b = random_vec<T>((size_t)g.C_in, 64);
  const auto gout = random_vec<T>((size_t)(g.N * g.C_in * P), 65);
  std::vector<T> out((size_t)(g.N * g.C_in * P), (T)7), rout = out;
  lm::cpu::depthwise_forward<T>(x.data(), w.data(), b.data(), g, rout.data());
  emu::launch(2, 64, 0, [&] { cv::depthwise_forward_kernel<T>(x.data(), w.data(), b.data(), dg, out.data()); });
  CHECK(max_err(out, rout) <= tol);
  std::vector<T> gx(x.size(), (T)7), rgx = gx, gw(w.size(), (T)7), rgw = gw;
  lm::cpu::depthwise_backward<T>(gout.data(), x.data(), w.data(), g, rgx.data(), rgw.data());
  emu::launch(2, 64, 0, [&] { cv::depthwise_backward_x_kernel<T>(gout.data(), w.data(), dg, gx.data()); });
  emu::launch(3, 64, 0, [&] { cv::depthwise_backward_w_kernel<T>(gout.data(), x.data(), dg, gw.data()); });
  CHECK(max_err(gx, rgx) <= tol);
  CHECK(max_err(gw, rgw) <= tol);
}

template <class T>
void check_pool_kernels(int64_t rows, int64_t H, int64_t W, int64_t OH, int64_t OW, double tol) {
  INFO(H << "x" << W << " -> " << OH << "x" << OW);
  const lm::DType dt = sizeof(T) == 4 ? lm::DType::F32 : lm::DType::F64;
  const lm::Tensor x = rand_tensor({rows, H, W}, dt, 71), g = rand_tensor({rows, OH, OW}, dt, 72);
  lm::Tensor rout = lm::Tensor::empty({rows, OH, OW}, dt), rgx = lm::Tensor::empty({rows, H, W}, dt);
  lm::cpu::adaptive_avg_pool2d_forward(x, rows, H, W, OH, OW, rout);
  lm::cpu::adaptive_avg_pool2d_backward(g, rows, H, W, OH, OW, rgx);
  lm::Tensor out = lm::Tensor::full({rows, OH, OW}, 7.0, dt), gx = lm::Tensor::full({rows, H, W}, 7.0, dt);
  emu::launch(2, 64, 0, [&] {
    cv::adaptive_avg_pool2d_forward_kernel<T>(x.data<T>(), rows, H, W, OH, OW, out.data<T>());
  });
  emu::launch(2, 64, 0, [&] {
    cv::adaptive_avg_pool2d_backward_kernel<T>(g.data<T>(), rows, H, W, OH, OW, gx.data<T>());
  });
  CHECK(tensor_err(out, rout) <= tol);
  CHECK(tensor_err(gx, rgx) <= tol);
}

}  // namespace

// ---- image resize and normalize_channels -------------------------------------------------------

namespace {

template <class T>
lm::ResizeAxis axis_of(const lm::cpu::ResizeTable<T>& t) {
  lm::ResizeAxis a;
  a.src_size = t.src_size;
  a.dst_size = t.dst_size;
  a.offsets = lm::Tensor::from_vector(t.offsets, {static_cast<int64_t>(t.offsets.size())});
  a.src = lm::Tensor::from_vector(t.src, {static_cast<int64_t>(t.src.size())});
  a.weight = lm::Tensor::from_vector(t.weight, {static_cast<int64_t>(t.weight.size())});
  return a;
}

// The forward (rows, then columns) and the backward (transposed columns, then transposed rows)
// of a (planes, H, W) -> (planes, oh, ow) resize, as ops/resize.cpp runs them: CPU kernels vs
// the emulated CUDA kernels on 2 blocks of 64 threads (grid-stride over the rest).
template <class T>
void check_resize(int64_t planes, int64_t H, int64_t W, int64_t oh, int64_t ow, bool cubic, bool aa, double tol) {
  using lm::Tensor;
  const lm::DType dt = sizeof(T) == 4 ? lm::DType::F32 : lm::DType::F64;
  const auto th = lm::cpu::make_resize_table<T>(H, oh, cubic, aa), tw = lm::cpu::make_resize_table<T>(W, ow, cubic, aa);
  const lm::ResizeAxis rows = axis_of(th), cols = axis_of(tw);
  const lm::ResizeAxis rows_t = axis_of(lm::cpu::transpose_resize_table(th));
  const lm::ResizeAxis cols_t = axis_of(lm::cpu::transpose_resize_table(tw));
  Tensor x = rand_tensor({planes, H, W}, dt, 41), g = rand_tensor({planes, oh, ow}, dt, 42);
  Tensor tmp_ref = Tensor::empty({planes, H, ow}, dt), y_ref = Tensor::empty({planes, oh, ow}, dt);
  lm::cpu::resize_horizontal_pass(x, planes * H, cols, tmp_ref);
  lm::cpu::resize_vertical_pass(tmp_ref, planes, ow, rows, y_ref);
  Tensor gtmp_ref = Tensor::empty({planes, H, ow}, dt), gx_ref = Tensor::empty({planes, H, W}, dt);
  lm::cpu::resize_vertical_pass(g, planes, ow, rows_t, gtmp_ref);
  lm::cpu::resize_horizontal_pass(gtmp_ref, planes * H, cols_t, gx_ref);

  namespace rk = lm::cuda_emulated::resize_kernels;
  auto horizontal = [&](const Tensor& in, int64_t nrows, const lm::ResizeAxis& a, Tensor& out) {
    emu::launch(2, 64, 0, [&] {
      rk::resize_horizontal_kernel<T>(in.data<T>(), nrows, a.src_size, a.dst_size, a.offsets.data<int64_t>(),
                                      a.src.data<int64_t>(), a.weight.data<T>(), out.data<T>());
    });
  };
  auto vertical = [&](const Tensor& in, int64_t width, const lm::ResizeAxis& a, Tensor& out) {
    emu::launch(2, 64, 0, [&] {
      rk::resize_vertical_kernel<T>(in.data<T>(), planes, a.src_size, a.dst_size, width, a.offsets.data<int64_t>(),
                                    a.src.data<int64_t>(), a.weight.data<T>(), out.data<T>());
    });
  };
  Tensor tmp = Tensor::empty({planes, H, ow}, dt), y = Tensor::empty({planes, oh, ow}, dt);
  horizontal(x, planes * H, cols, tmp);
  vertical(tmp, ow, rows, y);
  Tensor gtmp = Tensor::empty({planes, H, ow}, dt), gx = Tensor::empty({planes, H, W}, dt);
  vertical(g, ow, rows_t, gtmp);
  horizontal(gtmp, planes * H, cols_t, gx);
  INFO("resize " << planes << "x" << H << "x" << W << " -> " << oh << "x" << ow << (cubic ? " bicubic" : " bilinear")
                 << (aa ? " aa" : "") << " " << lm::dtype_name(dt));
  CHECK(tensor_err(y, y_ref) < tol);
  CHECK(tensor_err(gx, gx_ref) < tol);
  // The forward is a resampling: a constant image stays constant (every table row sums to 1).
  Tensor ones = Tensor::ones({planes, H, W}, dt), ones_tmp = Tensor::empty({planes, H, ow}, dt);
  Tensor ones_y = Tensor::empty({planes, oh, ow}, dt);
  horizontal(ones, planes * H, cols, ones_tmp);
  vertical(ones_tmp, ow, rows, ones_y);
  CHECK(tensor_err(ones_y, Tensor::ones({planes, oh, ow}, dt)) < 10 * tol);
}

template <class T>
void check_normalize_channels(int64_t N, int64_t C, int64_t hw, double tol) {
  using lm::Tensor;
  const lm::DType dt = sizeof(T) == 4 ? lm::DType::F32 : lm::DType::F64;
  Tensor x = rand_tensor({N * C, hw}, dt, 43), g = rand_tensor({N * C, hw}, dt, 44);
  std::vector<double> mv, sv;
  for (int64_t c = 0; c < C; ++c) {
    mv.push_back(0.1 * static_cast<double>(c) - 0.2);
    sv.push_back(0.5 + 0.25 * static_cast<double>(c));
  }
  Tensor mean = Tensor::from_vector(mv, {C}).to(dt), sd = Tensor::from_vector(sv, {C}).to(dt);
  Tensor y_ref = Tensor::empty({N * C, hw}, dt), gx_ref = Tensor::empty({N * C, hw}, dt);
  lm::cpu::normalize_channels_forward(x, N * C, C, hw, mean, sd, y_ref);
  lm::cpu::normalize_channels_backward(g, N * C, C, hw, sd, gx_ref);
  Tensor y = Tensor::empty({N * C, hw}, dt), gx = Tensor::empty({N * C, hw}, dt);
  namespace rk = lm::cuda_emulated::resize_kernels;
  emu::launch(2, 64, 0, [&] {
    rk::normalize_channels_kernel<T>(x.data<T>(), N * C, C, hw, mean.data<T>(), sd.data<T>(), y.data<T>());
  });
  emu::launch(2, 64, 0, [&] {
    rk::normalize_channels_backward_kernel<T>(g.data<T>(), N * C, C, hw, sd.data<T>(), gx.data<T>());
  });
  INFO("normalize_channels N " << N << " C " << C << " hw " << hw);
  CHECK(tensor_err(y, y_ref) < tol);
  CHECK(tensor_err(gx, gx_ref) < tol);
}

}  // namespace

TEST_CASE("cuda emulated: conv2d kernels (im2col, col2im, depthwise forward / backward) and adaptive pooling equal the CPU") {
  using lm::Conv2dGeometry;
  const std::vector<lm::Conv2dGeometry> geoms = {
      conv_geom(1, 3, 7, 5, 3, 3, 2, 2, 0, 1, 0, 1, 1),  // stride 2, TF "same" (0, 1, 0, 1)
      conv_geom(1, 2, 6, 9, 2, 3, 1, 2, 1, 0, 0, 2, 1),  // 2x3 kernel, strides (1, 2), asymmetric padding
      conv_geom(2, 3, 7, 5, 3, 3, 2, 2, 0, 1, 0, 1, 3),  // depthwise 3x3 stride 2
      conv_geom(2, 3, 9, 8, 5, 5, 2, 2, 1, 2, 1, 2, 3),  // depthwise 5x5 stride 2, TF "same"
      conv_geom(1, 2, 5, 7, 5, 5, 1, 1, 2, 2, 2, 2, 2),  // depthwise 5x5 stride 1
  };
  for (const lm::Conv2dGeometry& g : geoms) {
    check_conv_kernels<double>(g, 1e-12);
    check_conv_kernels<float>(g, 1e-5);
  }
  for (auto [H, W, OH, OW] : std::vector<std::array<int64_t, 4>>{{7, 5, 3, 2}, {5, 6, 2, 4}, {3, 4, 5, 6}, {7, 5, 1, 1}}) {
    check_pool_kernels<double>(3, H, W, OH, OW, 1e-12);
    check_pool_kernels<float>(3, H, W, OH, OW, 1e-6);
  }
}

TEST_CASE("cuda emulated: image resize passes (bilinear / bicubic, antialias on / off, up / down) and normalize_channels equal the CPU kernels") {
  for (bool cubic : {false, true})
    for (bool aa : {false, true}) {
      check_resize<double>(3, 13, 11, 7, 6, cubic, aa, 1e-12);   // down
      check_resize<double>(2, 5, 4, 9, 7, cubic, aa, 1e-12);     // up
      check_resize<double>(1, 6, 17, 11, 5, cubic, aa, 1e-12);   // up one axis, down the other
      check_resize<double>(1, 40, 3, 7, 1, cubic, aa, 1e-12);    // strong downscale, a size-1 output axis
      check_resize<float>(3, 32, 32, 28, 28, cubic, aa, 1e-6);   // the 256 -> 224 ratio
      check_resize<float>(2, 5, 4, 9, 7, cubic, aa, 1e-6);
    }
  check_normalize_channels<double>(2, 3, 37, 1e-12);
  check_normalize_channels<float>(3, 3, 50, 1e-6);
  check_normalize_channels<double>(1, 1, 5, 1e-12);
}
