// Tissue segmentation of a thumbnail (docs/slides.md section 3) and the patch tissue fraction
// (section 4). See tissue.h for the readings taken where the recipe leaves room.
#include "data/slides/tissue.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace lm::slides {

namespace {

[[noreturn]] void bad_option(const std::string& what) { throw std::invalid_argument("tissue options: " + what); }

void check_scale(const char* fn, double dx, double dy) {
  if (!(dx > 0) || !(dy > 0) || !std::isfinite(dx) || !std::isfinite(dy))
    throw std::invalid_argument(std::string(fn) + ": dx and dy must be positive and finite, got " +
                                std::to_string(dx) + ", " + std::to_string(dy));
}

// Smallest j in [0, n] whose centre (j + 0.5) * d (a double, as written) is >= v; n when none.
// The centres do not decrease with j, so an estimate corrected by stepping is exact.
int64_t first_centre_at_least(double v, double d, int64_t n) {
  auto centre = [d](int64_t j) { return (double(j) + 0.5) * d; };
  const double estimate = std::ceil(v / d - 0.5);
  int64_t j = !(estimate > 0) ? 0 : estimate >= double(n) ? n : int64_t(estimate);
  while (j > 0 && centre(j - 1) >= v) --j;
  while (j < n && centre(j) < v) ++j;
  return j;
}

// The pixel j with j * d <= c < (j + 1) * d (doubles), clamped to [0, n - 1] (n >= 1).
int64_t containing_pixel(double c, double d, int64_t n) {
  const double estimate = std::floor(c / d);
  int64_t j = !(estimate > 0) ? 0 : estimate >= double(n - 1) ? n - 1 : int64_t(estimate);
  while (j > 0 && double(j) * d > c) --j;
  while (j < n - 1 && double(j + 1) * d <= c) ++j;
  return j;
}

}  // namespace

void check_tissue_options(const TissueOptions& o) {
  if (o.channel != "saturation" && o.channel != "otsu-grey")
    bad_option("channel (--seg) must be saturation or otsu-grey, got '" + o.channel + "'");
  if (o.median < 1 || o.median % 2 == 0)
    bad_option("median (--seg-median) must be odd and >= 1, got " + std::to_string(o.median));
  if (o.threshold < -1 || o.threshold > 254)
    bad_option("threshold (--seg-threshold) must be 0..254 or -1 for Otsu, got " + std::to_string(o.threshold));
  if (o.close_radius < 0)
    bad_option("close_radius (--seg-close) must be >= 0, got " + std::to_string(o.close_radius));
  if (!(o.min_tissue_area_mm2 >= 0) || !std::isfinite(o.min_tissue_area_mm2))
    bad_option("min_tissue_area_mm2 (--min-tissue-area) must be >= 0, got " + std::to_string(o.min_tissue_area_mm2));
  if (!(o.min_hole_area_mm2 >= 0) || !std::isfinite(o.min_hole_area_mm2))
    bad_option("min_hole_area_mm2 (--min-hole-area) must be >= 0, got " + std::to_string(o.min_hole_area_mm2));
  if (o.max_holes < 0) bad_option("max_holes (--max-holes) must be >= 0, got " + std::to_string(o.max_holes));
}

TissueResult segment_tissue(const RgbImage& thumb, double dx, double dy, double mpp0, const TissueOptions& options) {
  check_tissue_options(options);
  check_scale("segment_tissue", dx, dy);
  if (!(mpp0 > 0) || !std::isfinite(mpp0))
    throw std::invalid_argument("segment_tissue: mpp0 must be positive and finite, got " + std::to_string(mpp0));
  if (thumb.width < 0 || thumb.height < 0 || thumb.rgb.size() != thumb.pixel_count() * 3)
    throw std::invalid_argument("segment_tissue: thumbnail has " + std::to_string(thumb.rgb.size()) +
                                " bytes for " + std::to_string(thumb.width) + " x " + std::to_string(thumb.height) +
                                " RGB pixels");
  const int W = thumb.width, H = thumb.height;
  const size_t N = thumb.pixel_count();
  // Step 7's area, left to right as written: n * dx * dy * m^2 / 1e6.
  auto area_mm2 = [&](int64_t n) { return double(n) * dx * dy * (mpp0 * mpp0) / 1e6; };

  TissueResult result;
  result.mask = Mask(W, H);
  result.threshold = options.threshold;
  if (N == 0) return result;

  // Steps 1-3: channel, median, threshold.
  const std::vector<uint8_t> channel =
      options.channel == "saturation" ? saturation_channel(thumb) : inverted_grey_channel(thumb);
  const std::vector<uint8_t> filtered = median_filter(channel, W, H, options.median);
  const int T = options.threshold >= 0 ? options.threshold : otsu_threshold(histogram256(filtered));
  result.threshold = T;
  if (T < 0) return result;  // Otsu undefined (a constant image): no tissue

  // Step 4: exclusions on the unfiltered pixel.
  Mask raw(W, H);
  for (size_t i = 0; i < N; ++i) {
    const int r = thumb.rgb[3 * i], g = thumb.rgb[3 * i + 1], b = thumb.rgb[3 * i + 2];
    bool tissue = filtered[i] > T;
    if (std::max({r, g, b}) < 30) tissue = false;             // black borders, black ink
    if (std::min({r, g, b}) > 220) tissue = false;            // near-white glass
    if (!options.keep_pen && g - r > 20) tissue = false;      // blue, cyan, green pen
    raw.v[i] = tissue;
  }

  // Steps 5-6: closing, 8-connected regions, 4-connected background.
  const Mask closed = close_square(raw, options.close_radius);
  const Components regions = label_components(closed, 8);
  const Components background = label_components(invert(closed), 4);
  const int n_regions = regions.count, n_background = background.count;

  // Holes: background components off the border. Each belongs to the region of the pixel above
  // its first pixel (that pixel is in the image and is tissue: were it background, it would be
  // 4-connected to the hole and come first). Each region's parent hole (0: none) is the
  // background component of the pixel above the region's first pixel, when that is a hole.
  std::vector<char> is_hole(size_t(n_background) + 1, 1);
  is_hole[0] = 0;
  auto mark_border = [&](int x, int y) { is_hole[background.labels[size_t(y) * W + x]] = 0; };
  for (int x = 0; x < W; ++x) mark_border(x, 0), mark_border(x, H - 1);
  for (int y = 0; y < H; ++y) mark_border(0, y), mark_border(W - 1, y);
  std::vector<int32_t> hole_owner(size_t(n_background) + 1, 0);
  std::vector<std::vector<int32_t>> holes_of(size_t(n_regions) + 1);  // ascending = raster order
  for (int32_t b = 1; b <= n_background; ++b) {
    if (!is_hole[b]) continue;
    const int32_t owner = regions.labels[size_t(background.first_pixel[b]) - W];
    if (owner <= 0) throw std::logic_error("segment_tissue: hole without a surrounding region");
    hole_owner[b] = owner;
    holes_of[owner].push_back(b);
  }
  std::vector<int32_t> parent_hole(size_t(n_regions) + 1, 0);
  for (int32_t r = 1; r <= n_regions; ++r) {
    const int64_t p = regions.first_pixel[r];
    if (p < W) continue;
    const int32_t b = background.labels[size_t(p) - W];
    if (b <= 0) throw std::logic_error("segment_tissue: region's first pixel has tissue above it");
    if (is_hole[b]) parent_hole[r] = b;
  }

  // Pixels enclosed by each outer boundary / hole boundary: own pixels plus everything nested.
  // Children start after their parents in raster order, so a pass over all components by
  // descending first pixel adds each one into its parent after all of its own children.
  std::vector<int64_t> enclosed_region = regions.sizes, enclosed_hole = background.sizes;
  for (int32_t r = n_regions, b = n_background; r >= 1 || b >= 1;) {
    if (b < 1 || (r >= 1 && regions.first_pixel[r] > background.first_pixel[b])) {
      if (parent_hole[r]) enclosed_hole[parent_hole[r]] += enclosed_region[r];
      --r;
    } else {
      if (is_hole[b]) enclosed_region[hole_owner[b]] += enclosed_hole[b];
      --b;
    }
  }

  // Step 7, holes: per region, those of at least min_hole_area, at most max_holes of them, the
  // largest (by own pixel count), equal sizes in raster order of their first pixel.
  std::vector<char> kept_hole(size_t(n_background) + 1, 0);
  for (int32_t r = 1; r <= n_regions; ++r) {
    std::vector<int32_t> candidates;
    for (int32_t b : holes_of[r])
      if (area_mm2(background.sizes[b]) >= options.min_hole_area_mm2) candidates.push_back(b);
    std::stable_sort(candidates.begin(), candidates.end(),
                     [&](int32_t a, int32_t b) { return background.sizes[a] > background.sizes[b]; });
    for (size_t i = 0; i < candidates.size() && i < size_t(options.max_holes); ++i) kept_hole[candidates[i]] = 1;
  }

  // Which region each region ends up part of: itself when it is top-level or lies in a kept hole
  // of a region that is its own; else the region whose filled hole swallows it.
  std::vector<int32_t> root(size_t(n_regions) + 1, 0);
  for (int32_t r = 1; r <= n_regions; ++r) {
    const int32_t b = parent_hole[r];
    if (b == 0) {
      root[r] = r;
    } else {
      const int32_t owner = hole_owner[b];
      root[r] = (root[owner] == owner && kept_hole[b]) ? r : root[owner];
    }
  }

  // Step 7, regions: pixel count with filled holes (everything enclosed minus kept holes).
  std::vector<int64_t> region_pixels(size_t(n_regions) + 1, 0);
  std::vector<char> kept_region(size_t(n_regions) + 1, 0);
  for (int32_t r = 1; r <= n_regions; ++r) {
    if (root[r] != r) continue;
    int64_t n = enclosed_region[r];
    for (int32_t b : holes_of[r])
      if (kept_hole[b]) n -= enclosed_hole[b];
    region_pixels[r] = n;
    kept_region[r] = !(area_mm2(n) < options.min_tissue_area_mm2);
  }

  // Step 8: the mask.
  int64_t tissue_pixels = 0;
  for (size_t i = 0; i < N; ++i) {
    bool tissue;
    if (closed.v[i]) {
      tissue = kept_region[root[regions.labels[i]]];
    } else {
      const int32_t b = background.labels[i];
      if (!is_hole[b]) {
        tissue = false;
      } else {
        const int32_t owner = hole_owner[b];
        tissue = (root[owner] == owner && kept_hole[b]) ? false : bool(kept_region[root[owner]]);
      }
    }
    result.mask.v[i] = tissue;
    tissue_pixels += tissue;
  }
  result.tissue_area_mm2 = area_mm2(tissue_pixels);

  // Step 9: contours of the kept regions and their kept holes.
  for (int32_t r = 1; r <= n_regions; ++r) {
    if (root[r] != r || !kept_region[r]) continue;
    TissueRegion region;
    region.outer = trace_boundary(regions, r, BoundaryKind::outer);
    for (int32_t b : holes_of[r])
      if (kept_hole[b]) region.holes.push_back(trace_boundary(background, b, BoundaryKind::hole));
    region.area_mm2 = area_mm2(region_pixels[r]);
    result.regions.push_back(std::move(region));
  }
  return result;
}

double patch_tissue_fraction(const Mask& mask, double dx, double dy, int64_t x0, int64_t y0, int64_t p0) {
  check_scale("patch_tissue_fraction", dx, dy);
  if (p0 <= 0)
    throw std::invalid_argument("patch_tissue_fraction: patch size must be positive, got " + std::to_string(p0));
  const int W = mask.width, H = mask.height;
  if (W <= 0 || H <= 0) return 0;
  // Direct reading: test every centre.
  std::vector<int> columns, rows;
  for (int j = 0; j < W; ++j) {
    const double c = (double(j) + 0.5) * dx;
    if (c >= double(x0) && c < double(x0 + p0)) columns.push_back(j);
  }
  for (int i = 0; i < H; ++i) {
    const double c = (double(i) + 0.5) * dy;
    if (c >= double(y0) && c < double(y0 + p0)) rows.push_back(i);
  }
  if (!columns.empty() && !rows.empty()) {
    int64_t tissue = 0;
    for (int i : rows)
      for (int j : columns) tissue += mask.at(j, i) != 0;
    return double(tissue) / double(int64_t(columns.size()) * int64_t(rows.size()));
  }
  // No centre inside: the pixel containing the patch centre; 0 when that centre lies beyond the
  // thumbnail (in the margin its box reduction dropped).
  auto containing = [](double c, double d, int n) {
    for (int j = 0; j < n; ++j)
      if (double(j) * d <= c && c < double(j + 1) * d) return j;
    return -1;
  };
  const int j = containing(double(x0) + double(p0) / 2, dx, W);
  const int i = containing(double(y0) + double(p0) / 2, dy, H);
  if (j < 0 || i < 0) return 0.0;
  return mask.at(j, i) != 0 ? 1.0 : 0.0;
}

TissueFraction::TissueFraction(const Mask& mask, double dx, double dy)
    : width_(mask.width), height_(mask.height), dx_(dx), dy_(dy) {
  check_scale("TissueFraction", dx, dy);
  if (mask.width < 0 || mask.height < 0 || mask.v.size() != mask.pixel_count())
    throw std::invalid_argument("TissueFraction: mask size mismatch");
  if (mask.pixel_count() >= (size_t(1) << 32)) throw std::invalid_argument("TissueFraction: mask too large");
  const size_t stride = size_t(width_) + 1;
  sums_.assign(stride * (size_t(height_) + 1), 0);
  for (int y = 0; y < height_; ++y) {
    uint32_t row = 0;
    for (int x = 0; x < width_; ++x) {
      row += mask.v[size_t(y) * width_ + x] != 0;
      sums_[(size_t(y) + 1) * stride + x + 1] = sums_[size_t(y) * stride + x + 1] + row;
    }
  }
}

double TissueFraction::operator()(int64_t x, int64_t y, int64_t p0) const {
  if (p0 <= 0) throw std::invalid_argument("TissueFraction: patch size must be positive, got " + std::to_string(p0));
  if (width_ <= 0 || height_ <= 0) return 0;
  const size_t stride = size_t(width_) + 1;
  auto box = [&](int64_t j0, int64_t i0, int64_t j1, int64_t i1) {  // tissue pixels in [j0, j1) x [i0, i1)
    return sums_[size_t(i1) * stride + size_t(j1)] - sums_[size_t(i0) * stride + size_t(j1)] -
           sums_[size_t(i1) * stride + size_t(j0)] + sums_[size_t(i0) * stride + size_t(j0)];
  };
  const int64_t j0 = first_centre_at_least(double(x), dx_, width_);
  const int64_t j1 = first_centre_at_least(double(x + p0), dx_, width_);
  const int64_t i0 = first_centre_at_least(double(y), dy_, height_);
  const int64_t i1 = first_centre_at_least(double(y + p0), dy_, height_);
  if (j0 < j1 && i0 < i1) {
    return double(box(j0, i0, j1, i1)) / double((j1 - j0) * (i1 - i0));
  }
  const double cx = double(x) + double(p0) / 2, cy = double(y) + double(p0) / 2;
  if (cx < 0 || cy < 0 || cx >= double(width_) * dx_ || cy >= double(height_) * dy_) return 0.0;  // beyond the thumbnail
  const int64_t j = containing_pixel(cx, dx_, width_);
  const int64_t i = containing_pixel(cy, dy_, height_);
  return box(j, i, j + 1, i + 1) != 0 ? 1.0 : 0.0;
}

}  // namespace lm::slides
