// Shared by the slide suites (test_patch, test_extract, test_heatmap): the two shipped real
// slides (tests/data/slides, README there), shell quoting for the Python references' command
// lines, the OpenSlide check (a build without it skips, except under CI where it fails) and the
// patch job on one of them.
// A suite takes them all with `using namespace test::slide_fixtures;`.
#pragma once
#include <filesystem>
#include <string>

#include <doctest/doctest.h>

#include "data/slides/patching.h"
#include "data/slides/patch_outputs.h"
#include "data/slides/slide.h"
#include "tests/test_util.h"

namespace lm::test::slide_fixtures {

inline const char* kCmu = "cmu-1-small-region";         // Aperio, one level, 20x (mpp 0.499)
inline const char* kTcga = "tcga-cr-7395-01a-01-ts1";     // Aperio, two levels, no mpp in its metadata

inline std::filesystem::path slide_path(const std::string& name) { return test::test_data("slides/" + name + ".svs"); }

// 'path' for a shell command line.
inline std::string q(const std::filesystem::path& p) { return "'" + p.string() + "'"; }

inline bool have_openslide() {
  return slides::built_with_openslide() ||
         test::skip_unless_ci("this build has no OpenSlide (tools/setup.sh installs libopenslide-dev)");
}

// `libramil patch`'s job on one shipped slide into `dir` at `mag`, `size`-pixel patches (the
// TCGA slide has no mpp in its metadata: it gets 0.5); returns the configuration folder's name.
inline std::string patch_slide(const std::string& slide, const std::filesystem::path& dir, double mag = 20, int size = 256) {
  slides::PatchOptions po;
  po.inputs = {slide_path(slide).string()};
  po.out = dir.string();
  po.mag = mag;
  po.mpp = slide == kTcga ? 0.5 : 0;
  po.patch_size = size;
  const auto recs = slides::run_patching(po, nullptr);
  REQUIRE(recs.size() == 1);
  REQUIRE_MESSAGE(recs[0].status == "ok", recs[0].reason);
  return slides::patch_config_name(mag, size, po.overlap);
}

}  // namespace lm::test::slide_fixtures
