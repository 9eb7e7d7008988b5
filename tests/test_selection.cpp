// Model selection rules (`train --select`, train::selection_key): the reference rule (val
// accuracy, ties by AUC, the earliest epoch on full ties) and the alternatives, on hand-made
// epoch records; then `--select last` through the binary keeps the final epoch and records the
// rule in config.json (and run.log the run's lines).
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "models/train/trainer.h"
#include "tests/test_util.h"

namespace {
namespace fs = std::filesystem;
using namespace lm;

// The epoch each rule keeps over `recs`, applying the trainer's "strictly better" comparison.
int pick(const std::string& rule, const std::vector<train::EpochRecord>& recs) {
  int best = -1;
  std::pair<double, double> bk{-INFINITY, -INFINITY};
  for (const auto& r : recs) {
    const auto k = train::selection_key(rule, r);
    if (k.first > bk.first || (k.first == bk.first && k.second > bk.second)) bk = k, best = r.epoch;
  }
  return best;
}

train::EpochRecord rec(int epoch, double acc, double auc, double loss) {
  train::EpochRecord r;
  r.epoch = epoch;
  r.val.acc = acc, r.val.auc = auc, r.val_loss = loss;
  return r;
}

}  // namespace

TEST_CASE("selection rules pick the documented epoch") {
  // A small validation set saturates: accuracy 1.0 from epoch 1 while the loss keeps falling.
  const std::vector<train::EpochRecord> recs = {rec(0, 0.5, 0.60, 1.00), rec(1, 1.0, 0.90, 0.80), rec(2, 1.0, 0.90, 0.50),
                                                rec(3, 1.0, 0.95, 0.40), rec(4, 0.9, 0.97, 0.45)};
  CHECK(pick("val_acc", recs) == 3);   // ties at 1.0 broken by AUC; not the later equal ones
  CHECK(pick("val_auc", recs) == 4);
  CHECK(pick("val_loss", recs) == 3);
  CHECK(pick("last", recs) == 4);
  const std::vector<train::EpochRecord> flat = {rec(0, 1.0, 1.0, 0.9), rec(1, 1.0, 1.0, 0.5)};
  CHECK(pick("val_acc", flat) == 0);   // full tie: the earliest, as the reference code
  CHECK(pick("val_loss", flat) == 1);
  CHECK_THROWS_WITH_AS(train::selection_key("best", recs[0]), doctest::Contains("unknown model selection rule 'best'"),
                       std::invalid_argument);
}

TEST_CASE("train --select last keeps the final epoch and records the rule") {
  static const fs::path d = test::make_tiny_dataset("selection", "--classes 2 --per-class 6 --dim 16 --folds 2 --seed 5");
  const fs::path run = d / "run";
  REQUIRE(test::run_libramil("train " + test::tiny_dataset_inputs(d) + " --model abmil --epochs 3 --folds 1 --quiet --select last --out " +
                                 run.string(),
                             d / "log.txt") == 0);
  const auto result = nlohmann::json::parse(test::read_text(run / "logs" / "fold_0_result.json"));
  CHECK(result["best_epoch"] == 2);
  const auto config = nlohmann::json::parse(test::read_text(run / "config.json"));
  CHECK(config.dump().find("\"select\":\"last\"") != std::string::npos);
  // run.log keeps the run's lines (header, and the final table even with --quiet).
  const std::string log = test::read_text(run / "run.log");
  CHECK(log.rfind("# libramil train, ", 0) == 0);
  CHECK(log.find("abmil test (mean +- std over 1 folds)") != std::string::npos);
  CHECK(test::run_libramil("train " + test::tiny_dataset_inputs(d) + " --select best --out " + (d / "run2").string(),
                           d / "log2.txt") != 0);
  CHECK(test::read_text(d / "log2.txt").find("--select") != std::string::npos);
}
