// libFuzzer target: the tokenizer-file loaders (tokenizer.json and BERT vocab.txt) on
// arbitrary bytes. The first byte picks the loader; a tokenizer that loads is exercised
// (encode, padding, to_json_string round trip) on a few fixed texts and on the input itself.
#include <cstdint>
#include <stdexcept>
#include <string>

#include "data/text/tokenizer.h"

namespace {
void exercise(const lm::data::Tokenizer& t, const std::string& extra) {
  for (const std::string& s : {std::string("Hello, world! tumour cells ünïcödé 中文"), std::string(""), extra.substr(0, 256)}) {
    auto ids = t.encode(s);
    auto e = t.encode_padded(s, 8, 10);
    if (!e.ids.empty() && e.ids.size() != e.attention_mask.size()) __builtin_trap();
    for (int64_t id : ids) (void)t.id_to_token(id);
    (void)t.tokenize(s);
  }
  (void)t.vocab_size();
  (void)t.pad_id();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool json = data[0] & 1;
  std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    lm::data::Tokenizer t = json ? lm::data::Tokenizer::from_json_string(text, "fuzz.json")
                                 : lm::data::Tokenizer::from_vocab_txt_string(text, "fuzz_vocab.txt");
    exercise(t, text);
    std::string again = t.to_json_string();
    lm::data::Tokenizer t2 = lm::data::Tokenizer::from_json_string(again, "round trip");
    exercise(t2, text);
  } catch (const std::exception&) {
  }
  return 0;
}
