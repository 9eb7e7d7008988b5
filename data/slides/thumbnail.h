// The slide's magnification and the thumbnail tissue is found on (docs/slides.md, sections 1
// and 2): level-0 microns per pixel and magnification, patch sizes at level 0, the pyramid level
// read for the thumbnail and its integer box reduction.
#pragma once
#include <cstdint>
#include <string>

#include "data/slides/image.h"
#include "data/slides/slide.h"

namespace lm::slides {

// Level-0 magnification 10 / mpp, snapped to 80, 40, 20, 10 or 5 when within 10% of it.
double level0_magnification(double mpp);

// Patch sizes of one slide at a target magnification (docs/slides.md, section 1).
struct PatchGeometry {
  double mpp = 0;              // level-0 microns per pixel
  std::string mpp_source;      // "--mpp", "--mpp-csv", "openslide.mpp-x", "aperio.MPP", "objective-power"
  double level0_mag = 0;       // after snapping
  double target_mag = 20;
  int patch_size = 256;        // pixels at the target magnification
  int overlap = 0;             // pixels at the target magnification
  int64_t patch_size_level0 = 0, overlap_level0 = 0;
  int64_t step() const { return patch_size_level0 - overlap_level0; }
};
// Throws naming the slide when the target magnification exceeds the slide's, or the step is
// not positive.
PatchGeometry patch_geometry(const std::string& slide, double mpp, const std::string& mpp_source, double target_mag,
                             int patch_size, int overlap);

struct Thumbnail {
  RgbImage image;
  int level = 0;       // pyramid level read
  int reduction = 1;   // integer box reduction k applied to that level
  double dx = 1, dy = 1;  // level-0 pixels per thumbnail pixel, per axis
};
// Reads the thumbnail of docs/slides.md section 2 for a slide of level-0 magnification `m0`.
Thumbnail read_thumbnail(const Slide& slide, double m0);

// Each output pixel the rounded mean of a k x k block (remainder rows / columns dropped).
RgbImage box_reduce(RgbImage img, int k);  // k <= 1: `img` itself, not copied

// The whole of `level` reduced by box_reduce's factor k: read at once when the level has at most
// 2^26 pixels, else in strips of whole output rows (a single-level scan too large to hold).
RgbImage read_level_reduced(const Slide& slide, int level, int k);

}  // namespace lm::slides
