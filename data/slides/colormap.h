// Colours and labels for heatmaps (data/slides/heatmap.h): the "jet" and "viridis" colormaps
// built from their published control points, score normalisation (rank percentiles or min-max),
// colour-bar tick labels with just enough digits to tell the ticks apart, and a vertical colour
// bar drawn with a small built-in bitmap font (digits, '.', '-', '+', 'e').
#pragma once
#include <array>
#include <string>
#include <vector>

#include "data/slides/image.h"

namespace lm::slides {

using Rgb = std::array<uint8_t, 3>;

// The colormaps by name; `is_colormap` says whether `colormap` knows one.
std::vector<std::string> colormap_names();  // {"jet", "viridis"}
bool is_colormap(const std::string& name);
// The colour at t in [0, 1] (clamped); throws std::invalid_argument for an unknown name.
//   jet:     piecewise-linear R, G, B through the control points of MATLAB's / matplotlib's jet
//            (dark blue at 0, blue, cyan, yellow, red, dark red at 1);
//   viridis: linear interpolation between 33 entries (0, 8, ..., 248, 255) of the published
//            256-entry viridis table (van der Walt and Smith, 2015); within 2/255 of the table.
Rgb colormap(const std::string& name, double t);

// How scores become positions t in [0, 1] on the colour bar:
//   percentile: t = the score's rank among the finite scores, ties sharing their mean rank,
//               over (count - 1) (CLAM's choice: every colour is used equally often);
//   minmax:     t = (v - min) / (max - min).
// A constant set of scores maps to 0.5; non-finite scores to NaN (drawn as no colour).
std::vector<double> normalize_scores(const std::vector<float>& scores, const std::string& how);

// The score value at colour-bar position t: the t-quantile of the finite scores (linear
// interpolation between order statistics) for percentile, min + t (max - min) for minmax.
double score_at(const std::vector<float>& scores, const std::string& how, double t);

// Tick labels for increasing values: fixed-point with the fewest decimals (0..9) that give
// every distinct value a distinct label (so 0.997, 0.9996, 1 become 0.9970, 0.9996, 1.0000,
// never "0.997, 1, 1"); scientific notation (%.Ne, fewest digits) when the values are below
// 1e-3 or at least 1e6 in magnitude.
std::vector<std::string> tick_labels(const std::vector<double>& values);

// Text in the built-in 5 x 7 pixel font at an integer `scale`; unknown characters are blank.
int text_width(const std::string& s, int scale);
void draw_text(RgbImage& img, int x, int y, const std::string& s, int scale, Rgb colour);

// The map with a white strip to its right holding a vertical colour bar (t = 1 at the top) and
// its tick labels at positions `ticks` (t values) labelled `labels`. Sized from the map's height.
RgbImage add_colour_bar(const RgbImage& map, const std::string& cmap, const std::vector<double>& ticks,
                        const std::vector<std::string>& labels);

}  // namespace lm::slides
