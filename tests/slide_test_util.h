// Shared by the slide suites (test_patch, test_extract, test_heatmap): the two shipped real
// slides (tests/data/slides, README there), shell quoting for the Python references' command
// lines, and the OpenSlide check (a build without it skips, except under CI where it fails).
#pragma once
#include <filesystem>
#include <string>

#include "data/slides/slide.h"
#include "tests/test_util.h"

namespace lm::test {

inline const char* kCmu = "cmu-1-small-region";         // Aperio, one level, 20x (mpp 0.499)
inline const char* kTcga = "tcga-cr-7395-01a-01-ts1";     // Aperio, two levels, no mpp in its metadata

inline std::filesystem::path slide_path(const std::string& name) { return test_data("slides/" + name + ".svs"); }

// 'path' for a shell command line.
inline std::string q(const std::filesystem::path& p) { return "'" + p.string() + "'"; }

inline bool have_openslide() {
  return slides::built_with_openslide() ||
         skip_unless_ci("this build has no OpenSlide (tools/setup.sh installs libopenslide-dev)");
}

}  // namespace lm::test
