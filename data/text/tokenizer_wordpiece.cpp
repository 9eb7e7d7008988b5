// WordPiece (BERT): BertNormalizer, BertPreTokenizer, the greedy longest-match-first WordPiece
// model, and vocab.txt loading, following Hugging Face `tokenizers`.
#include <algorithm>

#include "data/text/tokenizer_impl.h"
#include "data/text/tokenizer_unicode.h"

namespace lm::data::detail {

namespace uni = lm::data::unicode;

namespace {

// BERT's "Chinese character" ranges (CJK ideographs), as in HF's bert normalizer.
bool is_chinese_char(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

bool is_bert_whitespace(char32_t c) { return c == U'\t' || c == U'\n' || c == U'\r' || uni::is_white_space(c); }
// HF: char::is_other() of the unicode_categories crate, which in practice covers Cc, Cf, Cs
// and Co but not unassigned code points (Cn are kept; checked against tokenizers 0.23).
bool is_bert_control(char32_t c) {
  if (c == U'\t' || c == U'\n' || c == U'\r') return false;
  const int k = uni::category(c);
  return uni::is_other(c) && k != 0 /* Cn */;
}
bool is_bert_punctuation(char32_t c) {
  const bool ascii_punct = (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126);
  return ascii_punct || uni::is_punctuation(c);
}

}  // namespace

std::u32string bert_normalize(const std::u32string& input, const NormalizerStep& o) {
  std::u32string text;
  if (o.clean_text) {
    text.reserve(input.size());
    for (char32_t c : input) {
      if (c == 0 || c == 0xFFFD || is_bert_control(c)) continue;
      text.push_back(is_bert_whitespace(c) ? U' ' : c);
    }
  } else {
    text = input;
  }
  if (o.handle_chinese_chars) {
    std::u32string padded;
    padded.reserve(text.size());
    for (char32_t c : text) {
      if (is_chinese_char(c)) {
        padded.push_back(U' ');
        padded.push_back(c);
        padded.push_back(U' ');
      } else {
        padded.push_back(c);
      }
    }
    text = std::move(padded);
  }
  if (o.strip_accents) {
    std::u32string d = uni::nfd(text);
    text.clear();
    for (char32_t c : d) {
      if (!uni::is_mark_nonspacing(c)) text.push_back(c);
    }
  }
  if (o.lowercase) text = uni::lowercase(text);
  return text;
}

std::vector<std::u32string> bert_pre_tokenize(const std::u32string& text) {
  std::vector<std::u32string> out;
  std::u32string cur;
  auto flush = [&] {
    if (!cur.empty()) out.push_back(std::move(cur));
    cur.clear();
  };
  for (char32_t c : text) {
    if (uni::is_white_space(c)) {
      flush();
    } else if (is_bert_punctuation(c)) {
      flush();
      out.push_back(std::u32string(1, c));
    } else {
      cur.push_back(c);
    }
  }
  flush();
  return out;
}

WordPieceModel::WordPieceModel(const ojson& model, const std::string& origin) {
  auto v = model.find("vocab");
  if (v == model.end() || !v->is_object()) fail(origin, "WordPiece model has no \"vocab\" object");
  if (v->empty()) fail(origin, "WordPiece model has an empty vocabulary");
  vocab_.reserve(v->size());
  for (auto it = v->begin(); it != v->end(); ++it) vocab_[it.key()] = it.value().get<int64_t>();
  std::string unk = "[UNK]";
  if (auto u = model.find("unk_token"); u != model.end() && u->is_string()) unk = u->get<std::string>();
  auto iu = vocab_.find(unk);
  if (iu == vocab_.end()) fail(origin, "WordPiece unk_token '" + unk + "' is not in the vocabulary");
  unk_id_ = iu->second;
  if (auto p = model.find("continuing_subword_prefix"); p != model.end() && p->is_string()) {
    prefix_ = p->get<std::string>();
  }
  if (auto m = model.find("max_input_chars_per_word"); m != model.end() && m->is_number_integer()) {
    max_chars_ = m->get<size_t>();
  }
}

void WordPieceModel::tokenize(const std::string& word, std::vector<int64_t>& out) const {
  // Character boundaries of the (valid UTF-8) word.
  std::vector<size_t> starts;
  for (size_t i = 0; i < word.size(); ++i) {
    if ((static_cast<unsigned char>(word[i]) & 0xC0) != 0x80) starts.push_back(i);
  }
  const size_t nchars = starts.size();
  if (nchars == 0) return;
  if (nchars > max_chars_) {
    out.push_back(unk_id_);
    return;
  }
  starts.push_back(word.size());
  const size_t first = out.size();
  std::string key;
  size_t start = 0;  // index into starts
  while (start < nchars) {
    size_t end = nchars;
    int64_t found = -1;
    while (start < end) {
      key.clear();
      if (start > 0) key = prefix_;
      key.append(word, starts[start], starts[end] - starts[start]);
      if (auto it = vocab_.find(key); it != vocab_.end()) {
        found = it->second;
        break;
      }
      --end;
    }
    if (found < 0) {  // the whole word becomes [UNK]
      out.resize(first);
      out.push_back(unk_id_);
      return;
    }
    out.push_back(found);
    start = end;
  }
}

ojson wordpiece_json_from_vocab_txt(const std::string& text, const std::string& origin) {
  bool bad = false;
  uni::sanitize_utf8(text, &bad);
  if (bad) fail(origin, "vocab.txt is not valid UTF-8");
  ojson vocab = ojson::object();
  int64_t index = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    // HF: line.trim_end() (Unicode whitespace; here the line is decoded to check).
    std::u32string line = uni::decode_utf8(std::string_view(text).substr(pos, nl - pos));
    while (!line.empty() && uni::is_white_space(line.back())) line.pop_back();
    vocab[uni::encode_utf8(line)] = index++;
    pos = nl + 1;
  }
  if (vocab.empty()) fail(origin, "vocab.txt is empty");
  auto id_of = [&](const char* tok) -> int64_t {
    auto it = vocab.find(tok);
    return it == vocab.end() ? -1 : it->get<int64_t>();
  };
  if (id_of("[UNK]") < 0) fail(origin, "vocab.txt has no [UNK] token (is it a BERT vocab.txt?)");
  // BertWordPieceTokenizer: the special tokens present in the vocabulary become added tokens.
  std::vector<std::pair<int64_t, std::string>> specials;
  for (const char* tok : {"[UNK]", "[SEP]", "[CLS]", "[PAD]", "[MASK]"}) {
    if (int64_t id = id_of(tok); id >= 0) specials.emplace_back(id, tok);
  }
  std::sort(specials.begin(), specials.end());
  ojson added = ojson::array();
  for (const auto& [id, tok] : specials) {
    added.push_back(ojson{{"id", id}, {"content", tok}, {"single_word", false}, {"lstrip", false},
                          {"rstrip", false}, {"normalized", false}, {"special", true}});
  }
  ojson j;
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  j["added_tokens"] = added;
  j["normalizer"] = ojson{{"type", "BertNormalizer"}, {"clean_text", true}, {"handle_chinese_chars", true},
                          {"strip_accents", nullptr}, {"lowercase", true}};
  j["pre_tokenizer"] = ojson{{"type", "BertPreTokenizer"}};
  if (id_of("[CLS]") >= 0 && id_of("[SEP]") >= 0) {
    j["post_processor"] = ojson{{"type", "BertProcessing"},
                                {"sep", ojson::array({"[SEP]", id_of("[SEP]")})},
                                {"cls", ojson::array({"[CLS]", id_of("[CLS]")})}};
  } else {
    j["post_processor"] = nullptr;
  }
  j["decoder"] = ojson{{"type", "WordPiece"}, {"prefix", "##"}, {"cleanup", true}};
  j["model"] = ojson{{"type", "WordPiece"}, {"unk_token", "[UNK]"}, {"continuing_subword_prefix", "##"},
                     {"max_input_chars_per_word", 100}, {"vocab", std::move(vocab)}};
  return j;
}

}  // namespace lm::data::detail
