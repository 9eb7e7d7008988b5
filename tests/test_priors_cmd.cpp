// `libramil priors` through the built binary: the files it writes are the ones `simulate` writes
// for the same task (the format train has always read), train's readers accept them with the
// task's counts, classes.csv names the classes in label order, existing files are refused
// without --overwrite, and an unknown task is an error.
#include <doctest/doctest.h>

#include <algorithm>

#include "data/tables.h"
#include "tests/test_util.h"

namespace {
namespace fs = std::filesystem;
using namespace lm;
}  // namespace

TEST_CASE("priors: the shipped priors as train's files, refused over existing ones") {
  const fs::path dir = test::scratch_dir("priors_cmd");
  struct Task {
    std::string name;
    size_t classes;
  };
  for (const Task& t : {Task{"rcc", 3}, Task{"nsclc", 2}, Task{"camelyon16", 2}}) {
    CAPTURE(t.name);
    const fs::path out = dir / t.name, sim = dir / ("sim_" + t.name);
    REQUIRE(test::run_libramil("priors --task " + t.name + " --out " + out.string(), dir / "log.txt") == 0);
    REQUIRE(test::run_libramil("simulate --task " + t.name + " --slides 4 --size-scale 0.02 --dim 16 --out " + sim.string(),
                               dir / "sim.txt") == 0);
    CHECK(test::read_text(out / "instance_priors.json") == test::read_text(sim / "instance_priors.json"));
    CHECK(test::read_text(out / "bag_priors.csv") == test::read_text(sim / "bag_priors.csv"));
    const auto inst = data::read_instance_prompts((out / "instance_priors.json").string());
    CHECK(inst.size() > 10);
    const auto bag = data::read_bag_prompts_csv((out / "bag_priors.csv").string());
    CHECK(bag.size() == 2 * t.classes);
    const std::string classes = test::read_text(out / "classes.csv");
    CHECK(classes.rfind("label,name\n0,", 0) == 0);
    CHECK(std::count(classes.begin(), classes.end(), '\n') == long(t.classes + 1));
    CHECK(test::read_text(out / "README.txt").find("NOT the Libra-MIL paper authors'") != std::string::npos);
  }
  const std::string before = test::read_text(dir / "rcc" / "bag_priors.csv");
  CHECK(test::run_libramil("priors --task nsclc --out " + (dir / "rcc").string(), dir / "log.txt") == 1);
  CHECK(test::read_text(dir / "log.txt").find("instance_priors.json: already exists") != std::string::npos);
  CHECK(test::read_text(dir / "rcc" / "bag_priors.csv") == before);
  CHECK(test::run_libramil("priors --task nsclc --overwrite --out " + (dir / "rcc").string(), dir / "log.txt") == 0);
  CHECK(test::read_text(dir / "rcc" / "bag_priors.csv") != before);
  CHECK(test::run_libramil("priors --task brca --out " + (dir / "x").string(), dir / "log.txt") != 0);
  CHECK(test::read_text(dir / "log.txt").find("brca") != std::string::npos);
}
