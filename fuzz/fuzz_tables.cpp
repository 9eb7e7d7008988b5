// libFuzzer target: the label / split / prior readers of data/tables.h on arbitrary bytes
// (labels CSV, split JSON, instance-prior JSON, bag-prior CSV, raw CSV parsing). The first
// byte picks the reader; the rest is written to a temp file. Rejections are std::exceptions.
#include <cstdint>
#include <stdexcept>
#include <string>

#include "data/tables.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static const std::string path = lm::fuzz::temp_path("tables", ".txt");
  const uint8_t which = data[0] % 5;
  lm::fuzz::write_bytes(path, data + 1, size - 1);
  try {
    switch (which) {
      case 0: {
        auto labels = lm::data::read_labels_csv(path);
        int c = 0;
        for (auto& l : labels) c = std::max(c, std::min(l.label, 64) + 1);
        if (c >= 1) {
          lm::data::validate_labels(labels, c, path);
          auto s = lm::data::make_few_shot_splits(labels, c, 1, 2, 7);
          (void)s;
        }
        break;
      }
      case 1: {
        auto s = lm::data::read_split_json(path, (size - 1) % 3 == 0 ? 2 : 0);
        (void)s;
        break;
      }
      case 2: (void)lm::data::read_instance_prompts(path); break;
      case 3: (void)lm::data::read_bag_prompts_csv(path); break;
      case 4: (void)lm::data::parse_csv(std::string(reinterpret_cast<const char*>(data) + 1, size - 1), "fuzz"); break;
    }
  } catch (const std::exception&) {
  }
  return 0;
}
