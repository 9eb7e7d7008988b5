// Where tools/setup.sh installs what the binary loads by name (encoders/, tokenizers/) and where
// text embeddings are cached (embeddings/): $LIBRAMIL_HOME, else ~/.cache/libramil.
#pragma once
#include <cstdlib>
#include <filesystem>
#include <string>

namespace lm::data {

inline std::string libramil_home() {
  if (const char* h = std::getenv("LIBRAMIL_HOME"); h && *h) return h;
  const char* user_home = std::getenv("HOME");
  return (std::filesystem::path(user_home && *user_home ? user_home : ".") / ".cache" / "libramil").string();
}

}  // namespace lm::data
