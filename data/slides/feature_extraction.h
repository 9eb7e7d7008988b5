// The `libramil extract` job: patch coordinates (from `libramil patch`) or folders of tiles ->
// pixels -> a patch encoder -> one features file per slide in TRIDENT's layout
// (OUT/<mag>x_<ps>px_<overlap>px_overlap/features_<encoder>/<slide>.h5 with `features` (N, D)
// float32 and `coords` (N, 2) int64: exactly what `train` reads). Reader threads decode the
// regions of a slide into a bounded queue of batches while the caller's encoder runs on the
// batches in order; a slide is written atomically when complete, so an interrupted run resumes
// at the first slide without a finished file (docs/extract.md).
//
// The encoder is passed in as a function, so this layer knows pixels and files but no model:
// apps/cmd_extract.cpp binds it to models/patch_encoders/, tests bind it to simple pixel statistics.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "data/slides/patch_outputs.h"
#include "data/slides/slide.h"
#include "tensor/tensor.h"

namespace lm::slides {

// n RGB images of h x w pixels (row-major, 3 bytes per pixel) -> (n, D) features, any device.
using EncodeFn = std::function<Tensor(const std::vector<const uint8_t*>& rgb, int64_t h, int64_t w)>;

struct ExtractOptions {
  std::vector<std::string> slides;  // slide files and / or folders (with `patches`)
  std::string patches;              // `patch`'s output folder, or one <config> folder inside it
  std::string tiles;                // instead of slides + patches: a folder of tile folders (one bag each)
  std::string out;                  // output folder
  std::string encoder_name;         // features_<encoder_name>
  int64_t feature_dim = 0;          // what the encoder returns per patch
  int batch = 32;                   // patches per encoder call
  int readers = 2;                  // decoding threads per slide
  int shard_index = 0, shard_count = 1;
  bool overwrite = false;           // redo slides whose features file exists
};

// The patches file of one slide, as `patch` writes it (and TRIDENT: same dataset and attributes).
struct PatchCoords {
  std::string path;
  std::vector<Coord> coords;
  int64_t patch_size = 0, patch_size_level0 = 0;  // at the target magnification / at level 0
  double target_mag = 0;                          // 0 when the file does not say
};
// Reads `coords` (N, 2) and its patch size attributes; throws one line naming the file.
PatchCoords read_patch_coords(const std::string& path);

// Which pyramid level to read a patch from: the coarsest level whose downsample is at most
// patch_size_level0 / patch_size (within 1%, as a level of downsample 2.0005 serves 2), and the
// square region's side at that level.
struct ReadPlan {
  int level = 0;
  int64_t read_size = 0;  // pixels at `level`
};
ReadPlan plan_read(const std::vector<LevelInfo>& levels, int64_t patch_size_level0, int64_t patch_size);

// One slide's (or tile bag's) outcome.
struct ExtractRecord {
  std::string slide, status, reason;  // status: ok | failed
  std::string output;                 // the features file
  int64_t patches = 0;
  double seconds = 0, seconds_read = 0, seconds_encode = 0;  // read: time the encoder waited for pixels
  bool skipped = false;               // a finished file from an earlier run
};

// Progress of the slide being extracted: patches done of total, and a line per finished slide.
struct ExtractProgress {
  std::function<void(const std::string& slide, int64_t done, int64_t total, double patches_per_s)> patches;
  std::function<void(const std::string& line)> line;
};

// The whole job over this shard's slides (or tile bags), one slide at a time. Never throws for a
// failing slide (it is recorded, its partial output is not written); throws for options that
// cannot work at all (no slides, a missing folder, a bad shard).
std::vector<ExtractRecord> run_extraction(const ExtractOptions& o, const EncodeFn& encode, const ExtractProgress& progress);

// The folder features go to: OUT/<config>/features_<encoder> for slides (config from the
// patches file's folder), OUT/features_<encoder> for tiles.
std::string features_folder(const ExtractOptions& o, const std::string& config);

// Tiles: the bags under `dir` (its sub-folders with images; or `dir` itself when it holds images
// directly), sorted; and one bag's tile files, sorted by name.
std::vector<std::string> list_tile_bags(const std::string& dir);
std::vector<std::string> list_tiles(const std::string& bag_dir);
// A tile's (x, y) from its file name ending in "_X_Y" or "X_Y" (before the extension, e.g.
// "slide1_1024_512.png"); false when the name carries no coordinates.
bool coords_from_tile_name(const std::string& file, Coord& out);

}  // namespace lm::slides
