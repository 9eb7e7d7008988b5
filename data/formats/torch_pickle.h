// The restricted pickle interpreter behind the .pt feature reader: it understands only the
// opcodes torch.save uses for one plain tensor and refuses every other global, so reading a
// file never executes anything. Errors are one line, "file <path>: <problem>".
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tensor/dtype.h"

namespace lm::data {

// The tensor description a torch.save pickle of one plain tensor encodes: its storage (key
// in the archive's data/ folder, dtype, element count) and the view into it.
struct PtTensor {
  DType dtype = DType::F32;
  std::string key;
  int64_t storage_numel = 0, offset = 0;
  std::vector<int64_t> sizes, strides;
};

// Interprets `pickle` (the archive's data.pkl, read from `path`).
PtTensor unpickle_tensor(const std::string& path, const std::string& pickle);

}  // namespace lm::data
