// stb_image / stb_image_write behind data/slides/image_io.h. The stb implementations are
// compiled here, once for the whole project.
#include "data/slides/image_io.h"

#include <cstdio>
#include <cstring>
#include <stdexcept>

#define STBI_NO_HDR
#define STBI_NO_LINEAR
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_BMP
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
// stb's own code trips -Wextra (missing field initialisers, unused functions): not ours to fix.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-function"
#include <stb_image.h>
#include <stb_image_write.h>
#pragma GCC diagnostic pop

namespace lm::slides {

RgbImage read_image_file(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw std::runtime_error(path + ": cannot open: " + std::strerror(errno));
  int w = 0, h = 0, comp = 0;
  if (!stbi_info_from_file(f, &w, &h, &comp)) {
    std::fclose(f);
    throw std::runtime_error(path + ": not a readable PNG / JPEG / BMP image (" + stbi_failure_reason() + ")");
  }
  if (w <= 0 || h <= 0 || w > kMaxImageSide || h > kMaxImageSide || int64_t(w) * h > kMaxImagePixels) {
    std::fclose(f);
    throw std::runtime_error(path + ": image of " + std::to_string(w) + " x " + std::to_string(h) +
                             " pixels refused (at most " + std::to_string(kMaxImageSide) + " per side)");
  }
  int cw = 0, ch = 0, cc = 0;
  unsigned char* px = stbi_load_from_file(f, &cw, &ch, &cc, 4);
  std::fclose(f);
  if (!px) {
    const std::string why = stbi_failure_reason() ? stbi_failure_reason() : "";
    throw std::runtime_error(path + ": corrupt or truncated image" + (why.empty() ? "" : " (" + why + ")"));
  }
  if (cw != w || ch != h) {
    stbi_image_free(px);
    throw std::runtime_error(path + ": the image's header and its data disagree on its size");
  }
  RgbImage out;
  out.width = w;
  out.height = h;
  out.rgb.resize(size_t(w) * size_t(h) * 3);
  for (size_t i = 0, n = size_t(w) * size_t(h); i < n; ++i) {
    const unsigned a = px[4 * i + 3], white = 255 - a;  // straight alpha: c * a / 255 + 255 - a
    for (int c = 0; c < 3; ++c) out.rgb[3 * i + c] = uint8_t((px[4 * i + c] * a + 127) / 255 + white);
  }
  stbi_image_free(px);
  return out;
}

namespace {
void append(void* ctx, void* data, int size) { static_cast<std::string*>(ctx)->append((const char*)data, size); }

void check_encodable(const RgbImage& img, const char* what) {
  if (img.width <= 0 || img.height <= 0 || img.rgb.size() != size_t(img.width) * img.height * 3)
    throw std::runtime_error(std::string("cannot encode an empty or malformed image as ") + what);
}
}  // namespace

std::string encode_png(const RgbImage& img) {
  check_encodable(img, "PNG");
  std::string out;
  if (!stbi_write_png_to_func(append, &out, img.width, img.height, 3, img.rgb.data(), img.width * 3))
    throw std::runtime_error("PNG encoding failed");
  return out;
}

std::string encode_jpeg(const RgbImage& img, int quality) {
  check_encodable(img, "JPEG");
  std::string out;
  if (!stbi_write_jpg_to_func(append, &out, img.width, img.height, 3, img.rgb.data(), quality))
    throw std::runtime_error("JPEG encoding failed");
  return out;
}

}  // namespace lm::slides
