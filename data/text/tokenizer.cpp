// lm::data::Tokenizer: loading tokenizer.json / vocab.txt, added-token splitting, the
// normalizer and pre-tokenizer pipelines, truncation and the post-processor template.
// The models live in tokenizer_bpe.cpp and tokenizer_wordpiece.cpp.
#include "data/text/tokenizer.h"

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "data/text/tokenizer_impl.h"
#include "data/text/tokenizer_unicode.h"

namespace lm::data {

namespace uni = lm::data::unicode;
using detail::AddedToken;
using detail::NormalizerStep;
using detail::ojson;
using detail::PreTokenizerStep;
using detail::TokenizerImpl;

namespace detail {

void fail(const std::string& origin, const std::string& what) {
  throw std::runtime_error("tokenizer file " + origin + ": " + what);
}

namespace {

std::string type_of(const ojson& j, const std::string& origin, const char* section) {
  auto t = j.find("type");
  if (t == j.end() || !t->is_string()) fail(origin, std::string(section) + " has no \"type\"");
  return t->get<std::string>();
}

bool get_bool(const ojson& j, const char* key, bool def) {
  auto it = j.find(key);
  return (it == j.end() || it->is_null()) ? def : it->get<bool>();
}

void parse_normalizer(const ojson& n, const std::string& origin, std::vector<NormalizerStep>& out) {
  if (n.is_null()) return;
  const std::string type = type_of(n, origin, "normalizer");
  using K = NormalizerStep::Kind;
  NormalizerStep s;
  s.kind = K::NFD;
  if (type == "Sequence") {
    for (const auto& sub : n.at("normalizers")) parse_normalizer(sub, origin, out);
    return;
  } else if (type == "NFD") {
    s.kind = K::NFD;
  } else if (type == "NFKD") {
    s.kind = K::NFKD;
  } else if (type == "NFC") {
    s.kind = K::NFC;
  } else if (type == "NFKC") {
    s.kind = K::NFKC;
  } else if (type == "Lowercase") {
    s.kind = K::Lowercase;
  } else if (type == "StripAccents") {
    s.kind = K::StripAccents;
  } else if (type == "BertNormalizer") {
    s.kind = K::Bert;
    s.clean_text = get_bool(n, "clean_text", true);
    s.handle_chinese_chars = get_bool(n, "handle_chinese_chars", true);
    s.lowercase = get_bool(n, "lowercase", true);
    s.strip_accents = get_bool(n, "strip_accents", s.lowercase);
  } else if (type == "Strip") {
    s.kind = K::Strip;
    s.strip_left = get_bool(n, "strip_left", true);
    s.strip_right = get_bool(n, "strip_right", true);
  } else if (type == "Prepend") {
    s.kind = K::Prepend;
    s.text = uni::decode_utf8(n.at("prepend").get<std::string>());
  } else if (type == "Replace" && n.at("pattern").contains("String")) {
    s.kind = K::Replace;
    s.pattern = uni::decode_utf8(n.at("pattern").at("String").get<std::string>());
    s.text = uni::decode_utf8(n.at("content").get<std::string>());
    if (s.pattern.empty()) fail(origin, "Replace normalizer with an empty pattern");
  } else {
    fail(origin, "normalizer type '" + type + "' is not supported");
  }
  out.push_back(std::move(s));
}

void parse_pre_tokenizer(const ojson& p, const std::string& origin, std::vector<PreTokenizerStep>& out) {
  if (p.is_null()) return;
  const std::string type = type_of(p, origin, "pre_tokenizer");
  using K = PreTokenizerStep::Kind;
  if (type == "Sequence") {
    for (const auto& sub : p.at("pretokenizers")) parse_pre_tokenizer(sub, origin, out);
  } else if (type == "ByteLevel") {
    out.push_back({K::ByteLevel, get_bool(p, "add_prefix_space", true), get_bool(p, "use_regex", true)});
  } else if (type == "BertPreTokenizer") {
    out.push_back({K::Bert, false, false});
  } else if (type == "WhitespaceSplit") {
    out.push_back({K::WhitespaceSplit, false, false});
  } else {
    fail(origin, "pre_tokenizer type '" + type + "' is not supported");
  }
}

// The single-sequence template of a post-processor: special ids with -1 for the sequence.
std::vector<int64_t> parse_post_processor(const ojson& p, const std::string& origin) {
  if (p.is_null()) return {-1};
  const std::string type = type_of(p, origin, "post_processor");
  if (type == "TemplateProcessing") {
    std::vector<int64_t> t;
    const ojson& specials = p.contains("special_tokens") ? p.at("special_tokens") : ojson::object();
    for (const auto& item : p.at("single")) {
      if (item.contains("Sequence")) {
        if (item.at("Sequence").at("id").get<std::string>() != "A") {
          fail(origin, "post_processor single template uses a sequence other than $A");
        }
        t.push_back(-1);
      } else if (item.contains("SpecialToken")) {
        const std::string name = item.at("SpecialToken").at("id").get<std::string>();
        if (!specials.contains(name)) fail(origin, "template special token '" + name + "' is not in special_tokens");
        for (const auto& id : specials.at(name).at("ids")) t.push_back(id.get<int64_t>());
      } else {
        fail(origin, "post_processor template item is neither Sequence nor SpecialToken");
      }
    }
    if (std::count(t.begin(), t.end(), -1) != 1) fail(origin, "post_processor single template must contain $A once");
    return t;
  }
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    return {p.at("cls").at(1).get<int64_t>(), -1, p.at("sep").at(1).get<int64_t>()};
  }
  if (type == "ByteLevel") return {-1};
  if (type == "Sequence") {
    std::vector<int64_t> t{-1};
    for (const auto& sub : p.at("processors")) {
      std::vector<int64_t> outer = parse_post_processor(sub, origin), next;
      for (int64_t id : outer) {
        if (id == -1) {
          next.insert(next.end(), t.begin(), t.end());
        } else {
          next.push_back(id);
        }
      }
      t = std::move(next);
    }
    return t;
  }
  fail(origin, "post_processor type '" + type + "' is not supported");
}

}  // namespace

void AddedMatcher::add(const AddedToken* t) {
  if (t->match_content.empty()) return;
  auto& v = by_first[static_cast<unsigned char>(t->match_content[0])];
  v.push_back(t);
  std::stable_sort(v.begin(), v.end(), [](const AddedToken* a, const AddedToken* b) {
    return a->match_content.size() > b->match_content.size();
  });
  any = true;
}

void AddedMatcher::split(std::string_view s, std::vector<int64_t>& out,
                         const std::function<void(std::string_view)>& on_gap) const {
  if (!any) {
    if (!s.empty()) on_gap(s);
    return;
  }
  auto ends_with_word = [&](size_t pos) {  // char before pos is alphanumeric
    if (pos == 0) return false;
    size_t k = pos - 1;
    while (k > 0 && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
    const std::u32string c = uni::decode_utf8(s.substr(k, pos - k));
    return !c.empty() && uni::is_alphanumeric(c[0]);
  };
  auto starts_with_word = [&](size_t pos) {
    if (pos >= s.size()) return false;
    const std::u32string c = uni::decode_utf8(s.substr(pos, std::min<size_t>(4, s.size() - pos)));
    return !c.empty() && uni::is_alphanumeric(c[0]);
  };
  size_t start_offset = 0;
  for (size_t i = 0; i < s.size();) {
    const AddedToken* hit = nullptr;
    for (const AddedToken* t : by_first[static_cast<unsigned char>(s[i])]) {
      if (s.compare(i, t->match_content.size(), t->match_content) == 0) {
        hit = t;
        break;
      }
    }
    if (!hit) {
      ++i;
      continue;
    }
    size_t start = i, stop = i + hit->match_content.size();
    i = stop;
    if (hit->single_word && (ends_with_word(start) || starts_with_word(stop))) continue;
    if (hit->lstrip) {
      const std::u32string before = uni::decode_utf8(s.substr(start_offset, start - start_offset));
      size_t k = before.size();
      while (k > 0 && uni::is_white_space(before[k - 1])) --k;
      start = start_offset + uni::encode_utf8(std::u32string_view(before).substr(0, k)).size();
    }
    if (hit->rstrip) {
      const std::u32string after = uni::decode_utf8(s.substr(stop));
      size_t k = 0;
      while (k < after.size() && uni::is_white_space(after[k])) ++k;
      stop += uni::encode_utf8(std::u32string_view(after).substr(0, k)).size();
      i = stop;
    }
    if (start_offset < start) on_gap(s.substr(start_offset, start - start_offset));
    out.push_back(hit->id);
    start_offset = stop;
  }
  if (start_offset < s.size()) on_gap(s.substr(start_offset));
}

std::u32string TokenizerImpl::normalize(std::u32string text) const {
  using K = NormalizerStep::Kind;
  for (const auto& n : normalizers) {
    switch (n.kind) {
      case K::NFD: text = uni::nfd(text); break;
      case K::NFKD: text = uni::nfkd(text); break;
      case K::NFC: text = uni::nfc(text); break;
      case K::NFKC: text = uni::nfkc(text); break;
      case K::Lowercase: text = uni::lowercase(text); break;
      case K::StripAccents: std::erase_if(text, [](char32_t c) { return uni::is_mark(c); }); break;
      case K::Bert: text = bert_normalize(text, n); break;
      case K::Strip: {
        size_t a = 0, b = text.size();
        if (n.strip_left) while (a < b && uni::is_white_space(text[a])) ++a;
        if (n.strip_right) while (b > a && uni::is_white_space(text[b - 1])) --b;
        text = text.substr(a, b - a);
        break;
      }
      case K::Prepend:
        if (!text.empty()) text = n.text + text;
        break;
      case K::Replace: {
        std::u32string r;
        for (size_t i = 0; i < text.size();) {
          if (text.compare(i, n.pattern.size(), n.pattern) == 0) {
            r += n.text;
            i += n.pattern.size();
          } else {
            r.push_back(text[i++]);
          }
        }
        text = std::move(r);
        break;
      }
    }
  }
  return text;
}

void TokenizerImpl::encode_normalized_piece(const std::u32string& text, std::vector<int64_t>& out) const {
  if (text.empty()) return;
  std::vector<std::u32string> pieces{text};
  using K = PreTokenizerStep::Kind;
  for (const auto& step : pre_tokenizers) {
    std::vector<std::u32string> next;
    for (const auto& p : pieces) {
      std::vector<std::u32string> sub;
      switch (step.kind) {
        case K::ByteLevel: sub = byte_level_pre_tokenize(p, step.add_prefix_space, step.use_regex); break;
        case K::Bert: sub = bert_pre_tokenize(p); break;
        case K::WhitespaceSplit: {
          std::u32string cur;
          for (char32_t c : p) {
            if (uni::is_white_space(c)) {
              if (!cur.empty()) sub.push_back(std::move(cur));
              cur.clear();
            } else {
              cur.push_back(c);
            }
          }
          if (!cur.empty()) sub.push_back(std::move(cur));
          break;
        }
      }
      for (auto& s : sub) {
        if (!s.empty()) next.push_back(std::move(s));
      }
    }
    pieces = std::move(next);
  }
  for (const auto& p : pieces) {
    const std::string word = uni::encode_utf8(p);
    if (bpe) {
      bpe->tokenize(word, out);
    } else {
      wordpiece->tokenize(word, out);
    }
  }
}

void TokenizerImpl::encode_text(std::string_view text, std::vector<int64_t>& out, bool* invalid_utf8) const {
  const AddedMatcher& raw = raw_matcher;
  const AddedMatcher& normalized = normalized_matcher;
  const std::string s = uni::sanitize_utf8(text, invalid_utf8);
  raw.split(s, out, [&](std::string_view gap) {
    const std::u32string norm = normalize(uni::decode_utf8(gap));
    if (!normalized.any) {
      encode_normalized_piece(norm, out);
      return;
    }
    const std::string norm8 = uni::encode_utf8(norm);
    normalized.split(norm8, out, [&](std::string_view g) { encode_normalized_piece(uni::decode_utf8(g), out); });
  });
}

namespace {

std::shared_ptr<TokenizerImpl> build(ojson j, const std::string& origin) {
  if (!j.is_object()) fail(origin, "is not a tokenizer.json (the top level is not a JSON object)");
  auto impl = std::make_shared<TokenizerImpl>();
  impl->origin = origin;
  auto m = j.find("model");
  if (m == j.end() || !m->is_object()) fail(origin, "JSON has no \"model\" object (not a Hugging Face tokenizer.json?)");
  std::string type;
  if (auto t = m->find("type"); t != m->end() && t->is_string()) {
    type = t->get<std::string>();
  } else if (m->contains("merges")) {
    type = "BPE";
  } else if (m->contains("continuing_subword_prefix") && m->contains("max_input_chars_per_word")) {
    type = "WordPiece";
  } else {
    fail(origin, "model has no \"type\" and is neither BPE nor WordPiece");
  }
  if (type == "BPE") {
    impl->kind = "bpe";
    impl->bpe = std::make_unique<detail::BpeModel>(*m, origin);
  } else if (type == "WordPiece") {
    impl->kind = "wordpiece";
    impl->wordpiece = std::make_unique<detail::WordPieceModel>(*m, origin);
  } else {
    fail(origin, "model type '" + type + "' is not supported (only BPE and WordPiece)");
  }
  parse_normalizer(j.value("normalizer", ojson()), origin, impl->normalizers);
  parse_pre_tokenizer(j.value("pre_tokenizer", ojson()), origin, impl->pre_tokenizers);
  impl->single_template = parse_post_processor(j.value("post_processor", ojson()), origin);
  impl->num_special = static_cast<int64_t>(impl->single_template.size()) - 1;

  if (auto a = j.find("added_tokens"); a != j.end() && !a->is_null()) {
    for (const auto& e : *a) {
      AddedToken t;
      t.id = e.at("id").get<int64_t>();
      t.content = e.at("content").get<std::string>();
      t.special = get_bool(e, "special", false);
      t.normalized = get_bool(e, "normalized", !t.special);
      t.lstrip = get_bool(e, "lstrip", false);
      t.rstrip = get_bool(e, "rstrip", false);
      t.single_word = get_bool(e, "single_word", false);
      if (t.id < 0) fail(origin, "added token '" + t.content + "' has a negative id");
      t.match_content = t.normalized ? uni::encode_utf8(impl->normalize(uni::decode_utf8(t.content))) : t.content;
      impl->added_ids[t.content] = t.id;
      impl->added.push_back(std::move(t));
    }
    std::stable_sort(impl->added.begin(), impl->added.end(),
                     [](const AddedToken& x, const AddedToken& y) { return x.id < y.id; });
    for (const auto& t : impl->added) (t.normalized ? impl->normalized_matcher : impl->raw_matcher).add(&t);
  }

  int64_t max_id = -1;
  for (const auto& [tok, id] : impl->model_vocab()) {
    if (id < 0) fail(origin, "vocabulary token '" + tok + "' has a negative id");
    max_id = std::max(max_id, id);
  }
  for (const auto& t : impl->added) max_id = std::max(max_id, t.id);
  impl->vocab_size = max_id + 1;
  impl->id_to_token.assign(static_cast<size_t>(impl->vocab_size), std::string());
  for (const auto& [tok, id] : impl->model_vocab()) impl->id_to_token[static_cast<size_t>(id)] = tok;
  for (const auto& t : impl->added) impl->id_to_token[static_cast<size_t>(t.id)] = t.content;
  for (int64_t id : impl->single_template) {
    if (id < -1 || id >= impl->vocab_size) fail(origin, "post_processor uses id " + std::to_string(id) + " outside the vocabulary");
  }

  if (auto t = j.find("truncation"); t != j.end() && t->is_object()) {
    impl->file_max_length = t->value("max_length", int64_t{0});
  }
  impl->pad_id = -1;
  if (auto p = j.find("padding"); p != j.end() && p->is_object() && p->contains("pad_id")) {
    impl->pad_id = p->at("pad_id").get<int64_t>();
  }
  for (const char* name : {"[PAD]", "<pad>", "<|pad|>"}) {
    if (impl->pad_id >= 0) break;
    if (auto it = impl->added_ids.find(name); it != impl->added_ids.end()) {
      impl->pad_id = it->second;
    } else if (auto iv = impl->model_vocab().find(name); iv != impl->model_vocab().end()) {
      impl->pad_id = iv->second;
    }
  }
  if (impl->pad_id < 0) impl->pad_id = 0;
  impl->json = std::move(j);
  return impl;
}

std::shared_ptr<TokenizerImpl> build_checked(ojson j, const std::string& origin) {
  try {
    return build(std::move(j), origin);
  } catch (const nlohmann::json::exception& e) {
    fail(origin, std::string("malformed tokenizer.json: ") + e.what());
  }
}

}  // namespace
}  // namespace detail

Tokenizer Tokenizer::from_json_string(const std::string& json, const std::string& origin_name) {
  ojson j;
  try {
    j = ojson::parse(json);
  } catch (const ojson::parse_error& e) {
    detail::fail(origin_name, "is not valid JSON (parse error at byte " + std::to_string(e.byte) + ")");
  }
  return Tokenizer(detail::build_checked(std::move(j), origin_name));
}

Tokenizer Tokenizer::from_vocab_txt_string(const std::string& vocab_txt, const std::string& origin_name) {
  return Tokenizer(detail::build_checked(detail::wordpiece_json_from_vocab_txt(vocab_txt, origin_name), origin_name));
}

Tokenizer Tokenizer::from_file(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path p(path);
  if (fs::is_directory(p, ec)) {
    if (fs::exists(p / "tokenizer.json")) return from_file((p / "tokenizer.json").string());
    if (fs::exists(p / "vocab.txt")) return from_file((p / "vocab.txt").string());
    detail::fail(path, "is a directory without tokenizer.json or vocab.txt");
  }
  if (!fs::exists(p, ec)) detail::fail(path, "does not exist");
  std::ifstream f(p, std::ios::binary);
  if (!f) detail::fail(path, "cannot be opened for reading");
  std::stringstream ss;
  ss << f.rdbuf();
  if (f.bad()) detail::fail(path, "read error");
  if (p.extension() == ".txt") return from_vocab_txt_string(ss.str(), path);
  return from_json_string(ss.str(), path);
}

std::string Tokenizer::to_json_string() const { return impl_->json.dump(); }

Encoding Tokenizer::encode_full(std::string_view text, int64_t max_length) const {
  Encoding e;
  std::vector<int64_t> content;
  impl_->encode_text(text, content, &e.invalid_utf8);
  const int64_t nspecial = impl_->num_special;
  e.untruncated_length = static_cast<int64_t>(content.size()) + nspecial;
  if (max_length > 0) {
    if (max_length < nspecial) {
      throw std::invalid_argument("tokenizer " + impl_->origin + ": max_length " + std::to_string(max_length) +
                                  " is smaller than the " + std::to_string(nspecial) + " special tokens");
    }
    const auto allowed = static_cast<size_t>(max_length - nspecial);
    if (content.size() > allowed) {
      content.resize(allowed);
      e.truncated = true;
    }
  }
  e.ids.reserve(content.size() + static_cast<size_t>(nspecial));
  for (int64_t id : impl_->single_template) {
    if (id == -1) {
      e.ids.insert(e.ids.end(), content.begin(), content.end());
    } else {
      e.ids.push_back(id);
    }
  }
  e.attention_mask.assign(e.ids.size(), 1);
  return e;
}

std::vector<int64_t> Tokenizer::encode(std::string_view text, int64_t max_length) const {
  return encode_full(text, max_length).ids;
}

Encoding Tokenizer::encode_padded(std::string_view text, int64_t max_length, int64_t pad_to) const {
  Encoding e = encode_full(text, max_length);
  if (pad_to > 0 && static_cast<int64_t>(e.ids.size()) < pad_to) {
    e.ids.resize(static_cast<size_t>(pad_to), impl_->pad_id);
    e.attention_mask.resize(static_cast<size_t>(pad_to), 0);
  }
  return e;
}

std::vector<std::string> Tokenizer::tokenize(std::string_view text) const {
  std::vector<int64_t> ids;
  impl_->encode_text(text, ids, nullptr);
  std::vector<std::string> out;
  out.reserve(ids.size());
  for (int64_t id : ids) out.push_back(id_to_token(id));
  return out;
}

int64_t Tokenizer::pad_id() const { return impl_->pad_id; }
int64_t Tokenizer::vocab_size() const { return impl_->vocab_size; }
std::string Tokenizer::kind() const { return impl_->kind; }
int64_t Tokenizer::num_special_tokens() const { return impl_->num_special; }
int64_t Tokenizer::file_max_length() const { return impl_->file_max_length; }
const std::string& Tokenizer::origin() const { return impl_->origin; }

int64_t Tokenizer::token_to_id(const std::string& token) const {
  if (auto it = impl_->added_ids.find(token); it != impl_->added_ids.end()) return it->second;
  const auto& v = impl_->model_vocab();
  if (auto it = v.find(token); it != v.end()) return it->second;
  return -1;
}

std::string Tokenizer::id_to_token(int64_t id) const {
  if (id < 0 || id >= impl_->vocab_size) return {};
  return impl_->id_to_token[static_cast<size_t>(id)];
}

}  // namespace lm::data
