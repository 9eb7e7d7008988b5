// FNV-1a 64 (Fowler, Noll, Vo; http://www.isthe.com/chongo/tech/comp/fnv/): the checksum that
// `train` records for the tensor data of each checkpoint it writes (data/formats/safetensors.h,
// kChecksumKey). It catches bytes damaged or changed after writing, not a deliberate forgery.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace lm::data {

inline constexpr uint64_t kFnv1a64Offset = 0xcbf29ce484222325ULL;

// The hash `h` continued over `n` bytes (start from kFnv1a64Offset).
uint64_t fnv1a64(const void* data, size_t n, uint64_t h = kFnv1a64Offset);

// "fnv1a64:" followed by the 16 lowercase hex digits of `h`.
std::string fnv1a64_text(uint64_t h);

}  // namespace lm::data
