#include "models/classic_mil/mil_benchmark.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <exception>
#include <mutex>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "models/mil/baselines.h"
#include "models/mil/libramil.h"
#include "models/nn/optim.h"
#include "ops/ops.h"
#include "data/text_util.h"

namespace lm::bench {

namespace {
using data::lower;


using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Extra instance-embedding layers in front of a pooling model.
class MilBenchNet : public nn::Module {
 public:
  MilBenchNet(std::shared_ptr<nn::Sequential> embed, std::shared_ptr<nn::Module> pool) : embed_(embed), pool_(pool) {
    register_module("embed", embed_);
    register_module("pool", pool_);
  }
  Tensor forward(const Tensor& x) override { return (*pool_)((*embed_)(x)); }
  std::string type_name() const override { return "MilBenchNet"; }

 private:
  std::shared_ptr<nn::Sequential> embed_;
  std::shared_ptr<nn::Module> pool_;
};

// Random unit vectors (k, d): rows of N(0, 1) draws, L2-normalised.
Tensor random_unit_rows(int64_t k, int64_t d, Generator& gen) {
  std::vector<double> v = Tensor::randn({k, d}, gen, DType::F64).to_double_vector();
  for (int64_t i = 0; i < k; ++i) {
    double s = 0;
    for (int64_t j = 0; j < d; ++j) s += v[i * d + j] * v[i * d + j];
    s = std::sqrt(s);
    for (int64_t j = 0; j < d; ++j) v[i * d + j] /= s;
  }
  return Tensor::from_vector(v, {k, d}).to(DType::F32);
}

uint64_t mix(uint64_t x) {  // splitmix64 finaliser
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// Standardised copies of the bags: per-feature mean / std over the instances of `train`.
std::vector<Tensor> standardized_bags(const data::MilDataset& ds, const std::vector<int>& train, bool on) {
  if (!on) return ds.bags;
  const int64_t D = ds.dim;
  std::vector<double> sum(D, 0), sq(D, 0);
  int64_t n = 0;
  for (int b : train) {
    const Tensor& x = ds.bags[b];
    const float* p = x.data<float>();
    int64_t m = x.shape()[0];
    for (int64_t i = 0; i < m; ++i)
      for (int64_t d = 0; d < D; ++d) {
        double v = p[i * D + d];
        sum[d] += v;
        sq[d] += v * v;
      }
    n += m;
  }
  std::vector<double> mu(D), sd(D);
  for (int64_t d = 0; d < D; ++d) {
    mu[d] = sum[d] / (double)n;
    double var = n > 1 ? (sq[d] - (double)n * mu[d] * mu[d]) / (double)(n - 1) : 0.0;
    sd[d] = var > 1e-12 ? std::sqrt(var) : 1.0;
  }
  std::vector<Tensor> out;
  out.reserve(ds.bags.size());
  for (const Tensor& x : ds.bags) {
    const float* p = x.data<float>();
    int64_t m = x.shape()[0];
    std::vector<float> y((size_t)(m * D));
    for (int64_t i = 0; i < m; ++i)
      for (int64_t d = 0; d < D; ++d) y[(size_t)(i * D + d)] = (float)((p[i * D + d] - mu[d]) / sd[d]);
    out.push_back(Tensor::from_vector(y, {m, D}));
  }
  return out;
}

}  // namespace

void MilBenchmarkOptions::validate() const {
  auto bad = [](const std::string& m) { throw std::invalid_argument("mil-benchmark: " + m); };
  static const std::vector<std::string> models = {"abmil", "gated_abmil", "meanpool", "maxpool", "libramil"};
  if (std::find(models.begin(), models.end(), model) == models.end())
    bad("unknown model '" + model + "' (valid: abmil, gated_abmil, meanpool, maxpool, libramil)");
  if (reps < 1) bad("reps must be >= 1");
  if (folds < 1) bad("folds must be >= 1");
  if (epochs < 1) bad("epochs must be >= 1");
  if (!(lr > 0)) bad("lr must be positive");
  if (!(weight_decay >= 0)) bad("weight_decay must be >= 0");
  if (hidden.empty()) bad("hidden needs at least one width");
  for (int64_t h : hidden)
    if (h < 1) bad("hidden widths must be positive");
  if (attn_dim < 1) bad("attn_dim must be positive");
  if (threads < 0) bad("threads must be >= 0");
  if (model != "libramil" && (libramil_fusion != "softmax" || libramil_ablation != "none"))
    bad("--fusion and --ablation apply to --model libramil only");
  models::LibraMILConfig c;  // the fusion and ablation names, checked where the model checks them
  c.fusion = libramil_fusion;
  c.ablation = libramil_ablation;
  try {
    c.validate();
  } catch (const std::invalid_argument& e) {
    bad(e.what());
  }
}

std::unique_ptr<nn::Module> make_mil_benchmark_model(const MilBenchmarkOptions& o, int64_t dim, Generator& gen) {
  o.validate();
  auto embed = std::make_shared<nn::Sequential>();
  int64_t in = dim;
  // Libra-MIL: every hidden width is an embedding layer (its own proj_v keeps the width).
  size_t n_embed = o.model == "libramil" ? o.hidden.size() : o.hidden.size() - 1;
  for (size_t i = 0; i < n_embed; ++i) {
    embed->emplace_back<nn::Linear>(in, o.hidden[i], gen);
    embed->emplace_back<nn::ReLU>();
    in = o.hidden[i];
  }
  std::shared_ptr<nn::Module> pool;
  const int64_t L = o.hidden.back(), C = 2;
  if (o.model == "abmil") pool = std::make_shared<models::ABMIL>(in, C, gen, L, o.attn_dim);
  else if (o.model == "gated_abmil") pool = std::make_shared<models::GatedABMIL>(in, C, gen, L, o.attn_dim);
  else if (o.model == "meanpool") pool = std::make_shared<models::MeanPoolMIL>(in, C, gen, L);
  else if (o.model == "maxpool") pool = std::make_shared<models::MaxPoolMIL>(in, C, gen, L);
  else {  // libramil
    models::LibraMILConfig c;
    c.dim = in;
    c.text_dim = o.libramil_text_dim;
    c.num_text_prototypes = o.libramil_instance_priors;
    c.num_vis_prototypes = o.libramil_vis_prototypes;
    c.fusion = o.libramil_fusion;
    c.ablation = o.libramil_ablation;
    c.num_classes = C;
    c.heads = 1;
    for (int h : {8, 4, 2})
      if (in % h == 0) {
        c.heads = h;
        break;
      }
    // No language information: the "priors" are random unit vectors.
    Tensor z_ins = random_unit_rows(c.num_text_prototypes, c.text_dim, gen);
    Tensor z_bag = random_unit_rows(C, c.text_dim, gen);
    pool = std::make_shared<models::LibraMIL>(c, z_ins, z_bag, gen);
  }
  return std::make_unique<MilBenchNet>(embed, pool);
}

MilFoldResult run_mil_fold(const data::MilDataset& ds, const MilBenchmarkOptions& o, int rep, int fold) {
  auto t0 = Clock::now();
  MilFoldResult r;
  r.rep = rep;
  r.fold = fold;
  const std::vector<int> train = ds.train_bags(rep, fold);
  const std::vector<int>& test = ds.test_folds[rep][fold];
  r.n_train = (int)train.size();
  r.n_test = (int)test.size();
  std::vector<Tensor> bags = standardized_bags(ds, train, o.standardize);

  const uint64_t key = mix(mix(o.seed) ^ ((uint64_t)(rep + 1) << 32 | (uint64_t)(fold + 1)));
  Generator init_gen(key), shuffle_gen(mix(key));
  std::unique_ptr<nn::Module> model = make_mil_benchmark_model(o, ds.dim, init_gen);
  optim::Adam opt(model->parameters(), o.lr, {o.beta1, o.beta2}, 1e-8, o.weight_decay);

  std::vector<int> order = train;
  model->train();
  for (int epoch = 0; epoch < o.epochs; ++epoch) {
    for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[shuffle_gen.next_below(i)]);
    double loss_sum = 0;
    for (int b : order) {
      opt.zero_grad();
      Tensor logits = (*model)(bags[b]);
      Tensor loss = cross_entropy(unsqueeze(logits, 0), Tensor::from_vector(std::vector<int64_t>{ds.labels[b]}, {1}));
      double lv = loss.item();
      if (!std::isfinite(lv))
        throw std::runtime_error(ds.name + " " + o.model + " rep " + std::to_string(rep + 1) + " fold " +
                                 std::to_string(fold + 1) + " epoch " + std::to_string(epoch + 1) + " (bag " +
                                 std::to_string(b + 1) + "): loss is not finite; lower --lr");
      backward(loss);
      opt.step();
      loss_sum += lv;
    }
    r.final_train_loss = loss_sum / (double)order.size();
  }

  model->eval();
  NoGradGuard ng;
  for (int b : test) {
    Tensor logits = (*model)(bags[b]);
    std::vector<double> l = logits.to_double_vector();
    int pred = l[1] > l[0] ? 1 : 0;  // argmax, first maximum on ties
    r.correct += pred == ds.labels[b];
  }
  r.accuracy = (double)r.correct / (double)r.n_test;
  r.seconds = seconds_since(t0);
  return r;
}

MilBenchmarkResult run_mil_benchmark(const data::MilDataset& ds, const MilBenchmarkOptions& o, std::ostream* log) {
  o.validate();
  if (ds.reps() == 0) throw std::runtime_error(ds.name + ": the dataset has no cross-validation folds (cvindexes/)");
  if (o.reps > ds.reps())
    throw std::invalid_argument("mil-benchmark: --reps " + std::to_string(o.reps) + " but " + ds.name + " has " +
                                std::to_string(ds.reps()) + " repetitions");
  if (o.folds > ds.folds())
    throw std::invalid_argument("mil-benchmark: --folds " + std::to_string(o.folds) + " but " + ds.name + " has " +
                                std::to_string(ds.folds()) + " folds per repetition");
  auto t0 = Clock::now();
  MilBenchmarkResult res;
  res.dataset = ds.name;
  res.model = o.model;
  const int jobs = o.reps * o.folds;
  int threads = o.threads > 0 ? o.threads : (int)std::max(1u, std::thread::hardware_concurrency());
  threads = std::min(threads, jobs);
  res.threads = threads;
  res.folds.resize(jobs);

  std::atomic<int> next{0}, done{0};
  std::mutex log_mu;
  std::exception_ptr error;
  auto worker = [&]() {
    omp_set_num_threads(1);  // per-thread setting: single-threaded ops inside each fold
    while (true) {
      int j = next.fetch_add(1);
      if (j >= jobs) return;
      {
        std::lock_guard<std::mutex> lk(log_mu);
        if (error) return;
      }
      try {
        MilFoldResult fr = run_mil_fold(ds, o, j / o.folds, j % o.folds);
        res.folds[j] = fr;
        int d = ++done;
        if (log) {
          std::lock_guard<std::mutex> lk(log_mu);
          char buf[256];
          std::snprintf(buf, sizeof buf, "[%d/%d] %s %s rep %d fold %2d: acc %.3f (%d/%d)  train loss %.4f  %.1fs\n", d,
                        jobs, ds.name.c_str(), o.model.c_str(), fr.rep + 1, fr.fold + 1, fr.accuracy, fr.correct,
                        fr.n_test, fr.final_train_loss, fr.seconds);
          *log << buf << std::flush;
        }
      } catch (...) {
        std::lock_guard<std::mutex> lk(log_mu);
        if (!error) error = std::current_exception();
        return;
      }
    }
  };
  if (threads == 1) {
    const int omp_before = omp_get_max_threads();
    worker();
    omp_set_num_threads(omp_before);
  } else {
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) pool.emplace_back(worker);
    for (auto& t : pool) t.join();
  }
  if (error) std::rethrow_exception(error);

  for (int r = 0; r < o.reps; ++r) {
    double s = 0;
    for (int f = 0; f < o.folds; ++f) s += res.folds[r * o.folds + f].accuracy;
    res.rep_accuracy.push_back(s / o.folds);
  }
  double m = 0;
  for (double a : res.rep_accuracy) m += a;
  m /= (double)o.reps;
  double ss = 0;
  for (double a : res.rep_accuracy) ss += (a - m) * (a - m);
  res.accuracy_mean = m;
  res.accuracy_se = o.reps > 1 ? std::sqrt(ss / (double)(o.reps - 1)) / std::sqrt((double)o.reps) : 0.0;
  res.seconds = seconds_since(t0);
  return res;
}

std::optional<double> published_accuracy(const std::string& dataset, const std::string& model) {
  const std::string d = lower(dataset);
  if (model == "abmil") {
    if (d == "musk1") return 0.892;
    if (d == "elephant") return 0.868;
  }
  if (model == "gated_abmil") {
    if (d == "musk1") return 0.900;
    if (d == "elephant") return 0.857;
  }
  return std::nullopt;
}

std::string mil_benchmark_json(const MilBenchmarkResult& r, const MilBenchmarkOptions& o) {
  nlohmann::ordered_json j;
  j["dataset"] = r.dataset;
  j["model"] = r.model;
  if (r.model == "libramil") {
    j["fusion"] = o.libramil_fusion;
    j["ablation"] = o.libramil_ablation;
  }
  j["accuracy_mean"] = r.accuracy_mean;
  j["accuracy_se"] = r.accuracy_se;
  j["reps"] = o.reps;
  j["folds"] = o.folds;
  j["epochs"] = o.epochs;
  j["seconds"] = std::round(r.seconds * 10) / 10;
  auto p = published_accuracy(r.dataset, r.model);
  j["published"] = p ? nlohmann::ordered_json(*p) : nlohmann::ordered_json(nullptr);
  j["rep_accuracy"] = r.rep_accuracy;
  std::vector<double> fold_accuracy;  // rep-major, for paired comparisons between models
  for (const MilFoldResult& f : r.folds) fold_accuracy.push_back(f.accuracy);
  j["fold_accuracy"] = fold_accuracy;
  return j.dump();
}

}  // namespace lm::bench
