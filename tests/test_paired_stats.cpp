// The paired t-test of the report's comparison (data::paired_t_test, data::student_t_cdf) against
// scipy.stats (ttest_rel, t.cdf) computed at test time by /usr/bin/python3, and the report's
// "Paired differences" table for two runs on the same folds.
#include <doctest/doctest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "data/metrics.h"
#include "tensor/rng.h"
#include "tests/test_util.h"

namespace {
namespace fs = std::filesystem;
using namespace lm;
}  // namespace

TEST_CASE("paired t-test and Student's t CDF equal scipy's") {
  const fs::path dir = test::scratch_dir("paired_stats");
  Generator gen(5);
  nlohmann::json cases = nlohmann::json::array();
  std::vector<std::pair<std::vector<double>, std::vector<double>>> samples;
  for (int n : {2, 3, 5, 10, 30}) {
    std::vector<double> a, b;
    for (int i = 0; i < n; ++i) {
      const double x = gen.next_uniform();
      a.push_back(x);
      b.push_back(x - 0.05 + 0.2 * gen.next_uniform());
    }
    samples.push_back({a, b});
    cases.push_back({{"a", a}, {"b", b}});
  }
  const std::vector<std::pair<double, double>> cdf_points = {{-3.5, 1}, {-0.4, 2}, {0.0, 4}, {1.7, 4}, {2.9, 9.5}, {-12.0, 30}, {0.01, 100}};
  nlohmann::json cdf = nlohmann::json::array();
  for (auto [t, df] : cdf_points) cdf.push_back({t, df});
  std::ofstream(dir / "in.json") << nlohmann::json{{"pairs", cases}, {"cdf", cdf}}.dump();
  const std::string py =
      "import json,sys\nfrom scipy import stats\nd=json.load(open(sys.argv[1]))\n"
      "out={'pairs':[list(stats.ttest_rel(c['a'],c['b'])) for c in d['pairs']],'cdf':[stats.t.cdf(t,df) for t,df in d['cdf']]}\n"
      "json.dump(out,open(sys.argv[2],'w'))\n";
  std::ofstream(dir / "ref.py") << py;
  if (std::system(("/usr/bin/python3 -c 'import scipy' 2>/dev/null")) != 0) {
    test::skip_unless_ci("scipy is missing (tools/setup.sh installs python3-scipy)");
    return;
  }
  test::run_or_throw("/usr/bin/python3 " + (dir / "ref.py").string() + " " + (dir / "in.json").string() + " " + (dir / "out.json").string());
  const auto ref = nlohmann::json::parse(test::read_text(dir / "out.json"));
  for (size_t k = 0; k < samples.size(); ++k) {
    const auto t = data::paired_t_test(samples[k].first, samples[k].second);
    CAPTURE(k);
    CHECK(t.t == doctest::Approx(ref["pairs"][k][0].get<double>()).epsilon(1e-10));
    CHECK(t.p == doctest::Approx(ref["pairs"][k][1].get<double>()).epsilon(1e-9));
  }
  for (size_t k = 0; k < cdf_points.size(); ++k) {
    CAPTURE(k);
    CHECK(data::student_t_cdf(cdf_points[k].first, cdf_points[k].second) == doctest::Approx(ref["cdf"][k].get<double>()).epsilon(1e-10));
  }
  // Degenerate samples.
  CHECK(std::isnan(data::paired_t_test({1.0}, {0.5}).p));
  CHECK(data::paired_t_test({1.0, 2.0}, {0.5, 1.5}).p == 0.0);  // constant nonzero difference
  CHECK(std::isnan(data::paired_t_test({1.0, 2.0}, {1.0, 2.0}).p));
}

TEST_CASE("report: two runs on the same folds get a paired-differences table") {
  static const fs::path d = test::make_tiny_dataset("paired_report", "--classes 2 --per-class 6 --dim 16 --folds 3 --seed 9");
  for (const char* m : {"abmil", "meanpool"})
    REQUIRE(test::run_libramil("train " + test::tiny_dataset_inputs(d) + " --model " + m + " --epochs 2 --folds 3 --quiet --out " +
                                   (d / m).string(),
                               d / "log.txt") == 0);
  REQUIRE(test::run_libramil("report " + (d / "abmil").string() + " " + (d / "meanpool").string() + " --out " + (d / "cmp.html").string(),
                             d / "log.txt") == 0);
  const std::string html = test::read_text(d / "cmp.html");
  CHECK(html.find("Paired differences (runs on the same folds)") != std::string::npos);
  CHECK(html.find("abmil &minus; meanpool") != std::string::npos);
}
