// libFuzzer target: plain image files as `libramil patch` reads them (data/slides/image_io.h:
// PNG / JPEG / BMP through stb_image, sizes checked before decoding), then, when one decodes,
// the tissue segmentation and the patch-fraction grid on it (data/slides/tissue.h) with options
// taken from the first byte. Rejections are std::exceptions; anything else is a finding.
#include <cstdint>
#include <stdexcept>
#include <string>

#include "data/slides/image_io.h"
#include "data/slides/tissue.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  static const std::string path = lm::fuzz::temp_path("image", ".png");
  lm::fuzz::write_bytes(path, data + 1, size - 1);
  try {
    lm::slides::RgbImage img = lm::slides::read_image_file(path);
    if (img.pixel_count() > (size_t(1) << 20)) return 0;  // keep each run short
    lm::slides::TissueOptions o;
    o.channel = data[0] & 1 ? "otsu-grey" : "saturation";
    o.median = 1 + 2 * ((data[0] >> 1) & 3);
    o.close_radius = (data[0] >> 3) & 3;
    o.keep_pen = data[0] & 32;
    o.min_tissue_area_mm2 = (data[0] & 64) ? 0 : 1e-4;
    const double d = 1.0 + (data[0] >> 7);
    const auto t = lm::slides::segment_tissue(img, d, d, 0.5, o);
    const lm::slides::TissueFraction frac(t.mask, d, d);
    double sum = 0;
    for (int64_t y = 0; y + 3 <= int64_t(img.height * d); y += 3)
      for (int64_t x = 0; x + 3 <= int64_t(img.width * d); x += 3) sum += frac(x, y, 3);
    (void)sum;
    (void)lm::slides::encode_jpeg(img, 80);
  } catch (const std::exception&) {
  }
  return 0;
}
