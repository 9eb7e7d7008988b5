// libFuzzer target: tokenizing arbitrary (valid and invalid) UTF-8 with two fixed tokenizers
// built in memory: a BERT-style WordPiece (vocab.txt defaults: BertNormalizer, lowercase,
// accents stripped, [CLS] $A [SEP]) and a GPT-2-style byte-level BPE (ByteLevel
// pre-tokenizer, every byte in the vocabulary, a few merges, <start> $A <end>).
// Checks invariants: ids lie in [0, vocab_size), truncation respects max_length, the
// padded encoding has pad_to entries and a matching mask, invalid UTF-8 is flagged.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "data/text/tokenizer.h"

namespace {

std::string cp_utf8(uint32_t c) {
  std::string s;
  if (c < 0x80) s += (char)c;
  else if (c < 0x800) { s += (char)(0xC0 | (c >> 6)); s += (char)(0x80 | (c & 0x3F)); }
  else { s += (char)(0xE0 | (c >> 12)); s += (char)(0x80 | ((c >> 6) & 0x3F)); s += (char)(0x80 | (c & 0x3F)); }
  return s;
}

lm::data::Tokenizer make_bpe() {
  // GPT-2 bytes_to_unicode.
  std::vector<std::string> byte_tok(256);
  int n = 0;
  for (int b = 0; b < 256; ++b) {
    bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    byte_tok[b] = cp_utf8(printable ? (uint32_t)b : (uint32_t)(256 + n++));
  }
  nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
  int id = 0;
  for (int b = 0; b < 256; ++b) vocab[byte_tok[b]] = id++;
  const std::string sp = byte_tok[' '];
  std::vector<std::pair<std::string, std::string>> merges = {
      {"t", "h"}, {"th", "e"}, {sp, "the"}, {"i", "n"}, {"e", "r"}, {"o", "u"}, {"t", "u"}, {"tu", "m"},
      {"tum", "ou"}, {"tumou", "r"}, {sp, "tumour"}, {"c", "e"}, {"ce", "l"}, {"cel", "l"}, {sp, "cell"}};
  nlohmann::ordered_json jm = nlohmann::ordered_json::array();
  for (auto& [a, b] : merges) {
    if (!vocab.contains(a + b)) vocab[a + b] = id++;
    jm.push_back(a + " " + b);
  }
  vocab["<start>"] = id++;
  vocab["<end>"] = id++;
  vocab["<pad>"] = id++;
  nlohmann::ordered_json j = {
      {"version", "1.0"},
      {"added_tokens",
       {{{"id", id - 3}, {"content", "<start>"}, {"special", true}},
        {{"id", id - 2}, {"content", "<end>"}, {"special", true}},
        {{"id", id - 1}, {"content", "<pad>"}, {"special", true}}}},
      {"normalizer", {{"type", "Lowercase"}}},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single", {{{"SpecialToken", {{"id", "<start>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                    {{"SpecialToken", {{"id", "<end>"}, {"type_id", 0}}}}}},
        {"special_tokens", {{"<start>", {{"id", "<start>"}, {"ids", {id - 3}}, {"tokens", {"<start>"}}}},
                            {"<end>", {{"id", "<end>"}, {"ids", {id - 2}}, {"tokens", {"<end>"}}}}}}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", jm}}}};
  return lm::data::Tokenizer::from_json_string(j.dump(), "fuzz byte-level BPE");
}

lm::data::Tokenizer make_wordpiece() {
  std::string v = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n";
  for (char c = 'a'; c <= 'z'; ++c) v += std::string(1, c) + "\n##" + std::string(1, c) + "\n";
  for (char c = '0'; c <= '9'; ++c) v += std::string(1, c) + "\n##" + std::string(1, c) + "\n";
  for (const char* w : {"the", "tumour", "tumor", "cell", "##s", "##ing", "carcinoma", "renal", "clear", ",", ".", "!", "?",
                        "(", ")", "-", "'", "中", "文", "é", "##é"})
    v += std::string(w) + "\n";
  return lm::data::Tokenizer::from_vocab_txt_string(v, "fuzz vocab.txt");
}

void check(const lm::data::Tokenizer& t, std::string_view text, int64_t max_len) {
  const int64_t V = t.vocab_size();
  lm::data::Encoding e = t.encode_full(text, max_len);
  for (int64_t id : e.ids)
    if (id < 0 || id >= V) __builtin_trap();
  if (max_len > 0 && (int64_t)e.ids.size() > std::max<int64_t>(max_len, t.num_special_tokens())) __builtin_trap();
  if (e.ids.size() != e.attention_mask.size()) __builtin_trap();
  lm::data::Encoding p = t.encode_padded(text, max_len, 40);
  if ((int64_t)p.ids.size() < 40) __builtin_trap();
  if (p.ids.size() != p.attention_mask.size()) __builtin_trap();
  auto toks = t.tokenize(text);
  for (auto& s : toks) (void)t.token_to_id(s);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const lm::data::Tokenizer bpe = make_bpe();
  static const lm::data::Tokenizer wp = make_wordpiece();
  if (size == 0) return 0;
  const int64_t max_len = data[0] % 4 == 0 ? 0 : 2 + data[0] % 37;
  std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  check(bpe, text, max_len);
  check(wp, text, max_len);
  return 0;
}
