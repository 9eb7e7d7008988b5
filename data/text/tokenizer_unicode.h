// Unicode helpers for the text tokenizers (data/tokenizer*.cpp): UTF-8 decoding with
// replacement of invalid bytes, encoding, general categories / NFD / lowercase through
// utf8proc, and the few character classes the Hugging Face `tokenizers` pipeline uses.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace lm::data::unicode {

// Decodes UTF-8. Every byte that does not start a well-formed sequence (stray continuation
// bytes, truncated or overlong sequences, surrogates, > U+10FFFF) becomes one U+FFFD and
// decoding resumes at the next byte. `*had_invalid` (if given) is set when that happened.
std::u32string decode_utf8(std::string_view s, bool* had_invalid = nullptr);
std::string encode_utf8(std::u32string_view s);
void append_utf8(std::string& out, char32_t c);
// Valid UTF-8 for any input (same replacement rule as decode_utf8).
std::string sanitize_utf8(std::string_view s, bool* had_invalid = nullptr);

// General category as utf8proc_category_t (0 = Cn ... 29 = Co).
int category(char32_t c);
bool is_letter(char32_t c);       // L*
bool is_number(char32_t c);       // N*
bool is_mark(char32_t c);         // M* (Mn, Mc, Me)
bool is_mark_nonspacing(char32_t c);  // Mn
bool is_punctuation(char32_t c);  // P*
bool is_other(char32_t c);        // C* (Cc, Cf, Cs, Co, Cn)
// The Unicode White_Space property (Rust's char::is_whitespace, Oniguruma's \s).
bool is_white_space(char32_t c);
bool is_alphanumeric(char32_t c);  // L* or N*

std::u32string nfd(std::u32string_view s);
std::u32string nfkd(std::u32string_view s);
std::u32string nfc(std::u32string_view s);
std::u32string nfkc(std::u32string_view s);
// Full lowercase mapping char by char, as Rust's char::to_lowercase (U+0130 -> "i\u0307").
std::u32string lowercase(std::u32string_view s);

}  // namespace lm::data::unicode
