// The report's slide-image heatmaps (`libramil report --slides-dir DIR`, docs/heatmaps.md): when
// an explained slide's whole-slide image is found in DIR, its maps are drawn over the slide
// itself (data/slides/heatmap.h) and the top patches of each map are cropped at full resolution,
// all as inline JPEG images (base64), so the page stays one self-contained file. Where no slide
// image is found the report keeps its coordinate plots (models/report/svg_plot.h patch_map).
#pragma once
#include <string>
#include <vector>

#include "data/slides/patch_outputs.h"

namespace lm::report {

// DIR/<slide>.<ext> for a slide file extension data/slides/slide.h reads; "" when none.
std::string find_slide_file(const std::string& dir, const std::string& slide);

struct SlideMap {
  std::string title;          // "instance weight", "attention of class 1"
  std::vector<float> values;  // one per patch
};

// A <div class="figs"> with one figure per map (heatmap over the slide, longest side
// `max_side` pixels, colour bar) and below each its `top_k` highest patches at level 0 (shown
// at most 128 px wide) with rank, score and coordinates. Throws naming the slide on failure
// (unreadable slide, coordinates outside it).
std::string slide_heatmaps_html(const std::string& slide_file, const std::vector<slides::Coord>& coords,
                                int64_t patch_size_level0, const std::vector<SlideMap>& maps, int max_side = 900,
                                int top_k = 5);

}  // namespace lm::report
