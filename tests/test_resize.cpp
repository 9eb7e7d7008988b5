// Image preprocessing ops (ops/resize.h) at the sizes the patch encoders use, against torch:
// 256x256 -> 224x224 bilinear antialiased and 512x512 -> 448x448 bicubic antialiased on a
// real-looking image (smooth pattern plus noise, values in [0, 1]), forward and backward, with
// the torch outputs made at test time by tools/resize_reference.py (/usr/bin/python3 and
// Debian's python3-torch; skipped with a message without them, a failure under CI). Also:
// images_to_tensor on a hand-computed 2x2 example, identities and constants that any resize
// must keep, normalize_channels by hand, and the ops' one-line errors. The op table
// (test_op_table) covers every mode on small shapes (gradcheck, torch f32 / f64, CUDA).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ops/ops.h"
#include "tests/test_util.h"

namespace {

using namespace lm;
namespace fs = std::filesystem;

// Whether the reference interpreter imports torch; else skip (or, under CI, fail).
bool have_torch() {
  const std::string cmd = test::python() + " -c 'import torch' > /dev/null 2>&1";
  return std::system(cmd.c_str()) == 0 ||
         test::skip_unless_ci("test_resize: " + test::python() + " cannot import torch (Debian's python3-torch)");
}

// A (1, 3, n, n) image in [0, 1]: per-channel smooth waves, a soft edge, and uniform noise.
Tensor test_image(int64_t n, DType dt, uint64_t seed) {
  Generator g(seed);
  std::vector<double> v(static_cast<size_t>(3 * n * n));
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t y = 0; y < n; ++y)
      for (int64_t x = 0; x < n; ++x) {
        const double u = static_cast<double>(x) / static_cast<double>(n), w = static_cast<double>(y) / static_cast<double>(n);
        double p = 0.5 + 0.25 * std::sin(6.2831853 * (3.0 + c) * u + 0.7 * c) * std::cos(6.2831853 * 2.0 * w);
        p += (u + w > 1.1 ? 0.15 : -0.15);          // a diagonal edge
        p += 0.1 * (2.0 * g.next_uniform() - 1.0);  // noise
        v[static_cast<size_t>((c * n + y) * n + x)] = std::min(1.0, std::max(0.0, p));
      }
  return Tensor::from_vector(v, {1, 3, n, n}).to(dt);
}

void write_bin(const fs::path& p, const Tensor& t) {
  Tensor c = t.detach().contiguous();
  std::ofstream f(p, std::ios::binary);
  f.write(static_cast<const char*>(c.raw_data()), static_cast<std::streamsize>(c.nbytes()));
  REQUIRE(f.good());
}

std::vector<double> read_bin(const fs::path& p, DType dt) {
  const std::string raw = test::read_text(p);
  std::vector<double> v;
  if (dt == DType::F32) {
    std::vector<float> f(raw.size() / 4);
    std::memcpy(f.data(), raw.data(), f.size() * 4);
    v.assign(f.begin(), f.end());
  } else {
    v.resize(raw.size() / 8);
    std::memcpy(v.data(), raw.data(), v.size() * 8);
  }
  return v;
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double e = 0;
  for (size_t i = 0; i < a.size(); ++i) e = std::max(e, std::abs(a[i] - b[i]));
  return e;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

struct RealCase {
  std::string key;
  int64_t n, out;
  ResizeMode mode;
  DType dt;
  double fwd_tol, bwd_tol;
};

}  // namespace

TEST_CASE("resize_image at the encoders' sizes equals torch's F.interpolate(antialias=True), forward and backward") {
  if (!have_torch()) return;
  const std::vector<RealCase> cases = {
      {"bilinear_256_224_f32", 256, 224, ResizeMode::bilinear, DType::F32, 1e-5, 1e-5},
      {"bicubic_512_448_f32", 512, 448, ResizeMode::bicubic, DType::F32, 1e-5, 1e-5},
      {"bilinear_256_224_f64", 256, 224, ResizeMode::bilinear, DType::F64, 1e-12, 1e-12},
      {"bicubic_512_448_f64", 512, 448, ResizeMode::bicubic, DType::F64, 1e-12, 1e-12},
  };
  const fs::path dir = test::scratch_dir("resize_reference");
  nlohmann::json index = {{"cases", nlohmann::json::array()}};
  std::vector<Tensor> outs, grads;
  for (size_t k = 0; k < cases.size(); ++k) {
    const RealCase& c = cases[k];
    Tensor x = test_image(c.n, c.dt, 100 + k);
    x.set_requires_grad(true);
    Tensor y = resize_image(x, c.out, c.out, c.mode, true);
    REQUIRE(y.shape() == Shape{1, 3, c.out, c.out});
    Generator g(200 + k);
    Tensor r = Tensor::uniform(y.shape(), -1.0, 1.0, g, c.dt);
    backward(y, r);
    REQUIRE(x.grad().defined());
    write_bin(dir / (c.key + ".x.bin"), x);
    write_bin(dir / (c.key + ".R.bin"), r);
    index["cases"].push_back({{"key", c.key},
                              {"dtype", dtype_name(c.dt)},
                              {"shape", x.shape()},
                              {"size", {c.out, c.out}},
                              {"mode", c.mode == ResizeMode::bilinear ? "bilinear" : "bicubic"},
                              {"antialias", true}});
    outs.push_back(y.detach());
    grads.push_back(x.grad());
  }
  {
    std::ofstream f(dir / "cases.json");
    f << index.dump(1);
  }
  test::run_python_tool("resize_reference.py", dir.string());
  for (size_t k = 0; k < cases.size(); ++k) {
    const RealCase& c = cases[k];
    const double fwd = max_abs_diff(outs[k].to_double_vector(), read_bin(dir / (c.key + ".out.bin"), c.dt));
    const double bwd = max_abs_diff(grads[k].to_double_vector(), read_bin(dir / (c.key + ".gx.bin"), c.dt));
    MESSAGE(c.key << ": max |out - torch| = " << fwd << ", max |grad - torch| = " << bwd);
    CHECK(fwd < c.fwd_tol);
    CHECK(bwd < c.bwd_tol);
  }
}

TEST_CASE("resize_image keeps identities and constants; normalize_channels by hand") {
  Generator g(7);
  Tensor x = Tensor::uniform({2, 3, 9, 7}, 0.0, 1.0, g, DType::F32);
  // Same size without antialias: bilinear and bicubic (a = -0.75 at t = 0: weights 0, 1, 0, 0)
  // are the identity, bit for bit.
  for (ResizeMode m : {ResizeMode::bilinear, ResizeMode::bicubic})
    CHECK(resize_image(x, 9, 7, m, false).to_double_vector() == x.to_double_vector());
  // Every table row sums to one: a constant image stays constant in every mode, up and down.
  Tensor c = Tensor::full({1, 2, 13, 11}, 0.625, DType::F64);
  for (ResizeMode m : {ResizeMode::bilinear, ResizeMode::bicubic})
    for (bool aa : {false, true})
      for (auto [oh, ow] : std::vector<std::pair<int64_t, int64_t>>{{7, 6}, {20, 3}, {1, 1}, {29, 31}}) {
        std::vector<double> v = resize_image(c, oh, ow, m, aa).to_double_vector();
        REQUIRE(v.size() == static_cast<size_t>(2 * oh * ow));
        double e = 0;
        for (double a : v) e = std::max(e, std::abs(a - 0.625));
        INFO("mode " << static_cast<int>(m) << " aa " << aa << " -> " << oh << "x" << ow);
        CHECK(e < 1e-14);
      }
  // normalize_channels: (x - mean[c]) / std[c], gradient 1 / std[c].
  Tensor n = Tensor::from_vector(std::vector<double>{0.0, 0.5, 1.0, 0.25, 0.75, 0.125}, {1, 2, 1, 3});
  n.set_requires_grad(true);
  Tensor y = normalize_channels(n, {0.5, 0.25}, {0.25, 2.0});
  CHECK(y.to_double_vector() == std::vector<double>{-2.0, 0.0, 2.0, 0.0, 0.25, -0.0625});
  backward(y, Tensor::ones({1, 2, 1, 3}, DType::F64));
  CHECK(n.grad().to_double_vector() == std::vector<double>{4.0, 4.0, 4.0, 0.5, 0.5, 0.5});
}

TEST_CASE("images_to_tensor packs interleaved RGB uint8 images into (n, 3, h, w) float32 / 255") {
  // Two 2x2 images, pixels (r, g, b) row-major.
  const std::vector<uint8_t> a = {0, 1, 2, 255, 128, 64, 10, 20, 30, 40, 50, 60};
  const std::vector<uint8_t> b = {255, 255, 255, 0, 0, 0, 51, 102, 153, 204, 17, 34};
  Tensor t = images_to_tensor({a.data(), b.data()}, 2, 2);
  CHECK(t.dtype() == DType::F32);
  CHECK(t.device().is_cpu());
  REQUIRE(t.shape() == Shape{2, 3, 2, 2});
  // Planes: image 0 R = {0, 255, 10, 40}, G = {1, 128, 20, 50}, B = {2, 64, 30, 60}; image 1
  // R = {255, 0, 51, 204}, G = {255, 0, 102, 17}, B = {255, 0, 153, 34}.
  const std::vector<int> want = {0, 255, 10, 40, 1, 128, 20, 50, 2, 64, 30, 60,
                                 255, 0, 51, 204, 255, 0, 102, 17, 255, 0, 153, 34};
  const float* p = t.data<float>();
  for (size_t i = 0; i < want.size(); ++i) {
    INFO("element " << i);
    CHECK(p[i] == static_cast<float>(want[i]) / 255.0f);  // torchvision: .float().div(255)
  }
  CHECK(p[1] == 1.0f);
  CHECK(p[12 + 8 + 2] == doctest::Approx(0.6));  // image 1, B, pixel (1, 0): 153 / 255
  CHECK(images_to_tensor({}, 2, 2).shape() == Shape{0, 3, 2, 2});
}

TEST_CASE("resize_image, normalize_channels and images_to_tensor: one-line errors") {
  Tensor x = Tensor::zeros({1, 3, 4, 5});
  auto has = [](const std::string& msg, const std::string& part) {
    INFO(msg);
    CHECK(msg.find(part) != std::string::npos);
  };
  has(error_of([&] { resize_image(Tensor::zeros({3, 4, 5}), 2, 2, ResizeMode::bilinear, true); }),
      "resize_image: input must be 4-d (N, C, H, W)");
  has(error_of([&] { resize_image(x, 0, 2, ResizeMode::bilinear, true); }),
      "resize_image: output size must be >= 1 x 1, got 0 x 2");
  has(error_of([&] { resize_image(x, 2, -3, ResizeMode::bicubic, false); }), "got 2 x -3");
  has(error_of([&] { resize_image(Tensor::zeros({1, 3, 0, 5}), 2, 2, ResizeMode::bicubic, false); }),
      "resize_image: input height and width must be >= 1");
  has(error_of([&] { resize_image(x, 2, 2, static_cast<ResizeMode>(7), false); }), "resize_image: unknown mode 7");
  has(error_of([&] { resize_image(Tensor::zeros({1, 3, 4, 5}, DType::I64), 2, 2, ResizeMode::bilinear, true); }),
      "resize_image: expected a float32 or float64 tensor");
  has(error_of([&] { normalize_channels(x, {0.5, 0.5}, {0.5, 0.5}); }),
      "normalize_channels: mean and std must have one entry per channel (C = 3");
  has(error_of([&] { normalize_channels(x, {0, 0, 0}, {1, 0, 1}); }),
      "normalize_channels: std must be finite and > 0, got std[1] = 0");
  has(error_of([&] { normalize_channels(x, {0, 0, 0}, {1, 1, -2}); }), "std[2] = -2");
  has(error_of([&] { normalize_channels(Tensor::zeros({3, 4, 5}), {0, 0, 0}, {1, 1, 1}); }),
      "normalize_channels: input must be 4-d");
  const uint8_t px[12] = {};
  has(error_of([&] { images_to_tensor({px, nullptr}, 2, 2); }), "images_to_tensor: image 1 of 2 is a null pointer");
  has(error_of([&] { images_to_tensor({px}, 0, 2); }), "images_to_tensor: image size must be >= 1 x 1, got 0 x 2");
}
