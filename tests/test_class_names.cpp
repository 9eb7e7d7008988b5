// CLAM / TRIDENT label tables and splits (issue 25 items 2, 3): `slide_id` (and `case_id`)
// columns, class names as labels mapped by an explicit `train --classes` order, errors that name
// the file, line and the known classes; `train --classes` writing the names into
// test_predictions.csv; patient-level splits (--group-by case_id); a --shots split kept in the
// run directory; CLAM's splits_<k>.csv folders.
#include <doctest/doctest.h>

#include <algorithm>

#include <fstream>
#include <map>
#include <set>

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
  CHECK(preds.rfind("fold,slide,label,prob_0,prob_1,prediction,label_name,prediction_name\n", 0) == 0);
  CHECK((preds.find(",benign,") != std::string::npos || preds.find(",tumour,") != std::string::npos));
  // The report names the classes too (confusion matrix, ROC legend) instead of "class 0".
  const std::string report = test::read_text(run / "report.html");
  CHECK(report.find("benign") != std::string::npos);
  CHECK(report.find("tumour") != std::string::npos);
  // A wrong order of the same names would silently swap classes, so a third class is refused.
  CHECK(test::run_libramil("train " + inputs + " --classes benign --model abmil --epochs 1 --folds 1 --out " + (d / "run2").string(),
                           d / "log2.txt") == 1);
  CHECK(test::read_text(d / "log2.txt").find("is none of the --classes benign") != std::string::npos);
}

TEST_CASE("splits --group-by case_id: a patient's slides stay together; one slide per patient equals the plain split") {
  const fs::path dir = test::scratch_dir("group_by");
  // 3 classes x 5 patients, patient p of class c has (p % 3) + 1 slides.
  std::string csv = "case_id,slide_id,label\n";
  for (int c = 0; c < 3; ++c)
    for (int p = 0; p < 5; ++p)
      for (int s = 0; s <= p % 3; ++s)
        csv += "c" + std::to_string(c) + "p" + std::to_string(p) + ",c" + std::to_string(c) + "p" + std::to_string(p) + "s" +
               std::to_string(s) + "," + std::to_string(c) + "\n";
  const fs::path path = write(dir, "patients.csv", csv);
  const auto labels = data::read_labels_csv(path.string());
  const auto splits = data::make_few_shot_splits(labels, 3, 2, 4, 7, 0.5, path.string(), true);
  std::map<std::string, std::string> case_of;
  for (const auto& l : labels) case_of[l.name] = l.case_id;
  for (const auto& f : splits) {
    std::map<std::string, std::set<int>> parts;  // patient -> parts its slides are in
    int k = 0;
    std::set<std::string> train_cases;
    for (const auto* part : {&f.train, &f.val, &f.test}) {
      for (const auto& s : *part) parts[case_of.at(s)].insert(k);
      ++k;
    }
    for (const auto& s : f.train) train_cases.insert(case_of.at(s));
    for (const auto& [p, in] : parts) CHECK_MESSAGE(in.size() == 1, p);
    CHECK(train_cases.size() == 6);  // 2 patients per class
    CHECK(f.train.size() + f.val.size() + f.test.size() == labels.size());
  }
  // One slide per patient: grouped and plain draws agree.
  const fs::path single = write(dir, "single.csv", "case_id,slide_id,label\nA,a,0\nB,b,0\nC,c,0\nD,d,1\nE,e,1\nF,f,1\n");
  const auto l1 = data::read_labels_csv(single.string());
  const auto g = data::make_few_shot_splits(l1, 2, 1, 3, 9, 0.5, "", true);
  const auto p = data::make_few_shot_splits(l1, 2, 1, 3, 9, 0.5, "", false);
  for (int f = 0; f < 3; ++f) {
    CHECK(g[f].train == p[f].train);
    CHECK(g[f].val == p[f].val);
    CHECK(g[f].test == p[f].test);
  }
  // A patient with two classes, and a row without case_id, are refused naming them.
  const fs::path mixed = write(dir, "mixed.csv", "case_id,slide_id,label\nA,a1,0\nA,a2,1\nB,b,0\nC,c,1\n");
  CHECK_THROWS_WITH(data::make_few_shot_splits(data::read_labels_csv(mixed.string()), 2, 1, 1, 1, 0.5, mixed.string(), true),
                    doctest::Contains("patient A has slides of class 0 and 1"));
  const fs::path nocase = write(dir, "nocase.csv", "slide_id,label\na,0\nb,1\n");
  CHECK_THROWS_WITH(data::make_few_shot_splits(data::read_labels_csv(nocase.string()), 2, 1, 1, 1, 0.5, nocase.string(), true),
                    doctest::Contains("slide a has no case_id"));
}

TEST_CASE("train --shots keeps the drawn split in the run directory") {
  static const fs::path d = test::make_tiny_dataset("split_saved", "--classes 2 --per-class 6 --dim 16 --folds 2 --seed 4");
  const fs::path run = d / "run";
  std::string inputs = test::tiny_dataset_inputs(d);
  inputs.replace(inputs.find("--data_split_json"), inputs.find(" --h5_file_dir") - inputs.find("--data_split_json"), "--shots 2");
  REQUIRE(test::run_libramil("train " + inputs + " --model abmil --epochs 1 --folds 2 --quiet --out " + run.string(), d / "log.txt") == 0);
  const auto saved = data::read_split_json((run / "split.json").string(), 2);
  const auto again = data::make_few_shot_splits(data::read_labels_csv((d / "labels.csv").string()), 2, 2, 2, 7, 0.5);
  REQUIRE(saved.size() == 2);
  for (int f = 0; f < 2; ++f) {
    CHECK(saved[f].train == again[f].train);
    CHECK(saved[f].test == again[f].test);
  }
}

TEST_CASE("CLAM's splits_<k>.csv folder reads as folds, through read_split_json and train --split DIR") {
  const fs::path dir = test::scratch_dir("clam_splits");
  // pandas' to_csv of a DataFrame with columns train, val, test of unequal lengths.
  std::ofstream(dir / "splits_0.csv") << ",train,val,test\n0,a,c,e\n1,b,d,f\n2,g,,\n";
  std::ofstream(dir / "splits_1.csv") << ",train,val,test\n0,c,a,b\n1,d,,e\n";
  const auto s = data::read_split_json(dir.string());
  REQUIRE(s.size() == 2);
  CHECK(s[0].train == std::vector<std::string>{"a", "b", "g"});
  CHECK(s[0].val == std::vector<std::string>{"c", "d"});
  CHECK(s[0].test == std::vector<std::string>{"e", "f"});
  CHECK(s[1].train == std::vector<std::string>{"c", "d"});
  CHECK(s[1].test == std::vector<std::string>{"b", "e"});
  CHECK(data::read_split_json(dir.string(), 1).size() == 1);
  CHECK_THROWS_WITH(data::read_split_json(dir.string(), 3), doctest::Contains("splits_2.csv: missing (3 folds expected)"));
  std::ofstream(dir / "splits_1.csv") << ",train,val,test\n0,c,c,b\n";
  CHECK_THROWS_WITH(data::read_split_json(dir.string()), doctest::Contains("splits_1.csv: slide c is in both train and val"));
  std::ofstream(dir / "splits_1.csv") << ",train,validation,test\n0,c,a,b\n";
  CHECK_THROWS_WITH(data::read_split_json(dir.string()), doctest::Contains("header lacks the column `val`"));
  // train --split DIR on the tiny dataset, its split.json rewritten as CLAM's folder.
  static const fs::path d = test::make_tiny_dataset("clam_splits_run", "--classes 2 --per-class 6 --dim 16 --folds 2 --seed 2");
  const auto js = data::read_split_json((d / "split.json").string());
  const fs::path clam = d / "clam";
  fs::create_directories(clam);
  for (size_t f = 0; f < js.size(); ++f) {
    std::ofstream out(clam / ("splits_" + std::to_string(f) + ".csv"));
    out << ",train,val,test\n";
    const size_t rows = std::max({js[f].train.size(), js[f].val.size(), js[f].test.size()});
    for (size_t r = 0; r < rows; ++r)
      out << r << "," << (r < js[f].train.size() ? js[f].train[r] : "") << "," << (r < js[f].val.size() ? js[f].val[r] : "") << ","
          << (r < js[f].test.size() ? js[f].test[r] : "") << "\n";
  }
  std::string inputs = test::tiny_dataset_inputs(d);
  inputs.replace(inputs.find((d / "split.json").string()), (d / "split.json").string().size(), clam.string());
  REQUIRE(test::run_libramil("train " + inputs + " --model abmil --epochs 1 --folds 2 --quiet --out " + (d / "run").string(),
                             d / "log.txt") == 0);
  CHECK(fs::exists(d / "run" / "logs" / "fold_1_result.json"));
}
