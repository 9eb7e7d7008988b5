// A whole-slide image opened for reading: OpenSlide's pyramid formats (.svs, .tif/.tiff, .ndpi,
// .mrxs, .scn, .vms, .vmu, .bif, .svslide) through its C library, and plain PNG / JPEG / BMP
// images (a crop, a tile) through stb_image as one-level "slides". Pixels come out as RGB with
// transparent areas (outside the scanned region) composited onto white. Every error names the
// file and the problem in one line.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "data/slides/image.h"

namespace lm::slides {

struct LevelInfo {
  int64_t width = 0, height = 0;
  double downsample = 1.0;  // level-0 pixels per pixel of this level
};

// Where a slide's microns per pixel came from (summary.csv's mpp_source column).
struct MppInfo {
  double mpp = 0;      // level-0 microns per pixel; 0 = unknown
  std::string source;  // "openslide.mpp-x", "objective-power", or "" when unknown
};

class Slide {
 public:
  // Opens `path`; throws std::runtime_error naming the file when it cannot be read as a slide.
  explicit Slide(const std::string& path);
  ~Slide();
  Slide(const Slide&) = delete;
  Slide& operator=(const Slide&) = delete;

  const std::string& path() const { return path_; }
  const std::string& format() const { return format_; }  // OpenSlide's vendor, or "png", "jpeg", ...
  const std::vector<LevelInfo>& levels() const { return levels_; }
  int64_t width() const { return levels_[0].width; }
  int64_t height() const { return levels_[0].height; }
  // A metadata property ("" when absent): OpenSlide's names (openslide.mpp-x, aperio.AppMag, ...).
  std::string property(const std::string& name) const;
  // Microns per pixel from the file's own metadata (openslide.mpp-x, else 10 / objective power).
  MppInfo metadata_mpp() const;

  // Reads a w x h region of `level` whose top-left is (x0, y0) in LEVEL-0 coordinates (as
  // OpenSlide's read_region). Parts outside the slide are white.
  RgbImage read_region(int level, int64_t x0, int64_t y0, int64_t w, int64_t h) const;
  // The whole of `level` (refused above 2^28 pixels: read it in regions instead).
  RgbImage read_level(int level) const;

 private:
  std::string path_, format_;
  std::vector<LevelInfo> levels_;
  void* osr_ = nullptr;      // openslide_t*, or null for an stb image
  RgbImage plain_;           // the decoded image when osr_ is null
  std::map<std::string, std::string> props_;
};

// The slide's name as outputs use it: the file name without its extension ("a.b.svs" -> "a.b").
std::string slide_name(const std::string& path);
// True when the file's extension is one the readers above handle.
bool is_slide_file(const std::string& path);
// False in a build without OpenSlide (then only plain images open).
bool built_with_openslide();

}  // namespace lm::slides
