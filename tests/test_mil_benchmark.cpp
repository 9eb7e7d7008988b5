// The classic MIL benchmark reader (models/classic_mil/mil_benchmark_data.h) on the real Musk1 / Elephant
// data and on malformed copies, and a short run of the protocol (models/classic_mil/mil_benchmark.h).
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>

#include "models/classic_mil/mil_benchmark_data.h"
#include "models/classic_mil/mil_benchmark.h"
#include "tests/test_util.h"

namespace fs = std::filesystem;
using lm::data::MilDataset;
using lm::data::read_mil_dataset;

namespace {

fs::path mil_dir(const std::string& name) { return lm::test::test_data("mil/" + name); }

void write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream f(p, std::ios::binary);
  f << text;
}

// A valid tiny dataset: 3 features, 5 instances in bags 1 (2), 2 (1), 3 (2); 3 folds x 1 rep.
void write_tiny(const fs::path& d) {
  write(d / "data.csv", "1\t2\t3\t4\t5\n0.5\t-1\t2e-1\t3\t0\n7\t8\t9\t10\t11\n");
  write(d / "bagids.csv", "1\n1\n2\n3\n3\n");
  write(d / "labels.csv", "1\n1\n0\n1\n1\n");
  write(d / "cvindexes" / "rep=1_fold=1.csv", "1\n");
  write(d / "cvindexes" / "rep=1_fold=2.csv", "2\n");
  write(d / "cvindexes" / "rep=1_fold=3.csv", "3\n");
}

// Reads `d` expecting an error whose message contains every string of `parts`.
void expect_error(const fs::path& d, std::vector<std::string> parts) {
  std::string msg;
  try {
    read_mil_dataset(d.string());
  } catch (const std::exception& e) {
    msg = e.what();
  }
  INFO("message: " << msg);
  REQUIRE(!msg.empty());
  for (const auto& p : parts) CHECK(msg.find(p) != std::string::npos);
}

void check_real(const MilDataset& ds, int bags, int64_t instances, int64_t dim, int positives) {
  CHECK(ds.num_bags() == bags);
  CHECK(ds.num_instances == instances);
  CHECK(ds.dim == dim);
  CHECK(ds.reps() == 5);
  CHECK(ds.folds() == 10);
  int64_t n = 0;
  for (const auto& b : ds.bags) {
    REQUIRE(b.dim() == 2);
    CHECK(b.shape()[1] == dim);
    CHECK(b.dtype() == lm::DType::F32);
    n += b.shape()[0];
  }
  CHECK(n == instances);
  CHECK(std::accumulate(ds.labels.begin(), ds.labels.end(), 0) == positives);
  for (int r = 0; r < ds.reps(); ++r) {
    std::set<int> seen;
    for (int f = 0; f < ds.folds(); ++f) {
      auto train = ds.train_bags(r, f);
      CHECK(train.size() + ds.test_folds[r][f].size() == (size_t)bags);
      seen.insert(ds.test_folds[r][f].begin(), ds.test_folds[r][f].end());
    }
    CHECK(seen.size() == (size_t)bags);
  }
}

}  // namespace

TEST_CASE("mil reader: Musk1 and Elephant") {
  MilDataset musk = read_mil_dataset(mil_dir("Musk1").string());
  CHECK(musk.name == "Musk1");
  check_real(musk, 92, 476, 166, 47);
  // data.csv is transposed: row 1 = feature 1, column j = instance j.
  CHECK(musk.bags[0].to_double_vector()[0] == doctest::Approx(42));
  CHECK(musk.test_folds[0][0].front() == 3);  // rep=1_fold=1.csv lists bag 4 (1-based) ...
  MilDataset ele = read_mil_dataset(mil_dir("Elephant").string());
  check_real(ele, 200, 1391, 230, 100);
  std::vector<double> e0 = ele.bags[0].to_double_vector();
  CHECK(e0[0] == doctest::Approx(2.05773));
  CHECK(e0[1] == doctest::Approx(1.62976));  // feature 2 of instance 1 (row 2, column 1)
  CHECK(ele.bags[0].shape()[0] >= 1);
  CHECK_THROWS_AS(ele.train_bags(5, 0), std::out_of_range);
}

TEST_CASE("mil reader: tiny dataset and malformed input") {
  fs::path base = lm::test::scratch_dir("mil_reader");
  fs::path ok = base / "ok";
  write_tiny(ok);
  MilDataset ds = read_mil_dataset(ok.string());
  REQUIRE(ds.num_bags() == 3);
  CHECK(ds.dim == 3);
  CHECK(ds.bags[0].shape() == lm::Shape{2, 3});
  CHECK(ds.bags[0].to_double_vector() == std::vector<double>{1, 0.5, 7, 2, -1, 8});
  CHECK(ds.bags[2].to_double_vector()[3] == doctest::Approx(5.0));
  CHECK(ds.labels == std::vector<int>{1, 0, 1});
  CHECK(ds.train_bags(0, 1) == std::vector<int>{0, 2});

  SUBCASE("ragged rows") {
    write(ok / "data.csv", "1\t2\t3\t4\t5\n0.5\t-1\t2e-1\t3\n7\t8\t9\t10\t11\n");
    expect_error(ok, {"data.csv", "ragged", "line 2"});
  }
  SUBCASE("non-numeric value") {
    write(ok / "data.csv", "1\t2\t3\t4\t5\n0.5\t-1\tabc\t3\t0\n7\t8\t9\t10\t11\n");
    expect_error(ok, {"data.csv", "line 2, column 3", "'abc'"});
  }
  SUBCASE("bag ids not contiguous") {
    write(ok / "bagids.csv", "1\n1\n3\n3\n3\n");
    expect_error(ok, {"bagids.csv", "not contiguous", "line 3"});
    write(ok / "bagids.csv", "1\n2\n1\n3\n3\n");
    expect_error(ok, {"bagids.csv", "not contiguous"});
    write(ok / "bagids.csv", "2\n2\n3\n4\n4\n");
    expect_error(ok, {"bagids.csv", "1-based"});
  }
  SUBCASE("count mismatch") {
    write(ok / "bagids.csv", "1\n1\n2\n3\n");
    expect_error(ok, {"bagids.csv", "4 bag ids", "5 instances"});
  }
  SUBCASE("label changes within a bag") {
    write(ok / "labels.csv", "1\n0\n0\n1\n1\n");
    expect_error(ok, {"labels.csv", "bag 1 "});
  }
  SUBCASE("label not 0/1") {
    write(ok / "labels.csv", "1\n1\n2\n1\n1\n");
    expect_error(ok, {"labels.csv", "not 0 or 1"});
  }
  SUBCASE("fold id out of range") {
    write(ok / "cvindexes" / "rep=1_fold=2.csv", "2\n4\n");
    expect_error(ok, {"rep=1_fold=2.csv", "line 2", "out of range 1..3"});
    write(ok / "cvindexes" / "rep=1_fold=2.csv", "0\n");
    expect_error(ok, {"rep=1_fold=2.csv", "out of range"});
  }
  SUBCASE("fold id not numeric, repeated, or folds not covering") {
    write(ok / "cvindexes" / "rep=1_fold=2.csv", "two\n");
    expect_error(ok, {"rep=1_fold=2.csv", "not an integer"});
    write(ok / "cvindexes" / "rep=1_fold=2.csv", "1\n");
    expect_error(ok, {"rep=1_fold=2.csv", "already in the test fold of fold 1"});
    fs::remove(ok / "cvindexes" / "rep=1_fold=2.csv");
    expect_error(ok, {"rep=1_fold=2.csv", "missing"});
  }
  SUBCASE("missing file") {
    fs::remove(ok / "labels.csv");
    expect_error(ok, {"labels.csv", "cannot open"});
  }
}

TEST_CASE("mil benchmark: options, published figures, model") {
  using namespace lm::bench;
  MilBenchmarkOptions o;
  o.model = "transmil";
  CHECK_THROWS_WITH_AS(o.validate(), doctest::Contains("unknown model 'transmil'"), std::invalid_argument);
  CHECK(published_accuracy("Musk1", "abmil").value() == doctest::Approx(0.892));
  CHECK(published_accuracy("elephant", "gated_abmil").value() == doctest::Approx(0.857));
  CHECK(!published_accuracy("Fox", "abmil"));
  for (std::string m : {"abmil", "gated_abmil", "meanpool", "maxpool", "libramil"}) {
    o.model = m;
    lm::Generator g(3);
    auto net = make_mil_benchmark_model(o, 166, g);
    lm::Tensor y = (*net)(lm::Tensor::randn({5, 166}, g));
    CHECK(y.shape() == lm::Shape{2});
  }
  // Libra-MIL's fusion and ablation (issue 23's study): passed to the model, checked up front.
  o.model = "abmil";
  o.libramil_ablation = "no_transport";
  CHECK_THROWS_WITH_AS(o.validate(), doctest::Contains("apply to --model libramil only"), std::invalid_argument);
  o.model = "libramil";
  o.libramil_ablation = "no_transport";
  o.libramil_fusion = "nonsense";
  CHECK_THROWS_WITH_AS(o.validate(), doctest::Contains("fusion must be softmax, literal or standardised"), std::invalid_argument);
  for (auto [fusion, ablation] : {std::pair<std::string, std::string>{"standardised", "none"}, {"softmax", "no_transport"}}) {
    o.libramil_fusion = fusion;
    o.libramil_ablation = ablation;
    o.validate();
    lm::Generator g(3);
    auto net = make_mil_benchmark_model(o, 166, g);
    lm::Tensor y = (*net)(lm::Tensor::randn({5, 166}, g));
    CHECK(y.shape() == lm::Shape{2});
  }
}

TEST_CASE("mil benchmark: short protocol run on Musk1 beats chance") {
  using namespace lm::bench;
  MilDataset ds = read_mil_dataset(mil_dir("Musk1").string());
  MilBenchmarkOptions o;
  o.model = "abmil";
  o.reps = 1;
  o.folds = 3;
  o.epochs = 10;
  o.threads = 2;
  MilBenchmarkResult r = run_mil_benchmark(ds, o);
  REQUIRE(r.folds.size() == 3);
  REQUIRE(r.rep_accuracy.size() == 1);
  CHECK(r.accuracy_se == 0.0);
  MESSAGE("Musk1 abmil, 1 rep x 3 folds x 10 epochs: accuracy " << r.accuracy_mean);
  CHECK(r.accuracy_mean > 0.6);  // chance (majority class) is 47/92 = 0.51
  nlohmann::json j = nlohmann::json::parse(mil_benchmark_json(r, o));
  CHECK(j["dataset"] == "Musk1");
  CHECK(j["model"] == "abmil");
  CHECK(j["published"].get<double>() == doctest::Approx(0.892));
  CHECK(j["reps"] == 1);
  REQUIRE(j["fold_accuracy"].size() == 3);
  for (int k = 0; k < 3; ++k) CHECK(j["fold_accuracy"][k].get<double>() == r.folds[k].accuracy);
  CHECK_FALSE(j.contains("fusion"));  // Libra-MIL's settings only for Libra-MIL

  // The result does not depend on the number of threads (per-fold generators).
  o.folds = 2;
  o.epochs = 2;
  MilFoldResult a = run_mil_fold(ds, o, 0, 0);  // this thread
  o.threads = 2;
  MilBenchmarkResult b = run_mil_benchmark(ds, o);  // worker threads
  CHECK(a.correct == b.folds[0].correct);
  CHECK(a.final_train_loss == doctest::Approx(b.folds[0].final_train_loss).epsilon(1e-6));
  o.reps = 6;
  CHECK_THROWS_WITH_AS(run_mil_benchmark(ds, o), doctest::Contains("5 repetitions"), std::invalid_argument);
}
