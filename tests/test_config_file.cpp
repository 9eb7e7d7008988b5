// `train --config FILE` (apps/config_file.h) through the built binary: the file's keys become
// flags (checked in the run's config.json, which records what the run used), the command line
// wins over the file, and a missing file, an unknown key, a foreign table, a bad value or a
// switch written as a value is an error naming the file, the line and the key, before any work.
#include <doctest/doctest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/test_util.h"

namespace {

namespace fs = std::filesystem;
using namespace lm;

const fs::path& dataset() {
  static const fs::path d = test::make_tiny_dataset("config_file", "--classes 2 --per-class 6 --dim 16 --folds 2 --seed 3");
  return d;
}

fs::path write(const std::string& name, const std::string& text) {
  const fs::path p = dataset() / name;
  std::ofstream(p) << text;
  return p;
}

nlohmann::json run_config(const fs::path& run) { return nlohmann::json::parse(test::read_text(run / "config.json")); }

}  // namespace

TEST_CASE("train --config: the file's keys are used, the command line wins, config.json records the result") {
  const fs::path run = dataset() / "run_a";
  const fs::path cfg = write("a.toml",
                             "# a run written down\n[train]\nepochs = 1\nmodel = \"abmil\"\nlr = 0.002  # trailing comment\n"
                             "folds = 1\nquiet = true\nseed = 11\n");
  const std::string base = "train " + test::tiny_dataset_inputs(dataset()) + " --out " + run.string();
  REQUIRE(test::run_libramil(base + " --config " + cfg.string() + " --seed 12", dataset() / "a.log") == 0);
  const auto c = run_config(run);
  CHECK(c.dump().find("\"epochs\":1") != std::string::npos);
  CHECK(c.dump().find("\"model\":\"abmil\"") != std::string::npos);
  CHECK(c.dump().find("\"folds\":1") != std::string::npos);
  CHECK(c.dump().find("\"seed\":12") != std::string::npos);  // the command line won over seed = 11
  CHECK(c.dump().find("0.002") != std::string::npos);
  // quiet = true: no per-epoch progress lines in the output.
  CHECK(test::read_text(dataset() / "a.log").find("epoch 1/") == std::string::npos);
}

TEST_CASE("train --config: bad files are one-line errors naming the file, line and key; nothing runs") {
  const std::string base = "train " + test::tiny_dataset_inputs(dataset()) + " --out " + (dataset() / "run_bad").string();
  struct Bad {
    std::string text, expect;
  };
  for (const Bad& b : {Bad{"epochs = 1\nbogus_key = 3\n", "line 2: unknown key 'bogus_key'"},
                       Bad{"[patch]\nepochs = 1\n", "line 1: table [patch]"},
                       Bad{"epochs 1\n", "line 1: expected 'key = value'"},
                       Bad{"model = abmil\n", "value 'abmil' is not a string"},
                       Bad{"quiet = 1\n", "key 'quiet' is a switch"},
                       Bad{"epochs = true\n", "key 'epochs' takes a value"},
                       Bad{"epochs = [1, 2]\n", "key 'epochs' takes one value"},
                       Bad{"model = \"abmil\n", "unterminated string"},
                       Bad{"epochs = 1\nepochs = 2\n", "key 'epochs' given twice"}}) {
    CAPTURE(b.text);
    const fs::path cfg = write("bad.toml", b.text);
    const fs::path log = dataset() / "bad.log";
    CHECK(test::run_libramil(base + " --config " + cfg.string(), log) == 1);
    const std::string out = test::read_text(log);
    CHECK_MESSAGE(out.find(cfg.string()) != std::string::npos, out);
    CHECK_MESSAGE(out.find(b.expect) != std::string::npos, out);
    CHECK(!fs::exists(dataset() / "run_bad"));
  }
  const fs::path log = dataset() / "missing.log";
  CHECK(test::run_libramil(base + " --config " + (dataset() / "nope.toml").string(), log) == 1);
  CHECK(test::read_text(log).find("nope.toml: the --config file does not exist") != std::string::npos);
}
