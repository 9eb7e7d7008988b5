// Issue 19: a checkpoint's recorded mode / fusion / ot_epsilon / ot_iter / heads are what
// `dump` and `eval` run it with; a model flag replaces the recorded value only when it is
// given on the command line (its default never does).
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>

#include "data/formats/safetensors.h"
#include "data/tables.h"
#include "tests/test_util.h"

using namespace lm;
namespace fs = std::filesystem;

namespace {

std::vector<double> dump_logits(const fs::path& dir, const std::string& ckpt, const std::string& bag, const std::string& name,
                                const std::string& flags) {
  const fs::path out = dir / (name + ".safetensors");
  const std::string args = "dump --checkpoint " + ckpt + " --features " + bag + " --label 0 --out " + out.string() + " " + flags;
  REQUIRE_MESSAGE(test::run_libramil(args, dir / (name + ".log")) == 0, test::read_text(dir / (name + ".log")));
  return data::read_safetensors(out.string()).at("logits").to_double_vector();
}

std::vector<double> softmax(const std::vector<double>& z) {
  double m = -INFINITY, s = 0;
  for (double v : z) m = std::max(m, v);
  std::vector<double> p;
  for (double v : z) p.push_back(std::exp(v - m)), s += p.back();
  for (double& v : p) v /= s;
  return p;
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(a[i] - b[i]));
  return d;
}

}  // namespace

TEST_CASE("dump and eval run a checkpoint with its recorded settings unless a flag is given") {
  const fs::path dir = test::make_tiny_dataset("model_overrides", "--classes 2 --per-class 6 --dim 16 --folds 1 --seed 5");
  const fs::path run_dir = dir / "run";
  const std::string train = "train " + test::tiny_dataset_inputs(dir) +
                            " --mode reference --ot_epsilon 0.1 --ot_iter 7 --heads 2 --num_vis_prototypes 3" +
                            " --epochs 2 --folds 1 --lr 1e-3 --warmup_steps 1 --threads 1 --quiet --save_dir " + run_dir.string();
  REQUIRE_MESSAGE(test::run_libramil(train, dir / "train.log") == 0, test::read_text(dir / "train.log"));
  const std::string ckpt = (run_dir / "checkpoints" / "fold_0_best.safetensors").string();
  const std::string slide = "slide_c1_03";
  const std::string bag = (dir / "features" / (slide + ".h5")).string();

  const std::vector<double> plain = dump_logits(dir, ckpt, bag, "plain", "");
  const std::vector<double> same = dump_logits(dir, ckpt, bag, "same", "--mode reference --ot_epsilon 0.1 --ot_iter 7 --heads 2");
  const std::vector<double> paper = dump_logits(dir, ckpt, bag, "paper", "--mode paper");
  const std::vector<double> heads = dump_logits(dir, ckpt, bag, "heads", "--heads 4");
  // Without flags, dump runs what was trained: the same logits as the flags it was trained with.
  CHECK(max_abs_diff(plain, same) == 0.0);
  // A flag that is given replaces the recorded value. (Not checked with --ot_epsilon: in
  // reference mode the column sums of each plan are its column marginal whatever epsilon is.)
  CHECK(max_abs_diff(plain, paper) > 1e-4);
  CHECK(max_abs_diff(plain, heads) > 1e-4);

  // eval (no model flags) agrees with dump: its probabilities are the softmax of dump's logits.
  const fs::path eval_csv = dir / "eval.csv";
  REQUIRE(test::run_libramil("eval --checkpoint " + ckpt + " --features " + (dir / "features").string() + " --slides " + slide +
                                 " --out " + eval_csv.string(),
                             dir / "eval.log") == 0);
  auto rows = data::parse_csv(test::read_text(eval_csv), eval_csv.string());
  REQUIRE(rows.size() == 2);  // header + the slide
  REQUIRE(rows[1].fields.size() == 1 + plain.size() + 1);
  CHECK(rows[1].fields[0] == slide);
  const std::vector<double> p = softmax(plain);
  for (size_t c = 0; c < p.size(); ++c) CHECK(std::stod(rows[1].fields[1 + c]) == doctest::Approx(p[c]).epsilon(1e-5));
}
