// Small image types of the slide pipeline: an 8-bit RGB thumbnail and a 0/1 mask, both row-major
// with (x, y) = (column, row), y growing downwards.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace lm::slides {

// An 8-bit RGB image: pixel (x, y) is rgb[3 * (y * width + x) + {0, 1, 2}] = R, G, B.
struct RgbImage {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;  // row-major, 3 bytes per pixel

  RgbImage() = default;
  RgbImage(int w, int h) : width(w), height(h), rgb(size_t(w) * size_t(h) * 3, 0) {}

  size_t pixel_count() const { return size_t(width) * size_t(height); }
  const uint8_t* pixel(int x, int y) const { return &rgb[3 * (size_t(y) * size_t(width) + size_t(x))]; }
  uint8_t* pixel(int x, int y) { return &rgb[3 * (size_t(y) * size_t(width) + size_t(x))]; }
  void set(int x, int y, uint8_t r, uint8_t g, uint8_t b) {
    uint8_t* p = pixel(x, y);
    p[0] = r, p[1] = g, p[2] = b;
  }
};

// A binary mask: v[y * width + x] is 0 or 1.
struct Mask {
  int width = 0, height = 0;
  std::vector<uint8_t> v;  // row-major, 0 or 1

  Mask() = default;
  Mask(int w, int h, uint8_t fill = 0) : width(w), height(h), v(size_t(w) * size_t(h), fill) {}

  size_t pixel_count() const { return size_t(width) * size_t(height); }
  bool inside(int x, int y) const { return x >= 0 && y >= 0 && x < width && y < height; }
  uint8_t at(int x, int y) const { return v[size_t(y) * size_t(width) + size_t(x)]; }
  uint8_t& at(int x, int y) { return v[size_t(y) * size_t(width) + size_t(x)]; }
  int64_t count() const {
    int64_t n = 0;
    for (uint8_t b : v) n += b != 0;
    return n;
  }
};

}  // namespace lm::slides
