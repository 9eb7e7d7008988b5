// `libramil profile`: the per-op table of a small training-step benchmark, the CSV, the exit
// status of the wrapped command, and the profiler API's exclusive timing; the ops' FLOP and
// byte counts against hand-computed formulas (docs/profiler.md's convention); which bandwidth
// peak a row is held against; phases; and the header and phases table of a profiled `train`.
#include <doctest/doctest.h>

#include <chrono>
#include <map>
#include <sstream>
#include <thread>

#include "ops/adam.h"
#include "ops/ops.h"
#include "tensor/profile_report.h"
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
  CHECK(text.rfind("name,calls,total_ms,mean_us,share_percent,gflops_per_s,gb_per_s,flops,bytes,peak_b_percent,peak_b_vs\n", 0) == 0);
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
    if (!line.empty() && line.back() == ',') f.push_back("");  // an empty last field (--no-peak: no peak_b_vs)
    REQUIRE(f.size() == 10);
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
  // --help documents the shape labels and where the counting convention is.
  REQUIRE(test::run_libramil("profile --help", log) == 0);
  const std::string help = test::read_text(log);
  CHECK(help.find("LIBRAMIL_PROFILE_SHAPES=1") != std::string::npos);
  CHECK(help.find("docs/profiler.md") != std::string::npos);
}

// The profiler's row `name` after running `fn` with profiling on (a fresh table each time).
template <class F>
std::vector<profiler::Row> profiled(F fn) {
  profiler::reset();
  profiler::set_enabled(true);
  fn();
  profiler::set_enabled(false);
  std::vector<profiler::Row> rows = profiler::snapshot();
  profiler::reset();
  return rows;
}

profiler::Row find_row(const std::vector<profiler::Row>& rows, const std::string& name) {
  for (const profiler::Row& r : rows)
    if (r.name == name) return r;
  FAIL("no profiler row " << name);
  return {};
}

// The counts follow docs/profiler.md: per element, LayerNorm forward 8 / backward 13 FLOPs, GELU
// 24 / 48, a transcendental 20; bytes = inputs read once + outputs written once (float32: 4 B),
// per-row saved statistics left out. Every expected value below is that formula worked out by
// hand for the shape, not the code's expression.
TEST_CASE("profiler counts: fused rows, LayerNorm, softmax, Adam, copy, l2_normalize and others by hand") {
  Generator gen(3);
  auto param = [&](Shape s) { return Tensor::randn(s, gen).set_requires_grad(true); };

  SUBCASE("linear_layer_norm_gelu, rows = 6, Din = 5, D = 8") {
    Tensor x = param({6, 5}), W = param({8, 5}), b = param({8}), gamma = param({8}), beta = param({8});
    auto rows = profiled([&] { backward(linear_layer_norm(x, W, b, gamma, beta, 1e-5, true), Tensor::ones({6, 8})); });
    // forward rows: (bias 1 + LayerNorm 8 + GELU 24) x 48 elements; reads y (48) + 3 vectors (24), writes 48.
    const profiler::Row fwd = find_row(rows, "linear_layer_norm_gelu");
    CHECK(fwd.flops == 1584.0);
    CHECK(fwd.bytes == 4.0 * (48 + 24 + 48));
    // backward rows: (LayerNorm 13 + bias column sum 1 + recompute 2 + GELU 48) x 48; reads g, y
    // (96) + w, b (16); writes gy (48) + 3 column gradients (24).
    const profiler::Row bwd = find_row(rows, "linear_layer_norm_gelu.backward_rows");
    CHECK(bwd.flops == 3072.0);
    CHECK(bwd.bytes == 4.0 * (96 + 16 + 48 + 24));
    CHECK(find_row(rows, "linear_layer_norm.gemm").flops == 2.0 * 6 * 8 * 5);
    CHECK(find_row(rows, "linear_layer_norm_gelu.backward").flops == 0);  // the engine's node: a wrapper
    CHECK(find_row(rows, "linear_layer_norm_gelu.backward").uncounted_calls == 0);
  }
  SUBCASE("linear_layer_norm without GELU, rows = 6, Din = 5, D = 8") {
    Tensor x = param({6, 5}), W = param({8, 5}), b = param({8}), gamma = param({8}), beta = param({8});
    auto rows = profiled([&] { backward(linear_layer_norm(x, W, b, gamma, beta, 1e-5, false), Tensor::ones({6, 8})); });
    CHECK(find_row(rows, "linear_layer_norm").flops == 9.0 * 48);
    CHECK(find_row(rows, "linear_layer_norm").bytes == 480.0);
    CHECK(find_row(rows, "linear_layer_norm.backward_rows").flops == 14.0 * 48);
    CHECK(find_row(rows, "linear_layer_norm.backward_rows").bytes == 4.0 * (96 + 8 + 48 + 24));
  }
  SUBCASE("layer_norm on (4, 10) with weight and bias") {
    Tensor x = param({4, 10}), w = param({10}), b = param({10});
    auto rows = profiled([&] { backward(layer_norm(x, w, b), Tensor::ones({4, 10})); });
    CHECK(find_row(rows, "layer_norm_forward").flops == 320.0);          // 8 x 40
    CHECK(find_row(rows, "layer_norm_forward").bytes == 4.0 * (40 + 20 + 40));
    CHECK(find_row(rows, "layer_norm_backward").flops == 520.0);         // 13 x 40
    CHECK(find_row(rows, "layer_norm_backward").bytes == 4.0 * (80 + 10 + 40 + 20));
  }
  SUBCASE("softmax and log_softmax on (3, 7)") {
    Tensor x = param({3, 7});
    auto rows = profiled([&] { backward(softmax(x, 1), Tensor::ones({3, 7})); });
    CHECK(find_row(rows, "softmax_forward").flops == 504.0);  // (max 1, sub 1, exp 20, sum 1, scale 1) x 21
    CHECK(find_row(rows, "softmax_forward").bytes == 168.0);  // 21 read + 21 written
    CHECK(find_row(rows, "softmax_backward").flops == 84.0);  // 4 x 21
    CHECK(find_row(rows, "softmax_backward").bytes == 252.0); // y, g read, gx written
    rows = profiled([&] { backward(log_softmax(x, 1), Tensor::ones({3, 7})); });
    CHECK(find_row(rows, "softmax_backward").flops == 483.0);  // (sum 1, exp 20, mul 1, sub 1) x 21
  }
  SUBCASE("adam_update: 100 float32 AdamW + 10 float64 Adam with L2 decay in one call") {
    Tensor p = Tensor::randn({100}, gen), p2 = Tensor::randn({10}, gen, DType::F64);
    auto like = [](const Tensor& t) { return Tensor::zeros(t.shape(), t.dtype()); };
    AdamStep decoupled{1e-3, 0.1, 1 - 1e-5, 0.9, 0.999, 1e-8, 0.01, true};
    AdamStep l2{1e-3, 0.1, 1.0, 0.9, 0.999, 1e-8, 0.01, false};
    std::vector<AdamParam> ps{{p, Tensor::ones({100}), like(p), like(p), decoupled},
                              {p2, Tensor::ones({10}, DType::F64), like(p2), like(p2), l2}};
    auto rows = profiled([&] { adam_update(ps); });
    // 14 FLOPs x 100 + 15 x 10; 7 arrays of 4 B x 100 + 7 of 8 B x 10.
    CHECK(find_row(rows, "adam_update").flops == 1550.0);
    CHECK(find_row(rows, "adam_update").bytes == 2800.0 + 560.0);
    CHECK(find_row(rows, "adam_update").working_set == 1600.0 + 320.0);  // in place: p, g, m, v once each
  }
  SUBCASE("copy, l2_normalize, gelu, add, sum, cross_entropy, sinkhorn, grad_accumulate") {
    Tensor x = Tensor::randn({4, 6}, gen);
    auto rows = profiled([&] { (void)t(x).contiguous(); });
    CHECK(find_row(rows, "copy").flops == 0);  // counted as no arithmetic, not unknown
    CHECK(find_row(rows, "copy").uncounted_calls == 0);
    CHECK(find_row(rows, "copy").bytes == 192.0);  // 24 floats read + written

    Tensor y = param({5, 12});
    rows = profiled([&] { backward(l2_normalize(y), Tensor::ones({5, 12})); });
    CHECK(find_row(rows, "l2_normalize").flops == 180.0);  // (square-add 2, scale 1) x 60
    CHECK(find_row(rows, "l2_normalize").bytes == 480.0);
    CHECK(find_row(rows, "l2_normalize_backward").flops == 300.0);  // 5 x 60
    CHECK(find_row(rows, "l2_normalize_backward").bytes == 720.0);

    Tensor z = param({2, 9});
    rows = profiled([&] { backward(gelu(z), Tensor::ones({2, 9})); });
    CHECK(find_row(rows, "gelu").flops == 432.0);  // 24 x 18
    CHECK(find_row(rows, "gelu").bytes == 144.0);
    const profiler::Row gb = find_row(rows, "gelu.backward");  // the kernel and the engine's node share the name
    CHECK(gb.calls == 2);
    CHECK(gb.flops == 864.0);  // 48 x 18
    CHECK(gb.bytes == 216.0);  // x, g read, gx written

    Tensor a = Tensor::randn({3, 4}, gen), c = Tensor::randn({4}, gen);
    rows = profiled([&] { (void)sum(add(a, c), {1}); });
    CHECK(find_row(rows, "add").flops == 12.0);
    CHECK(find_row(rows, "add").bytes == 4.0 * (12 + 4 + 12));  // the broadcast operand read once
    CHECK(find_row(rows, "sum").flops == 12.0);
    CHECK(find_row(rows, "sum").bytes == 4.0 * (12 + 3));

    Tensor logits = param({2, 5});
    rows = profiled([&] { backward(cross_entropy(logits, Tensor::from_vector(std::vector<int64_t>{1, 3}, {2}))); });
    CHECK(find_row(rows, "cross_entropy_forward").flops == 230.0);  // 23 x 10
    CHECK(find_row(rows, "cross_entropy_forward").bytes == 4.0 * 11 + 16);  // logits + loss, two int64 targets
    CHECK(find_row(rows, "cross_entropy_backward").flops == 230.0);
    CHECK(find_row(rows, "cross_entropy_backward").bytes == 4.0 * 20 + 16);

    // Sinkhorn, K1 = 3, K2 = 4, 5 iterations, plan out: exp(-C/eps) 21 x 12; per iteration
    // 4 x 12 + 2 x 7; the plan 2 x 12. Reads a, b, cost (19 floats), writes the plan (12).
    SinkhornOptions so;
    so.iterations = 5;
    Tensor sa = Tensor::full({3}, 1.0 / 3), sb = Tensor::full({4}, 0.25), cost = Tensor::randn({3, 4}, gen);
    rows = profiled([&] { (void)sinkhorn_plan(sa, sb, cost, so); });
    CHECK(find_row(rows, "sinkhorn_forward").flops == 252.0 + 5 * 62 + 24);
    CHECK(find_row(rows, "sinkhorn_forward").bytes == 4.0 * (19 + 12));

    // A leaf used twice: the first gradient is adopted (no work), the second added (7 FLOPs,
    // 7 floats read twice and written once).
    Tensor leaf = param({7});
    rows = profiled([&] { backward(sum(add(mul(leaf, 2.0), mul(leaf, 3.0)))); });
    const profiler::Row acc = find_row(rows, "grad_accumulate");
    CHECK(acc.calls == 2);
    CHECK(acc.flops == 7.0);
    CHECK(acc.bytes == 84.0);
    CHECK(acc.working_set == 56.0);  // in place: the sum and the new gradient
  }
}

TEST_CASE("profile report: %peakB against the L2, LLC or DRAM peak by working set per call; ? and - cells") {
  profiler::Peaks peaks;
  peaks.gflops = 100;
  peaks.dram_gbs = 10;
  peaks.llc_gbs = 40;
  peaks.l2_gbs = 100;
  peaks.l2_bytes = 2 << 20;
  peaks.llc_bytes = 32 << 20;
  const double MiB = 1 << 20;
  // {name, calls, total ms, flops, bytes, uncounted calls, calls with bytes, working set}
  profiler::Row small{"small_op", 10, 1.0, 0, 10 * MiB, 0, 10, 10 * MiB};  // 1 MiB per call: fits L2
  profiler::Row mid{"mid_op", 1, 1.0, 0, 8 * MiB, 0, 1, 8 * MiB};          // 8 MiB: fits the LLC only
  profiler::Row in_place{"in_place_op", 1, 10.0, 0, 56 * MiB, 0, 1, 32 * MiB};  // moves 56 MiB, touches 32
  profiler::Row big{"big_op", 2, 100.0, 0, 128 * MiB, 0, 2, 128 * MiB};    // 64 MiB per call: DRAM
  profiler::Row unknown{"unknown_op", 3, 1.0, 0, 0, 3, 0, 0};
  profiler::Row copy{"copy", 4, 1.0, 0, 4 * MiB, 0, 4, 4 * MiB};
  CHECK(profiler::working_set_per_call(small) == MiB);
  CHECK(profiler::working_set_per_call(in_place) == 32 * MiB);
  CHECK(std::string(profiler::bandwidth_peak_for(small, peaks).level) == "L2");
  CHECK(profiler::bandwidth_peak_for(small, peaks).gbs == 100);
  CHECK(std::string(profiler::bandwidth_peak_for(mid, peaks).level) == "LLC");
  CHECK(std::string(profiler::bandwidth_peak_for(in_place, peaks).level) == "LLC");
  CHECK(std::string(profiler::bandwidth_peak_for(big, peaks).level) == "DRAM");
  profiler::Peaks dram_only = peaks;
  dram_only.l2_gbs = dram_only.llc_gbs = 0;  // not measured (CUDA): every row against device memory
  CHECK(std::string(profiler::bandwidth_peak_for(small, dram_only).level) == "DRAM");
  profiler::Peaks no_l2 = peaks;
  no_l2.l2_gbs = 0;  // a level not measured passes to the next one down
  CHECK(std::string(profiler::bandwidth_peak_for(small, no_l2).level) == "LLC");

  const std::string table = profiler::op_table({small, mid, in_place, big, unknown, copy}, 1000.0, &peaks, 0);
  INFO(table);
  auto line_of = [&](const std::string& name) {
    std::istringstream in(table);
    std::string line;
    while (std::getline(in, line))
      if (line.rfind(name + " ", 0) == 0) return line;
    return std::string();
  };
  auto cells = [](const std::string& line) {
    std::istringstream in(line);
    std::vector<std::string> v;
    for (std::string w; in >> w;) v.push_back(w);
    return v;
  };
  // small: 10 MiB in 1 ms = 10.49 GB/s: 10.5% of the L2 peak (it would read 104.9% of DRAM's).
  std::vector<std::string> c = cells(line_of("small_op"));
  REQUIRE(c.size() == 10);
  CHECK(c[6] == "10.5");
  CHECK(c[8] == "10.5");
  CHECK(c[9] == "L2");
  // mid: 8 MiB in 1 ms = 8.39 GB/s: 21.0% of the LLC peak.
  c = cells(line_of("mid_op"));
  REQUIRE(c.size() == 10);
  CHECK(c[8] == "21.0");
  CHECK(c[9] == "LLC");
  // in place: 56 MiB in 10 ms = 5.87 GB/s: 14.7% of the LLC peak (its working set fits).
  c = cells(line_of("in_place_op"));
  REQUIRE(c.size() == 10);
  CHECK(c[8] == "14.7");
  CHECK(c[9] == "LLC");
  // big: 128 MiB in 100 ms = 1.34 GB/s: 13.4% of the DRAM peak.
  c = cells(line_of("big_op"));
  REQUIRE(c.size() == 10);
  CHECK(c[8] == "13.4");
  CHECK(c[9] == "DRAM");
  c = cells(line_of("unknown_op"));  // no count given: "?"
  REQUIRE(c.size() == 10);
  CHECK(c[5] == "?");
  CHECK(c[6] == "?");
  c = cells(line_of("copy"));  // bytes but no arithmetic: "-" FLOP/s
  REQUIRE(c.size() == 10);
  CHECK(c[5] == "-");
  CHECK(c[9] == "L2");
  CHECK(profiler::command_line({"libramil", "train", "--out", "a b", "--x", "it's"}) ==
        "libramil train --out 'a b' --x 'it'\\''s'");
}

TEST_CASE("profiler phases: exclusive wall times in first-opened order, time in op scopes, off by default") {
  profiler::reset();
  { profiler::Phase p("never"); }  // profiling off: nothing recorded
  CHECK(profiler::phases().empty());
  profiler::set_enabled(true);
  {
    profiler::Phase loading("loading");
    profiler::Scope op("read");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (int epoch = 0; epoch < 2; ++epoch) {
    profiler::Phase training("training");
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    profiler::Phase evaluation("evaluation");  // nested: charged to evaluation only
    std::this_thread::sleep_for(std::chrono::milliseconds(15));
  }
  profiler::set_enabled(false);
  const std::vector<profiler::PhaseRow> ph = profiler::phases();
  REQUIRE(ph.size() == 3);
  CHECK(ph[0].name == "loading");
  CHECK(ph[1].name == "training");
  CHECK(ph[2].name == "evaluation");
  CHECK(ph[0].calls == 1);
  CHECK(ph[1].calls == 2);
  CHECK(ph[0].wall_ms >= 20.0);
  CHECK(ph[0].in_scopes_ms >= 20.0);  // the whole phase was inside the "read" scope
  CHECK(ph[0].in_scopes_ms <= ph[0].wall_ms);
  CHECK(ph[1].wall_ms >= 20.0);
  CHECK(ph[1].wall_ms < 30.0 + 15.0);  // without the nested 2 x 15 ms
  CHECK(ph[1].in_scopes_ms == 0);
  CHECK(ph[2].wall_ms >= 30.0);
  const std::string table = profiler::phase_table(ph, profiler::snapshot(), 200.0);
  INFO(table);
  CHECK(table.find("training") != std::string::npos);
  CHECK(table.find("(other: outside every phase)") != std::string::npos);
  profiler::reset();
  CHECK(profiler::phases().empty());
}

TEST_CASE("libramil profile train: the full command, the bandwidth peaks, counted rows, phases table") {
  static const auto d = test::make_tiny_dataset("profile_train", "--classes 2 --per-class 6 --dim 16 --folds 1 --seed 5");
  const auto log = d / "profile.txt";
  const std::string cmd = "train " + test::tiny_dataset_inputs(d) + " --epochs 2 --folds 1 --threads 1 --quiet --out " +
                          (d / "run").string();
  REQUIRE(test::run_libramil("profile --top 0 " + cmd, log) == 0);
  const std::string out = test::read_text(log);
  INFO(out);
  CHECK(out.find("profile of `libramil " + cmd + "`") != std::string::npos);
  CHECK(out.find("GB/s DRAM") != std::string::npos);
  CHECK(out.find("GB/s LLC") != std::string::npos);
  CHECK(out.find("GB/s L2") != std::string::npos);
  CHECK(out.find("L2 per core") != std::string::npos);
  // Rows that used to show "-" now carry both rates, against the L2 peak (tiny shapes).
  std::istringstream in(out);
  std::map<std::string, std::vector<std::string>> cells;
  for (std::string line; std::getline(in, line);) {
    std::istringstream ls(line);
    std::vector<std::string> v;
    for (std::string w; ls >> w;) v.push_back(w);
    if (v.size() == 10) cells[v[0]] = v;
  }
  for (const char* name : {"linear_layer_norm_gelu", "linear_layer_norm_gelu.backward_rows", "adam_update", "softmax_forward",
                           "l2_normalize", "grad_accumulate", "sinkhorn_forward"}) {
    INFO(name);
    REQUIRE(cells.count(name));
    CHECK(cells[name][5] != "?");
    CHECK(cells[name][6] != "?");
    CHECK(cells[name][9] == "L2");
  }
  // The phases table: loading, training, evaluation, saving and the rest.
  const size_t at = out.find("\nphase ");
  REQUIRE(at != std::string::npos);
  const std::string phases = out.substr(at);
  for (const char* p : {"\nloading ", "\ntraining ", "\nevaluation ", "\nsaving ", "\n(other: outside every phase) "})
    CHECK_MESSAGE(phases.find(p) != std::string::npos, "no phase row " << p);
}

}  // namespace
