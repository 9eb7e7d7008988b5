// libFuzzer target: lm::data::read_safetensors on arbitrary bytes (written to a temp file,
// since the reader memory-maps a path). Any std::exception is an accepted rejection; a crash,
// sanitizer report, leak or hang is a finding. Every loaded tensor is read end to end.
#include <cstdint>
#include <stdexcept>

#include "data/formats/safetensors.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = lm::fuzz::temp_path("safetensors", ".safetensors");
  lm::fuzz::write_bytes(path, data, size);
  try {
    lm::data::SafetensorsFile f = lm::data::read_safetensors(path);
    uint64_t h = 0;
    for (const auto& name : f.order) {
      const lm::Tensor& t = f.at(name);
      h += lm::fuzz::touch(t);
      if (t.numel() > 0 && t.numel() < 4096) h += (uint64_t)t.to(lm::DType::F32).numel();
    }
    (void)h;
  } catch (const std::exception&) {
  }
  return 0;
}
