// Heatmaps on the slide, the patch GeoJSON and the top-patch gallery (data/slides/heatmap.h).
#include "data/slides/heatmap.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <stdexcept>

#include "data/slides/thumbnail.h"

namespace lm::slides {

namespace {

std::string json_string(const std::string& s) {
  std::string o = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') o += '\\', o += char(c);
    else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      o += buf;
    } else o += char(c);
  }
  return o + "\"";
}

std::string float_text(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

}  // namespace

VisImage plan_vis_image(const Slide& slide, int vis_level, int max_side) {
  const auto& levels = slide.levels();
  if (max_side < 16) throw std::invalid_argument("the heatmap's long side limit must be at least 16 pixels, got " + std::to_string(max_side));
  VisImage v;
  if (vis_level >= 0) {
    if (vis_level >= int(levels.size()))
      throw std::invalid_argument(slide.path() + ": no level " + std::to_string(vis_level) + " (the slide has levels 0.." +
                                  std::to_string(levels.size() - 1) + ")");
    v.level = vis_level;
  } else if (vis_level == -1) {
    v.level = -1;
    for (int l = 0; l < int(levels.size()); ++l)
      if (std::max(levels[l].width, levels[l].height) <= max_side &&
          (v.level < 0 || levels[l].downsample < levels[v.level].downsample))
        v.level = l;
    if (v.level < 0)  // every level is too large: the coarsest, reduced below
      for (int l = 0; l < int(levels.size()); ++l)
        if (v.level < 0 || levels[l].downsample > levels[v.level].downsample) v.level = l;
  } else {
    throw std::invalid_argument("vis level " + std::to_string(vis_level) + ": expected -1 (auto) or a level number");
  }
  const LevelInfo& li = levels[size_t(v.level)];
  const int64_t long_side = std::max(li.width, li.height);
  v.reduction = long_side > max_side ? int((long_side + max_side - 1) / max_side) : 1;
  v.dx = v.reduction * double(slide.width()) / double(li.width);
  v.dy = v.reduction * double(slide.height()) / double(li.height);
  v.image.width = int(li.width / v.reduction);
  v.image.height = int(li.height / v.reduction);
  return v;
}

VisImage read_vis_image(const Slide& slide, int vis_level, int max_side) {
  VisImage v = plan_vis_image(slide, vis_level, max_side);
  v.image = read_level_reduced(slide, v.level, v.reduction);
  return v;
}

PixelBox patch_pixels(const VisImage& vis, const Coord& c, int64_t p0) {
  auto range = [](double start, double end, double d, int n, int& lo, int& hi) {
    double a = std::ceil(start / d - 0.5), b = std::ceil(end / d - 0.5);
    if (b <= a) a = std::floor(0.5 * (start + end) / d), b = a + 1;  // smaller than a pixel: the pixel holding its centre
    lo = int(std::clamp(a, 0.0, double(n)));
    hi = int(std::clamp(b, 0.0, double(n)));
  };
  PixelBox b;
  range(double(c[0]), double(c[0] + p0), vis.dx, vis.image.width, b.x0, b.x1);
  range(double(c[1]), double(c[1] + p0), vis.dy, vis.image.height, b.y0, b.y1);
  return b;
}

RgbImage draw_heatmap(const VisImage& vis, const std::vector<Coord>& coords, int64_t p0, const std::vector<float>& scores,
                      const HeatmapStyle& style) {
  if (scores.size() != coords.size())
    throw std::invalid_argument(std::to_string(scores.size()) + " scores for " + std::to_string(coords.size()) + " patches");
  if (!(style.alpha >= 0 && style.alpha <= 1)) throw std::invalid_argument("alpha must lie in [0, 1]");
  if (!is_colormap(style.cmap)) colormap(style.cmap, 0);  // throws naming the valid ones
  if (p0 <= 0) throw std::invalid_argument("the patch size at level 0 must be positive");
  const std::vector<double> t = normalize_scores(scores, style.normalize);
  const RgbImage& bg = vis.image;
  const size_t npix = bg.pixel_count();
  std::vector<float> sum(npix, 0.0f);
  std::vector<uint16_t> count(npix, 0);
  for (size_t i = 0; i < coords.size(); ++i) {
    if (!std::isfinite(t[i])) continue;
    const PixelBox b = patch_pixels(vis, coords[i], p0);
    const float v = float(t[i]);
    for (int y = b.y0; y < b.y1; ++y) {
      float* s = &sum[size_t(y) * bg.width];
      uint16_t* n = &count[size_t(y) * bg.width];
      for (int x = b.x0; x < b.x1; ++x)
        if (n[x] < 65535) s[x] += v, ++n[x];
    }
  }
  // A 1024-entry table of the colormap, the blend in integers of 1/256.
  std::vector<Rgb> lut(1024);
  for (int i = 0; i < 1024; ++i) lut[size_t(i)] = colormap(style.cmap, i / 1023.0);
  const int a = int(std::lround(style.alpha * 256));
  RgbImage map = bg;
  for (size_t p = 0; p < npix; ++p) {
    if (!count[p]) continue;
    const double v = std::clamp(double(sum[p]) / count[p], 0.0, 1.0);
    const Rgb& c = lut[size_t(std::lround(v * 1023))];
    uint8_t* px = &map.rgb[3 * p];
    for (int ch = 0; ch < 3; ++ch) px[ch] = uint8_t(((256 - a) * px[ch] + a * c[size_t(ch)] + 128) >> 8);
  }
  if (!style.colour_bar) return map;
  std::vector<double> ticks, values;
  bool constant = true, any = false;
  float first = 0;
  for (float s : scores)
    if (std::isfinite(s)) {
      if (!any) first = s, any = true;
      else if (s != first) constant = false;
    }
  if (any && constant) ticks = {0.5};
  else if (any) ticks = {0, 0.25, 0.5, 0.75, 1};
  for (double tk : ticks) values.push_back(constant ? double(first) : score_at(scores, style.normalize, tk));
  return add_colour_bar(map, style.cmap, ticks, tick_labels(values));
}

void check_patches_inside(const Slide& slide, const std::vector<Coord>& coords, int64_t p0, const std::string& what) {
  if (p0 <= 0) throw std::runtime_error(what + ": the patch size at level 0 is unknown or not positive (" + std::to_string(p0) + ")");
  for (size_t i = 0; i < coords.size(); ++i) {
    const Coord& c = coords[i];
    if (c[0] < 0 || c[1] < 0 || c[0] >= slide.width() || c[1] >= slide.height())
      throw std::runtime_error(what + ": patch " + std::to_string(i) + " at (" + std::to_string(c[0]) + ", " +
                               std::to_string(c[1]) + ") lies outside the slide " + slide.path() + " (" +
                               std::to_string(slide.width()) + " x " + std::to_string(slide.height()) +
                               " at level 0): are the coordinates of another slide?");
  }
}

std::string scores_geojson(const std::vector<Coord>& coords, int64_t p0, const std::vector<const ScoreColumn*>& scores,
                           const std::string& object_type) {
  std::ostringstream o;
  o << "{\"type\":\"FeatureCollection\",\"features\":[";
  for (size_t i = 0; i < coords.size(); ++i) {
    const std::string x0 = std::to_string(coords[i][0]), y0 = std::to_string(coords[i][1]);
    const std::string x1 = std::to_string(coords[i][0] + p0), y1 = std::to_string(coords[i][1] + p0);
    o << (i ? "," : "") << "\n{\"type\":\"Feature\",\"geometry\":{\"type\":\"Polygon\",\"coordinates\":[[[" << x0 << ',' << y0
      << "],[" << x1 << ',' << y0 << "],[" << x1 << ',' << y1 << "],[" << x0 << ',' << y1 << "],[" << x0 << ',' << y0
      << "]]]},\"properties\":{\"objectType\":" << json_string(object_type) << ",\"name\":\"patch " << i
      << "\",\"measurements\":{";
    bool first = true;
    for (const ScoreColumn* s : scores) {
      const float v = s->values.at(i);
      if (!std::isfinite(v)) continue;
      o << (first ? "" : ",") << json_string(s->name) << ':' << float_text(v);
      first = false;
    }
    o << "}}}";
  }
  o << "\n]}\n";
  return o.str();
}

std::vector<GalleryPatch> top_patches(const Slide& slide, const std::vector<Coord>& coords, int64_t p0,
                                      const std::vector<float>& scores, int k) {
  if (scores.size() != coords.size())
    throw std::invalid_argument(std::to_string(scores.size()) + " scores for " + std::to_string(coords.size()) + " patches");
  std::vector<int64_t> idx;
  for (size_t i = 0; i < scores.size(); ++i)
    if (std::isfinite(scores[i])) idx.push_back(int64_t(i));
  const size_t n = std::min(idx.size(), size_t(std::max(k, 0)));
  std::partial_sort(idx.begin(), idx.begin() + std::ptrdiff_t(n), idx.end(), [&](int64_t a, int64_t b) {
    return scores[size_t(a)] != scores[size_t(b)] ? scores[size_t(a)] > scores[size_t(b)] : a < b;
  });
  const int width = std::max(2, int(std::to_string(n).size()));
  std::vector<GalleryPatch> out;
  for (size_t r = 0; r < n; ++r) {
    GalleryPatch g;
    g.rank = int(r) + 1;
    g.index = idx[r];
    g.score = scores[size_t(g.index)];
    g.coord = coords[size_t(g.index)];
    g.image = slide.read_region(0, g.coord[0], g.coord[1], p0, p0);
    char buf[160];
    std::snprintf(buf, sizeof buf, "rank_%0*d_score_%.6g_x%lld_y%lld.png", width, g.rank, double(g.score),
                  (long long)g.coord[0], (long long)g.coord[1]);
    g.file_name = buf;
    out.push_back(std::move(g));
  }
  return out;
}

}  // namespace lm::slides
