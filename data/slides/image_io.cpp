// stb_image / stb_image_write behind data/slides/image_io.h. The stb implementations are
// compiled here, once for the whole project. With zlib (LIBRAMIL_WITH_ZLIB) the PNG writer's
// deflate is zlib's, several times faster than stb's own for the same kind of output.
#include "data/slides/image_io.h"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#define STBI_NO_HDR
#define STBI_NO_LINEAR
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_BMP
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#ifdef LIBRAMIL_WITH_ZLIB
#include <zlib.h>
// stb_image_write's hook for the zlib stream of a PNG: the buffer is released with STBIW_FREE
// (free), so it comes from malloc. Level 3 whatever stb's level asks: on a 2221 x 1783 heatmap
// about 2x faster than zlib's default 6 for a file 4% larger.
static unsigned char* lm_png_deflate(unsigned char* data, int len, int* out_len, int /*quality*/) {
  uLongf size = compressBound(uLong(len));
  auto* out = static_cast<unsigned char*>(std::malloc(size));
  if (!out) return nullptr;
  if (compress2(out, &size, data, uLong(len), 3) != Z_OK) {
    std::free(out);
    return nullptr;
  }
  *out_len = int(size);
  return out;
}
#define STBIW_ZLIB_COMPRESS lm_png_deflate
#endif
// stb's own code trips -Wextra (missing field initialisers, unused functions): not ours to fix.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-function"
#include <stb_image.h>
#include <stb_image_write.h>
#pragma GCC diagnostic pop

namespace lm::slides {

namespace {

// A PNG's chunks must each fit in the file: stb_image grows its buffer to a chunk's declared
// length before reading it, so a file that lies there would make it allocate gigabytes.
bool png_chunks_fit(const std::string& bytes) {
  if (bytes.size() < 8 || bytes.compare(0, 8, "\x89PNG\r\n\x1a\n") != 0) return true;  // not a PNG
  size_t at = 8;
  while (at + 8 <= bytes.size()) {
    const auto* p = reinterpret_cast<const unsigned char*>(bytes.data() + at);
    const uint64_t len = uint64_t(p[0]) << 24 | uint64_t(p[1]) << 16 | uint64_t(p[2]) << 8 | p[3];
    if (len > bytes.size() - at - 8) return false;
    if (bytes.compare(at + 4, 4, "IEND") == 0) return true;
    at += 8 + len + 4;  // length, type, data, CRC
  }
  return true;  // ends early: stb reports the truncation
}

// A JPEG's Huffman tables (DHT segments) must each hold at most 256 codes: the stb_image that
// Debian ships writes past its code-size array on a table declaring more (found by fuzzing).
// Walks the marker segments, skipping entropy-coded data between them.
bool jpeg_tables_fit(const std::string& b) {
  auto u8 = [&](size_t i) { return unsigned(static_cast<unsigned char>(b[i])); };
  // SOI as stb_image finds it: 0xFF, any run of 0xFF fill bytes, then 0xD8.
  size_t at = 0;
  if (b.empty() || u8(0) != 0xFF) return true;  // not a JPEG
  while (at < b.size() && u8(at) == 0xFF) ++at;
  if (at >= b.size() || u8(at) != 0xD8) return true;
  ++at;
  while (at + 4 <= b.size()) {
    if (u8(at) != 0xFF) {  // entropy-coded data: find the next marker
      ++at;
      continue;
    }
    const unsigned m = u8(at + 1);
    if (m == 0xFF || m == 0x00 || m == 0x01 || (m >= 0xD0 && m <= 0xD7)) {  // fill, stuffed byte, TEM, RSTn
      at += m == 0xFF ? 1 : 2;
      continue;
    }
    if (m == 0xD9) return true;  // EOI
    const size_t len = u8(at + 2) << 8 | u8(at + 3);
    if (len < 2) return true;  // stb refuses it itself
    if (m == 0xC4) {
      // As stb reads it: tables one after another while the declared length lasts, each table's
      // 16 counts read whatever that length says (bytes past the end of the file read as 0).
      long left = long(len) - 2;
      for (size_t p = at + 4; left > 0;) {
        unsigned n = 0;
        for (size_t i = p + 1; i <= p + 16; ++i) n += i < b.size() ? u8(i) : 0;
        if (n > 256) return false;
        p += 17 + n;
        left -= 17 + long(n);
      }
      if (left != 0) return true;  // stb refuses the segment itself
    }
    if (at + 2 + len > b.size()) return true;  // truncated: stb reports it
    at += 2 + len;
  }
  return true;
}

}  // namespace

RgbImage read_image_file(const std::string& path) {
  std::string bytes;
  {
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) throw std::runtime_error(path + ": cannot open: " + std::strerror(errno));
    char buf[1 << 16];
    for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) bytes.append(buf, n);
    const bool failed = std::ferror(f);
    std::fclose(f);
    if (failed) throw std::runtime_error(path + ": read error");
  }
  if (bytes.size() > size_t(INT32_MAX)) throw std::runtime_error(path + ": image file over 2 GiB refused");
  const auto* data = reinterpret_cast<const stbi_uc*>(bytes.data());
  const int size = int(bytes.size());
  if (!png_chunks_fit(bytes)) throw std::runtime_error(path + ": corrupt PNG (a chunk is longer than the file)");
  if (!jpeg_tables_fit(bytes)) throw std::runtime_error(path + ": corrupt JPEG (a Huffman table with more than 256 codes)");
  int w = 0, h = 0, comp = 0;
  if (!stbi_info_from_memory(data, size, &w, &h, &comp))
    throw std::runtime_error(path + ": not a readable PNG / JPEG / BMP image (" + stbi_failure_reason() + ")");
  if (w <= 0 || h <= 0 || w > kMaxImageSide || h > kMaxImageSide || int64_t(w) * h > kMaxImagePixels)
    throw std::runtime_error(path + ": image of " + std::to_string(w) + " x " + std::to_string(h) +
                             " pixels refused (at most " + std::to_string(kMaxImageSide) + " per side)");
  int cw = 0, ch = 0, cc = 0;
  unsigned char* px = stbi_load_from_memory(data, size, &cw, &ch, &cc, 4);
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
