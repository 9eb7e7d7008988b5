// Per-patch scores drawn on the slide itself (docs/heatmaps.md): a pyramid level read through
// OpenSlide (at most `max_side` pixels on the long side), each patch's colour blended over its
// exact box, a colour bar; the scored patch squares as GeoJSON for QuPath; the top-k patches of
// a score cropped at full resolution (level 0). Pure drawing and file contents: the caller
// (apps/cmd_heatmap.cpp) decides the names and writes them atomically.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/slides/colormap.h"
#include "data/slides/image.h"
#include "data/slides/patch_outputs.h"
#include "data/slides/scores_file.h"
#include "data/slides/slide.h"

namespace lm::slides {

// The picture a heatmap is drawn on: `level` reduced by the integer factor `reduction`.
struct VisImage {
  RgbImage image;
  int level = 0, reduction = 1;
  double dx = 1, dy = 1;  // level-0 pixels per image pixel, per axis
};

// Which level and reduction: `vis_level` >= 0 takes that level (throws naming the slide and its
// levels when it has none such), -1 the finest level whose long side is at most `max_side`, or
// the coarsest level when none is. The level is then box-reduced by k = ceil(long side /
// max_side) when longer than `max_side`.
VisImage read_vis_image(const Slide& slide, int vis_level = -1, int max_side = 4096);
// The same choice without reading pixels: fills level, reduction, dx, dy and the image's size.
VisImage plan_vis_image(const Slide& slide, int vis_level = -1, int max_side = 4096);

struct HeatmapStyle {
  double alpha = 0.5;                     // 0: the slide only, 1: the colours only (inside patches)
  std::string cmap = "jet";               // colormap_names()
  std::string normalize = "percentile";   // percentile | minmax (colormap.h)
  bool colour_bar = true;
};

// The patch box [x, x + P0) x [y, y + P0) (level 0) as image pixels: the pixels whose centres
// lie in it ([x0, x1) x [y0, y1), clipped to the image); the pixel holding the box's centre
// when no centre lies inside (a patch smaller than a pixel).
struct PixelBox {
  int x0 = 0, y0 = 0, x1 = 0, y1 = 0;
};
PixelBox patch_pixels(const VisImage& vis, const Coord& c, int64_t patch_size_level0);

// The heatmap of one score: every pixel inside one or more patch boxes gets the colour of the
// mean of those patches' normalised scores, blended over the slide with `alpha`; pixels outside
// every patch (and patches whose score is not finite) show the slide. With a colour bar to the
// right when style.colour_bar. Throws std::invalid_argument for a bad style or sizes.
RgbImage draw_heatmap(const VisImage& vis, const std::vector<Coord>& coords, int64_t patch_size_level0,
                      const std::vector<float>& scores, const HeatmapStyle& style);

// Throws "<what>: patch i at (x, y) lies outside the slide <slide> (W x H at level 0)" when a
// patch's top-left corner is outside level 0, or when patch_size_level0 is not positive.
void check_patches_inside(const Slide& slide, const std::vector<Coord>& coords, int64_t patch_size_level0,
                          const std::string& what);

// A FeatureCollection with one Polygon Feature per patch: the closed square ring through its four
// level-0 corners (counter-clockwise as seen with y up, as contours_geojson), properties
// {objectType: `object_type` ("tile" or "detection"), name: "patch <i>", measurements: {score
// name: value, ...}} (non-finite values left out). QuPath imports it over the slide.
std::string scores_geojson(const std::vector<Coord>& coords, int64_t patch_size_level0,
                           const std::vector<const ScoreColumn*>& scores, const std::string& object_type = "tile");

// The k highest-scoring patches (non-finite scores never; ties in patch order), each cropped
// from level 0 at full resolution.
struct GalleryPatch {
  int rank = 0;        // 1 = highest
  int64_t index = 0;   // row in coords
  float score = 0;
  Coord coord{};
  RgbImage image;
  std::string file_name;  // "rank_01_score_0.0123_x1024_y2048.png"
};
std::vector<GalleryPatch> top_patches(const Slide& slide, const std::vector<Coord>& coords, int64_t patch_size_level0,
                                      const std::vector<float>& scores, int k);

}  // namespace lm::slides
