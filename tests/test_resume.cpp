// Resume after kill -9: a run killed in the middle of an epoch (SIGKILL from the test hook
// LIBRAMIL_KILL_AT_STEP) and continued with `train --resume` gives bit-identical final
// metrics to an uninterrupted run with the same seed. Also: the same seed gives identical
// results twice (determinism).
#include <doctest/doctest.h>

#include <filesystem>

#include "tests/test_util.h"

using namespace lm;
namespace fs = std::filesystem;

namespace {

int run(const std::string& env, const std::string& args, const fs::path& log) { return test::run_libramil(args, log, env); }

}  // namespace

TEST_CASE("train --resume after kill -9 equals an uninterrupted run") {
  fs::path dir = test::scratch_dir("resume");
  test::run_python_tool("make_tiny_dataset.py", dir.string() + " --classes 2 --per-class 6 --dim 16 --folds 2 --seed 4");
  std::string common = "train --data_csv " + (dir / "labels.csv").string() + " --data_split_json " + (dir / "split.json").string() +
                       " --h5_file_dir " + (dir / "features").string() + " --instance_path " +
                       (dir / "instance_priors.json").string() + " --bag_path " + (dir / "bag_priors.csv").string() +
                       " --instance_embeddings " + (dir / "z_ins.safetensors").string() + " --bag_embeddings " +
                       (dir / "z_bag.safetensors").string() +
                       " --epochs 4 --folds 2 --heads 2 --num_vis_prototypes 3 --lr 1e-3 --warmup_steps 2 --threads 2 --quiet";
  REQUIRE(run("", common + " --save_dir " + (dir / "full").string(), dir / "full.log") == 0);
  REQUIRE(run("", common + " --save_dir " + (dir / "again").string(), dir / "again.log") == 0);
  // Determinism: same seed and threads, same numbers to the last digit written.
  CHECK(test::read_text(dir / "full" / "logs" / "final_log.csv") == test::read_text(dir / "again" / "logs" / "final_log.csv"));
  // A finished fold keeps its best checkpoint but not its resume state.
  for (int fold = 0; fold < 2; ++fold) {
    CHECK(fs::exists(dir / "full" / "checkpoints" / ("fold_" + std::to_string(fold) + "_best.safetensors")));
    CHECK_FALSE(fs::exists(dir / "full" / "checkpoints" / ("fold_" + std::to_string(fold) + "_last.safetensors")));
  }

  // 4 train bags per fold: step 6 is in the middle of epoch 2 of fold 0.
  int rc = run("LIBRAMIL_KILL_AT_STEP=0:6", common + " --save_dir " + (dir / "killed").string(), dir / "killed.log");
  CHECK(rc == 128 + 9);
  CHECK_FALSE(fs::exists(dir / "killed" / "logs" / "final_log.csv"));
  REQUIRE(fs::exists(dir / "killed" / "checkpoints" / "fold_0_last.safetensors"));
  REQUIRE(run("", "train --resume " + (dir / "killed").string() + " --threads 2 --quiet", dir / "resumed.log") == 0);
  CHECK(test::read_text(dir / "killed" / "logs" / "final_log.csv") == test::read_text(dir / "full" / "logs" / "final_log.csv"));
  CHECK(test::read_text(dir / "killed" / "logs" / "summary_log.csv") == test::read_text(dir / "full" / "logs" / "summary_log.csv"));
  CHECK(test::read_text(dir / "killed" / "logs" / "test_predictions.csv") ==
        test::read_text(dir / "full" / "logs" / "test_predictions.csv"));

  // Killed again in fold 1, epoch 3 (after fold 0 completed): fold 0 is taken as done.
  REQUIRE(run("LIBRAMIL_KILL_AT_STEP=1:9", common + " --save_dir " + (dir / "killed2").string(), dir / "killed2.log") == 128 + 9);
  CHECK_FALSE(fs::exists(dir / "killed2" / "checkpoints" / "fold_0_last.safetensors"));  // fold 0 finished
  CHECK(fs::exists(dir / "killed2" / "checkpoints" / "fold_1_last.safetensors"));        // fold 1 resumes from it
  REQUIRE(run("", "train --resume " + (dir / "killed2").string() + " --threads 2 --quiet", dir / "resumed2.log") == 0);
  CHECK(test::read_text(dir / "killed2" / "logs" / "final_log.csv") == test::read_text(dir / "full" / "logs" / "final_log.csv"));
}
