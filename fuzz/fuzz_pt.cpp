// libFuzzer target: the PyTorch .pt feature-bag reader (minimal zip reader + restricted
// pickle interpreter) on arbitrary bytes, through read_feature_bag and probe_feature_bag.
// Rejections are std::exceptions; crashes, sanitizer reports, leaks, OOMs are findings.
#include <cstdint>
#include <stdexcept>

#include "data/feature_bag.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = lm::fuzz::temp_path("pt", ".pt");
  lm::fuzz::write_bytes(path, data, size);
  try {
    lm::data::BagInfo info = lm::data::probe_feature_bag(path);
    (void)info;
  } catch (const std::exception&) {
  }
  for (lm::DType keep : {lm::DType::F32, lm::DType::F16}) {
    try {
      lm::data::FeatureBag b = lm::data::read_feature_bag(path, keep);
      if (b.features.dim() != 2 || !b.features.is_contiguous()) __builtin_trap();
      (void)lm::fuzz::touch(b.features);
    } catch (const std::exception&) {
    }
  }
  return 0;
}
