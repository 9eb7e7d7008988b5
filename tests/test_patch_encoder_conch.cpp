// CONCH's vision tower (models/patch_encoders/conch_vision.h) against the conch-fork wheel's own PyTorch
// model code (tools/conch_vision_reference.py: the wheel's _build_vision_tower over timm 0.9.16,
// random ViT-like weights, a fake pytorch_model.bin in CONCH's key layout): the fake checkpoint
// goes through tools/convert_weights.py conch-vision and load_patch_encoder, real 512 x 512
// tissue patches of a shipped slide through encode_images (bicubic antialiased resize to 448,
// OpenAI mean / std from the file's metadata), per-patch cosine >= 0.9999. CONCH's real weights
// are gated and never used here. Also: the metadata and refusals of a conch_vit_b16 file.
// Missing reference pieces (tools/setup.sh: tools/setup_conch.sh, python3-torchvision) skip
// locally and fail under CI=true.
#include <doctest/doctest.h>
#include <omp.h>

#include <chrono>
#include <cmath>
#include <cstdio>

#include "data/formats/safetensors.h"
#include "data/slides/slide.h"
#include "models/patch_encoders/conch_vision.h"
#include "models/patch_encoders/patch_encoder.h"
#include "tests/test_util.h"

namespace {

namespace fs = std::filesystem;
using namespace lm;

fs::path conch_code_dir() {
  const char* d = std::getenv("LIBRAMIL_CONCH_DIR");
  const fs::path dir = d && *d ? fs::path(d) : test::source_dir() / ".cache" / "conch";
  return dir / "conch_fork-0.1.0";
}

bool have_conch_reference() {
  if (!test::data_present(conch_code_dir() / "conch" / "open_clip_custom" / "coca_model.py",
                          "the conch-fork model code (tools/setup_conch.sh)"))
    return false;
  const std::string cmd = test::python() + " -c 'import torch, torchvision, timm, openslide, safetensors' 2>/dev/null";
  if (std::system(cmd.c_str()) != 0)
    return test::skip_unless_ci("torch, torchvision, timm, openslide or safetensors is not importable by " +
                                test::python() + " (tools/setup.sh: python3-torchvision, tools/setup_conch.sh)");
  if (!slides::built_with_openslide())
    return test::skip_unless_ci("this build has no OpenSlide (tools/setup.sh installs libopenslide-dev)");
  return true;
}

}  // namespace

TEST_CASE("patch encoder: CONCH vision tower matches the conch-fork wheel's model on real patches") {
  if (!have_conch_reference()) return;
  const fs::path slide_path = test::test_data("slides/cmu-1-small-region.svs");
  const int64_t P = 512;
  // Level-0 top-left corners: three tissue cells (>= 80% saturated pixels) and one mostly
  // background cell of cmu-1-small-region (2220 x 2967).
  const std::vector<std::pair<int64_t, int64_t>> at = {{1024, 768}, {768, 1792}, {1280, 2304}, {0, 1024}};
  const fs::path dir = test::scratch_dir("patch_encoder_conch");
  std::string args = slide_path.string() + " " + dir.string() + " --size " + std::to_string(P) + " --threads " +
                     std::to_string(omp_get_max_threads()) + " --code " + conch_code_dir().string();
  for (const auto& [x, y] : at) args += " --at " + std::to_string(x) + "," + std::to_string(y);
  test::run_python_tool("conch_vision_reference.py", args);
  const fs::path file = dir / "conch_vit_b16.safetensors";
  test::run_python_tool("convert_weights.py",
                        "conch-vision " + (dir / "pytorch_model.bin").string() + " " + file.string());
  fs::remove(dir / "pytorch_model.bin");  // 360 MB of random weights: not kept

  const data::SafetensorsFile ref = data::read_safetensors((dir / "reference.safetensors").string());
  const int64_t n = (int64_t)at.size();
  const Tensor& want = ref.at("features");
  REQUIRE(want.shape() == Shape{n, 512});

  // The same pixels through libramil's OpenSlide reader as through openslide-python.
  slides::Slide slide(slide_path.string());
  std::vector<std::vector<uint8_t>> patches;
  REQUIRE(ref.at("patches").shape() == Shape{n, P, P, 3});
  const std::vector<double> ref_pixels = ref.at("patches").to_double_vector();  // uint8 values
  for (int64_t i = 0; i < n; ++i) {
    const slides::RgbImage img = slide.read_region(0, at[(size_t)i].first, at[(size_t)i].second, P, P);
    REQUIRE(img.rgb.size() == (size_t)(P * P * 3));
    int64_t differ = 0;
    for (int64_t j = 0; j < P * P * 3; ++j) differ += (double)img.rgb[(size_t)j] != ref_pixels[(size_t)(i * P * P * 3 + j)];
    CHECK_MESSAGE(differ == 0, "patch " << i << ": " << differ << " bytes differ from openslide-python's");
    patches.push_back(img.rgb);
  }

  auto enc = models::load_patch_encoder(file.string());
  CHECK(enc->name() == "conch_vit_b16");
  CHECK(enc->feature_dim() == 512);
  const models::PatchPreprocess& pre = enc->preprocess();
  CHECK(pre.input_size == 448);
  CHECK(pre.resize == ResizeMode::bicubic);
  CHECK(pre.antialias);
  CHECK(pre.mean == std::vector<double>{0.48145466, 0.4578275, 0.40821073});
  CHECK(pre.std == std::vector<double>{0.26862954, 0.26130258, 0.27577711});
  std::vector<const uint8_t*> ptrs;
  for (const auto& p : patches) ptrs.push_back(p.data());
  enc->batch_size = 2;  // two batches: the batching is exercised too
  const auto t0 = std::chrono::steady_clock::now();
  const Tensor got = enc->encode_images(ptrs, P, P);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  REQUIRE(got.shape() == Shape{n, 512});

  const std::vector<double> a = got.to_double_vector(), b = want.to_double_vector();
  double min_cos = 1, max_rel = 0, max_pair_cos = -1, min_pair_cos = 1;
  for (int64_t i = 0; i < n; ++i) {
    double ab = 0, aa = 0, bb = 0, diff = 0;
    for (int64_t j = 0; j < 512; ++j) {
      const double x = a[(size_t)(i * 512 + j)], y = b[(size_t)(i * 512 + j)];
      ab += x * y, aa += x * x, bb += y * y, diff += (x - y) * (x - y);
    }
    min_cos = std::min(min_cos, ab / std::sqrt(aa * bb));
    max_rel = std::max(max_rel, std::sqrt(diff / bb));
    // Not degenerate: the reference features differ between patches.
    for (int64_t k = i + 1; k < n; ++k) {
      double pq = 0, pp = 0, qq = 0;
      for (int64_t j = 0; j < 512; ++j) {
        const double x = b[(size_t)(i * 512 + j)], y = b[(size_t)(k * 512 + j)];
        pq += x * y, pp += x * x, qq += y * y;
      }
      max_pair_cos = std::max(max_pair_cos, pq / std::sqrt(pp * qq));
      min_pair_cos = std::min(min_pair_cos, pq / std::sqrt(pp * qq));
    }
  }
  std::printf("conch_vit_b16: %lld patches %lldx%lld -> 448: min cosine %.7f, max relative error %.3g; "
              "reference features pairwise cosine %.3f..%.3f; ours %.2f s/patch, torch %s s/patch (%d threads)\n",
              (long long)n, (long long)P, (long long)P, min_cos, max_rel, min_pair_cos, max_pair_cos, secs / (double)n,
              ref.metadata.at("seconds_per_patch").c_str(), omp_get_max_threads());
  CHECK(min_cos >= 0.9999);
  CHECK(max_rel <= 1e-2);
  CHECK(max_pair_cos < 0.99);

  // A batch of the wrong size is refused with the file named.
  std::string msg;
  try {
    enc->encode(Tensor::zeros({1, 3, 224, 224}));
  } catch (const std::exception& e) {
    msg = e.what();
  }
  CHECK(msg.find("(B, 3, 448, 448)") != std::string::npos);
  CHECK(msg.find(file.string()) != std::string::npos);
  fs::remove(file);  // 350 MB; the encoder holds its own copies
}

TEST_CASE("patch encoder: a conch_vit_b16 file with a missing entry or tensor is refused") {
  const fs::path dir = test::scratch_dir("patch_encoder_conch_refusals");
  std::map<std::string, std::string> meta = {
      {"libramil.kind", "patch_encoder"}, {"libramil.arch", "conch_vit_b16"}, {"libramil.feature_dim", "8"},
      {"libramil.input_size", "16"},      {"libramil.resize", "bicubic"},     {"libramil.antialias", "true"},
      {"libramil.mean", "[0.5, 0.5, 0.5]"}, {"libramil.std", "[0.25, 0.25, 0.25]"}, {"libramil.width", "8"},
      {"libramil.layers", "1"},           {"libramil.heads", "2"},            {"libramil.mlp_dim", "16"},
      {"libramil.patch_size", "8"},       {"libramil.class_token", "true"},   {"libramil.pool_heads", "2"},
      {"libramil.pool_queries", "1"},     {"libramil.layer_norm_eps", "1e-06"},
      {"libramil.pool_layer_norm_eps", "1e-05"}};
  const std::vector<std::pair<std::string, Tensor>> tensors = {{"patch_embed.weight", Tensor::zeros({8, 3, 8, 8})}};
  auto refused = [&](const std::map<std::string, std::string>& m, const std::string& what) {
    const std::string p = (dir / "bad.safetensors").string();
    data::write_safetensors(p, tensors, m);
    std::string msg;
    try {
      models::load_patch_encoder(p);
    } catch (const std::exception& e) {
      msg = e.what();
    }
    INFO("message: " << msg);
    CHECK(msg.find(p) != std::string::npos);
    CHECK(msg.find(what) != std::string::npos);
  };
  auto without = [&](const std::string& key) {
    auto m = meta;
    m.erase(key);
    return m;
  };
  refused(without("libramil.width"), "'libramil.width' is missing");
  refused(without("libramil.pool_layer_norm_eps"), "'libramil.pool_layer_norm_eps' is missing");
  auto m = meta;
  m["libramil.pool_queries"] = "256";
  refused(m, "pool_queries");
  m = meta;
  m["libramil.input_size"] = "20";
  refused(m, "not a multiple of the patch size");
  refused(meta, "missing tensor 'patch_embed.bias'");
}
