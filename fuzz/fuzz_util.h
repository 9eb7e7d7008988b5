// Shared helpers for the libFuzzer targets (see tools/fuzz.sh): a per-process temporary file
// for readers that take a path. Built only by tools/fuzz.sh (clang++ -fsanitize=fuzzer).
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace lm::fuzz {

// <TMPDIR>/lm_fuzz_<tag>_<pid><ext>: unique per process (libFuzzer -jobs/-workers fork).
inline std::string temp_path(const char* tag, const char* ext) {
  const char* d = std::getenv("TMPDIR");
  return std::string(d && *d ? d : "/tmp") + "/lm_fuzz_" + tag + "_" + std::to_string(::getpid()) + ext;
}

// Writes the bytes to `path` (truncating). Aborts on I/O failure: that is an environment
// problem, not a finding.
inline void write_bytes(const std::string& path, const uint8_t* data, size_t size) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
}

// Reads every byte of a CPU tensor's storage so that ASan sees any out-of-range view.
template <class T>
inline uint64_t touch(const T& t) {
  if (!t.defined()) return 0;
  const auto* p = static_cast<const unsigned char*>(t.raw_data());
  uint64_t h = 0;
  for (int64_t i = 0; i < (int64_t)t.nbytes(); ++i) h = h * 131 + p[i];
  return h;
}

}  // namespace lm::fuzz
