// SVG plots for the run reports (see svg_plot.h).
#include "models/report/svg_plot.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <map>
#include <numeric>
#include <sstream>

namespace lm::report {

namespace {

constexpr const char* kFont = "font-family=\"Helvetica, Arial, sans-serif\"";

// Coordinate with at most 2 decimals, no trailing zeros.
std::string n2(double v) {
  if (!std::isfinite(v)) v = 0;
  char b[32];
  std::snprintf(b, sizeof b, "%.2f", v);
  std::string s = b;
  while (!s.empty() && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  if (s == "-0") s = "0";
  return s;
}

double text_width(const std::string& s, double font_px) {
  // Rough average glyph width of Helvetica; UTF-8 continuation bytes do not count.
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return (double)n * font_px * 0.58;
}

std::string cut(const std::string& s, size_t max_chars) {
  if (max_chars == 0 || s.size() <= max_chars) return s;
  size_t n = max_chars - 1;
  while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) --n;  // do not split a UTF-8 sequence
  return s.substr(0, n) + "\xE2\x80\xA6";                      // ellipsis
}

std::string hex_colour(double r, double g, double b) {
  auto c = [](double v) { return (int)std::lround(std::clamp(v, 0.0, 1.0) * 255.0); };
  char buf[8];
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", c(r), c(g), c(b));
  return buf;
}

using RGB = std::array<double, 3>;

std::string interpolate(const std::vector<RGB>& stops, double t) {
  if (std::isnan(t)) return "#bbbbbb";
  t = std::clamp(t, 0.0, 1.0);
  double pos = t * (double)(stops.size() - 1);
  size_t i = std::min((size_t)pos, stops.size() - 2);
  double f = pos - (double)i;
  const RGB &a = stops[i], &b = stops[i + 1];
  return hex_colour(a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f);
}

std::string colour(const std::string& map, double t) { return map == "blues" ? blues(t) : viridis(t); }

// Whether dark text reads better than white on colour-map value t.
bool dark_text(const std::string& map, double t) { return map == "blues" ? t < 0.55 : t > 0.55; }

std::string svg_open(double w, double h, const std::string& label) {
  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"plot\" width=\"" << n2(w) << "\" height=\"" << n2(h)
    << "\" viewBox=\"0 0 " << n2(w) << ' ' << n2(h) << "\" role=\"img\" aria-label=\"" << escape_xml(label) << "\" " << kFont
    << ">\n";
  return s.str();
}

std::string text(double x, double y, const std::string& t, const std::string& attrs = "") {
  return "<text x=\"" + n2(x) + "\" y=\"" + n2(y) + "\"" + (attrs.empty() ? "" : " " + attrs) + ">" + escape_xml(t) + "</text>\n";
}

// Vertical colour bar: `n` stacked rectangles from vmin (bottom) to vmax (top), labels right.
std::string colour_bar(double x, double y, double h, double vmin, double vmax, const std::string& map,
                       const std::string& label) {
  std::ostringstream s;
  const int n = 48;
  const double w = 12, step = h / n;
  for (int i = 0; i < n; ++i) {
    double t = (i + 0.5) / n;
    s << "<rect x=\"" << n2(x) << "\" y=\"" << n2(y + h - (i + 1) * step) << "\" width=\"" << n2(w) << "\" height=\""
      << n2(step + 0.3) << "\" fill=\"" << colour(map, t) << "\"/>\n";
  }
  s << "<rect x=\"" << n2(x) << "\" y=\"" << n2(y) << "\" width=\"" << n2(w) << "\" height=\"" << n2(h)
    << "\" fill=\"none\" stroke=\"#666\" stroke-width=\"0.5\"/>\n";
  s << text(x + w + 4, y + 8, fmt_short(vmax), "font-size=\"10\"");
  s << text(x + w + 4, y + h / 2 + 3, fmt_short((vmin + vmax) / 2), "font-size=\"10\"");
  s << text(x + w + 4, y + h, fmt_short(vmin), "font-size=\"10\"");
  if (!label.empty())
    s << "<text transform=\"translate(" << n2(x + w + 44) << ',' << n2(y + h / 2) << ") rotate(-90)\" text-anchor=\"middle\" "
      << "font-size=\"10\" fill=\"#444\">" << escape_xml(label) << "</text>\n";
  return s.str();
}

void finite_range(const std::vector<double>& v, double& lo, double& hi) {
  for (double x : v)
    if (std::isfinite(x)) {
      lo = std::min(lo, x);
      hi = std::max(hi, x);
    }
}

}  // namespace

std::string escape_xml(const std::string& s) {
  std::string o;
  o.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&#39;"; break;
      default:
        if ((unsigned char)c < 0x20 && c != '\n' && c != '\t') break;  // control characters are not XML
        o += c;
    }
  }
  return o;
}

std::string fmt_fixed(double v, int prec) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", prec, v);
  std::string s = b;
  if (s.find_first_not_of("-0.") == std::string::npos && s[0] == '-') s.erase(0, 1);  // "-0.000"
  return s;
}

std::string fmt_short(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  if (std::abs(v) < 1e-12) return "0";
  char b[32];
  double a = std::abs(v);
  if (a >= 1e5 || a < 1e-3)
    std::snprintf(b, sizeof b, "%.2e", v);
  else
    std::snprintf(b, sizeof b, "%.3g", v);
  return b;
}

std::string viridis(double t) {
  static const std::vector<RGB> stops = {
      {0.267, 0.005, 0.329}, {0.283, 0.141, 0.458}, {0.254, 0.265, 0.530}, {0.207, 0.372, 0.553},
      {0.164, 0.471, 0.558}, {0.128, 0.567, 0.551}, {0.135, 0.659, 0.518}, {0.267, 0.749, 0.441},
      {0.478, 0.821, 0.318}, {0.741, 0.873, 0.150}, {0.993, 0.906, 0.144}};
  return interpolate(stops, t);
}

std::string blues(double t) {
  static const std::vector<RGB> stops = {{0.969, 0.984, 1.000}, {0.871, 0.922, 0.969}, {0.776, 0.859, 0.937},
                                         {0.620, 0.792, 0.882}, {0.420, 0.682, 0.839}, {0.259, 0.573, 0.776},
                                         {0.129, 0.443, 0.710}, {0.031, 0.318, 0.612}, {0.031, 0.188, 0.420}};
  return interpolate(stops, t);
}

std::string palette(size_t i) {
  static const char* p[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                            "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
  return p[i % 10];
}

std::vector<double> nice_ticks(double lo, double hi, int target) {
  if (!std::isfinite(lo) || !std::isfinite(hi)) return {};
  if (hi < lo) std::swap(lo, hi);
  double span = hi - lo;
  if (span <= 0) span = std::abs(lo) > 0 ? std::abs(lo) : 1.0;
  double raw = span / std::max(1, target);
  double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double norm = raw / mag;
  double step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
  double start = std::floor(lo / step + 1e-9), end = std::ceil(hi / step - 1e-9);
  if (end <= start) end = start + 1;
  std::vector<double> t;
  for (double k = start; k <= end + 1e-9 && t.size() < 100; k += 1) {
    double v = k * step;
    if (std::abs(v) < step * 1e-9) v = 0;
    t.push_back(v);
  }
  return t;
}

std::string line_chart(const std::vector<Series>& series, const ChartOptions& o) {
  // Ranges.
  double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
  for (const Series& s : series) {
    finite_range(s.x, xlo, xhi);
    for (size_t i = 0; i < s.y.size(); ++i) {
      double e = i < s.err.size() && std::isfinite(s.err[i]) ? s.err[i] : 0;
      if (std::isfinite(s.y[i])) {
        ylo = std::min(ylo, s.y[i] - e);
        yhi = std::max(yhi, s.y[i] + e);
      }
    }
  }
  for (double v : o.vlines) finite_range({v}, xlo, xhi);
  if (!std::isfinite(xlo)) xlo = 0, xhi = 1;
  if (!std::isfinite(ylo)) ylo = 0, yhi = 1;
  if (xhi == xlo) xlo -= 1, xhi += 1;
  if (yhi == ylo) ylo -= 0.5, yhi += 0.5;
  auto axis = [](double dlo, double dhi, double olo, double ohi, bool integer, double& lo, double& hi) {
    std::vector<double> t = nice_ticks(std::isnan(olo) ? dlo : olo, std::isnan(ohi) ? dhi : ohi, 5);
    if (integer && t.size() > 1 && t[1] - t[0] < 1) {
      t.clear();
      for (double v = std::floor(dlo); v <= std::ceil(dhi); v += 1) t.push_back(v);
    }
    lo = std::isnan(olo) ? std::min(dlo, t.empty() ? dlo : t.front()) : olo;
    hi = std::isnan(ohi) ? std::max(dhi, t.empty() ? dhi : t.back()) : ohi;
    std::vector<double> in;
    for (double v : t)
      if (v >= lo - 1e-9 * (hi - lo) && v <= hi + 1e-9 * (hi - lo)) in.push_back(v);
    return in;
  };
  double x0, x1, y0, y1;
  std::vector<double> xt = axis(xlo, xhi, o.xmin, o.xmax, o.integer_x, x0, x1);
  std::vector<double> yt = axis(ylo, yhi, o.ymin, o.ymax, false, y0, y1);
  {  // keep markers and error bars at the ends off the frame (automatic x ranges only)
    double pad = 0.04 * (x1 - x0);
    if (std::isnan(o.xmin)) x0 -= pad;
    if (std::isnan(o.xmax)) x1 += pad;
  }
  if (o.integer_x && xt.size() > 12) {  // thin integer ticks
    size_t every = (xt.size() + 11) / 12;
    std::vector<double> keep;
    for (size_t i = 0; i < xt.size(); i += every) keep.push_back(xt[i]);
    xt = keep;
  }

  // Legend layout (below the x-axis label, wrapping).
  struct Entry {
    std::string name, color;
    bool dashed, markers, vline;
    double w;
  };
  std::vector<Entry> legend;
  for (size_t i = 0; i < series.size(); ++i)
    if (!series[i].name.empty())
      legend.push_back({series[i].name, series[i].color.empty() ? palette(i) : series[i].color, series[i].dashed,
                        series[i].markers, false, 28 + text_width(series[i].name, 11)});
  if (!o.vlines.empty() && !o.vline_label.empty()) legend.push_back({o.vline_label, "#888", true, false, true, 28 + text_width(o.vline_label, 11)});
  const double W = o.width, ml = 54, mr = 14, mt = o.title.empty() ? 12 : 28, mb = 40;
  std::vector<int> legend_row(legend.size());
  {
    double cx = ml;
    int row = 0;
    for (size_t i = 0; i < legend.size(); ++i) {
      if (cx + legend[i].w > W - mr && cx > ml) ++row, cx = ml;
      legend_row[i] = row;
      cx += legend[i].w + 8;
    }
  }
  int legend_rows = legend.empty() ? 0 : legend_row.back() + 1;
  const double H = o.height + (legend_rows ? legend_rows * 16 + 8 : 0);
  const double pw = W - ml - mr, ph = o.height - mt - mb;
  auto px = [&](double x) { return ml + (x - x0) / (x1 - x0) * pw; };
  auto py = [&](double y) { return mt + ph - (y - y0) / (y1 - y0) * ph; };

  std::ostringstream s;
  s << svg_open(W, H, o.title.empty() ? "chart" : o.title);
  s << "<rect x=\"0\" y=\"0\" width=\"" << n2(W) << "\" height=\"" << n2(H) << "\" fill=\"white\"/>\n";
  if (!o.title.empty()) s << text(W / 2, 17, o.title, "text-anchor=\"middle\" font-size=\"13\" font-weight=\"bold\"");
  // Grid and ticks.
  auto tick_label = [](double v, const std::vector<double>& ticks) {
    double step = ticks.size() > 1 ? std::abs(ticks[1] - ticks[0]) : 0;
    if (!(step > 0) || std::abs(v) >= 1e5 || (std::abs(v) < 1e-3 && v != 0)) return fmt_short(v);
    int decimals = std::clamp((int)std::ceil(-std::log10(step) - 1e-9), 0, 6);
    return fmt_fixed(v, decimals);
  };
  for (double v : yt) {
    double y = py(v);
    s << "<line x1=\"" << n2(ml) << "\" y1=\"" << n2(y) << "\" x2=\"" << n2(ml + pw) << "\" y2=\"" << n2(y)
      << "\" stroke=\"#e5e5e5\" stroke-width=\"1\"/>\n";
    s << text(ml - 5, y + 3.5, tick_label(v, yt), "text-anchor=\"end\" font-size=\"10\" fill=\"#333\"");
  }
  for (double v : xt) {
    double x = px(v);
    s << "<line x1=\"" << n2(x) << "\" y1=\"" << n2(mt + ph) << "\" x2=\"" << n2(x) << "\" y2=\"" << n2(mt + ph + 4)
      << "\" stroke=\"#333\"/>\n";
    s << text(x, mt + ph + 15, tick_label(v, xt), "text-anchor=\"middle\" font-size=\"10\" fill=\"#333\"");
  }
  s << "<rect x=\"" << n2(ml) << "\" y=\"" << n2(mt) << "\" width=\"" << n2(pw) << "\" height=\"" << n2(ph)
    << "\" fill=\"none\" stroke=\"#333\" stroke-width=\"1\"/>\n";
  if (!o.xlabel.empty()) s << text(ml + pw / 2, mt + ph + 32, o.xlabel, "text-anchor=\"middle\" font-size=\"11\"");
  if (!o.ylabel.empty())
    s << "<text transform=\"translate(14," << n2(mt + ph / 2) << ") rotate(-90)\" text-anchor=\"middle\" font-size=\"11\">"
      << escape_xml(o.ylabel) << "</text>\n";
  s << "<g>\n";  // data
  if (o.diagonal)
    s << "<line x1=\"" << n2(px(std::max(x0, y0))) << "\" y1=\"" << n2(py(std::max(x0, y0))) << "\" x2=\""
      << n2(px(std::min(x1, y1))) << "\" y2=\"" << n2(py(std::min(x1, y1)))
      << "\" stroke=\"#999\" stroke-dasharray=\"4 3\"/>\n";
  for (double v : o.vlines)
    if (std::isfinite(v) && v >= x0 && v <= x1)
      s << "<line x1=\"" << n2(px(v)) << "\" y1=\"" << n2(mt) << "\" x2=\"" << n2(px(v)) << "\" y2=\"" << n2(mt + ph)
        << "\" stroke=\"#888\" stroke-dasharray=\"3 3\"/>\n";
  for (size_t si = 0; si < series.size(); ++si) {
    const Series& sr = series[si];
    std::string col = sr.color.empty() ? palette(si) : sr.color;
    std::ostringstream d;
    bool pen = false;
    size_t n = std::min(sr.x.size(), sr.y.size());
    for (size_t i = 0; i < n; ++i) {
      if (!std::isfinite(sr.x[i]) || !std::isfinite(sr.y[i])) {
        pen = false;
        continue;
      }
      d << (pen ? 'L' : 'M') << n2(px(sr.x[i])) << ' ' << n2(py(sr.y[i]));
      pen = true;
    }
    if (!d.str().empty())
      s << "<path d=\"" << d.str() << "\" fill=\"none\" stroke=\"" << col << "\" stroke-width=\"1.8\""
        << (sr.dashed ? " stroke-dasharray=\"5 3\"" : "") << " stroke-linejoin=\"round\"/>\n";
    for (size_t i = 0; i < n; ++i) {
      if (!std::isfinite(sr.x[i]) || !std::isfinite(sr.y[i])) continue;
      if (i < sr.err.size() && std::isfinite(sr.err[i]) && sr.err[i] > 0) {
        double x = px(sr.x[i]), ya = py(sr.y[i] - sr.err[i]), yb = py(sr.y[i] + sr.err[i]);
        s << "<path d=\"M" << n2(x) << ' ' << n2(ya) << "V" << n2(yb) << "M" << n2(x - 3) << ' ' << n2(ya) << "h6M"
          << n2(x - 3) << ' ' << n2(yb) << "h6\" stroke=\"" << col << "\" stroke-width=\"1.2\" fill=\"none\"/>\n";
      }
      if (sr.markers)
        s << "<circle cx=\"" << n2(px(sr.x[i])) << "\" cy=\"" << n2(py(sr.y[i])) << "\" r=\"3\" fill=\"" << col
          << "\"><title>" << escape_xml(sr.name) << ": (" << fmt_short(sr.x[i]) << ", " << fmt_short(sr.y[i]) << ")</title></circle>\n";
    }
  }
  s << "</g>\n";
  // Legend.
  {
    double cx = ml;
    int row = 0;
    for (size_t i = 0; i < legend.size(); ++i) {
      if (legend_row[i] != row) row = legend_row[i], cx = ml;
      double y = o.height + 10 + row * 16;
      const Entry& e = legend[i];
      s << "<line x1=\"" << n2(cx) << "\" y1=\"" << n2(y - 4) << "\" x2=\"" << n2(cx + 20) << "\" y2=\"" << n2(y - 4)
        << "\" stroke=\"" << e.color << "\" stroke-width=\"" << (e.vline ? 1 : 2) << "\""
        << (e.dashed ? " stroke-dasharray=\"4 2\"" : "") << "/>\n";
      if (e.markers) s << "<circle cx=\"" << n2(cx + 10) << "\" cy=\"" << n2(y - 4) << "\" r=\"3\" fill=\"" << e.color << "\"/>\n";
      s << text(cx + 24, y, e.name, "font-size=\"11\"");
      cx += e.w + 8;
    }
  }
  s << "</svg>\n";
  return s.str();
}

RocPoints roc_points(const std::vector<double>& scores, const std::vector<int>& positive) {
  RocPoints r;
  size_t n = std::min(scores.size(), positive.size());
  double P = 0, N = 0;
  for (size_t i = 0; i < n; ++i) (positive[i] ? P : N) += 1;
  if (P == 0 || N == 0) return r;
  std::vector<size_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });
  r.fpr.push_back(0);
  r.tpr.push_back(0);
  double tp = 0, fp = 0;
  for (size_t k = 0; k < n; ++k) {
    (positive[idx[k]] ? tp : fp) += 1;
    if (k + 1 == n || scores[idx[k + 1]] != scores[idx[k]]) {
      r.fpr.push_back(fp / N);
      r.tpr.push_back(tp / P);
    }
  }
  return r;
}

std::string heatmap(const std::vector<double>& values, int rows, int cols, const std::vector<std::string>& row_labels,
                    const std::vector<std::string>& col_labels, const HeatmapOptions& o) {
  rows = std::max(rows, 0);
  cols = std::max(cols, 0);
  double vmin = o.vmin, vmax = o.vmax;
  {
    double lo = INFINITY, hi = -INFINITY;
    finite_range(values, lo, hi);
    if (std::isnan(vmin)) vmin = std::isfinite(lo) ? lo : 0;
    if (std::isnan(vmax)) vmax = std::isfinite(hi) ? hi : 1;
    if (vmax <= vmin) vmax = vmin + (vmin == 0 ? 1 : std::abs(vmin) * 1e-6);
  }
  const double cell = o.cell > 0 ? o.cell : std::clamp((double)o.max_width / std::max(cols, 1), 9.0, 48.0);
  const double font = 11;
  double row_w = 0, col_w = 0;
  for (const std::string& l : row_labels) row_w = std::max(row_w, text_width(cut(l, o.max_label_chars), font));
  for (const std::string& l : col_labels) col_w = std::max(col_w, text_width(cut(l, o.max_label_chars), font));
  const bool slant = col_w > cell * 0.95;  // labels wider than a cell are drawn at 45 degrees
  const double col_extent = slant ? col_w * 0.7071 + 8 : 16;
  const double ml = std::max(row_w + 10 + (o.ylabel.empty() ? 0 : 18), slant ? col_extent - cell / 2 + 4 : 0.0) + 6;
  const double mt = o.title.empty() ? 8 : 28;
  const double gw = cell * cols, gh = cell * rows;
  const double mb = col_extent + (o.xlabel.empty() ? 6 : 22);
  const double bar_w = o.colorbar ? 70 : 10;
  const double W = std::max(ml + gw + bar_w, o.title.empty() ? 0.0 : text_width(o.title, 13) + 20);
  const double H = mt + gh + mb;
  std::ostringstream s;
  s << svg_open(W, H, o.title.empty() ? "heatmap" : o.title);
  s << "<rect x=\"0\" y=\"0\" width=\"" << n2(W) << "\" height=\"" << n2(H) << "\" fill=\"white\"/>\n";
  if (!o.title.empty()) s << text(W / 2, 17, o.title, "text-anchor=\"middle\" font-size=\"13\" font-weight=\"bold\"");
  const double afont = std::min(11.0, cell * 0.3);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) {
      size_t k = (size_t)r * cols + c;
      double v = k < values.size() ? values[k] : NAN;
      double t = (v - vmin) / (vmax - vmin);
      std::string rl = r < (int)row_labels.size() ? row_labels[r] : std::to_string(r);
      std::string cl = c < (int)col_labels.size() ? col_labels[c] : std::to_string(c);
      s << "<rect x=\"" << n2(ml + c * cell) << "\" y=\"" << n2(mt + r * cell) << "\" width=\"" << n2(cell) << "\" height=\""
        << n2(cell) << "\" fill=\"" << colour(o.colormap, t) << "\" stroke=\"white\" stroke-width=\"0.5\"><title>"
        << escape_xml(rl + " / " + cl + ": " + fmt_short(v)) << "</title></rect>\n";
      if (o.annotate) {
        std::string a = k < o.annotations.size() ? o.annotations[k] : fmt_short(v);
        s << text(ml + (c + 0.5) * cell, mt + (r + 0.5) * cell + afont * 0.35, a,
                  "text-anchor=\"middle\" font-size=\"" + n2(afont) + "\" fill=\"" +
                      (dark_text(o.colormap, t) ? "#111" : "#fff") + "\"");
      }
    }
  for (int r = 0; r < rows; ++r) {
    std::string l = r < (int)row_labels.size() ? row_labels[r] : std::to_string(r);
    s << "<text x=\"" << n2(ml - 5) << "\" y=\"" << n2(mt + (r + 0.5) * cell + 4) << "\" text-anchor=\"end\" font-size=\"11\">"
      << escape_xml(cut(l, o.max_label_chars)) << "<title>" << escape_xml(l) << "</title></text>\n";
  }
  for (int c = 0; c < cols; ++c) {
    std::string l = c < (int)col_labels.size() ? col_labels[c] : std::to_string(c);
    double x = ml + (c + 0.5) * cell, y = mt + gh + 12;
    if (slant)
      s << "<text transform=\"translate(" << n2(x + 3) << ',' << n2(mt + gh + 6) << ") rotate(-45)\" text-anchor=\"end\" font-size=\"11\">"
        << escape_xml(cut(l, o.max_label_chars)) << "<title>" << escape_xml(l) << "</title></text>\n";
    else
      s << "<text x=\"" << n2(x) << "\" y=\"" << n2(y) << "\" text-anchor=\"middle\" font-size=\"11\">"
        << escape_xml(cut(l, o.max_label_chars)) << "<title>" << escape_xml(l) << "</title></text>\n";
  }
  if (!o.xlabel.empty()) s << text(ml + gw / 2, H - 6, o.xlabel, "text-anchor=\"middle\" font-size=\"11\" fill=\"#444\"");
  if (!o.ylabel.empty())
    s << "<text transform=\"translate(12," << n2(mt + gh / 2) << ") rotate(-90)\" text-anchor=\"middle\" font-size=\"11\" fill=\"#444\">"
      << escape_xml(o.ylabel) << "</text>\n";
  if (o.colorbar && rows > 0) s << colour_bar(ml + gw + 10, mt, std::max(gh, 40.0), vmin, vmax, o.colormap, "");
  s << "</svg>\n";
  return s.str();
}

std::string confusion_matrix(const std::vector<std::vector<int64_t>>& counts, const std::vector<std::string>& names,
                             const std::string& title) {
  int C = (int)counts.size();
  std::vector<double> frac;
  std::vector<std::string> ann;
  for (int r = 0; r < C; ++r) {
    int64_t tot = 0;
    for (int64_t v : counts[r]) tot += v;
    for (int c = 0; c < C; ++c) {
      int64_t v = c < (int)counts[r].size() ? counts[r][c] : 0;
      double f = tot > 0 ? (double)v / (double)tot : 0;
      frac.push_back(f);
      ann.push_back(std::to_string(v) + " (" + fmt_fixed(100 * f, 0) + "%)");
    }
  }
  HeatmapOptions o;
  o.title = title;
  o.xlabel = "predicted class";
  o.ylabel = "true class";
  o.colormap = "blues";
  o.annotate = true;
  o.annotations = ann;
  o.vmin = 0;
  o.vmax = 1;
  o.cell = C <= 4 ? 76 : std::max(36, 300 / std::max(C, 1));
  o.colorbar = false;
  return heatmap(frac, C, C, names, names, o);
}

std::string patch_map(const std::vector<int64_t>& x, const std::vector<int64_t>& y, const std::vector<double>& values,
                      const PatchMapOptions& o) {
  const size_t n = std::min({x.size(), y.size(), values.size()});
  if (n == 0) {
    std::ostringstream s;
    s << svg_open(240, 60, o.title) << text(10, 34, "no patches", "font-size=\"12\"") << "</svg>\n";
    return s.str();
  }
  // Grid step: the smallest positive spacing between distinct coordinates.
  auto min_step = [&](const std::vector<int64_t>& v) {
    std::vector<int64_t> u(v.begin(), v.begin() + (std::ptrdiff_t)n);
    std::sort(u.begin(), u.end());
    u.erase(std::unique(u.begin(), u.end()), u.end());
    int64_t best = 0;
    for (size_t i = 1; i < u.size(); ++i) {
      int64_t d = u[i] - u[i - 1];
      if (d > 0 && (best == 0 || d < best)) best = d;
    }
    return best;
  };
  int64_t sx = min_step(x), sy = min_step(y);
  int64_t step = sx && sy ? std::min(sx, sy) : std::max<int64_t>({sx, sy, 1});
  int64_t x0 = *std::min_element(x.begin(), x.begin() + (std::ptrdiff_t)n), y0 = *std::min_element(y.begin(), y.begin() + (std::ptrdiff_t)n);
  int64_t x1 = *std::max_element(x.begin(), x.begin() + (std::ptrdiff_t)n), y1 = *std::max_element(y.begin(), y.begin() + (std::ptrdiff_t)n);
  const int64_t max_grid = 600;  // irregular coordinates: coarsen so the map stays drawable
  step = std::max({step, (x1 - x0) / max_grid + 1, (y1 - y0) / max_grid + 1});
  const int64_t cols = (x1 - x0) / step + 1, rows = (y1 - y0) / step + 1;
  const double cell = std::min(48.0, (double)o.max_size / (double)std::max(cols, rows));
  const double gw = cell * (double)cols, gh = cell * (double)rows;
  double vmin = o.vmin, vmax = o.vmax;
  {
    double lo = INFINITY, hi = -INFINITY;
    finite_range(values, lo, hi);
    if (std::isnan(vmin)) vmin = std::isfinite(lo) ? lo : 0;
    if (std::isnan(vmax)) vmax = std::isfinite(hi) ? hi : 1;
    if (vmax <= vmin) vmax = vmin + (vmin == 0 ? 1 : std::abs(vmin) * 1e-6);
  }
  const double ml = 8, mt = o.title.empty() ? 8 : 26, mb = 22;
  const double W = std::max(ml + gw + 84, text_width(o.title, 12) + 16), H = mt + std::max(gh, 60.0) + mb;
  std::ostringstream s;
  s << svg_open(W, H, o.title.empty() ? "patch map" : o.title);
  s << "<rect x=\"0\" y=\"0\" width=\"" << n2(W) << "\" height=\"" << n2(H) << "\" fill=\"white\"/>\n";
  if (!o.title.empty()) s << text(ml, 17, o.title, "font-size=\"12\" font-weight=\"bold\"");
  s << "<rect x=\"" << n2(ml) << "\" y=\"" << n2(mt) << "\" width=\"" << n2(gw) << "\" height=\"" << n2(gh)
    << "\" fill=\"#f2f2f2\" stroke=\"#ccc\" stroke-width=\"0.5\"/>\n";
  // One path per colour level keeps large slides compact.
  const int levels = 64;
  std::vector<std::ostringstream> paths(levels + 1);  // the last: non-finite values
  const std::string c = n2(cell + (cell > 2 ? 0.02 : 0.0));
  for (size_t i = 0; i < n; ++i) {
    double v = values[i];
    int lvl = std::isfinite(v) ? (int)std::clamp(std::floor((v - vmin) / (vmax - vmin) * levels), 0.0, (double)levels - 1) : levels;
    double px = ml + (double)((x[i] - x0) / step) * cell, py = mt + (double)((y[i] - y0) / step) * cell;
    paths[lvl] << 'M' << n2(px) << ' ' << n2(py) << 'h' << c << 'v' << c << 'h' << '-' << c << 'z';
  }
  for (int l = 0; l <= levels; ++l) {
    std::string d = paths[l].str();
    if (d.empty()) continue;
    s << "<path d=\"" << d << "\" fill=\"" << (l == levels ? std::string("#bbbbbb") : viridis((l + 0.5) / levels)) << "\"/>\n";
  }
  for (int64_t i : o.highlight) {
    if (i < 0 || (size_t)i >= n) continue;
    double px = ml + (double)((x[i] - x0) / step) * cell, py = mt + (double)((y[i] - y0) / step) * cell;
    double r = std::max(cell, 4.0);
    s << "<rect x=\"" << n2(px + cell / 2 - r / 2 - 1) << "\" y=\"" << n2(py + cell / 2 - r / 2 - 1) << "\" width=\"" << n2(r + 2)
      << "\" height=\"" << n2(r + 2) << "\" fill=\"none\" stroke=\"#e8112d\" stroke-width=\"1.5\"><title>patch " << i << " ("
      << x[i] << ", " << y[i] << "): " << fmt_short(values[i]) << "</title></rect>\n";
  }
  s << text(ml, mt + gh + 15,
            std::to_string(n) + " patches, grid " + std::to_string(cols) + " x " + std::to_string(rows) + " (step " + std::to_string(step) + " px)",
            "font-size=\"10\" fill=\"#555\"");
  s << colour_bar(ml + gw + 10, mt, std::max(std::min(gh, 200.0), 60.0), vmin, vmax, "viridis", o.value_label);
  s << "</svg>\n";
  return s.str();
}

}  // namespace lm::report
