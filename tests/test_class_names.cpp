// CLAM / TRIDENT label tables (issue 25 item 2): `slide_id` (and `case_id`) columns, class names
// as labels mapped by an explicit `train --classes` order, errors that name the file, line and
// the known classes; and `train --classes` writing the names into test_predictions.csv.
#include <doctest/doctest.h>

#include <fstream>

#include "data/tables.h"
#include "tests/test_util.h"

namespace {
namespace fs = std::filesystem;
using namespace lm;

fs::path write(const fs::path& dir, const std::string& name, const std::string& text) {
  std::ofstream(dir / name) << text;
  return dir / name;
}

}  // namespace

TEST_CASE("labels: CLAM's case_id,slide_id,label with class names and --classes") {
  const fs::path dir = test::scratch_dir("class_names");
  const fs::path clam = write(dir, "clam.csv", "case_id,slide_id,label\nP1,s1,PRCC\nP1,s2,CCRCC\nP2,s3,CHRCC\n");
  const auto l = data::read_labels_csv(clam.string(), {"CCRCC", "PRCC", "CHRCC"});
  REQUIRE(l.size() == 3);
  CHECK(l[0].name == "s1");
  CHECK(l[0].label == 1);
  CHECK(l[0].case_id == "P1");
  CHECK(l[1].label == 0);
  CHECK(l[2].label == 2);
  CHECK(l[2].case_id == "P2");
  // Names without --classes: the error says how to give them.
  CHECK_THROWS_WITH(data::read_labels_csv(clam.string()),
                    doctest::Contains("line 2: label 'PRCC' of slide s1 is not an integer; for class names give their order with --classes"));
  // A name outside --classes is named with the known ones.
  CHECK_THROWS_WITH(data::read_labels_csv(clam.string(), {"CCRCC", "PRCC"}),
                    doctest::Contains("line 4: label 'CHRCC' of slide s3 is none of the --classes CCRCC, PRCC"));
  // Integers still work with names given (names are then only for display).
  const fs::path ints = write(dir, "ints.csv", "slide_id,label\ns1,1\ns2,0\n");
  CHECK(data::read_labels_csv(ints.string(), {"A", "B"})[0].label == 1);
  // `name` wins over `slide_id` when a table has both; no slide column is an error naming both.
  const fs::path both = write(dir, "both.csv", "slide_id,name,label\nx,s1,0\n");
  CHECK(data::read_labels_csv(both.string())[0].name == "s1");
  const fs::path none = write(dir, "none.csv", "case,label\nx,0\n");
  CHECK_THROWS_WITH(data::read_labels_csv(none.string()), doctest::Contains("`name` (or `slide_id`)"));
}

TEST_CASE("train --classes: a table of class names trains, and the names reach test_predictions.csv") {
  static const fs::path d = test::make_tiny_dataset("class_names_run", "--classes 2 --per-class 6 --dim 16 --folds 2 --seed 8");
  // The tiny dataset's labels.csv (name,label with 0 / 1) rewritten CLAM-style with names.
  std::ifstream in(d / "labels.csv");
  std::string line, out = "case_id,slide_id,label\n";
  std::getline(in, line);
  for (int i = 0; std::getline(in, line); ++i) {
    const auto comma = line.find(',');
    if (comma == std::string::npos) continue;
    out += "case" + std::to_string(i) + "," + line.substr(0, comma) + "," + (line.substr(comma + 1) == "0" ? "benign" : "tumour") + "\n";
  }
  const fs::path labels = write(d, "named.csv", out);
  std::string inputs = test::tiny_dataset_inputs(d);
  inputs.replace(inputs.find((d / "labels.csv").string()), (d / "labels.csv").string().size(), labels.string());
  const fs::path run = d / "run";
  REQUIRE(test::run_libramil("train " + inputs + " --classes benign,tumour --model abmil --epochs 1 --folds 1 --quiet --out " + run.string(),
                             d / "log.txt") == 0);
  const std::string preds = test::read_text(run / "logs" / "test_predictions.csv");
  CHECK(preds.rfind("fold,slide,label,prob_0,prob_1,predicted,label_name,predicted_name\n", 0) == 0);
  CHECK((preds.find(",benign,") != std::string::npos || preds.find(",tumour,") != std::string::npos));
  // A wrong order of the same names would silently swap classes, so a third class is refused.
  CHECK(test::run_libramil("train " + inputs + " --classes benign --model abmil --epochs 1 --folds 1 --out " + (d / "run2").string(),
                           d / "log2.txt") == 1);
  CHECK(test::read_text(d / "log2.txt").find("is none of the --classes benign") != std::string::npos);
}
