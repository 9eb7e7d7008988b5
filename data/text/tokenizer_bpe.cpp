// Byte-level BPE: the ByteLevel pre-tokenizer (GPT-2 regex + byte-to-unicode mapping) and the
// BPE model (merges applied by rank), following Hugging Face `tokenizers`.
#include <array>
#include <climits>
#include <cstdio>

#include "data/text/tokenizer_impl.h"
#include "data/text/tokenizer_unicode.h"

namespace lm::data::detail {

namespace uni = lm::data::unicode;

namespace {

// GPT-2's bytes_to_unicode(): printable Latin-1 bytes map to themselves, the others to 256+n.
const std::array<char32_t, 256>& byte_chars() {
  static const std::array<char32_t, 256> table = [] {
    std::array<char32_t, 256> t{};
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      t[static_cast<size_t>(b)] = printable ? static_cast<char32_t>(b) : next++;
    }
    return t;
  }();
  return table;
}

// Classes of the GPT-2 pattern: \s, \p{L}, \p{N}, anything else.
enum CharClass { kSpace, kLetter, kNumber, kOther };

CharClass char_class(char32_t c) {
  if (uni::is_white_space(c)) return kSpace;
  if (uni::is_letter(c)) return kLetter;
  if (uni::is_number(c)) return kNumber;
  return kOther;
}

// Length of the match of
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// starting at i (alternatives tried in order, as a backtracking engine does). Always >= 1.
size_t gpt2_match(const std::u32string& s, size_t i, const std::vector<CharClass>& cls) {
  const size_t n = s.size();
  if (s[i] == U'\'' && i + 1 < n) {
    const char32_t a = s[i + 1];
    if (a == U's' || a == U't' || a == U'm' || a == U'd') return 2;
    if (i + 2 < n) {
      const char32_t b = s[i + 2];
      if ((a == U'r' && b == U'e') || (a == U'v' && b == U'e') || (a == U'l' && b == U'l')) return 3;
    }
  }
  auto run = [&](size_t from, CharClass k) {
    size_t j = from;
    while (j < n && cls[j] == k) ++j;
    return j - i;
  };
  // " ?X+" for X in letters, numbers, others: the optional space is taken when X follows.
  if (s[i] == U' ' && i + 1 < n && cls[i + 1] != kSpace) return run(i + 1, cls[i + 1]);
  if (cls[i] != kSpace) return run(i, cls[i]);
  // Whitespace: \s+(?!\S) backtracks to leave the last space before a non-space; \s+ otherwise.
  size_t j = i;
  while (j < n && cls[j] == kSpace) ++j;
  if (j == n) return j - i;
  if (j - i >= 2) return j - i - 1;
  return 1;
}

}  // namespace

std::vector<std::pair<size_t, size_t>> gpt2_split(const std::u32string& text) {
  std::vector<CharClass> cls(text.size());
  for (size_t i = 0; i < text.size(); ++i) cls[i] = char_class(text[i]);
  std::vector<std::pair<size_t, size_t>> out;
  for (size_t i = 0; i < text.size();) {
    const size_t len = gpt2_match(text, i, cls);
    out.emplace_back(i, i + len);
    i += len;
  }
  return out;
}

std::vector<std::u32string> byte_level_pre_tokenize(const std::u32string& input, bool add_prefix_space,
                                                    bool use_regex) {
  if (input.empty()) return {};
  std::u32string text;
  if (add_prefix_space && input[0] != U' ') text.push_back(U' ');
  text += input;
  std::vector<std::pair<size_t, size_t>> spans;
  if (use_regex) {
    spans = gpt2_split(text);
  } else {
    spans.emplace_back(0, text.size());
  }
  const auto& bc = byte_chars();
  std::vector<std::u32string> out;
  out.reserve(spans.size());
  std::string utf8;
  for (const auto& [a, b] : spans) {
    utf8.clear();
    for (size_t k = a; k < b; ++k) uni::append_utf8(utf8, text[k]);
    std::u32string piece;
    piece.reserve(utf8.size());
    for (unsigned char byte : utf8) piece.push_back(bc[byte]);
    out.push_back(std::move(piece));
  }
  return out;
}

// ---- BPE model --------------------------------------------------------------

namespace {

uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

std::string opt_string(const ojson& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return {};
  return it->get<std::string>();
}

bool opt_bool(const ojson& j, const char* key, bool def) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  return it->get<bool>();
}

}  // namespace

BpeModel::BpeModel(const ojson& model, const std::string& origin) {
  auto v = model.find("vocab");
  if (v == model.end() || !v->is_object()) fail(origin, "BPE model has no \"vocab\" object");
  if (v->empty()) fail(origin, "BPE model has an empty vocabulary");
  vocab_.reserve(v->size());
  for (auto it = v->begin(); it != v->end(); ++it) vocab_[it.key()] = it.value().get<int64_t>();

  prefix_ = opt_string(model, "continuing_subword_prefix");
  suffix_ = opt_string(model, "end_of_word_suffix");
  fuse_unk_ = opt_bool(model, "fuse_unk", false);
  byte_fallback_ = opt_bool(model, "byte_fallback", false);
  ignore_merges_ = opt_bool(model, "ignore_merges", false);
  if (auto dropout = model.find("dropout"); dropout != model.end() && !dropout->is_null() &&
                                            dropout->get<double>() > 0.0) {
    fail(origin, "BPE dropout is not supported");
  }
  const std::string unk = opt_string(model, "unk_token");
  if (!unk.empty()) {
    auto it = vocab_.find(unk);
    if (it == vocab_.end()) fail(origin, "BPE unk_token '" + unk + "' is not in the vocabulary");
    unk_ = static_cast<int32_t>(it->second);
  }

  auto m = model.find("merges");
  if (m == model.end() || !m->is_array()) fail(origin, "BPE model has no \"merges\" list");
  merges_.reserve(m->size() * 2);
  int32_t rank = 0;
  for (const auto& entry : *m) {
    std::string a, b;
    if (entry.is_string()) {  // legacy "a b"
      const std::string s = entry.get<std::string>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos) {
        fail(origin, "BPE merge '" + s + "' is not two tokens separated by one space");
      }
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else if (entry.is_array() && entry.size() == 2) {
      a = entry[0].get<std::string>();
      b = entry[1].get<std::string>();
    } else {
      fail(origin, "BPE merge #" + std::to_string(rank) + " is neither \"a b\" nor [a, b]");
    }
    auto ia = vocab_.find(a);
    auto ib = vocab_.find(b);
    if (ia == vocab_.end() || ib == vocab_.end()) {
      fail(origin, "BPE merge '" + a + " " + b + "' uses a token that is not in the vocabulary");
    }
    std::string merged = a;
    if (!prefix_.empty() && b.compare(0, prefix_.size(), prefix_) == 0) {
      merged += b.substr(prefix_.size());
    } else {
      merged += b;
    }
    auto im = vocab_.find(merged);
    if (im == vocab_.end()) fail(origin, "BPE merge '" + a + " " + b + "' makes a token that is not in the vocabulary");
    merges_[pair_key(static_cast<int32_t>(ia->second), static_cast<int32_t>(ib->second))] = {
        rank, static_cast<int32_t>(im->second)};
    ++rank;
  }
}

std::vector<int32_t> BpeModel::merge_word(const std::string& word) const {
  std::vector<int32_t> sym;
  // Character boundaries of the (valid UTF-8) word.
  std::vector<size_t> starts;
  for (size_t i = 0; i < word.size(); ++i) {
    if ((static_cast<unsigned char>(word[i]) & 0xC0) != 0x80) starts.push_back(i);
  }
  starts.push_back(word.size());
  bool prev_unk = false;
  for (size_t k = 0; k + 1 < starts.size(); ++k) {
    const std::string ch = word.substr(starts[k], starts[k + 1] - starts[k]);
    std::string s = ch;
    if (k > 0 && !prefix_.empty()) s = prefix_ + s;
    if (k + 2 == starts.size() && !suffix_.empty()) s += suffix_;
    if (auto it = vocab_.find(s); it != vocab_.end()) {
      sym.push_back(static_cast<int32_t>(it->second));
      prev_unk = false;
      continue;
    }
    if (byte_fallback_) {
      std::vector<int32_t> bytes;
      for (unsigned char b : ch) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "<0x%02X>", b);
        auto it = vocab_.find(buf);
        if (it == vocab_.end()) {
          bytes.clear();
          break;
        }
        bytes.push_back(static_cast<int32_t>(it->second));
      }
      if (!bytes.empty()) {
        sym.insert(sym.end(), bytes.begin(), bytes.end());
        prev_unk = false;
        continue;
      }
    }
    if (unk_) {
      if (!(fuse_unk_ && prev_unk)) sym.push_back(*unk_);
      prev_unk = true;
    }
  }
  // Repeatedly merge the adjacent pair of lowest rank (leftmost on ties), as HF's heap does.
  while (sym.size() >= 2) {
    int32_t best_rank = INT32_MAX, best_id = -1;
    size_t best_pos = 0;
    for (size_t p = 0; p + 1 < sym.size(); ++p) {
      auto it = merges_.find(pair_key(sym[p], sym[p + 1]));
      if (it != merges_.end() && it->second.first < best_rank) {
        best_rank = it->second.first;
        best_id = it->second.second;
        best_pos = p;
      }
    }
    if (best_id < 0) break;
    sym[best_pos] = best_id;
    sym.erase(sym.begin() + static_cast<std::ptrdiff_t>(best_pos) + 1);
  }
  return sym;
}

void BpeModel::tokenize(const std::string& word, std::vector<int64_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (auto it = vocab_.find(word); it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  constexpr size_t kMaxCachedWordBytes = 256, kMaxCacheEntries = 50000;
  const bool cacheable = word.size() <= kMaxCachedWordBytes;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (auto it = cache_.find(word); it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids = merge_word(word);
  out.insert(out.end(), ids.begin(), ids.end());
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (cache_.size() >= kMaxCacheEntries) cache_.clear();
    cache_.emplace(word, std::move(ids));
  }
}

}  // namespace lm::data::detail
