// models/nn/nn.h and models/nn/optim.h: state_dict names, loading, initialisation distributions,
// multi-head attention against torch.nn.MultiheadAttention, SGD / Adam / AdamW with
// schedules and clipping against torch.optim over whole training runs (fixtures made at
// test time by tools/optim_fixtures.py), gradient clipping, optimizer state round trips.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numbers>
#include <map>
#include <string>
#include <vector>

#include "data/formats/safetensors.h"
#include "models/nn/nn.h"
#include "models/nn/optim.h"
#include "ops/ops.h"
#include "tests/test_util.h"

namespace {

using namespace lm;

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

// max |a - b| / max |b| (the tensor-wise relative error).
double norm_rel(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  auto x = a.to_double_vector(), y = b.to_double_vector();
  double d = 0, m = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    d = std::max(d, std::abs(x[i] - y[i]));
    m = std::max(m, std::abs(y[i]));
  }
  return d / std::max(m, 1e-300);
}

// Max elementwise |a - b| / (|b| + floor) over two tensors of the same shape.
double max_rel(const Tensor& a, const Tensor& b, double floor = 1e-3) {
  REQUIRE(a.shape() == b.shape());
  auto x = a.to_double_vector(), y = b.to_double_vector();
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]) / (std::abs(y[i]) + floor));
  return m;
}

// Linear(5,7) -> LayerNorm(7) -> GELU -> Linear(7,3), as in tools/optim_fixtures.py.
struct Mlp : nn::Sequential {
  Mlp(Generator& gen, DType dtype) {
    emplace_back<nn::Linear>(5, 7, gen, true, dtype);
    emplace_back<nn::LayerNorm>(7, 1e-5, true, dtype);
    emplace_back<nn::GELU>();
    emplace_back<nn::Linear>(7, 3, gen, true, dtype);
  }
};

struct OptimCase {
  std::string name, optimizer, dtype, schedule;
  int steps;
  double lr, wd, momentum, clip;
  double tol;
};

constexpr int kBatch = 8;

// Trains an Mlp in C++ and writes the case file for Python; returns the final parameters
// and the per-step losses.
std::pair<nn::StateDict, std::vector<double>> run_case(const OptimCase& c, const std::filesystem::path& dir) {
  const DType dt = c.dtype == "f64" ? DType::F64 : DType::F32;
  Generator gen(1234);
  Mlp model(gen, dt);
  Tensor x = Tensor::randn({c.steps, kBatch, 5}, gen, dt);
  std::vector<int64_t> yv(c.steps * kBatch);
  // Learnable labels: the argmax of a fixed random linear map of x.
  Tensor w_true = Tensor::randn({3, 5}, gen, DType::F64);
  auto xv = x.to_double_vector(), wv = w_true.to_double_vector();
  for (int64_t r = 0; r < (int64_t)yv.size(); ++r) {
    double best = -1e300;
    for (int k = 0; k < 3; ++k) {
      double z = 0;
      for (int j = 0; j < 5; ++j) z += xv[r * 5 + j] * wv[k * 5 + j];
      if (z > best) best = z, yv[r] = k;
    }
  }
  Tensor y = Tensor::from_vector(yv, {c.steps, kBatch});

  std::vector<std::pair<std::string, Tensor>> init;
  for (auto& [n, t] : model.named_parameters()) init.emplace_back("param." + n, t.clone());
  init.emplace_back("x", x);
  init.emplace_back("y", y);
  const int warmup = 10, total = c.steps;
  std::map<std::string, std::string> meta{
      {"optimizer", c.optimizer}, {"dtype", c.dtype},       {"lr", std::to_string(c.lr)},
      {"steps", std::to_string(c.steps)}, {"beta1", "0.9"}, {"beta2", "0.999"},
      {"eps", "1e-08"},           {"weight_decay", std::to_string(c.wd)}, {"momentum", std::to_string(c.momentum)},
      {"schedule", c.schedule},   {"warmup", std::to_string(warmup)}, {"total", std::to_string(total)},
      {"clip", std::to_string(c.clip)}};
  data::write_safetensors((dir / ("case_" + c.name + ".safetensors")).string(), init, meta);

  // The lr strings are what Python parses; parse them back so both sides use the same value.
  const double lr = std::stod(meta["lr"]), wd = std::stod(meta["weight_decay"]), mom = std::stod(meta["momentum"]);
  std::unique_ptr<optim::Optimizer> opt;
  if (c.optimizer == "adamw") opt = std::make_unique<optim::AdamW>(model.parameters(), lr, std::pair{0.9, 0.999}, 1e-8, wd);
  else if (c.optimizer == "adam") opt = std::make_unique<optim::Adam>(model.parameters(), lr, std::pair{0.9, 0.999}, 1e-8, wd);
  else opt = std::make_unique<optim::SGD>(model.parameters(), lr, mom, wd);
  std::unique_ptr<optim::LRSchedule> sched;
  if (c.schedule == "cosine") sched = std::make_unique<optim::CosineWithWarmup>(lr, warmup, total);
  else sched = std::make_unique<optim::ConstantSchedule>(lr);

  std::vector<double> losses;
  for (int s = 0; s < c.steps; ++s) {
    sched->apply(*opt, s);
    opt->zero_grad();
    Tensor loss = cross_entropy(model(select(x, 0, s)), select(y, 0, s));
    backward(loss);
    if (c.clip > 0) optim::clip_grad_norm(model.parameters(), std::stod(meta["clip"]));
    opt->step();
    losses.push_back(loss.item());
  }
  return {model.state_dict(), losses};
}

}  // namespace

TEST_CASE("state_dict names follow PyTorch for Sequential and nesting") {
  Generator gen(1);
  nn::Sequential outer;
  outer.emplace_back<nn::Linear>(4, 3, gen);
  outer.emplace_back<nn::ReLU>();
  auto& inner = outer.emplace_back<nn::Sequential>();
  inner.emplace_back<nn::LayerNorm>(3);
  inner.emplace_back<nn::Linear>(3, 2, gen, false);
  std::vector<std::string> names;
  for (auto& [n, t] : outer.named_parameters()) names.push_back(n);
  CHECK(names == std::vector<std::string>{"0.weight", "0.bias", "2.0.weight", "2.0.bias", "2.1.weight"});
  CHECK(outer.parameters().size() == 5);
  CHECK(outer.num_parameters() == 12 + 3 + 3 + 3 + 6);
  CHECK(outer.at<nn::Linear>(0).out_features == 3);
  CHECK_THROWS(outer.at<nn::Linear>(1));

  // A Libra-MIL-shaped module: member submodules, top-level parameters and a buffer.
  struct Net : nn::Module {
    nn::Sequential proj_v, classification_head;
    nn::Linear q_proj;
    Tensor proto_vis, z_ins;
    explicit Net(Generator& g) : q_proj(6, 6, g) {
      proto_vis = register_parameter("proto_vis", Tensor::randn({2, 6}, g));
      proj_v.emplace_back<nn::Linear>(6, 6, g);
      proj_v.emplace_back<nn::LayerNorm>(6);
      proj_v.emplace_back<nn::GELU>();
      register_module("proj_v", proj_v);
      register_module("q_proj", q_proj);
      classification_head.emplace_back<nn::LayerNorm>(6);
      classification_head.emplace_back<nn::Linear>(6, 6, g);
      classification_head.emplace_back<nn::ReLU>();
      classification_head.emplace_back<nn::Linear>(6, 1, g);
      register_module("classification_head", classification_head);
      z_ins = register_buffer("T_struct_llm", Tensor::zeros({3, 6}));
    }
  };
  Net net(gen);
  std::vector<std::string> keys;
  for (auto& [n, t] : net.ordered_state_dict()) keys.push_back(n);
  CHECK(keys == std::vector<std::string>{"proto_vis", "T_struct_llm", "proj_v.0.weight", "proj_v.0.bias",
                                         "proj_v.1.weight", "proj_v.1.bias", "q_proj.weight", "q_proj.bias",
                                         "classification_head.0.weight", "classification_head.0.bias",
                                         "classification_head.1.weight", "classification_head.1.bias",
                                         "classification_head.3.weight", "classification_head.3.bias"});
  CHECK(net.parameters().size() == 13);  // the buffer is not a parameter
  auto sd = net.state_dict();
  CHECK(sd.size() == 14);
  CHECK(sd.at("classification_head.3.weight").shape() == Shape{1, 6});

  // Loading copies in place: handles (and an optimizer over them) stay valid.
  Generator gen2(99);
  Net other(gen2);
  auto before = net.q_proj.weight.impl_ptr();
  optim::SGD sgd(net.parameters(), 0.1);
  net.load_state_dict(other.state_dict());
  CHECK(net.q_proj.weight.impl_ptr() == before);
  CHECK(net.q_proj.weight.to_double_vector() == other.q_proj.weight.to_double_vector());
  CHECK(sgd.params()[0].to_double_vector() == other.proto_vis.to_double_vector());
  // Values are copies, not aliases.
  other.q_proj.weight.fill(7.0);
  CHECK(net.q_proj.weight.to_double_vector()[0] != 7.0);

  auto missing = other.state_dict();
  missing.erase("proj_v.1.bias");
  std::string e = error_of([&] { net.load_state_dict(missing); });
  CHECK(contains(e, "missing"));
  CHECK(contains(e, "proj_v.1.bias"));
  auto extra = other.state_dict();
  extra["proj_v.9.weight"] = Tensor::zeros({1});
  e = error_of([&] { net.load_state_dict(extra); });
  CHECK(contains(e, "unexpected"));
  CHECK(contains(e, "proj_v.9.weight"));
  auto wrong = other.state_dict();
  wrong["q_proj.weight"] = Tensor::zeros({6, 5});
  e = error_of([&] { net.load_state_dict(wrong, false); });
  CHECK(contains(e, "q_proj.weight"));
  CHECK(contains(e, "[6, 5]"));
  auto r = net.load_state_dict(missing, false);
  CHECK(r.missing_keys == std::vector<std::string>{"proj_v.1.bias"});
  auto r2 = net.load_state_dict(extra, false);
  CHECK(r2.unexpected_keys == std::vector<std::string>{"proj_v.9.weight"});

  // dtype conversion keeps the handles; train/eval propagate.
  net.to(DType::F64);
  CHECK(net.q_proj.weight.impl_ptr() == before);
  CHECK(net.q_proj.weight.dtype() == DType::F64);
  CHECK(net.state_dict().at("proj_v.0.weight").dtype() == DType::F64);
  net.eval();
  CHECK_FALSE(net.classification_head.at<nn::Linear>(3).is_training());
  net.train();
  CHECK(net.proj_v[0].is_training());
}

TEST_CASE("Linear and LayerNorm initialisation matches PyTorch's defaults in distribution") {
  Generator gen(2024);
  nn::Linear lin(512, 512, gen);
  const double bound = 1.0 / std::sqrt(512.0);
  for (const Tensor& t : {lin.weight, lin.bias}) {
    auto v = t.to_double_vector();
    double mn = 1e9, mx = -1e9, s = 0, s2 = 0;
    for (double x : v) {
      mn = std::min(mn, x);
      mx = std::max(mx, x);
      s += x;
    }
    const double mean = s / v.size();
    for (double x : v) s2 += (x - mean) * (x - mean);
    const double var = s2 / (v.size() - 1);
    CHECK(mn >= -bound);
    CHECK(mx <= bound);
    if (v.size() > 1000) {
      CHECK(std::abs(mean) < 5 * bound / std::sqrt(3.0 * v.size()));
      CHECK(var == doctest::Approx(bound * bound / 3).epsilon(0.01));
      CHECK(mn < -bound * 0.999);
      CHECK(mx > bound * 0.999);
    } else {  // the bias: 512 draws
      CHECK(std::abs(mean) < 5 * bound / std::sqrt(3.0 * v.size()));
      CHECK(var == doctest::Approx(bound * bound / 3).epsilon(0.2));
    }
  }
  CHECK(lin.weight.requires_grad());
  // Deterministic in the seed; different seeds differ.
  Generator g1(5), g2(5), g3(6);
  nn::Linear a(7, 3, g1), b(7, 3, g2), c(7, 3, g3);
  CHECK(a.weight.to_double_vector() == b.weight.to_double_vector());
  CHECK(a.bias.to_double_vector() == b.bias.to_double_vector());
  CHECK(a.weight.to_double_vector() != c.weight.to_double_vector());
  nn::LayerNorm ln(9);
  for (double x : ln.weight.to_double_vector()) CHECK(x == 1.0);
  for (double x : ln.bias.to_double_vector()) CHECK(x == 0.0);
  nn::Linear nobias(4, 2, gen, false);
  CHECK_FALSE(nobias.bias.defined());
  CHECK(nobias.named_parameters().size() == 1);
}

TEST_CASE("clip_grad_norm against a hand computation") {
  Tensor a = Tensor::zeros({2}, DType::F64).set_requires_grad(true);
  Tensor b = Tensor::zeros({1, 1}).set_requires_grad(true);
  Tensor c = Tensor::zeros({3}).set_requires_grad(true);  // no gradient: skipped
  a.set_grad(Tensor::from_vector(std::vector<double>{3.0, 4.0}, {2}));
  b.set_grad(Tensor::from_vector(std::vector<float>{12.0f}, {1, 1}));
  // norm = sqrt(9 + 16 + 144) = 13; max 100 leaves the gradients alone.
  CHECK(optim::clip_grad_norm({a, b, c}, 100.0) == doctest::Approx(13.0).epsilon(1e-12));
  CHECK(a.grad().to_double_vector() == std::vector<double>{3.0, 4.0});
  const double coef = 6.5 / (13.0 + 1e-6);
  CHECK(optim::clip_grad_norm({a, b, c}, 6.5) == doctest::Approx(13.0).epsilon(1e-12));
  auto ga = a.grad().to_double_vector();
  CHECK(ga[0] == doctest::Approx(3.0 * coef).epsilon(1e-14));
  CHECK(ga[1] == doctest::Approx(4.0 * coef).epsilon(1e-14));
  CHECK(b.grad().item() == doctest::Approx(12.0 * coef).epsilon(1e-6));
  CHECK(optim::clip_grad_norm({a, b, c}, 100.0) == doctest::Approx(6.5).epsilon(1e-6));
  CHECK_FALSE(c.grad().defined());
}

TEST_CASE("CosineWithWarmup equals transformers' get_cosine_schedule_with_warmup") {
  optim::CosineWithWarmup s(2e-4, 10, 50);
  CHECK(s.lr_at(0) == 0.0);
  CHECK(s.lr_at(5) == doctest::Approx(1e-4).epsilon(1e-15));
  CHECK(s.lr_at(10) == doctest::Approx(2e-4).epsilon(1e-15));
  CHECK(s.lr_at(30) == doctest::Approx(1e-4).epsilon(1e-12));  // half-way through the cosine
  CHECK(s.lr_at(50) == doctest::Approx(0.0));
  CHECK(s.lr_at(20) == doctest::Approx(2e-4 * 0.5 * (1 + std::cos(std::numbers::pi * 0.25))).epsilon(1e-14));
  optim::CosineWithWarmup none(1.0, 0, 4);
  CHECK(none.lr_at(0) == 1.0);
  CHECK(optim::ConstantSchedule(0.3).lr_at(12345) == 0.3);
}

TEST_CASE("multi_head_attention equals torch.nn.MultiheadAttention; optimizers equal torch.optim") {
  auto dir = test::scratch_dir("nn_optim");

  // Attention fixture (float64, D = 8, 2 heads).
  Generator gen(77);
  nn::MultiHeadCrossAttention mha(8, 2, gen, DType::F64);
  Tensor q_in = Tensor::randn({3, 8}, gen, DType::F64), kv_in = Tensor::randn({5, 8}, gen, DType::F64);
  {
    std::vector<std::pair<std::string, Tensor>> t{{"q_in", q_in}, {"kv_in", kv_in}};
    for (auto& [n, p] : mha.named_parameters()) t.emplace_back(n, p);
    data::write_safetensors((dir / "mha.safetensors").string(), t, {{"heads", "2"}});
  }
  Tensor mha_out = mha.forward(q_in, kv_in);
  CHECK(mha_out.shape() == Shape{3, 8});
  // Batched form agrees with the unbatched one.
  Tensor batched = mha.forward(unsqueeze(q_in, 0), unsqueeze(kv_in, 0));
  CHECK(max_rel(reshape(batched, {3, 8}), mha_out) < 1e-14);

  const std::vector<OptimCase> cases{
      {"adamw_f64", "adamw", "f64", "cosine", 50, 1e-2, 0.01, 0, 0, 1e-6},
      {"adamw_f32", "adamw", "f32", "cosine", 50, 1e-2, 0.01, 0, 0, 1e-5},
      {"adamw_clip_f64", "adamw", "f64", "cosine", 30, 1e-2, 0.05, 0, 0.5, 1e-6},
      {"adam_f64", "adam", "f64", "constant", 30, 1e-2, 0.01, 0, 0, 1e-6},
      {"adam_f32", "adam", "f32", "constant", 30, 1e-2, 0.01, 0, 0, 1e-5},
      {"sgd_f64", "sgd", "f64", "cosine", 30, 0.1, 0.01, 0.9, 0, 1e-6},
      {"sgd_f32", "sgd", "f32", "constant", 30, 0.1, 0.0, 0.9, 0, 1e-5},
  };
  std::map<std::string, std::pair<nn::StateDict, std::vector<double>>> ours;
  for (auto& c : cases) ours[c.name] = run_case(c, dir);
  test::run_python_tool("optim_fixtures.py", dir.string());

  auto ref_mha = data::read_safetensors((dir / "mha_out.safetensors").string());
  const double mha_err = max_rel(mha_out, ref_mha.at("out"));
  MESSAGE("multi_head_attention vs torch: max rel err " << mha_err);
  CHECK(mha_err < 1e-12);

  for (auto& c : cases) {
    CAPTURE(c.name);
    auto ref = data::read_safetensors((dir / ("out_" + c.name + ".safetensors")).string());
    auto& [params, losses] = ours[c.name];
    double worst = 0, worst_elem = 0, moved = 0;
    for (auto& [n, t] : params) {
      CAPTURE(n);
      REQUIRE(ref.contains("param." + n));
      const Tensor& r = ref.at("param." + n);
      CHECK(r.dtype() == t.dtype());
      worst = std::max(worst, norm_rel(t, r));
      worst_elem = std::max(worst_elem, max_rel(t, r));
    }
    // The run must have moved the parameters far beyond the tolerance.
    auto init = data::read_safetensors((dir / ("case_" + c.name + ".safetensors")).string());
    for (auto& [n, t] : params) moved = std::max(moved, norm_rel(init.at("param." + n), t));
    auto ref_losses = ref.at("losses").to_double_vector();
    REQUIRE(ref_losses.size() == losses.size());
    double loss_err = 0;
    for (size_t i = 0; i < losses.size(); ++i)
      loss_err = std::max(loss_err, std::abs(losses[i] - ref_losses[i]) / std::abs(ref_losses[i]));
    MESSAGE(c.name << ": max rel param err " << worst << " (elementwise, floor 1e-3: " << worst_elem << "), loss err " << loss_err << ", loss " << ref_losses.front()
                   << " -> " << ref_losses.back() << ", params moved " << moved);
    CHECK(worst < c.tol);
    CHECK(loss_err < c.tol);
    CHECK(moved > 1000 * c.tol);
    // It learned: the mean loss over the last 5 steps is below that over the first 5.
    double first = 0, last = 0;
    for (int i = 0; i < 5; ++i) first += ref_losses[i], last += ref_losses[ref_losses.size() - 1 - i];
    CHECK(last < first);
  }
}

TEST_CASE("optimizer state round trip: resume equals an uninterrupted run") {
  auto train = [](optim::Optimizer& opt, nn::Module& model, const Tensor& x, const Tensor& y, int from, int to) {
    for (int s = from; s < to; ++s) {
      opt.zero_grad();
      backward(cross_entropy(model(select(x, 0, s)), select(y, 0, s)));
      opt.step();
    }
  };
  for (std::string kind : {"adamw", "sgd"}) {
    CAPTURE(kind);
    auto make = [&](nn::Module& m) -> std::unique_ptr<optim::Optimizer> {
      if (kind == "adamw") return std::make_unique<optim::AdamW>(m.parameters(), 1e-2);
      return std::make_unique<optim::SGD>(m.parameters(), 0.05, 0.9);
    };
    Generator gen(3);
    Mlp a(gen, DType::F32);
    Tensor x = Tensor::randn({20, 4, 5}, gen);
    std::vector<int64_t> yv(80);
    for (auto& v : yv) v = (int64_t)gen.next_below(3);
    Tensor y = Tensor::from_vector(yv, {20, 4});
    auto opt_a = make(a);
    train(*opt_a, a, x, y, 0, 10);
    // Checkpoint through safetensors files, as a trainer would.
    auto dir = test::scratch_dir("nn_optim_resume_" + kind);
    data::write_safetensors((dir / "model.safetensors").string(), a.state_dict());
    data::write_safetensors((dir / "optim.safetensors").string(), opt_a->state_tensors());
    train(*opt_a, a, x, y, 10, 20);

    Generator other(42);
    Mlp b(other, DType::F32);
    auto opt_b = make(b);
    b.load_state_dict(data::read_safetensors((dir / "model.safetensors").string()).tensors);
    opt_b->load_state_tensors(data::read_safetensors((dir / "optim.safetensors").string()).tensors);
    train(*opt_b, b, x, y, 10, 20);
    auto sa = a.state_dict(), sb = b.state_dict();
    for (auto& [n, t] : sa) CHECK(t.to_double_vector() == sb.at(n).to_double_vector());
    CHECK(opt_b->state_tensors().at("0.step").item() == 20);
  }
  // Bad state is refused by key.
  Generator gen(1);
  nn::Linear lin(2, 2, gen);
  optim::AdamW opt(lin.parameters());
  std::string e = error_of([&] { opt.load_state_tensors({{"5.exp_avg", Tensor::zeros({2, 2})}}); });
  CHECK(contains(e, "5.exp_avg"));
  e = error_of([&] { opt.load_state_tensors({{"0.exp_avg", Tensor::zeros({3})}}); });
  CHECK(contains(e, "0.exp_avg"));
  e = error_of([&] { opt.load_state_tensors({{"0.momentum_buffer", Tensor::zeros({2, 2})}}); });
  CHECK(contains(e, "0.momentum_buffer"));
}

TEST_CASE("optimizers skip parameters without gradients; zero_grad; set_lr") {
  Tensor p = Tensor::from_vector(std::vector<float>{1.0f, 2.0f}, {2}).set_requires_grad(true);
  Tensor q = Tensor::from_vector(std::vector<float>{5.0f}, {1}).set_requires_grad(true);
  optim::AdamW opt({p, q}, 0.1, {0.9, 0.999}, 1e-8, 0.0);
  p.set_grad(Tensor::from_vector(std::vector<float>{1.0f, -1.0f}, {2}));
  opt.step();
  // First Adam step moves by lr * sign(g) (up to eps).
  auto pv = p.to_double_vector();
  CHECK(pv[0] == doctest::Approx(0.9).epsilon(1e-6));
  CHECK(pv[1] == doctest::Approx(2.1).epsilon(1e-6));
  CHECK(q.item() == 5.0);
  auto st = opt.state_tensors();
  CHECK(st.count("0.step") == 1);
  CHECK(st.count("1.step") == 0);
  opt.zero_grad();
  CHECK_FALSE(p.grad().defined());
  opt.set_lr(0.5);
  CHECK(opt.lr() == 0.5);
  // SGD without momentum: p -= lr * (g + wd * p).
  Tensor r = Tensor::from_vector(std::vector<double>{2.0}, {1}).set_requires_grad(true);
  optim::SGD sgd({r}, 0.1, 0.0, 0.5);
  r.set_grad(Tensor::from_vector(std::vector<double>{3.0}, {1}));
  sgd.step();
  CHECK(r.item() == doctest::Approx(2.0 - 0.1 * (3.0 + 0.5 * 2.0)).epsilon(1e-15));
}

TEST_CASE("AdamW over many large parameters (one parallel loop over blocks) equals the same update in small pieces") {
  // 400000 elements in total: above the threshold at which the update runs on all threads, and
  // a parameter of 70001 elements spans three 32k blocks, the last one partial. The update is
  // elementwise, so cutting the same values into small parameters must give the same bits.
  Generator gen(5);
  std::vector<Tensor> big{Tensor::randn({70001}, gen), Tensor::randn({329999}, gen)};
  std::vector<Tensor> big_g{Tensor::randn({70001}, gen), Tensor::randn({329999}, gen)};
  std::vector<Tensor> small, small_g;
  for (size_t i = 0; i < big.size(); ++i)
    for (int64_t s = 0; s < big[i].numel(); s += 1000) {
      const int64_t e = std::min<int64_t>(big[i].numel(), s + 1000);
      small.push_back(slice(big[i], 0, s, e).clone());
      small_g.push_back(slice(big_g[i], 0, s, e).clone());
    }
  const std::vector<double> before = cat(big, 0).to_double_vector();
  for (auto& t : big) t.set_requires_grad(true);
  for (auto& t : small) t.set_requires_grad(true);
  optim::AdamW a(big, 1e-2, {0.9, 0.999}, 1e-8, 0.05), b(small, 1e-2, {0.9, 0.999}, 1e-8, 0.05);
  for (int step = 0; step < 3; ++step) {
    for (size_t i = 0; i < big.size(); ++i) big[i].set_grad(mul(big_g[i], 1.0 + step));
    for (size_t i = 0; i < small.size(); ++i) small[i].set_grad(mul(small_g[i], 1.0 + step));
    a.step();
    b.step();
  }
  Tensor joined = cat(small, 0);
  CHECK(cat(big, 0).to_double_vector() == joined.to_double_vector());
  const std::vector<double> after = cat(big, 0).to_double_vector();
  size_t moved = 0;  // the steps did update (nearly) every element
  for (size_t i = 0; i < after.size(); ++i) moved += after[i] != before[i];
  CHECK(moved > after.size() * 99 / 100);
}
