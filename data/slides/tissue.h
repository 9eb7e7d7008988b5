// Tissue segmentation of a slide thumbnail (docs/slides.md section 3, steps 1-9) and the tissue
// fraction of a patch (section 4): the mask, the kept regions with their kept holes as
// polygons in thumbnail pixel-corner coordinates, and their areas in mm^2.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "data/slides/image.h"
#include "data/slides/morphology.h"

namespace lm::slides {

struct TissueOptions {
  std::string channel = "saturation";  // or "otsu-grey" (--seg)
  int median = 7;                      // median window k_m, odd >= 1 (--seg-median)
  int threshold = -1;                  // -1: Otsu; else 0..254 (--seg-threshold)
  bool keep_pen = false;               // --keep-pen: drop the G - R > 20 exclusion
  int close_radius = 2;                // r of the (2r+1) x (2r+1) closing, >= 0 (--seg-close)
  double min_tissue_area_mm2 = 0.02;   // --min-tissue-area
  double min_hole_area_mm2 = 0.01;     // --min-hole-area
  int max_holes = 8;                   // --max-holes, per region
};

// Throws std::invalid_argument with a one-line message naming the offending option.
void check_tissue_options(const TissueOptions& options);

struct TissueRegion {
  Ring outer;               // outer boundary: counter-clockwise read with y up (see trace_boundary)
  std::vector<Ring> holes;  // kept holes, clockwise read with y up, in raster order of their first pixel
  // The region's pixel count, with its filled holes (and anything inside those) and without its
  // kept holes, in mm^2: the quantity compared with min_tissue_area_mm2, and exactly the
  // region's pixels in TissueResult::mask.
  double area_mm2 = 0;
};

struct TissueResult {
  Mask mask;                         // step 8: the kept regions' pixels
  int threshold = -1;                // T used in step 3 (-1: Otsu undefined, no tissue)
  std::vector<TissueRegion> regions; // kept regions, in raster order of their first pixel
  double tissue_area_mm2 = 0;        // the mask's pixel count in mm^2
};

// Steps 1-9 on `thumb`; dx, dy: level-0 pixels per thumbnail pixel; mpp0: level-0 microns per
// pixel (m). Polygons are in thumbnail pixel-corner coordinates; the caller maps (x, y) to level
// 0 as (x * dx, y * dy).
//
// Readings of the recipe where it leaves room:
// * Areas: n * dx * dy * m^2 / 1e6 evaluated left to right in doubles,
//   ((n * dx) * dy) * (m * m) / 1e6; a hole is kept when that is >= min_hole_area_mm2, a
//   region dropped when it is < min_tissue_area_mm2.
// * A hole's size (for min_hole_area and for ranking under max_holes) is its own pixel count.
// * Filling a hole fills everything inside its boundary: the regions nested in a filled hole (and
//   their holes) become part of the filling region, counting towards its area, kept or dropped
//   with it. Regions inside a kept hole are regions of their own (even when the region around
//   the hole is dropped). So the mask is exactly the union, over kept regions, of the pixels
//   inside the outer polygon and outside the hole polygons.
TissueResult segment_tissue(const RgbImage& thumb, double dx, double dy, double mpp0, const TissueOptions& options);

// Section 4: the share of tissue among the mask pixels whose centres ((j + 0.5) dx, (i + 0.5) dy)
// lie in [x0, x0 + p0) x [y0, y0 + p0) (level-0 coordinates); when none does, the mask pixel
// containing the patch centre (x0 + p0/2, y0 + p0/2) decides (0 or 1). The centres are compared
// as the doubles (j + 0.5) * dx against the exact integers x0 and x0 + p0; pixel j contains c
// when j * dx <= c < (j + 1) * dx in doubles; a centre outside the thumbnail (the margin the
// thumbnail's integer reduction drops, less than one pixel wide) takes the nearest pixel.
// Straightforward: O(width + height + patch pixels).
double patch_tissue_fraction(const Mask& mask, double dx, double dy, int64_t x0, int64_t y0, int64_t p0);

// The same rule for many patches in O(1) each, from an integral image of the mask. The pixels
// whose centres fall in [x, x + p0) form a contiguous index range per axis, j from
// ceil(x/dx - 0.5) to ceil((x + p0)/dx - 0.5) - 1 in exact arithmetic; the range is computed
// from that estimate and then corrected by testing (j + 0.5) * dx exactly as
// patch_tissue_fraction does, so both give identical results at exact boundaries.
class TissueFraction {
 public:
  explicit TissueFraction(const Mask& mask, double dx, double dy);
  double operator()(int64_t x, int64_t y, int64_t p0) const;

 private:
  int width_, height_;
  double dx_, dy_;
  std::vector<uint32_t> sums_;  // (width + 1) x (height + 1) integral image
};

}  // namespace lm::slides
