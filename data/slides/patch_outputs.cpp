// The per-slide outputs of `libramil patch` (data/slides/patch_outputs.h).
#include "data/slides/patch_outputs.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "data/formats/hdf5_writer.h"

namespace lm::slides {

namespace {

std::string number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

// Magnification as a folder name: 20 -> "20", 2.5 -> "2.5".
std::string mag_name(double m) { return number(m); }

// One closed GeoJSON ring in level-0 coordinates.
void ring(std::ostringstream& o, const std::vector<std::array<double, 2>>& pts, double dx, double dy) {
  o << '[';
  for (size_t i = 0; i <= pts.size(); ++i) {
    const auto& p = pts[i % pts.size()];  // the first point again closes the ring
    o << (i ? "," : "") << '[' << number(p[0] * dx) << ',' << number(p[1] * dy) << ']';
  }
  o << ']';
}

void put(RgbImage& img, int x, int y, const uint8_t c[3]) {
  if (x < 0 || y < 0 || x >= img.width || y >= img.height) return;
  uint8_t* p = &img.rgb[(size_t(y) * img.width + x) * 3];
  p[0] = c[0], p[1] = c[1], p[2] = c[2];
}

// A line of the given thickness (a square brush) between two points (Bresenham).
void line(RgbImage& img, int x0, int y0, int x1, int y1, const uint8_t c[3], int thick) {
  int dxl = std::abs(x1 - x0), sx = x0 < x1 ? 1 : -1;
  int dyl = -std::abs(y1 - y0), sy = y0 < y1 ? 1 : -1;
  int err = dxl + dyl;
  const int lo = -(thick / 2), hi = lo + thick;
  for (;;) {
    for (int a = lo; a < hi; ++a)
      for (int b = lo; b < hi; ++b) put(img, x0 + a, y0 + b, c);
    if (x0 == x1 && y0 == y1) break;
    const int e2 = 2 * err;
    if (e2 >= dyl) err += dyl, x0 += sx;
    if (e2 <= dxl) err += dxl, y0 += sy;
  }
}

void polygon(RgbImage& img, const std::vector<std::array<double, 2>>& pts, const uint8_t c[3], int thick) {
  for (size_t i = 0; i < pts.size(); ++i) {
    const auto& a = pts[i];
    const auto& b = pts[(i + 1) % pts.size()];
    line(img, int(std::lround(a[0])), int(std::lround(a[1])), int(std::lround(b[0])), int(std::lround(b[1])), c, thick);
  }
}

}  // namespace

std::string patch_config_name(double mag, int patch_size, int overlap) {
  return mag_name(mag) + "x_" + std::to_string(patch_size) + "px_" + std::to_string(overlap) + "px_overlap";
}

void write_coords_h5(const std::string& path, const std::string& slide, const std::vector<Coord>& coords,
                     const PatchGeometry& g) {
  std::vector<int64_t> flat;
  flat.reserve(coords.size() * 2);
  for (const auto& c : coords) flat.push_back(c[0]), flat.push_back(c[1]);
  data::H5Writer w(path);
  w.dataset_i64("coords", {uint64_t(coords.size()), 2}, flat.data());
  w.attr_i64("coords", "patch_size", g.patch_size);
  w.attr_i64("coords", "patch_size_level0", g.patch_size_level0);
  w.attr_f64("coords", "target_magnification", g.target_mag);
  w.attr_f64("coords", "level0_magnification", g.level0_mag);
  w.attr_i64("coords", "overlap", g.overlap);
  w.attr_f64("coords", "mpp", g.mpp);
  w.attr_string("coords", "name", slide);
  w.attr_string("/", "written_by", "libramil patch");
  w.commit();
}

std::string contours_geojson(const std::vector<TissueRegion>& regions, double dx, double dy) {
  std::ostringstream o;
  o << "{\"type\":\"FeatureCollection\",\"features\":[";
  for (size_t r = 0; r < regions.size(); ++r) {
    const TissueRegion& reg = regions[r];
    o << (r ? "," : "") << "\n{\"type\":\"Feature\",\"geometry\":{\"type\":\"Polygon\",\"coordinates\":[";
    ring(o, reg.outer, dx, dy);
    for (const auto& h : reg.holes) {
      o << ',';
      ring(o, h, dx, dy);
    }
    o << "]},\"properties\":{\"objectType\":\"annotation\",\"name\":\"tissue " << r
      << "\",\"classification\":{\"name\":\"Tissue\",\"color\":[0,160,0]},\"isLocked\":false,"
      << "\"measurements\":{\"area_mm2\":" << number(reg.area_mm2) << ",\"holes\":" << reg.holes.size() << "}}}";
  }
  o << "\n]}\n";
  return o.str();
}

RgbImage draw_contours(const RgbImage& thumb, const std::vector<TissueRegion>& regions, const std::vector<Coord>& coords,
                       int64_t patch_size_level0, double dx, double dy) {
  RgbImage img = thumb;
  const uint8_t black[3] = {0, 0, 0}, green[3] = {0, 200, 0}, blue[3] = {0, 80, 255};
  const int thick = std::max(1, std::max(img.width, img.height) / 600);
  for (const Coord& c : coords) {  // patch squares, thin
    const int x0 = int(std::lround(c[0] / dx)), y0 = int(std::lround(c[1] / dy));
    const int x1 = int(std::lround((c[0] + patch_size_level0) / dx)), y1 = int(std::lround((c[1] + patch_size_level0) / dy));
    line(img, x0, y0, x1, y0, black, 1);
    line(img, x1, y0, x1, y1, black, 1);
    line(img, x1, y1, x0, y1, black, 1);
    line(img, x0, y1, x0, y0, black, 1);
  }
  for (const TissueRegion& r : regions) {
    polygon(img, r.outer, green, thick);
    for (const auto& h : r.holes) polygon(img, h, blue, thick);
  }
  return img;
}

}  // namespace lm::slides
