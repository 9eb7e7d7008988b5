// Plain image files through stb_image / stb_image_write: decoding PNG / JPEG / BMP into RGB
// (dimensions checked before any pixel is decoded, so a file that lies about its size is refused,
// not allocated), and encoding RGB as PNG or JPEG into memory for atomic writes.
#pragma once
#include <string>

#include "data/slides/image.h"

namespace lm::slides {

// Largest plain image accepted, in pixels per side and in total.
inline constexpr int kMaxImageSide = 1 << 16;
inline constexpr int64_t kMaxImagePixels = int64_t(1) << 28;

// Decodes an image file into RGB (an alpha channel is composited onto white). Throws naming the
// file: missing, not an image, truncated or corrupt, or larger than the limits above.
RgbImage read_image_file(const std::string& path);

// Encodes an image; throws on failure. `quality` 1..100 for JPEG.
std::string encode_png(const RgbImage& img);
std::string encode_jpeg(const RgbImage& img, int quality = 90);

}  // namespace lm::slides
