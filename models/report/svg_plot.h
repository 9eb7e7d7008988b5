// A small SVG plotting helper for the HTML run reports (models/report/report.h): line charts with
// axes, ticks and a legend, ROC curves, labelled heatmaps with a colour bar, patch maps of a
// slide (one square per patch at its grid position) and confusion matrices. Every function
// returns one self-contained, well-formed <svg> element (text is XML-escaped); sizes are in
// CSS pixels. Nothing here needs a browser feature beyond SVG 1.1.
#pragma once
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace lm::report {

// "Choose from the data" for axis and colour ranges.
inline constexpr double kAuto = std::numeric_limits<double>::quiet_NaN();

// Text for XML / HTML (escapes & < > " ').
std::string escape_xml(const std::string& s);
// `v` with `prec` decimals; "nan" / "inf" spelled out.
std::string fmt_fixed(double v, int prec);
// Compact number for tick and colour-bar labels (3 significant digits, no trailing zeros).
std::string fmt_short(double v);

// Colour maps, t in [0, 1] (clamped; NaN gives grey): "#rrggbb".
std::string viridis(double t);
std::string blues(double t);
// The i-th colour of a 10-colour categorical palette (matplotlib's tab10).
std::string palette(size_t i);

// "Nice" tick positions covering [lo, hi] (about `target` of them).
std::vector<double> nice_ticks(double lo, double hi, int target = 5);

struct Series {
  std::string name;            // legend entry ("" = not in the legend)
  std::vector<double> x, y;    // NaN y values break the line
  std::vector<double> err;     // optional +- error bars (same length as y)
  std::string color;           // "" = palette colour by index
  bool markers = false;
  bool dashed = false;
};

struct ChartOptions {
  std::string title, xlabel, ylabel;
  int width = 400, height = 280;
  // Axis ranges; NaN = from the data.
  double xmin = kAuto, xmax = kAuto, ymin = kAuto, ymax = kAuto;
  bool diagonal = false;        // dashed y = x reference line (ROC)
  bool integer_x = false;       // ticks on integers only (epochs, shots)
  std::vector<double> vlines;   // dashed vertical markers (e.g. the selected epoch)
  std::string vline_label;      // legend text of the vertical markers
};

std::string line_chart(const std::vector<Series>& series, const ChartOptions& options);

// ROC curve points of `scores` against binary targets (positive != 0), thresholds descending,
// ties kept together, from (0,0) to (1,1).
struct RocPoints {
  std::vector<double> fpr, tpr;
};
RocPoints roc_points(const std::vector<double>& scores, const std::vector<int>& positive);

struct HeatmapOptions {
  std::string title, xlabel, ylabel;
  int cell = 0;                   // cell size in px (0 = chosen from max_width)
  int max_width = 760;            // of the cell area
  bool annotate = false;          // print the value (or `annotations`) in each cell
  std::vector<std::string> annotations;  // rows*cols texts, used when annotate is set
  std::string colormap = "viridis";      // viridis | blues
  double vmin = kAuto, vmax = kAuto;  // NaN = data range
  bool colorbar = true;
  size_t max_label_chars = 28;    // longer labels are cut (full text in a tooltip)
};

// values: rows*cols, row-major. Row labels on the left, column labels below (slanted).
std::string heatmap(const std::vector<double>& values, int rows, int cols, const std::vector<std::string>& row_labels,
                    const std::vector<std::string>& col_labels, const HeatmapOptions& options);

// Confusion matrix: counts[true][pred]; cells coloured by the row-normalised fraction and
// annotated with "count" and the row percentage.
std::string confusion_matrix(const std::vector<std::vector<int64_t>>& counts, const std::vector<std::string>& class_names,
                             const std::string& title);

struct PatchMapOptions {
  std::string title;
  int max_size = 360;             // px of the longer side of the patch area
  double vmin = kAuto, vmax = kAuto;
  std::string value_label = "score";
  // Patches to outline (indices into the inputs), e.g. the highest-scoring ones.
  std::vector<int64_t> highlight;
};

// One square per patch at its grid position (patch size = the smallest spacing between
// distinct coordinates), coloured by `values` with the viridis map, plus a colour bar.
// x, y: level-0 coordinates of the patches' top-left corners.
std::string patch_map(const std::vector<int64_t>& x, const std::vector<int64_t>& y, const std::vector<double>& values,
                      const PatchMapOptions& options);

}  // namespace lm::report
