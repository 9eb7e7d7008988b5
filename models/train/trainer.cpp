// The training protocol (see trainer.h). One bag per optimizer step; evaluation never
// records a graph.
#include "models/train/trainer.h"

#include <omp.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "data/atomic_file.h"
#include "data/formats/safetensors.h"
#include "models/nn/optim.h"
#include "models/train/checkpoint.h"
#include "models/train/config_json.h"
#include "models/train/fold_files.h"
#include "models/train/run_files.h"
#include "models/train/transport_log.h"
#include "ops/ops.h"
#include "ops/transfer.h"
#include "tensor/profiler.h"

namespace lm::train {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

static double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::pair<double, double> selection_key(const std::string& select, const EpochRecord& r) {
  if (select == "val_acc") return {r.val.acc, r.val.auc};
  if (select == "val_auc") return {r.val.auc, r.val.acc};
  if (select == "val_loss") return {-r.val_loss, r.val.acc};
  if (select == "last") return {double(r.epoch), 0.0};
  throw std::invalid_argument("unknown model selection rule '" + select + "' (val_acc | val_auc | val_loss | last)");
}

static std::vector<double> softmax_row(const Tensor& logits) {
  std::vector<double> v = logits.to_double_vector();
  double m = -INFINITY, s = 0;
  for (double x : v) m = std::max(m, x);
  for (double& x : v) s += (x = std::exp(x - m));
  for (double& x : v) x /= s;
  return v;
}

// CPU tensors (the GPU check is batched in the training loop).
static bool all_finite(const Tensor& t) {
  Tensor c = t.contiguous();
  if (c.dtype() == DType::F32) {
    const float* p = c.data<float>();
    float acc = 0;
    for (int64_t i = 0; i < c.numel(); ++i) acc += p[i] * 0.0f;  // NaN/Inf poison the sum
    return acc == 0.0f;
  }
  for (double v : c.to_double_vector())
    if (!std::isfinite(v)) return false;
  return true;
}

static Tensor label_tensor(int y, Device dev) { return Tensor::from_vector(std::vector<int64_t>{y}, {1}).to(dev); }

// Where a step's bag comes from: the feature cache as it is for CPU training; for CUDA, an
// upload through pinned staging buffers at each use, or (resident) a copy kept on the device
// for the whole run in float32 / float16 / bfloat16 and converted to float32 there at each use.
class BagSource {
 public:
  BagSource(const Dataset& d, Device dev) : d_(d), dev_(dev) {}

  // Uploads every bag of the cache in dtype `t`; progress and the total go to `log`.
  void make_resident(DType t, bool show, std::ostream& log) {
    if (dev_.is_cpu()) throw std::invalid_argument("resident features need a CUDA device (training runs on the CPU)");
    if (t != DType::F32 && t != DType::F16 && t != DType::BF16)
      throw std::invalid_argument(std::string("resident features: dtype must be float32, float16 or bfloat16, got ") + dtype_name(t));
    int64_t bytes = 0;
    const std::vector<std::string> names = d_.features->names();
    for (const std::string& s : names) {
      const Tensor& stored = d_.features->stored(s);
      Tensor host = stored.dtype() == t ? stored : stored.to(t);
      resident_[s] = upload(host);
      bytes += (int64_t)host.nbytes();
    }
    if (show)
      log << "features: " << names.size() << " bags resident on " << dev_.str() << " as " << dtype_name(t) << " ("
          << data::format_bytes(bytes) << ")\n";
  }

  // The float32 (N, D) bag of `slide` on the device.
  Tensor get(const std::string& slide) const {
    auto it = resident_.find(slide);
    if (it != resident_.end()) return it->second.to(DType::F32);
    Tensor x = d_.features->get(slide);
    return dev_.is_cpu() ? x : upload(x);
  }

  Device device() const { return dev_; }

 private:
  Tensor upload(const Tensor& host) const { return upload_to(host, dev_); }
  const Dataset& d_;
  Device dev_;
  std::map<std::string, Tensor> resident_;
};

// The device of a model's first parameter (CPU for a model without any).
static Device model_device(nn::Module& model) {
  for (const Tensor& p : model.parameters()) return p.device();
  return Device::cpu();
}

static Evaluation evaluate_from(nn::Module& model, const std::vector<std::string>& slides, const Dataset& d,
                                const BagSource& bags);

Evaluation evaluate(nn::Module& model, const std::vector<std::string>& slides, const Dataset& d) {
  return evaluate_from(model, slides, d, BagSource(d, model_device(model)));
}

static Evaluation evaluate_from(nn::Module& model, const std::vector<std::string>& slides, const Dataset& d,
                                const BagSource& bags) {
  profiler::Phase phase("evaluation");  // `libramil profile`'s phases table
  NoGradGuard no_grad;
  bool was_training = model.is_training();
  model.eval();
  Evaluation ev;
  std::vector<double> probs;
  std::vector<int> labels;
  double loss_sum = 0;
  for (const std::string& s : slides) {
    Tensor logits = model(bags.get(s));
    int y = d.labels.at(s);
    loss_sum += cross_entropy(unsqueeze(logits, 0), label_tensor(y, bags.device())).item();
    Prediction p{s, y, softmax_row(logits)};
    probs.insert(probs.end(), p.probs.begin(), p.probs.end());
    labels.push_back(y);
    ev.predictions.push_back(std::move(p));
  }
  ev.loss = slides.empty() ? NAN : loss_sum / (double)slides.size();
  if (!slides.empty()) ev.metrics = data::compute_metrics(probs, labels, d.num_classes);
  model.train(was_training);
  return ev;
}
// Checks that every slide of a fold has a label and features.
static void check_fold(const data::FoldSplit& f, int fold, const Dataset& d) {
  auto check = [&](const std::vector<std::string>& v, const char* part) {
    if (v.empty()) throw std::runtime_error("fold " + std::to_string(fold) + ": the " + part + " list is empty");
    for (const std::string& s : v) {
      if (!d.labels.count(s)) throw std::runtime_error("fold " + std::to_string(fold) + " " + part + ": slide '" + s + "' has no label");
      if (!d.features->contains(s)) throw std::runtime_error("fold " + std::to_string(fold) + " " + part + ": slide '" + s + "' has no feature file");
    }
  };
  check(f.train, "train");
  check(f.val, "val");
  check(f.test, "test");
}

// step K of fold F (as `kill -9` would, mid-epoch), so tests can check --resume.
static void kill_point(int fold, int64_t step) {
  static const char* env = std::getenv("LIBRAMIL_KILL_AT_STEP");
  if (!env) return;
  int f = 0;
  long long k = -1;
  if (std::sscanf(env, "%d:%lld", &f, &k) == 2 && f == fold && k == step) std::raise(SIGKILL);
}

static FoldResult run_fold(const TrainOptions& o, const Dataset& d, const BagSource& bags, int fold,
                           std::ostream& log) {
  const data::FoldSplit& split = d.splits[fold];
  check_fold(split, fold, d);
  FoldResult res;
  res.fold = fold;
  Generator init_gen(o.seed * 1000003ULL + (uint64_t)fold);
  std::unique_ptr<nn::Module> model = make_model(o, d, init_gen);
  model->to(o.device);  // before the optimizer takes the parameters
  const std::string config = options_to_json(o, d).dump();
  optim::AdamW opt(model->parameters(), o.lr, {0.9, 0.999}, 1e-8, o.weight_decay);
  const int64_t steps_per_epoch = (int64_t)split.train.size();
  optim::CosineWithWarmup schedule(o.lr, o.warmup_steps, (int64_t)o.epochs * steps_per_epoch);
  Generator shuffle_gen(o.seed ^ 0x5DEECE66DULL);
  shuffle_gen.set_state(o.seed ^ 0x5DEECE66DULL, (uint64_t)fold << 40);

  std::string ckpt_dir = o.save_dir.empty() ? "" : (fs::path(o.save_dir) / "checkpoints").string();
  std::string best_path = ckpt_dir.empty() ? "" : (fs::path(ckpt_dir) / ("fold_" + std::to_string(fold) + "_best.safetensors")).string();
  nn::StateDict best_state;  // in-memory copy when nothing is saved
  double best_acc = -INFINITY, best_auc = -INFINITY;
  int64_t step = 0;
  int first_epoch = 0;
  const bool keep_last = !o.save_dir.empty() && o.save_checkpoints;
  if (o.resume && keep_last && fs::exists(fold_last_path(o, fold))) {
    data::SafetensorsFile last = data::read_safetensors(fold_last_path(o, fold));
    nn::StateDict ms;
    std::map<std::string, Tensor> os;
    for (auto& [k, v] : last.tensors) {
      if (k.rfind("model.", 0) == 0) ms[k.substr(6)] = v;
      else if (k.rfind("optim.", 0) == 0) os[k.substr(6)] = v.clone();
    }
    model->load_state_dict(ms, true);
    opt.load_state_tensors(os);
    nlohmann::json st = nlohmann::json::parse(last.metadata.at("libramil.resume"));
    first_epoch = st.at("epoch").get<int>() + 1;
    step = st.at("step").get<int64_t>();
    best_acc = exact(st.at("best_acc"));
    best_auc = exact(st.at("best_auc"));
    res.best_epoch = st.at("best_epoch").get<int>();
    shuffle_gen.set_state(shuffle_gen.seed(), st.at("shuffle_offset").get<uint64_t>());
    res.epochs = records_from(st.at("records"));
    if (o.show_progress) log << "  fold " << fold << ": resuming after epoch " << first_epoch << "\n";
  }
  // Libra-MIL: the per-epoch spread of the instance weights and the gradients reaching the
  // transport's parameters (issue 23), beside log_<fold>.csv.
  TransportLog transport_log(
      *model, o.save_dir.empty() ? "" : (fs::path(o.save_dir) / "logs" / ("transport_" + std::to_string(fold) + ".csv")).string(),
      first_epoch);
  for (int epoch = first_epoch; epoch < o.epochs; ++epoch) {
    auto t0 = Clock::now();
    std::vector<std::string> order = split.train;
    for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[shuffle_gen.next_below(i)]);
    model->train();
    double loss_sum = 0;
    int correct = 0;
    std::optional<profiler::Phase> training(std::in_place, "training");  // the epoch's steps, for `libramil profile`
    for (size_t b = 0; b < order.size(); ++b) {
      const std::string& slide = order[b];
      int y = d.labels.at(slide);
      schedule.apply(opt, step);
      opt.zero_grad();
      Tensor logits = (*model)(bags.get(slide));
      Tensor loss = cross_entropy(unsqueeze(logits, 0), label_tensor(y, o.device));
      auto loss_error = [&](double lv) {
        return std::runtime_error("fold " + std::to_string(fold) + " epoch " + std::to_string(epoch) + " step " +
                                  std::to_string(step) + " (slide " + slide + "): loss is " + fixed_text(lv) +
                                  "; stopping this fold (the last good checkpoint is kept)");
      };
      auto grad_error = [&] {
        return std::runtime_error("fold " + std::to_string(fold) + " epoch " + std::to_string(epoch) + " step " +
                                  std::to_string(step) + " (slide " + slide +
                                  "): non-finite gradient; stopping this fold");
      };
      double lv;
      if (o.device.is_cpu()) {
        lv = loss.item();
        if (!std::isfinite(lv)) throw loss_error(lv);
        backward(loss);
        for (const Tensor& p : model->parameters()) {
          Tensor g = p.grad();
          if (g.defined() && !all_finite(g)) throw grad_error();
        }
      } else {
        // GPU: backward first, then two scalars come back (the loss, and one float64 sum of
        // every gradient times 0, which NaN/Inf poison) instead of one host sync per
        // parameter. Same errors: nothing is applied before both are checked.
        backward(loss);
        Tensor poison;
        {
          NoGradGuard no_grad;
          for (const Tensor& p : model->parameters()) {
            Tensor g = p.grad();
            if (!g.defined()) continue;
            Tensor z = sum(mul(g.detach(), 0.0)).to(DType::F64);
            poison = poison.defined() ? add(poison, z) : z;
          }
        }
        lv = loss.item();
        if (!std::isfinite(lv)) throw loss_error(lv);
        if (poison.defined() && !std::isfinite(poison.item())) throw grad_error();
      }
      transport_log.after_backward();
      opt.step();
      ++step;
      kill_point(fold, step);
      loss_sum += lv;
      correct += argmax(logits.detach(), 0).item() == (double)y;
      if (o.show_progress && o.progress_bar) {
        int width = 20, filled = (int)((b + 1) * width / order.size());
        log << "\r  fold " << fold << " epoch " << std::setw(2) << epoch + 1 << "/" << o.epochs << " ["
            << std::string(filled, '#') << std::string(width - filled, '.') << "] " << b + 1 << "/" << order.size()
            << " loss " << fixed_text(loss_sum / (double)(b + 1)) << std::flush;
      }
    }
    training.reset();
    EpochRecord r;
    r.epoch = epoch;
    r.train_loss = loss_sum / (double)order.size();
    r.train_acc = (double)correct / (double)order.size();
    Evaluation val = evaluate_from(*model, split.val, d, bags);
    Evaluation test = evaluate_from(*model, split.test, d, bags);
    r.val = val.metrics;
    r.val_loss = val.loss;
    r.test = test.metrics;
    r.test_loss = test.loss;
    r.seconds = seconds_since(t0);
    r.wall_time = unix_seconds();
    res.epochs.push_back(r);
    profiler::Phase saving("saving");  // the rest of the epoch: the best state, logs, the resume checkpoint
    // best_acc / best_auc hold the selection key (they are the accuracy and AUC under the
    // default rule; the names stay for the resume files of earlier runs).
    const auto key = selection_key(o.select, r);
    bool better = key.first > best_acc || (key.first == best_acc && key.second > best_auc);
    if (better) {
      best_acc = key.first;
      best_auc = key.second;
      res.best_epoch = epoch;
      if (!best_path.empty() && o.save_checkpoints) {
        save_checkpoint(best_path, *model, config);
      } else {
        best_state.clear();
        for (auto& [k, v] : model->state_dict()) best_state[k] = v.clone();
      }
    }
    if (o.show_progress)
      log << (o.progress_bar ? "\r" : "") << "  fold " << fold << " epoch " << std::setw(2) << epoch + 1 << "/" << o.epochs << " loss " << fixed_text(r.train_loss)
          << " | val acc " << fixed_text(r.val.acc, 3) << " auc " << fixed_text(r.val.auc, 3) << " | test acc " << fixed_text(r.test.acc, 3)
          << " auc " << fixed_text(r.test.auc, 3) << (better ? " *" : "  ") << " (" << fixed_text(r.seconds, 1) << " s)\n";
    if (!o.save_dir.empty())
      data::write_file_atomic((fs::path(o.save_dir) / "logs" / ("log_" + std::to_string(fold) + ".csv")).string(), epoch_csv(res.epochs));
    if (!o.save_dir.empty() && o.tensorboard) {  // the whole fold's events so far, atomically
      const fs::path tb = fs::path(o.save_dir) / "tensorboard" / ("fold_" + std::to_string(fold));
      fs::create_directories(tb);
      data::write_file_atomic((tb / kEventFileName).string(), epoch_events(res.epochs, unix_seconds()));
    }
    transport_log.end_epoch(epoch);
    if (keep_last) {  // everything needed to continue after this epoch
      std::vector<std::pair<std::string, Tensor>> ts;
      for (auto& [k, v] : model->ordered_state_dict()) ts.emplace_back("model." + k, v);
      for (auto& [k, v] : opt.state_tensors()) ts.emplace_back("optim." + k, v);
      nlohmann::json st{{"epoch", epoch},         {"step", step},
                        {"best_acc", exact(best_acc)}, {"best_auc", exact(best_auc)},
                        {"best_epoch", res.best_epoch}, {"shuffle_offset", shuffle_gen.offset()},
                        {"records", records_json(res.epochs)}};
      data::write_safetensors_checked(fold_last_path(o, fold), ts, {{"libramil.resume", st.dump()}, {"libramil.config", config}});
    }
  }
  // Reload the selected checkpoint and evaluate it afresh.
  Generator reload_gen(o.seed);
  std::unique_ptr<nn::Module> best = make_model(o, d, reload_gen);
  if (!best_path.empty() && o.save_checkpoints) {
    load_checkpoint(best_path, *best);
    res.checkpoint = best_path;
  } else {
    best->load_state_dict(best_state, true);
  }
  best->to(o.device);
  res.val = evaluate_from(*best, split.val, d, bags).metrics;
  Evaluation test = evaluate_from(*best, split.test, d, bags);
  res.test = test.metrics;
  res.test_predictions = test.predictions;
  return res;
}

RunResult run_protocol(const TrainOptions& o, const Dataset& d, std::ostream& log) {
  if (o.epochs < 1) throw std::invalid_argument("epochs must be >= 1");
  if (o.folds < 1) throw std::invalid_argument("folds must be >= 1");
  if ((int)d.splits.size() < o.folds)
    throw std::invalid_argument("the split file holds " + std::to_string(d.splits.size()) + " folds, " + std::to_string(o.folds) + " requested");
  auto t0 = Clock::now();
  if (!o.save_dir.empty()) {
    fs::create_directories(fs::path(o.save_dir) / "logs");
    if (o.save_checkpoints) fs::create_directories(fs::path(o.save_dir) / "checkpoints");
    nlohmann::json cfg = options_to_json(o, d);
    cfg["inputs"] = o.inputs;
    data::write_file_atomic((fs::path(o.save_dir) / "config.json").string(), cfg.dump(2) + "\n");
  }
  check_device_available(o.device);
  BagSource bags(d, o.device);
  if (o.resident_features) bags.make_resident(*o.resident_features, o.show_progress, log);
  RunResult run;
  std::vector<double> accs, aucs, f1s;
  for (int fold = 0; fold < o.folds; ++fold) {
    if (o.show_progress) log << "fold " << fold << ": " << d.splits[fold].train.size() << " train, " << d.splits[fold].val.size()
                             << " val, " << d.splits[fold].test.size() << " test slides\n";
    FoldResult f;
    if (o.resume && !o.save_dir.empty() && fs::exists(fold_result_path(o, fold))) {
      f = read_fold_result(fold_result_path(o, fold));
      if (o.show_progress) log << "fold " << fold << ": already complete (resumed)\n";
    } else {
      f = run_fold(o, d, bags, fold, log);
      if (!o.save_dir.empty()) {
        profiler::Phase saving("saving");
        write_fold_result(o, f);
        // The fold is complete (a resume now skips it), so its resume state (model + AdamW
        // moments, ~20 MB for Libra-MIL at D = 512) is no longer needed.
        std::error_code ec;
        fs::remove(fold_last_path(o, fold), ec);
      }
    }
    if (o.show_progress)
      log << "fold " << fold << ": best epoch " << f.best_epoch + 1 << ", test acc " << fixed_text(f.test.acc) << " auc "
          << fixed_text(f.test.auc) << " f1 " << fixed_text(f.test.f1) << "\n";
    accs.push_back(f.test.acc);
    aucs.push_back(f.test.auc);
    f1s.push_back(f.test.f1);
    run.folds.push_back(std::move(f));
    if (!o.save_dir.empty()) {
      profiler::Phase saving("saving");
      std::ostringstream s;
      s << "fold,best_epoch,val_acc,val_auc,val_f1,test_acc,test_auc,test_f1\n";
      for (const FoldResult& r : run.folds)
        s << r.fold << ',' << r.best_epoch << ',' << fixed_text(r.val.acc, 6) << ',' << fixed_text(r.val.auc, 6) << ',' << fixed_text(r.val.f1, 6)
          << ',' << fixed_text(r.test.acc, 6) << ',' << fixed_text(r.test.auc, 6) << ',' << fixed_text(r.test.f1, 6) << '\n';
      data::write_file_atomic((fs::path(o.save_dir) / "logs" / "final_log.csv").string(), s.str());
      std::ostringstream p;
      // prob_<index> columns as the reference writes them; then the predicted class (the
      // argmax, first on ties; `prediction`, as eval names it) and, with --classes, both classes by name.
      const bool named = (int)o.class_names.size() == d.num_classes;
      p << "fold,slide,label";
      for (int c = 0; c < d.num_classes; ++c) p << ",prob_" << c;
      p << ",prediction" << (named ? ",label_name,prediction_name" : "") << '\n';
      for (const FoldResult& r : run.folds)
        for (const Prediction& q : r.test_predictions) {
          p << r.fold << ',' << q.slide << ',' << q.label;
          for (double v : q.probs) p << ',' << fixed_text(v, 6);
          const int pred = int(std::max_element(q.probs.begin(), q.probs.end()) - q.probs.begin());
          p << ',' << pred;
          if (named) p << ',' << o.class_names[q.label] << ',' << o.class_names[pred];
          p << '\n';
        }
      data::write_file_atomic((fs::path(o.save_dir) / "logs" / "test_predictions.csv").string(), p.str());
    }
  }
  run.acc = data::mean_std(accs);
  run.auc = data::mean_std(aucs);
  run.f1 = data::mean_std(f1s);
  run.seconds = seconds_since(t0);
  if (!o.save_dir.empty()) {
    std::ostringstream s;
    s << "metric,mean,std\n"
      << "acc," << fixed_text(run.acc.mean, 6) << ',' << fixed_text(run.acc.std, 6) << '\n'
      << "auc," << fixed_text(run.auc.mean, 6) << ',' << fixed_text(run.auc.std, 6) << '\n'
      << "f1," << fixed_text(run.f1.mean, 6) << ',' << fixed_text(run.f1.std, 6) << '\n';
    data::write_file_atomic((fs::path(o.save_dir) / "logs" / "summary_log.csv").string(), s.str());
  }
  return run;
}

}  // namespace lm::train
