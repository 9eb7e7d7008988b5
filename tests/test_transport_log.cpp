// Issue 23's transport log: models/mil/transport_stats.h on vectors whose statistics are worked
// out by hand, and logs/transport_<fold>.csv written by a tiny Libra-MIL run (paper mode, with
// and without the no_transport ablation) and shown by the report.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "models/mil/transport_stats.h"
#include "tests/test_util.h"

using namespace lm;
namespace fs = std::filesystem;

namespace {

// The CSV as rows of named numbers.
std::vector<std::map<std::string, double>> read_rows(const fs::path& p) {
  std::istringstream in(test::read_text(p));
  std::string line;
  std::getline(in, line);
  std::vector<std::string> names;
  {
    std::istringstream h(line);
    for (std::string c; std::getline(h, c, ',');) names.push_back(c);
  }
  std::vector<std::map<std::string, double>> rows;
  while (std::getline(in, line)) {
    std::istringstream r(line);
    std::map<std::string, double> row;
    size_t k = 0;
    for (std::string c; std::getline(r, c, ',') && k < names.size(); ++k) row[names[k]] = c == "nan" ? NAN : std::stod(c);
    REQUIRE(k == names.size());
    rows.push_back(row);
  }
  return rows;
}

}  // namespace

TEST_CASE("transport_stats: spread, entropy and effective sample size of known weights") {
  // w = (0.5, 1.5): p = (1/4, 3/4); H = -(1/4 ln 1/4 + 3/4 ln 3/4); ESS = 2^2 / (0.25 + 2.25).
  const Tensor w = Tensor::from_vector(std::vector<double>{0.5, 1.5}, {2});
  const Tensor s = Tensor::from_vector(std::vector<double>{1.0, 3.0}, {2});
  const models::TransportStats t = models::transport_stats(w, s);
  CHECK(t.valid);
  CHECK(t.n == 2);
  CHECK(t.w_min == 0.5);
  CHECK(t.w_max == 1.5);
  CHECK(t.w_entropy == doctest::Approx(0.5623351446188083).epsilon(1e-12));
  CHECK(t.w_ess == doctest::Approx(1.6).epsilon(1e-12));
  CHECK(t.s_std == doctest::Approx(1.0).epsilon(1e-12));  // population std of (1, 3)
  // Equal weights: entropy ln N, ESS N; no scores: s_std NaN.
  const models::TransportStats u = models::transport_stats(Tensor::ones({5}, DType::F32), Tensor());
  CHECK(u.w_entropy == doctest::Approx(std::log(5.0)).epsilon(1e-6));
  CHECK(u.w_ess == doctest::Approx(5.0).epsilon(1e-6));
  CHECK(std::isnan(u.s_std));
  // A negative weight (literal fusion): no distribution, entropy and ESS undefined.
  const models::TransportStats n = models::transport_stats(Tensor::from_vector(std::vector<double>{-1.0, 2.0}, {2}), Tensor());
  CHECK(n.w_min == -1.0);
  CHECK(std::isnan(n.w_entropy));
  CHECK(std::isnan(n.w_ess));
}

TEST_CASE("train writes logs/transport_<fold>.csv for Libra-MIL, and the report shows it") {
  const fs::path dir = test::make_tiny_dataset("transport_log", "--classes 2 --per-class 6 --dim 16 --folds 1 --seed 9");
  for (const std::string ablation : {"none", "no_transport"}) {
    CAPTURE(ablation);
    const fs::path run = dir / ("run_" + ablation);
    const std::string train = "train " + test::tiny_dataset_inputs(dir) + " --ablation " + ablation +
                              " --heads 2 --num_vis_prototypes 3 --epochs 3 --folds 1 --lr 1e-2 --warmup_steps 1 --threads 1"
                              " --quiet --save_dir " + run.string();
    REQUIRE_MESSAGE(test::run_libramil(train, dir / "train.log") == 0, test::read_text(dir / "train.log"));
    const auto rows = read_rows(run / "logs" / "transport_0.csv");
    REQUIRE(rows.size() == 3);
    for (size_t e = 0; e < rows.size(); ++e) {
      const auto& r = rows[e];
      CHECK(r.at("epoch") == (double)e);
      CHECK(r.at("bags") > 0);
      if (ablation == "none") {
        // w = N softmax(.) has mean 1, so each bag's min <= 1 <= max; ESS / N in (0, 1].
        CHECK(r.at("w_min") <= 1.0);
        CHECK(r.at("w_max") >= 1.0);
        CHECK(r.at("w_ess_fraction") > 0.0);
        CHECK(r.at("w_ess_fraction") <= 1.0 + 1e-9);
        CHECK(r.at("grad_proto_vis") > 0.0);
        CHECK(r.at("grad_temp_vis") > 0.0);
      } else {
        CHECK(r.at("w_min") == 1.0);
        CHECK(r.at("w_max") == 1.0);
        CHECK(r.at("w_ess_fraction") == doctest::Approx(1.0));
        CHECK(r.at("grad_proto_vis") == 0.0);  // the transport's parameters get no gradient
        CHECK(r.at("grad_temp_vis") == 0.0);
        CHECK(r.at("temp_vis") == 1.0);
      }
    }
    // train writes the run's report.html at its end; `report` rewrites it from the directory.
    REQUIRE(test::run_libramil("report --overwrite " + run.string(), dir / "report.log") == 0);
    const std::string html = test::read_text(run / "report.html");
    CHECK(html.find("Transport: how much the instances are reweighted") != std::string::npos);
  }
}
