// fnv1a64 / fnv1a64_text (see checksum.h): one byte at a time, as the reference defines it.
#include "data/checksum.h"

#include <cstdio>

namespace lm::data {

uint64_t fnv1a64(const void* data, size_t n, uint64_t h) {
  const unsigned char* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

std::string fnv1a64_text(uint64_t h) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "fnv1a64:%016llx", (unsigned long long)h);
  return buf;
}

}  // namespace lm::data
