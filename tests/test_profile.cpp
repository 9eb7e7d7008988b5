// `libramil profile`: the per-op table of a small training-step benchmark, the CSV, the exit
// status of the wrapped command, and the profiler API's exclusive timing.
#include <doctest/doctest.h>

#include <chrono>
#include <sstream>
#include <thread>

#include "tensor/profiler.h"
#include "tests/test_util.h"

namespace {

using namespace lm;

TEST_CASE("profiler: exclusive times, nesting, off by default") {
  profiler::reset();
  CHECK_FALSE(profiler::enabled());
  { profiler::Scope s("never"); }  // disabled: records nothing
  CHECK(profiler::snapshot().empty());
  profiler::set_enabled(true);
  {
    profiler::Scope outer("outer", 10.0, 20.0);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    {
      profiler::Scope inner("inner");
      std::this_thread::sleep_for(std::chrono::milliseconds(40));
    }
  }
  profiler::set_enabled(false);
  auto rows = profiler::snapshot();
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].name == "inner");  // sorted by exclusive time
  CHECK(rows[0].total_ms >= 40.0);
  CHECK(rows[1].name == "outer");
  CHECK(rows[1].total_ms >= 20.0);
  CHECK(rows[1].total_ms < 40.0);  // the inner 40 ms are not charged to outer
  CHECK(rows[1].flops == 10.0);
  CHECK(rows[1].bytes == 20.0);
  CHECK(rows[1].calls == 1);
  profiler::reset();
}

TEST_CASE("libramil profile: table of a training step, CSV, exit status") {
  auto dir = test::scratch_dir("profile");
  const auto log = dir / "out.txt", csv = dir / "prof.csv";
  int rc = test::run_libramil("profile --no-peak --csv " + csv.string() +
                                       " bench train-step --instances 300 --dim 64 --repeats 1 --threads 1",
                                   log);
  const std::string out = test::read_text(log);
  INFO(out);
  REQUIRE(rc == 0);
  CHECK(out.find("\"median_ms\"") != std::string::npos);  // the wrapped command's JSON still printed
  for (const char* row : {"linear_layer_norm.gemm", "linear_layer_norm_gelu", "l2_normalize", "sinkhorn_forward",
                          "l2_norm_clamped", "optimizer.step", "matmul.backward", "(outside any scope)"})
    CHECK_MESSAGE(out.find(row) != std::string::npos, "no row " << row);
  const std::string text = test::read_text(csv);
  CHECK(text.rfind("name,calls,total_ms,mean_us,share_percent,gflops_per_s,gb_per_s\n", 0) == 0);
  // Shares of all rows add up to at most 100% of the wall time (exclusive times).
  std::istringstream in(text);
  std::string line;
  std::getline(in, line);
  double share = 0;
  int n = 0;
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::string cell;
    std::istringstream ls(line.substr(line.rfind('"') + 2));
    while (std::getline(ls, cell, ',')) f.push_back(cell);
    REQUIRE(f.size() == 6);
    share += std::stod(f[3]);
    ++n;
  }
  CHECK(n > 10);
  CHECK(share <= 100.5);

  // The wrapped command's failure is the profile's exit status; no CSV is written.
  const auto csv2 = dir / "none.csv";
  rc = test::run_libramil("profile --no-peak --csv " + csv2.string() + " bench train-step --instances 50 --dim 16 --mode nonsense", log);
  CHECK(rc != 0);
  CHECK_FALSE(std::filesystem::exists(csv2));
  rc = test::run_libramil("profile", log);
  CHECK(rc != 0);
  CHECK(test::read_text(log).find("give the command to profile") != std::string::npos);
}

}  // namespace
