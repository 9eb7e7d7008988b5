// Magnification, patch geometry and the segmentation thumbnail (data/slides/thumbnail.h).
#include "data/slides/thumbnail.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <utility>

namespace lm::slides {

double level0_magnification(double mpp) {
  const double m = 10.0 / mpp;
  for (double nominal : {80.0, 40.0, 20.0, 10.0, 5.0})
    if (std::abs(m - nominal) <= 0.1 * nominal) return nominal;
  return m;
}

PatchGeometry patch_geometry(const std::string& slide, double mpp, const std::string& mpp_source, double target_mag,
                             int patch_size, int overlap) {
  if (!(mpp > 0) || !std::isfinite(mpp)) throw std::runtime_error(slide + ": invalid microns per pixel " + std::to_string(mpp));
  PatchGeometry g;
  g.mpp = mpp;
  g.mpp_source = mpp_source;
  g.level0_mag = level0_magnification(mpp);
  g.target_mag = target_mag;
  g.patch_size = patch_size;
  g.overlap = overlap;
  if (target_mag > g.level0_mag * (1 + 1e-9)) {
    char buf[256];
    std::snprintf(buf, sizeof buf, ": --mag %g exceeds the slide's own magnification (%gx at %.4g um/px); patches are never upsampled",
                  target_mag, g.level0_mag, mpp);
    throw std::runtime_error(slide + buf);
  }
  const double scale = g.level0_mag / target_mag;
  g.patch_size_level0 = std::llround(patch_size * scale);
  g.overlap_level0 = std::llround(overlap * scale);
  if (g.step() <= 0)
    throw std::runtime_error(slide + ": --overlap " + std::to_string(overlap) + " leaves no step between patches of " +
                             std::to_string(patch_size) + " px");
  return g;
}

RgbImage box_reduce(RgbImage img, int k) {
  if (k <= 1) return img;  // moved out
  RgbImage out;
  out.width = img.width / k;
  out.height = img.height / k;
  out.rgb.assign(size_t(out.width) * out.height * 3, 0);
  const uint32_t area = uint32_t(k) * k, half = area / 2;
  std::vector<uint32_t> acc(size_t(out.width) * 3);
  for (int oy = 0; oy < out.height; ++oy) {
    std::fill(acc.begin(), acc.end(), 0u);
    for (int y = oy * k; y < oy * k + k; ++y) {
      const uint8_t* row = &img.rgb[size_t(y) * img.width * 3];
      for (int ox = 0; ox < out.width; ++ox) {
        const uint8_t* p = row + size_t(ox) * k * 3;
        uint32_t* a = &acc[size_t(ox) * 3];
        for (int x = 0; x < k; ++x, p += 3) a[0] += p[0], a[1] += p[1], a[2] += p[2];
      }
    }
    uint8_t* dst = &out.rgb[size_t(oy) * out.width * 3];
    for (size_t i = 0; i < acc.size(); ++i) dst[i] = uint8_t((acc[i] + half) / area);
  }
  return out;
}

RgbImage read_level_reduced(const Slide& slide, int level, int k) {
  const LevelInfo& li = slide.levels().at(size_t(level));
  k = std::max(k, 1);
  if (li.width * li.height <= (int64_t(1) << 26)) return box_reduce(slide.read_level(level), k);
  // A level too large to hold: read strips of whole output rows. A strip's level-0 top is its
  // level row times the downsample, rounded.
  RgbImage img;
  img.width = int(li.width / k);
  img.height = int(li.height / k);
  img.rgb.resize(size_t(img.width) * img.height * 3);
  const int rows = std::max(1, int((int64_t(1) << 24) / (li.width * k)));  // output rows per strip
  for (int oy = 0; oy < img.height; oy += rows) {
    const int n = std::min(rows, img.height - oy);
    const int64_t y_level = int64_t(oy) * k;
    RgbImage strip = slide.read_region(level, 0, std::llround(y_level * li.downsample), li.width, int64_t(n) * k);
    RgbImage small = box_reduce(std::move(strip), k);
    std::copy(small.rgb.begin(), small.rgb.begin() + size_t(n) * img.width * 3, img.rgb.begin() + size_t(oy) * img.width * 3);
  }
  return img;
}

Thumbnail read_thumbnail(const Slide& slide, double m0) {
  const auto& levels = slide.levels();
  const double W0 = double(slide.width()), H0 = double(slide.height());
  const double L = std::max(W0, H0);
  const double t = std::max(L / 2048.0, std::min(m0 / 1.25, L / 1024.0));
  Thumbnail th;
  for (int l = 0; l < (int)levels.size(); ++l)
    if (levels[l].downsample <= t && levels[l].downsample >= levels[th.level].downsample) th.level = l;
  const LevelInfo& li = levels[th.level];
  const int64_t long_side = std::max(li.width, li.height);
  th.reduction = long_side > 2048 ? int((long_side + 2047) / 2048) : 1;
  th.image = read_level_reduced(slide, th.level, th.reduction);
  th.dx = th.reduction * W0 / double(li.width);
  th.dy = th.reduction * H0 / double(li.height);
  return th;
}

}  // namespace lm::slides
