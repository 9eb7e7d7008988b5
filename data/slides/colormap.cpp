// Colormaps, normalisation, tick labels and the colour bar (data/slides/colormap.h).
#include "data/slides/colormap.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace lm::slides {

namespace {

struct Knot {
  double t, v;
};

// Piecewise-linear through (t, v) knots sorted by t.
double through(const std::vector<Knot>& k, double t) {
  if (t <= k.front().t) return k.front().v;
  for (size_t i = 1; i < k.size(); ++i)
    if (t <= k[i].t) return k[i - 1].v + (k[i].v - k[i - 1].v) * (t - k[i - 1].t) / (k[i].t - k[i - 1].t);
  return k.back().v;
}

// jet's control points per channel (MATLAB's jet as matplotlib tabulates it).
const std::vector<Knot> kJetR = {{0, 0}, {0.35, 0}, {0.66, 1}, {0.89, 1}, {1, 0.5}};
const std::vector<Knot> kJetG = {{0, 0}, {0.125, 0}, {0.375, 1}, {0.64, 1}, {0.91, 0}, {1, 0}};
const std::vector<Knot> kJetB = {{0, 0.5}, {0.11, 1}, {0.34, 1}, {0.65, 0}, {1, 0}};

// viridis: entries 0, 8, ..., 248 and 255 of the published 256-entry table, at index / 255.
struct Entry {
  int index;
  double r, g, b;
};
const Entry kViridis[] = {
    {0, 0.267004, 0.004874, 0.329415}, {8, 0.277018, 0.050344, 0.375715}, {16, 0.282327, 0.094955, 0.417331},
    {24, 0.282884, 0.135920, 0.453427}, {32, 0.278826, 0.175490, 0.483397}, {40, 0.270595, 0.214069, 0.507052},
    {48, 0.258965, 0.251537, 0.524736}, {56, 0.244972, 0.287675, 0.537260}, {64, 0.229739, 0.322361, 0.545706},
    {72, 0.214298, 0.355619, 0.551184}, {80, 0.199430, 0.387607, 0.554642}, {88, 0.185556, 0.418570, 0.556753},
    {96, 0.172719, 0.448791, 0.557885}, {104, 0.160665, 0.478540, 0.558115}, {112, 0.149039, 0.508051, 0.557250},
    {120, 0.137770, 0.537492, 0.554906}, {128, 0.127568, 0.566949, 0.550556}, {136, 0.120565, 0.596422, 0.543611},
    {144, 0.120638, 0.625828, 0.533488}, {152, 0.132268, 0.655014, 0.519661}, {160, 0.157851, 0.683765, 0.501686},
    {168, 0.196571, 0.711827, 0.479221}, {176, 0.246070, 0.738910, 0.452024}, {184, 0.304148, 0.764704, 0.419943},
    {192, 0.369214, 0.788888, 0.382914}, {200, 0.440137, 0.811138, 0.340967}, {208, 0.515992, 0.831158, 0.294279},
    {216, 0.595839, 0.848717, 0.243329}, {224, 0.678489, 0.863742, 0.189503}, {232, 0.762373, 0.876424, 0.137064},
    {240, 0.845561, 0.887322, 0.099702}, {248, 0.926106, 0.897330, 0.104071}, {255, 0.993248, 0.906157, 0.143936},
};

uint8_t byte(double v) { return uint8_t(std::lround(std::clamp(v, 0.0, 1.0) * 255.0)); }

// The 5 x 7 glyphs: seven rows of five columns, '#' = ink.
struct Glyph {
  char c;
  const char* rows[7];
};
const Glyph kFont[] = {
    {'0', {".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."}},
    {'1', {"..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."}},
    {'2', {".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"}},
    {'3', {"#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."}},
    {'4', {"...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."}},
    {'5', {"#####", "#....", "####.", "....#", "....#", "#...#", ".###."}},
    {'6', {"..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."}},
    {'7', {"#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."}},
    {'8', {".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."}},
    {'9', {".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."}},
    {'.', {".....", ".....", ".....", ".....", ".....", ".##..", ".##.."}},
    {'-', {".....", ".....", ".....", "#####", ".....", ".....", "....."}},
    {'+', {".....", "..#..", "..#..", "#####", "..#..", "..#..", "....."}},
    {'e', {".....", ".....", ".###.", "#...#", "#####", "#....", ".###."}},
};

const Glyph* glyph(char c) {
  for (const Glyph& g : kFont)
    if (g.c == c) return &g;
  return nullptr;
}

std::vector<double> finite_sorted(const std::vector<float>& v) {
  std::vector<double> s;
  s.reserve(v.size());
  for (float x : v)
    if (std::isfinite(x)) s.push_back(x);
  std::sort(s.begin(), s.end());
  return s;
}

}  // namespace

std::vector<std::string> colormap_names() { return {"jet", "viridis"}; }
bool is_colormap(const std::string& name) { return name == "jet" || name == "viridis"; }

Rgb colormap(const std::string& name, double t) {
  t = std::isfinite(t) ? std::clamp(t, 0.0, 1.0) : 0.0;
  if (name == "jet") return {byte(through(kJetR, t)), byte(through(kJetG, t)), byte(through(kJetB, t))};
  if (name == "viridis") {
    const size_t n = sizeof kViridis / sizeof kViridis[0];
    const double x = t * 255.0;
    size_t i = 1;
    while (i + 1 < n && kViridis[i].index < x) ++i;
    const Entry &a = kViridis[i - 1], &b = kViridis[i];
    const double f = (x - a.index) / double(b.index - a.index);
    return {byte(a.r + f * (b.r - a.r)), byte(a.g + f * (b.g - a.g)), byte(a.b + f * (b.b - a.b))};
  }
  throw std::invalid_argument("unknown colormap '" + name + "' (valid: jet, viridis)");
}

std::vector<double> normalize_scores(const std::vector<float>& v, const std::string& how) {
  if (how != "percentile" && how != "minmax")
    throw std::invalid_argument("unknown normalisation '" + how + "' (valid: percentile, minmax)");
  std::vector<double> t(v.size(), NAN);
  const std::vector<double> s = finite_sorted(v);
  if (s.empty()) return t;
  const double lo = s.front(), hi = s.back();
  for (size_t i = 0; i < v.size(); ++i) {
    if (!std::isfinite(v[i])) continue;
    if (hi == lo) {
      t[i] = 0.5;
    } else if (how == "minmax") {
      t[i] = (double(v[i]) - lo) / (hi - lo);
    } else {
      // Mean rank of the ties: (first index + last index) / 2 among the sorted values.
      const double x = v[i];
      const double first = double(std::lower_bound(s.begin(), s.end(), x) - s.begin());
      const double last = double(std::upper_bound(s.begin(), s.end(), x) - s.begin()) - 1;
      t[i] = 0.5 * (first + last) / double(s.size() - 1);
    }
  }
  return t;
}

double score_at(const std::vector<float>& v, const std::string& how, double t) {
  const std::vector<double> s = finite_sorted(v);
  if (s.empty()) return NAN;
  t = std::clamp(t, 0.0, 1.0);
  if (how == "minmax") return s.front() + t * (s.back() - s.front());
  const double pos = t * double(s.size() - 1);
  const size_t i = size_t(std::floor(pos));
  if (i + 1 >= s.size()) return s.back();
  return s[i] + (pos - double(i)) * (s[i + 1] - s[i]);
}

std::vector<std::string> tick_labels(const std::vector<double>& values) {
  double big = 0;
  for (double v : values) big = std::max(big, std::abs(v));
  const bool scientific = big != 0 && (big < 1e-3 || big >= 1e6);
  auto render = [&](int digits) {
    std::vector<std::string> out;
    for (double v : values) {
      char buf[64];
      std::snprintf(buf, sizeof buf, scientific ? "%.*e" : "%.*f", digits, v);
      std::string s = buf;
      if (s == "-0" || s.find_first_not_of("-0.") == std::string::npos) s.erase(0, s[0] == '-');  // "-0.00" -> "0.00"
      out.push_back(s);
    }
    return out;
  };
  for (int digits = 0; digits <= 9; ++digits) {
    std::vector<std::string> l = render(digits);
    bool ok = true;
    for (size_t i = 0; i < values.size() && ok; ++i)
      for (size_t j = i + 1; j < values.size() && ok; ++j)
        if (values[i] != values[j] && l[i] == l[j]) ok = false;
    if (ok) return l;
  }
  return render(9);
}

int text_width(const std::string& s, int scale) { return s.empty() ? 0 : int(s.size()) * 6 * scale - scale; }

void draw_text(RgbImage& img, int x, int y, const std::string& s, int scale, Rgb colour) {
  for (size_t k = 0; k < s.size(); ++k) {
    const Glyph* g = glyph(s[k]);
    if (!g) continue;
    const int gx = x + int(k) * 6 * scale;
    for (int r = 0; r < 7; ++r)
      for (int c = 0; c < 5; ++c) {
        if (g->rows[r][c] != '#') continue;
        for (int dy = 0; dy < scale; ++dy)
          for (int dx = 0; dx < scale; ++dx) {
            const int px = gx + c * scale + dx, py = y + r * scale + dy;
            if (px >= 0 && py >= 0 && px < img.width && py < img.height) img.set(px, py, colour[0], colour[1], colour[2]);
          }
      }
  }
}

RgbImage add_colour_bar(const RgbImage& map, const std::string& cmap, const std::vector<double>& ticks,
                        const std::vector<std::string>& labels) {
  const int H = map.height;
  const int scale = std::clamp((H + 160) / 320, 1, 8);  // 2 from about 500 px, 6 at 1800
  const int margin = 4 * scale, bar_w = 10 * scale, tick_len = 3 * scale, glyph_h = 7 * scale;
  int label_w = 0;
  for (const std::string& l : labels) label_w = std::max(label_w, text_width(l, scale));
  const int strip = margin + bar_w + tick_len + 2 * scale + label_w + margin;
  RgbImage out(map.width + strip, H);
  std::fill(out.rgb.begin(), out.rgb.end(), uint8_t(255));
  for (int y = 0; y < H; ++y)
    std::copy(map.rgb.begin() + size_t(y) * map.width * 3, map.rgb.begin() + size_t(y + 1) * map.width * 3,
              out.rgb.begin() + size_t(y) * out.width * 3);
  const int top = margin + glyph_h / 2, bottom = H - margin - glyph_h / 2;  // bar rows [top, bottom)
  if (bottom - top < 2) return out;
  const int x0 = map.width + margin;
  for (int y = top; y < bottom; ++y) {
    const Rgb c = colormap(cmap, 1.0 - double(y - top) / double(bottom - top - 1));
    for (int x = x0; x < x0 + bar_w; ++x) out.set(x, y, c[0], c[1], c[2]);
  }
  const Rgb ink = {0, 0, 0};
  for (size_t i = 0; i < ticks.size() && i < labels.size(); ++i) {
    const int y = top + int(std::lround((1.0 - ticks[i]) * (bottom - top - 1)));
    for (int x = x0 + bar_w; x < x0 + bar_w + tick_len; ++x)
      for (int d = 0; d < scale; ++d)
        if (y + d < H) out.set(x, y + d, 0, 0, 0);
    draw_text(out, x0 + bar_w + tick_len + 2 * scale, y - glyph_h / 2, labels[i], scale, ink);
  }
  return out;
}

}  // namespace lm::slides
