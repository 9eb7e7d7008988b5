// `libramil tokenize`: token ids of prompts with a tokenizer file, for checking against Hugging Face.
#include <iostream>

#include "apps/commands.h"
#include "data/text/tokenizer.h"

namespace lm::app {

Runner add_tokenize(CLI::App& app) {
  struct Flags {
    std::string tokenizer;
    int64_t max_length = 0;
  };
  auto f = std::make_shared<Flags>();
  app.add_option("--tokenizer", f->tokenizer, "tokenizer.json (byte-level BPE or WordPiece) or vocab.txt")->required()->check(CLI::ExistingFile);
  app.add_option("--max-length", f->max_length, "truncate to this many ids incl. specials (0 = no limit)")->capture_default_str();
  return [f] {
    data::Tokenizer tok = data::Tokenizer::from_file(f->tokenizer);
    std::string line;
    bool warned = false;
    while (std::getline(std::cin, line)) {
      data::Encoding e = tok.encode_full(line, f->max_length);
      if (e.truncated && !warned) {
        std::cerr << "libramil tokenize: note: lines longer than " << f->max_length << " tokens are truncated\n";
        warned = true;
      }
      for (size_t i = 0; i < e.ids.size(); ++i) std::cout << (i ? " " : "") << e.ids[i];
      std::cout << "\n";
    }
    return 0;
  };
}

}  // namespace lm::app
