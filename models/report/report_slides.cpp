// Slide-image heatmaps of the report (models/report/report_slides.h).
#include "models/report/report_slides.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "data/slides/heatmap.h"
#include "data/slides/image_io.h"
#include "data/slides/thumbnail.h"

namespace lm::report {

namespace {

std::string base64(const std::string& bytes) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t i = 0; i < bytes.size(); i += 3) {
    const uint32_t b0 = uint8_t(bytes[i]), b1 = i + 1 < bytes.size() ? uint8_t(bytes[i + 1]) : 0,
                   b2 = i + 2 < bytes.size() ? uint8_t(bytes[i + 2]) : 0;
    const uint32_t v = b0 << 16 | b1 << 8 | b2;
    out += k[v >> 18 & 63];
    out += k[v >> 12 & 63];
    out += i + 1 < bytes.size() ? k[v >> 6 & 63] : '=';
    out += i + 2 < bytes.size() ? k[v & 63] : '=';
  }
  return out;
}

std::string jpeg_img(const slides::RgbImage& img, const std::string& alt, int quality) {
  return "<img src=\"data:image/jpeg;base64," + base64(slides::encode_jpeg(img, quality)) + "\" width=\"" +
         std::to_string(img.width) + "\" height=\"" + std::to_string(img.height) + "\" alt=\"" + alt + "\">";
}

std::string html_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '&') o += "&amp;";
    else if (c == '"') o += "&quot;";
    else o += c;
  }
  return o;
}

}  // namespace

std::string find_slide_file(const std::string& dir, const std::string& slide) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (dir.empty() || !fs::is_directory(dir, ec)) return "";
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string p = e.path().string();
    if (e.is_regular_file(ec) && slides::is_slide_file(p) && slides::slide_name(p) == slide) return p;
  }
  return "";
}

std::string slide_heatmaps_html(const std::string& slide_file, const std::vector<slides::Coord>& coords, int64_t p0,
                                const std::vector<SlideMap>& maps, int max_side, int top_k) {
  const slides::Slide slide(slide_file);
  slides::check_patches_inside(slide, coords, p0, slide_file);
  const slides::VisImage vis = slides::read_vis_image(slide, -1, max_side);
  slides::HeatmapStyle style;
  std::ostringstream s;
  s << "<div class=\"figs\">\n";
  for (const SlideMap& m : maps) {
    s << "<figure>" << jpeg_img(slides::draw_heatmap(vis, coords, p0, m.values, style), html_escape(m.title), 85)
      << "<figcaption>" << html_escape(m.title) << " over the slide (level " << vis.level
      << (vis.reduction > 1 ? " reduced " + std::to_string(vis.reduction) + "x" : std::string()) << ", jet, percentile "
      << "colours). Top " << top_k << " patches at full resolution:</figcaption><div class=\"gallery\">";
    for (const slides::GalleryPatch& g : slides::top_patches(slide, coords, p0, m.values, top_k)) {
      const int k = int((std::max(g.image.width, g.image.height) + 127) / 128);
      char cap[128];
      std::snprintf(cap, sizeof cap, "#%d: %.4g at (%lld, %lld)", g.rank, double(g.score), (long long)g.coord[0],
                    (long long)g.coord[1]);
      s << "<span class=\"patch\">" << jpeg_img(slides::box_reduce(g.image, k), cap, 90) << "<br>" << cap << "</span>";
    }
    s << "</div></figure>\n";
  }
  s << "</div>\n";
  return s.str();
}

}  // namespace lm::report
