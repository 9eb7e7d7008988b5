// Slide reading: OpenSlide for pyramid formats, stb_image for plain images (data/slides/slide.h).
#include "data/slides/slide.h"

#if LIBRAMIL_WITH_OPENSLIDE
#include <openslide/openslide.h>
#endif

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>

#include "data/slides/image_io.h"
#include "data/text_util.h"

namespace lm::slides {
namespace fs = std::filesystem;

namespace {
using data::lower;


std::string extension(const std::string& path) { return lower(fs::path(path).extension().string()); }

bool is_plain_image(const std::string& ext) {
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp";
}

#if LIBRAMIL_WITH_OPENSLIDE
openslide_t* handle(void* p) { return static_cast<openslide_t*>(p); }
#endif

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error(path + ": " + what);
}

// A positive finite number parsed from a whole property string, else 0.
double positive_number(const std::string& s) {
  if (s.empty()) return 0;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || *end != '\0' || !std::isfinite(v) || v <= 0) return 0;
  return v;
}

}  // namespace

bool built_with_openslide() {
#if LIBRAMIL_WITH_OPENSLIDE
  return true;
#else
  return false;
#endif
}

std::string slide_name(const std::string& path) { return fs::path(path).stem().string(); }

bool is_slide_file(const std::string& path) {
  static const char* kSlideExt[] = {".svs", ".tif", ".tiff", ".ndpi", ".mrxs", ".scn", ".vms", ".vmu", ".bif", ".svslide"};
  const std::string ext = extension(path);
  if (is_plain_image(ext)) return true;
  for (const char* e : kSlideExt)
    if (ext == e) return true;
  return false;
}

Slide::Slide(const std::string& path) : path_(path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) fail(path, "no such file");
  if (fs::is_directory(path, ec)) fail(path, "is a directory, not a slide");
  const std::string ext = extension(path);
  if (is_plain_image(ext)) {
    plain_ = read_image_file(path);  // throws naming the file
    format_ = ext == ".png" ? "png" : ext == ".bmp" ? "bmp" : "jpeg";
    levels_.push_back({plain_.width, plain_.height, 1.0});
    return;
  }
#if !LIBRAMIL_WITH_OPENSLIDE
  fail(path, "this build of libramil has no OpenSlide (install libopenslide-dev and rebuild); only .png / .jpg / .bmp images can be read");
#else
  const char* vendor = openslide_detect_vendor(path.c_str());
  if (!vendor) fail(path, "not a whole-slide image OpenSlide can read (unknown format or unreadable file)");
  format_ = vendor;
  openslide_t* osr = openslide_open(path.c_str());
  if (!osr) fail(path, "OpenSlide cannot open it (" + format_ + ")");
  osr_ = osr;
  if (const char* err = openslide_get_error(osr)) {
    const std::string msg = err;
    openslide_close(osr);
    osr_ = nullptr;
    fail(path, "unreadable slide: " + msg);
  }
  const int32_t n = openslide_get_level_count(osr);
  if (n <= 0) {
    openslide_close(osr);
    osr_ = nullptr;
    fail(path, "the slide has no pyramid levels");
  }
  for (int32_t l = 0; l < n; ++l) {
    LevelInfo li;
    openslide_get_level_dimensions(osr, l, &li.width, &li.height);
    li.downsample = openslide_get_level_downsample(osr, l);
    if (li.width <= 0 || li.height <= 0 || !(li.downsample >= 1.0 - 1e-6)) {
      openslide_close(osr);
      osr_ = nullptr;
      fail(path, "level " + std::to_string(l) + " has invalid dimensions " + std::to_string(li.width) + " x " +
                     std::to_string(li.height));
    }
    levels_.push_back(li);
  }
  for (const char* const* names = openslide_get_property_names(osr); names && *names; ++names) {
    const char* v = openslide_get_property_value(osr, *names);
    props_[*names] = v ? v : "";
  }
#endif
}

Slide::~Slide() {
#if LIBRAMIL_WITH_OPENSLIDE
  if (osr_) openslide_close(handle(osr_));
#endif
}

std::string Slide::property(const std::string& name) const {
  auto it = props_.find(name);
  return it == props_.end() ? std::string() : it->second;
}

MppInfo Slide::metadata_mpp() const {
  if (double v = positive_number(property("openslide.mpp-x")); v > 0) return {v, "openslide.mpp-x"};
  if (double v = positive_number(property("aperio.MPP")); v > 0) return {v, "aperio.MPP"};
  if (double v = positive_number(property("openslide.objective-power")); v > 0) return {10.0 / v, "objective-power"};
  return {};
}

RgbImage Slide::read_region(int level, int64_t x0, int64_t y0, int64_t w, int64_t h) const {
  if (level < 0 || level >= (int)levels_.size())
    fail(path_, "no level " + std::to_string(level) + " (the slide has " + std::to_string(levels_.size()) + ")");
  if (w <= 0 || h <= 0 || w > (1 << 20) || h > (1 << 20) || w * h > (int64_t(1) << 28))
    fail(path_, "region of " + std::to_string(w) + " x " + std::to_string(h) + " pixels refused (at most 2^28 pixels)");
  RgbImage out;
  out.width = int(w);
  out.height = int(h);
  out.rgb.resize(size_t(w) * size_t(h) * 3);
  if (!osr_) {  // a plain image: level 0 only; outside is white
    std::fill(out.rgb.begin(), out.rgb.end(), uint8_t(255));
    for (int64_t y = 0; y < h; ++y) {
      const int64_t sy = y0 + y;
      if (sy < 0 || sy >= plain_.height) continue;
      for (int64_t x = 0; x < w; ++x) {
        const int64_t sx = x0 + x;
        if (sx < 0 || sx >= plain_.width) continue;
        const uint8_t* s = &plain_.rgb[(size_t(sy) * plain_.width + size_t(sx)) * 3];
        uint8_t* d = &out.rgb[(size_t(y) * w + size_t(x)) * 3];
        d[0] = s[0], d[1] = s[1], d[2] = s[2];
      }
    }
    return out;
  }
#if LIBRAMIL_WITH_OPENSLIDE
  // OpenSlide gives premultiplied ARGB (uint32, native endian); onto white: c + (255 - a).
  std::vector<uint32_t> argb(size_t(w) * size_t(h));
  openslide_read_region(handle(osr_), argb.data(), x0, y0, level, w, h);
  if (const char* err = openslide_get_error(handle(osr_))) fail(path_, std::string("reading pixels failed: ") + err);
  for (size_t i = 0; i < argb.size(); ++i) {
    const uint32_t p = argb[i];
    const uint32_t a = p >> 24, white = 255 - a;
    out.rgb[3 * i + 0] = uint8_t(std::min<uint32_t>(255, ((p >> 16) & 255) + white));
    out.rgb[3 * i + 1] = uint8_t(std::min<uint32_t>(255, ((p >> 8) & 255) + white));
    out.rgb[3 * i + 2] = uint8_t(std::min<uint32_t>(255, (p & 255) + white));
  }
#endif
  return out;
}

RgbImage Slide::read_level(int level) const {
  if (level < 0 || level >= (int)levels_.size())
    fail(path_, "no level " + std::to_string(level) + " (the slide has " + std::to_string(levels_.size()) + ")");
  if (!osr_) return plain_;
  return read_region(level, 0, 0, levels_[level].width, levels_[level].height);
}

}  // namespace lm::slides
