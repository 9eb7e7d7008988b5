// The training protocol end to end on a tiny generated dataset (tools/make_tiny_dataset.py),
// through the real binary: logs with the documented columns, the selection rule, summary
// statistics recomputed from the per-fold results, a reloadable checkpoint, refusal to
// overwrite a run directory, and `eval` / `dump` on the checkpoint.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <sstream>

#include "data/tables.h"
#include "tests/test_util.h"

using namespace lm;
namespace fs = std::filesystem;

namespace {

std::vector<std::vector<std::string>> read_csv(const fs::path& p) {
  std::vector<std::vector<std::string>> rows;
  for (auto& r : data::parse_csv(test::read_text(p), p.string())) rows.push_back(r.fields);
  return rows;
}

int run(const std::string& args, const fs::path& log) { return test::run_libramil(args, log); }

}  // namespace

TEST_CASE("train runs the K-fold protocol and writes logs, checkpoints and a summary") {
  fs::path dir = test::scratch_dir("protocol");
  test::run_python_tool("make_tiny_dataset.py", dir.string() + " --classes 2 --per-class 6 --dim 16 --folds 2");
  fs::path run_dir = dir / "run";
  std::string common = "--data_csv " + (dir / "labels.csv").string() + " --data_split_json " + (dir / "split.json").string() +
                       " --h5_file_dir " + (dir / "features").string() + " --instance_path " +
                       (dir / "instance_priors.json").string() + " --bag_path " + (dir / "bag_priors.csv").string() +
                       " --instance_embeddings " + (dir / "z_ins.safetensors").string() + " --bag_embeddings " +
                       (dir / "z_bag.safetensors").string() + " --epochs 3 --folds 2 --heads 2 --num_vis_prototypes 3 --lr 1e-3 --warmup_steps 2 --quiet";
  REQUIRE(run("train " + common + " --save_dir " + run_dir.string(), dir / "train.log") == 0);

  // Per-fold epoch logs with the documented columns, one row per epoch.
  for (int fold = 0; fold < 2; ++fold) {
    auto rows = read_csv(run_dir / "logs" / ("log_" + std::to_string(fold) + ".csv"));
    REQUIRE(rows.size() == 4);
    CHECK(rows[0] == std::vector<std::string>{"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_auc", "val_f1",
                                              "test_loss", "test_acc", "test_auc", "test_f1", "seconds"});
    // The selection rule: best val accuracy, ties broken by a better val AUC (first wins).
    int best = 0;
    double best_acc = -1, best_auc = -1;
    for (int e = 0; e < 3; ++e) {
      double acc = std::stod(rows[1 + e][4]), auc = rows[1 + e][5] == "nan" ? NAN : std::stod(rows[1 + e][5]);
      if (acc > best_acc || (acc == best_acc && auc > best_auc)) {
        best = e;
        best_acc = acc;
        best_auc = auc;
      }
    }
    auto final_rows = read_csv(run_dir / "logs" / "final_log.csv");
    REQUIRE(final_rows.size() == 3);
    CHECK(std::stoi(final_rows[1 + fold][1]) == best);
    // The reloaded checkpoint reproduces the selected epoch's test metrics.
    CHECK(std::stod(final_rows[1 + fold][5]) == doctest::Approx(std::stod(rows[1 + best][8])).epsilon(1e-6));
    CHECK(fs::exists(run_dir / "checkpoints" / ("fold_" + std::to_string(fold) + "_best.safetensors")));
  }
  // Summary = mean and sample std of the per-fold test metrics.
  auto final_rows = read_csv(run_dir / "logs" / "final_log.csv");
  auto summary = read_csv(run_dir / "logs" / "summary_log.csv");
  REQUIRE(summary.size() == 4);
  double a0 = std::stod(final_rows[1][5]), a1 = std::stod(final_rows[2][5]);
  CHECK(summary[1][0] == "acc");
  CHECK(std::stod(summary[1][1]) == doctest::Approx((a0 + a1) / 2).epsilon(1e-5));
  CHECK(std::stod(summary[1][2]) == doctest::Approx(std::abs(a0 - a1) / std::sqrt(2.0)).epsilon(1e-4));

  // A second run into the same directory is refused, and nothing there changes.
  std::string before = test::read_text(run_dir / "logs" / "summary_log.csv");
  CHECK(run("train " + common + " --save_dir " + run_dir.string(), dir / "again.log") != 0);
  CHECK(test::read_text(dir / "again.log").find("already exists") != std::string::npos);
  CHECK(test::read_text(run_dir / "logs" / "summary_log.csv") == before);

  // eval on the checkpoint reproduces the test accuracy of fold 0.
  auto split_rows = dir / "split.json";
  REQUIRE(run("eval --checkpoint " + (run_dir / "checkpoints" / "fold_0_best.safetensors").string() + " --features " +
                  (dir / "features").string() + " --split " + split_rows.string() + " --fold 0 --part test --labels " +
                  (dir / "labels.csv").string() + " --out " + (dir / "eval.csv").string(),
              dir / "eval.log") == 0);
  std::string eval_log = test::read_text(dir / "eval.log");
  size_t at = eval_log.find("acc ");
  REQUIRE(at != std::string::npos);
  CHECK(std::stod(eval_log.substr(at + 4)) == doctest::Approx(std::stod(final_rows[1][5])).epsilon(1e-6));
  auto eval_rows = read_csv(dir / "eval.csv");
  CHECK(eval_rows.size() >= 3);

  // Baselines train through the same protocol.
  for (const char* m : {"abmil", "meanpool"}) {
    CHECK(run("train " + common + " --model " + m + " --save_dir " + (dir / (std::string("run_") + m)).string(),
              dir / (std::string(m) + ".log")) == 0);
  }
}
