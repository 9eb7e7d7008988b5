// Text tokenizers compatible with Hugging Face `tokenizers`: byte-level BPE (GPT-2 style, as
// in CONCH's tokenizer) and WordPiece (BERT / all-MiniLM-L6-v2), loaded from a tokenizer.json
// or a BERT vocab.txt. See docs/tokenizers.md for what is implemented and how it is checked.
//
// Pipeline (same order as HF): split the input on added/special tokens -> normalizer ->
// pre-tokenizer -> model (BPE merges / WordPiece) -> truncation -> post-processor template.
// Invalid UTF-8 input never throws: each offending byte is replaced by U+FFFD first.
// A Tokenizer is cheap to copy (shared, immutable state) and safe to use from several threads.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace lm::data {

namespace detail {
struct TokenizerImpl;
}

struct Encoding {
  std::vector<int64_t> ids;
  std::vector<int64_t> attention_mask;  // 1 for real tokens, 0 for padding
  bool truncated = false;               // the text was cut to fit max_length
  bool invalid_utf8 = false;            // invalid bytes were replaced by U+FFFD
  int64_t untruncated_length = 0;       // token count (with specials) before truncation
};

class Tokenizer {
 public:
  // A Hugging Face tokenizer.json (model BPE or WordPiece) or, for a *.txt path, a BERT
  // vocab.txt (WordPiece with BertWordPieceTokenizer's uncased defaults).
  static Tokenizer from_file(const std::string& path);
  // A tokenizer.json held in memory; `origin_name` names it in error messages.
  static Tokenizer from_json_string(const std::string& json, const std::string& origin_name);
  // A vocab.txt held in memory (one token per line).
  static Tokenizer from_vocab_txt_string(const std::string& vocab_txt, const std::string& origin_name);

  // tokenizer.json text that from_json_string (and HF's Tokenizer.from_str) loads back into an
  // equivalent tokenizer; for vocab.txt input, the equivalent WordPiece tokenizer.json.
  std::string to_json_string() const;

  // Token ids with the special tokens of the post-processor template. If max_length > 0 the
  // sequence is cut (keeping the template's special tokens, e.g. the end token) to at most
  // max_length ids. No padding.
  std::vector<int64_t> encode(std::string_view text, int64_t max_length = 0) const;
  // Same, with the truncation flag and an all-ones attention mask.
  Encoding encode_full(std::string_view text, int64_t max_length = 0) const;
  // encode_full, then right-padded with pad_id() up to pad_to (if pad_to > 0); mask 1/0.
  Encoding encode_padded(std::string_view text, int64_t max_length, int64_t pad_to) const;
  // Token strings of the text without the template's special tokens (for debugging).
  std::vector<std::string> tokenize(std::string_view text) const;

  // Id used for padding: the file's padding.pad_id, else the id of [PAD] / <pad> / <|pad|>, else 0.
  int64_t pad_id() const;
  // One past the largest id of the vocabulary and the added tokens (embedding table rows).
  int64_t vocab_size() const;
  std::string kind() const;  // "bpe" | "wordpiece"
  int64_t token_to_id(const std::string& token) const;  // -1 if absent
  std::string id_to_token(int64_t id) const;            // "" if absent
  // Number of ids the template adds around the text (2 for "<start> $A <end>", "[CLS] $A [SEP]").
  int64_t num_special_tokens() const;
  // truncation.max_length stored in the tokenizer.json, 0 if none (informational; encode only
  // truncates with its own max_length argument).
  int64_t file_max_length() const;
  const std::string& origin() const;

 private:
  explicit Tokenizer(std::shared_ptr<const detail::TokenizerImpl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const detail::TokenizerImpl> impl_;
};

}  // namespace lm::data
