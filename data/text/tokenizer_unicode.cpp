// Unicode helpers for the tokenizers; see tokenizer_unicode.h. All Unicode data (categories,
// decompositions, case mappings) comes from utf8proc.
#include "data/text/tokenizer_unicode.h"

#include <utf8proc.h>

#include <stdexcept>
#include <vector>

namespace lm::data::unicode {

namespace {

// Length of the well-formed UTF-8 sequence at s[i], or 0 if it is not well-formed.
size_t valid_sequence_length(std::string_view s, size_t i, char32_t* out) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {
    *out = b0;
    return 1;
  }
  size_t n;
  char32_t c;
  char32_t min;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    n = 2, c = b0 & 0x1F, min = 0x80;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    n = 3, c = b0 & 0x0F, min = 0x800;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    n = 4, c = b0 & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) return 0;
    c = (c << 6) | (b & 0x3F);
  }
  if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
  *out = c;
  return n;
}

std::u32string normalize(std::u32string_view s, int options) {
  if (s.empty()) return {};
  const std::string utf8 = encode_utf8(s);
  const auto opts = static_cast<utf8proc_option_t>(options | UTF8PROC_STABLE | UTF8PROC_DECOMPOSE);
  std::vector<utf8proc_int32_t> buf(s.size() * 2 + 8);
  for (;;) {
    const utf8proc_ssize_t n =
        utf8proc_decompose(reinterpret_cast<const utf8proc_uint8_t*>(utf8.data()),
                           static_cast<utf8proc_ssize_t>(utf8.size()), buf.data(),
                           static_cast<utf8proc_ssize_t>(buf.size()), opts);
    if (n < 0) throw std::runtime_error(std::string("unicode normalization: ") + utf8proc_errmsg(n));
    if (static_cast<size_t>(n) > buf.size()) {
      buf.resize(static_cast<size_t>(n));
      continue;
    }
    utf8proc_ssize_t len = n;
    if (options & UTF8PROC_COMPOSE) {
      len = utf8proc_normalize_utf32(buf.data(), n, opts);
      if (len < 0) throw std::runtime_error(std::string("unicode normalization: ") + utf8proc_errmsg(len));
    }
    std::u32string out;
    out.reserve(static_cast<size_t>(len));
    for (utf8proc_ssize_t k = 0; k < len; ++k) out.push_back(static_cast<char32_t>(buf[k]));
    return out;
  }
}

}  // namespace

std::u32string decode_utf8(std::string_view s, bool* had_invalid) {
  std::u32string out;
  out.reserve(s.size());
  bool bad = false;
  for (size_t i = 0; i < s.size();) {
    char32_t c;
    const size_t n = valid_sequence_length(s, i, &c);
    if (n == 0) {
      out.push_back(U'\uFFFD');
      bad = true;
      ++i;
    } else {
      out.push_back(c);
      i += n;
    }
  }
  if (had_invalid) *had_invalid = bad;
  return out;
}

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

std::string encode_utf8(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) append_utf8(out, c);
  return out;
}

std::string sanitize_utf8(std::string_view s, bool* had_invalid) {
  bool bad = false;
  std::string out;
  for (size_t i = 0; i < s.size();) {
    char32_t c;
    const size_t n = valid_sequence_length(s, i, &c);
    if (n == 0) {
      if (!bad) out.assign(s.substr(0, i));  // first invalid byte: copy the valid prefix
      bad = true;
      append_utf8(out, U'\uFFFD');
      ++i;
    } else {
      if (bad) out.append(s.substr(i, n));
      i += n;
    }
  }
  if (had_invalid) *had_invalid = bad;
  return bad ? out : std::string(s);
}

int category(char32_t c) { return utf8proc_category(static_cast<utf8proc_int32_t>(c)); }

bool is_letter(char32_t c) {
  const int k = category(c);
  return k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO;
}
bool is_number(char32_t c) {
  const int k = category(c);
  return k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO;
}
bool is_mark(char32_t c) {
  const int k = category(c);
  return k >= UTF8PROC_CATEGORY_MN && k <= UTF8PROC_CATEGORY_ME;
}
bool is_mark_nonspacing(char32_t c) { return category(c) == UTF8PROC_CATEGORY_MN; }
bool is_punctuation(char32_t c) {
  const int k = category(c);
  return k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO;
}
bool is_other(char32_t c) {
  const int k = category(c);
  return k == UTF8PROC_CATEGORY_CN || (k >= UTF8PROC_CATEGORY_CC && k <= UTF8PROC_CATEGORY_CO);
}
bool is_alphanumeric(char32_t c) { return is_letter(c) || is_number(c); }

bool is_white_space(char32_t c) {
  // PropList.txt White_Space (stable since Unicode 6.3).
  switch (c) {
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x20: case 0x85: case 0xA0:
    case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200A;
  }
}

std::u32string nfd(std::u32string_view s) { return normalize(s, 0); }
std::u32string nfkd(std::u32string_view s) { return normalize(s, UTF8PROC_COMPAT); }
std::u32string nfc(std::u32string_view s) { return normalize(s, UTF8PROC_COMPOSE); }
std::u32string nfkc(std::u32string_view s) { return normalize(s, UTF8PROC_COMPOSE | UTF8PROC_COMPAT); }

std::u32string lowercase(std::u32string_view s) {
  std::u32string out;
  out.reserve(s.size());
  for (char32_t c : s) {
    if (c == 0x130) {  // the only unconditional multi-character lowercase mapping
      out.push_back(U'i');
      out.push_back(0x307);
    } else {
      out.push_back(static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))));
    }
  }
  return out;
}

}  // namespace lm::data::unicode
