// `libramil patch`: whole-slide images -> tissue -> patch coordinates in TRIDENT's layout. The
// work lives in data/slides/ (patching.h); this file parses flags and prints. docs/slides.md.
#include <unistd.h>

#include <iostream>
#include <thread>

#include "apps/commands.h"
#include "data/slides/patching.h"

namespace lm::app {

Runner add_patch(CLI::App& app) {
  struct Flags {
    slides::PatchOptions opt;
    std::string shard = "0/1", threshold = "otsu";
    int threads = 0;
    bool keep_going = false;
  };
  auto f = std::make_shared<Flags>();
  auto& o = f->opt;
  app.add_option("--slides", o.inputs, "slide files and / or folders of slides (.svs .tif .ndpi .mrxs .scn ... and .png .jpg)")
      ->required()
      ->expected(1, -1);
  app.add_option("--out", o.out, "output folder (TRIDENT's layout; slides already done there are skipped)")->required();
  app.add_option("--mag", o.mag, "target magnification of the patches (20 = about 0.5 um/px)")->capture_default_str();
  app.add_option("--patch-size", o.patch_size, "patch side in pixels at --mag")->capture_default_str();
  app.add_option("--overlap", o.overlap, "overlap of neighbouring patches in pixels at --mag")->capture_default_str();
  app.add_option("--min-tissue", o.min_tissue, "keep a patch when at least this fraction of it is tissue")->capture_default_str();
  app.add_option("--mpp", o.mpp, "level-0 microns per pixel for every slide (overrides the slides' metadata)");
  app.add_option("--mpp-csv", o.mpp_csv, "per-slide microns per pixel: a CSV with columns slide,mpp (overrides --mpp)");
  app.add_option("--seg", o.tissue.channel, "tissue channel: saturation (CLAM's recipe) | otsu-grey (TRIDENT's grey-level variant)")
      ->capture_default_str()
      ->check(CLI::IsMember({"saturation", "otsu-grey"}));
  app.add_option("--seg-threshold", f->threshold, "otsu, or a fixed threshold 0..254 on the filtered channel")->capture_default_str();
  app.add_option("--seg-median", o.tissue.median, "median filter window (odd)")->capture_default_str();
  app.add_option("--seg-close", o.tissue.close_radius, "closing radius r (a (2r+1) square)")->capture_default_str();
  app.add_option("--min-tissue-area", o.tissue.min_tissue_area_mm2, "drop tissue regions smaller than this (mm^2)")->capture_default_str();
  app.add_option("--min-hole-area", o.tissue.min_hole_area_mm2, "fill holes smaller than this (mm^2)")->capture_default_str();
  app.add_option("--max-holes", o.tissue.max_holes, "holes kept per region (the largest)")->capture_default_str();
  app.add_flag("--keep-pen", o.tissue.keep_pen, "do not exclude blue / green pen ink");
  app.add_option("--shard", f->shard, "I/N: process only share I (0-based) of N of the sorted slide list (cluster job arrays)")
      ->capture_default_str();
  app.add_option("--threads", f->threads, "slides processed at once (0 = one per core)")->capture_default_str();
  app.add_flag("--keep-going", f->keep_going,
               "exit 0 even when some slides failed (failures are still printed and recorded in summary.csv)");
  return [f] {
    auto& o = f->opt;
    if (f->threshold == "otsu") {
      o.tissue.threshold = -1;
    } else {
      try {
        size_t used = 0;
        o.tissue.threshold = std::stoi(f->threshold, &used);
        if (used != f->threshold.size()) throw std::invalid_argument("");
      } catch (const std::exception&) {
        throw std::invalid_argument("--seg-threshold must be 'otsu' or an integer 0..254, got '" + f->threshold + "'");
      }
    }
    const auto slash = f->shard.find('/');
    try {
      if (slash == std::string::npos) throw std::invalid_argument("");
      o.shard_index = std::stoi(f->shard.substr(0, slash));
      o.shard_count = std::stoi(f->shard.substr(slash + 1));
    } catch (const std::exception&) {
      throw std::invalid_argument("--shard must be I/N (e.g. 0/4), got '" + f->shard + "'");
    }
    o.threads = f->threads > 0 ? f->threads : std::max(1u, std::thread::hardware_concurrency());
    const bool tty = isatty(STDERR_FILENO);
    const auto records = slides::run_patching(o, [tty](const std::string& line) {
      std::cerr << (tty ? "patch " : "") << line << std::endl;
    });
    int ok = 0, failed = 0, skipped = 0;
    int64_t patches = 0;
    for (const auto& r : records) {
      if (r.skipped) ++skipped;
      else if (r.status == "ok") ++ok;
      else ++failed;
      if (r.status == "ok") patches += r.patches;
    }
    std::cout << "patch: " << records.size() << " slides (" << ok << " done now, " << skipped << " done before, " << failed
              << " failed), " << patches << " patches -> " << o.out << " (summary.csv)\n";
    if (failed) {
      std::cerr << "libramil: error: " << failed << " slide" << (failed > 1 ? "s" : "") << " failed (see above and "
                << o.out << "/summary.csv)" << (f->keep_going ? "; --keep-going: exit 0" : "") << std::endl;
      return f->keep_going ? 0 : 1;
    }
    return 0;
  };
}

}  // namespace lm::app
