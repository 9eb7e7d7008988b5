// The `libramil patch` job: a list of slides -> tissue -> patch coordinates, one slide at a
// time per worker thread, resumable (a slide whose outputs are complete is skipped), shardable
// over machines (`--shard I/N`: slide k of the sorted list belongs to share k mod N), with every
// failure recorded and the other slides going on (docs/slides.md).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "data/slides/tissue.h"

namespace lm::slides {

struct PatchOptions {
  std::vector<std::string> inputs;  // slide files and / or folders of slides
  std::string out;                  // output folder
  double mpp = 0;                   // --mpp: level-0 microns per pixel for every slide (0 = from metadata)
  std::string mpp_csv;              // --mpp-csv: per-slide overrides (slide,mpp)
  double mag = 20;                  // target magnification
  int patch_size = 256;             // pixels at the target magnification
  int overlap = 0;                  // pixels at the target magnification
  double min_tissue = 0.5;          // keep a patch when its tissue fraction >= this
  TissueOptions tissue;
  int shard_index = 0, shard_count = 1;
  int threads = 1;                  // slides processed at once
};

// Validates options that do not depend on any slide; throws one line naming the flag.
void check_patch_options(const PatchOptions& o);

// One slide's outcome, as summary.csv records it.
struct SlideRecord {
  std::string slide, path, status, reason;  // status: ok | failed
  double mpp = 0;
  std::string mpp_source;
  double tissue_area_mm2 = 0;
  int64_t patches = 0;
  double seconds = 0;  // the whole slide; of which:
  double seconds_read = 0, seconds_segment = 0, seconds_tile = 0, seconds_write = 0;  // thumbnail, tissue, grid, outputs
  bool skipped = false;  // done by an earlier run, not redone
};

// Expands folders (their slide files, not recursive), sorts by path, drops duplicates; throws
// when an input does not exist, when nothing is found, or when two slides share a name (their
// outputs would collide).
std::vector<std::string> list_slides(const std::vector<std::string>& inputs);
// The share of a sorted list that shard `index` of `count` processes.
std::vector<std::string> shard_of(const std::vector<std::string>& slides, int index, int count);
// slide,mpp rows of a --mpp-csv file, keyed by slide name (file name without extension).
std::map<std::string, double> read_mpp_csv(const std::string& path);

// Processes one slide and writes its outputs; never throws: failures come back as a record.
SlideRecord patch_one_slide(const std::string& path, const PatchOptions& o, const std::map<std::string, double>& mpp_table);

// The whole job. `progress` receives one line per slide (and may be empty). Returns every record
// of this run's share, in slide order; summary.csv is rewritten from all records on disk.
std::vector<SlideRecord> run_patching(const PatchOptions& o, const std::function<void(const std::string&)>& progress);

}  // namespace lm::slides
