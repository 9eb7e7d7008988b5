// Image primitives of the tissue segmentation (docs/slides.md section 3), each usable alone:
// the 8-bit saturation and inverted-grey channels, an edge-replicating median filter (sliding
// histogram), the exact Otsu threshold, binary closing with a square, connected-component
// labelling and crack-following boundary tracing. Integer arithmetic on 8-bit values; no
// dependency beyond the standard library.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "data/slides/image.h"

namespace lm::slides {

// Step 1, `saturation`: per pixel V = max(R,G,B), n = min(R,G,B),
// c = V == 0 ? 0 : (510 (V - n) + V) / (2 V)  (255 (V - n) / V rounded half up; OpenCV's HSV S).
std::vector<uint8_t> saturation_channel(const RgbImage& image);

// Step 1, `otsu-grey`: g = (299 R + 587 G + 114 B + 500) / 1000, c = 255 - g (tissue is dark).
std::vector<uint8_t> inverted_grey_channel(const RgbImage& image);

// Step 2: median of the k x k window centred on each pixel (k odd >= 1), the image's edge pixels
// replicated outwards (scipy.ndimage.median_filter(mode='nearest')). Huang's sliding histogram:
// O(k) per pixel. Throws std::invalid_argument on a bad k or a size mismatch.
std::vector<uint8_t> median_filter(const std::vector<uint8_t>& channel, int width, int height, int k);

// A 256-bin histogram of 8-bit values.
using Histogram = std::array<int64_t, 256>;
Histogram histogram256(const std::vector<uint8_t>& values);

// Step 3: the T in 0..254 that maximises w0 w1 (mu0 - mu1)^2 (class 0: values <= T, class 1:
// values > T, both non-empty), the smallest T on ties; -1 when no T has two non-empty classes
// (fewer than two distinct values, e.g. a constant image). Compared exactly in integers:
// w0 w1 (mu0 - mu1)^2 = (N S0 - n0 S)^2 / (N^2 n0 n1), with n0, S0 class 0's count and sum and
// N, S the totals, so no floating-point rounding decides a tie. The total count must be below
// 2^28 (std::invalid_argument otherwise; a 2048 x 2048 thumbnail has 2^22 pixels).
int otsu_threshold(const Histogram& histogram);

// Step 5: max (dilation) / min (erosion) over the (2r+1) x (2r+1) square centred on each pixel,
// clipped to the image (outside pixels are ignored). Equal to scipy's grey_dilation /
// grey_erosion with mode='nearest': a replicated edge pixel always lies in the clipped window.
Mask dilate_square(const Mask& mask, int radius);
Mask erode_square(const Mask& mask, int radius);
// Dilation, then erosion. radius 0 returns the mask unchanged.
Mask close_square(const Mask& mask, int radius);

// The pixels of a mask that are 0 become 1 and the others 0.
Mask invert(const Mask& mask);

// Connected components of a mask's non-zero pixels.
struct Components {
  int width = 0, height = 0;
  int count = 0;                     // number of components, labelled 1..count
  std::vector<int32_t> labels;       // per pixel: 0 where the mask is 0, else its component
  std::vector<int64_t> sizes;        // [label]: pixel count; [0] counts the mask's zero pixels
  std::vector<int64_t> first_pixel;  // [label]: raster index y * width + x of its first pixel; [0] = -1
};

// Labels the non-zero pixels of `mask` with 4- or 8-connectivity (std::invalid_argument
// otherwise). Labels are numbered in raster order of each component's first pixel, so they do
// not depend on the traversal. Iterative (explicit stack), no recursion.
Components label_components(const Mask& mask, int connectivity);

// A closed polygon through pixel corners: vertex (x, y) is the corner at column x, row y of the
// pixel grid (pixel (x, y) spans [x, x+1] x [y, y+1]). The first vertex is not repeated at the end.
using Ring = std::vector<std::array<double, 2>>;

enum class BoundaryKind {
  outer,  // the outer boundary of an 8-connected component (a tissue region)
  hole,   // the boundary of a 4-connected component (a hole), as seen from the region around it
};

// Traces the boundary of component `label` of `components` along pixel edges (crack following),
// keeping only the corners where the direction changes. Orientation: walking the ring in order,
// tissue is always on the walker's right as seen on screen (x right, y down): the component
// itself for an outer ring, the region around it for a hole ring. So on screen outer rings run
// clockwise and hole rings counter-clockwise; read with y up, as GeoJSON (RFC 7946) reads the
// numbers, outer rings are counter-clockwise (positive shoelace area) and holes clockwise
// (negative), as RFC 7946 asks.
// Where two pixels of a component touch only at a corner, the outer trace of an 8-connected
// component passes through that corner twice (they are connected); a hole's trace, its
// component being 4-connected, likewise passes twice through a corner where the region's
// pixels touch diagonally. Outer rings start at the top-left corner of the component's first
// pixel and head right; hole rings start at the same corner and head down.
Ring trace_boundary(const Components& components, int32_t label, BoundaryKind kind);

// Signed shoelace area of a ring in its own coordinates (positive for outer rings above).
double signed_area(const Ring& ring);

}  // namespace lm::slides
