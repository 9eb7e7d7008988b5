// Internals of lm::data::Tokenizer shared by data/tokenizer*.cpp (not part of the public API).
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "data/text/tokenizer.h"

namespace lm::data::detail {

using ojson = nlohmann::json;

// Throws std::runtime_error("tokenizer file <origin>: <what>").
[[noreturn]] void fail(const std::string& origin, const std::string& what);

struct AddedToken {
  std::string content;
  int64_t id = -1;
  bool special = false;
  bool normalized = false;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
  std::string match_content;  // content, normalized if `normalized`
};

// Leftmost-longest matcher over UTF-8 for the added tokens (like HF's aho-corasick split).
struct AddedMatcher {
  std::array<std::vector<const AddedToken*>, 256> by_first{};  // longest first
  bool any = false;
  void add(const AddedToken* t);
  // Calls on_gap for the text between matches and appends the matched ids to out.
  void split(std::string_view s, std::vector<int64_t>& out,
             const std::function<void(std::string_view)>& on_gap) const;
};

struct NormalizerStep {
  enum class Kind { NFD, NFKD, NFC, NFKC, Lowercase, StripAccents, Bert, Strip, Prepend, Replace };
  Kind kind = Kind::NFD;
  // Bert
  bool clean_text = true, handle_chinese_chars = true, strip_accents = true, lowercase = true;
  // Strip
  bool strip_left = true, strip_right = true;
  // Prepend / Replace (plain string pattern only)
  std::u32string text, pattern;
};

struct PreTokenizerStep {
  enum class Kind { ByteLevel, Bert, WhitespaceSplit };
  Kind kind;
  bool add_prefix_space = true;
  bool use_regex = true;
};

class BpeModel {
 public:
  BpeModel(const ojson& model, const std::string& origin);
  void tokenize(const std::string& word, std::vector<int64_t>& out) const;
  const std::unordered_map<std::string, int64_t>& vocab() const { return vocab_; }

 private:
  std::vector<int32_t> merge_word(const std::string& word) const;
  std::unordered_map<std::string, int64_t> vocab_;
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges_;  // (a,b) -> (rank, merged id)
  std::optional<int32_t> unk_;
  std::string prefix_, suffix_;
  bool fuse_unk_ = false, byte_fallback_ = false, ignore_merges_ = false;
  mutable std::mutex cache_mu_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

class WordPieceModel {
 public:
  WordPieceModel(const ojson& model, const std::string& origin);
  void tokenize(const std::string& word, std::vector<int64_t>& out) const;
  const std::unordered_map<std::string, int64_t>& vocab() const { return vocab_; }

 private:
  std::unordered_map<std::string, int64_t> vocab_;
  int64_t unk_id_ = -1;
  std::string prefix_ = "##";
  size_t max_chars_ = 100;
};

// Byte-level BPE pre-tokenizer (GPT-2 regex split + bytes -> printable code points).
std::vector<std::u32string> byte_level_pre_tokenize(const std::u32string& text, bool add_prefix_space,
                                                    bool use_regex);
// Start/end of the GPT-2 regex matches covering `text` (exposed for tests).
std::vector<std::pair<size_t, size_t>> gpt2_split(const std::u32string& text);
std::vector<std::u32string> bert_pre_tokenize(const std::u32string& text);
std::u32string bert_normalize(const std::u32string& text, const NormalizerStep& opts);
// The tokenizer.json that HF's BertWordPieceTokenizer(vocab.txt) serialises to.
ojson wordpiece_json_from_vocab_txt(const std::string& text, const std::string& origin);

struct TokenizerImpl {
  std::string origin;
  ojson json;
  std::string kind;
  std::unique_ptr<BpeModel> bpe;
  std::unique_ptr<WordPieceModel> wordpiece;
  std::vector<NormalizerStep> normalizers;
  std::vector<PreTokenizerStep> pre_tokenizers;
  std::vector<AddedToken> added;  // sorted by id
  std::unordered_map<std::string, int64_t> added_ids;
  AddedMatcher raw_matcher, normalized_matcher;  // tokens with normalized false / true
  std::vector<std::string> id_to_token;
  // Post-processor template for one sequence: special ids, with -1 marking the sequence.
  std::vector<int64_t> single_template{-1};
  int64_t num_special = 0;
  int64_t pad_id = 0;
  int64_t vocab_size = 0;
  int64_t file_max_length = 0;

  const std::unordered_map<std::string, int64_t>& model_vocab() const {
    return bpe ? bpe->vocab() : wordpiece->vocab();
  }
  std::u32string normalize(std::u32string text) const;
  // Token ids of the text (no template), appended to out.
  void encode_text(std::string_view text, std::vector<int64_t>& out, bool* invalid_utf8) const;
  void encode_normalized_piece(const std::u32string& text, std::vector<int64_t>& out) const;
};

}  // namespace lm::data::detail
