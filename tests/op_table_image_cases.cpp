// The op table's image rows (see op_table_cases.h): resize_image and normalize_channels.
#include "tests/op_table_cases.h"

// Rows are aggregate-initialised with only the leading fields; the rest keep their defaults.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace lm::test::op_table {

void add_image_cases(std::vector<OpCase>& tab) {
  auto add_case = [&](OpCase c) { tab.push_back(std::move(c)); };
  using D = Dist;
  using L = Lay;
  // ---- image resize and normalisation
  // resize_image: torch's F.interpolate(align_corners=False); downscales with antialias (the
  // 512 -> 448 / 256 -> 224 encoder inputs in small), upscales with clamped bicubic borders,
  // a non-antialiased downscale (pixels no output reads: zero gradient there), mixed up / down
  // axes, a size-1 axis, and non-contiguous inputs.
  struct Rs {
    Shape s;
    int64_t oh, ow;
    ResizeMode mode;
    bool aa;
    L l;
  };
  for (const Rs& r : std::vector<Rs>{{{2, 3, 13, 11}, 7, 6, ResizeMode::bilinear, true, L::C},
                                     {{2, 3, 5, 4}, 9, 7, ResizeMode::bilinear, false, L::C},
                                     {{2, 3, 13, 11}, 7, 6, ResizeMode::bicubic, true, L::C},
                                     {{2, 3, 5, 4}, 9, 7, ResizeMode::bicubic, false, L::C},
                                     {{2, 3, 13, 11}, 6, 4, ResizeMode::bilinear, false, L::T},
                                     {{2, 3, 13, 11}, 6, 5, ResizeMode::bicubic, false, L::C},
                                     {{1, 2, 5, 9}, 8, 4, ResizeMode::bilinear, true, L::S},
                                     {{1, 2, 6, 9}, 11, 4, ResizeMode::bicubic, true, L::T},
                                     {{1, 1, 1, 3}, 2, 5, ResizeMode::bicubic, false, L::C}}) {
    const char* mode = r.mode == ResizeMode::bilinear ? "bilinear" : "bicubic";
    OpCase c{"resize_image",
             "resize_image " + sh(r.s) + lay_name(r.l) + "->" + std::to_string(r.oh) + "x" + std::to_string(r.ow) + " " +
                 mode + (r.aa ? " aa" : ""),
             {{"size", {r.oh, r.ow}}, {"mode", mode}, {"antialias", r.aa}},
             [r](Draw& d) { return Inputs{d(r.s, D::Normal, r.l)}; },
             [r](const Inputs& x) { return resize_image(x[0], r.oh, r.ow, r.mode, r.aa); }};
    // Keys' cubic pieces cancel (W(1.8) = -3.024 + 3), so float32 bicubic weights carry ~2e-7
    // absolute rounding, which torch (its kernels built with FMA contraction) rounds otherwise:
    // on these N(0, 1) inputs torch's own float32 output is ~2e-6 from its float64 one.
    if (r.mode == ResizeMode::bicubic) c.f32 = Tol{1e-5, 1e-5};
    add_case(c);
  }
  // normalize_channels: (x - mean[c]) / std[c] with fixed per-channel constants (not inputs).
  for (auto [s, l, mean, sd] : std::vector<std::tuple<Shape, L, std::vector<double>, std::vector<double>>>{
           {{2, 3, 4, 5}, L::C, {0.485, 0.456, 0.406}, {0.229, 0.224, 0.225}},
           {{1, 3, 3, 2}, L::T, {0.5, -0.25, 0.0}, {2.0, 0.5, 1.0}},
           {{2, 1, 2, 3}, L::S, {0.3}, {0.7}}})
    add_case({"normalize_channels", "normalize_channels " + sh(s) + lay_name(l), {{"mean", mean}, {"std", sd}},
              [s, l](Draw& d) { return Inputs{d(s, D::Normal, l)}; },
              [mean, sd](const Inputs& x) { return normalize_channels(x[0], mean, sd); }});
}

}  // namespace lm::test::op_table
