// Fold files (see fold_files.h).
#include "models/train/fold_files.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "data/atomic_file.h"
#include "data/formats/tensorboard.h"

namespace lm::train {

namespace fs = std::filesystem;

std::string fixed_text(double v, int prec) {
  if (std::isnan(v)) return "nan";
  std::ostringstream s;
  s << std::fixed << std::setprecision(prec) << v;
  return s.str();
}

// Doubles go through JSON exactly (17 significant digits); non-finite values as strings.
nlohmann::json exact(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return v;
}
double exact(const nlohmann::json& j) {
  if (j.is_string()) {
    std::string s = j.get<std::string>();
    return s == "nan" ? NAN : s == "inf" ? INFINITY : -INFINITY;
  }
  return j.get<double>();
}
namespace {

nlohmann::json metrics_json(const data::Metrics& m) { return {exact(m.acc), exact(m.auc), exact(m.f1)}; }
data::Metrics metrics_from(const nlohmann::json& j) { return {exact(j[0]), exact(j[1]), exact(j[2])}; }

}  // namespace

nlohmann::json records_json(const std::vector<EpochRecord>& rs) {
  nlohmann::json a = nlohmann::json::array();
  for (const EpochRecord& r : rs)
    a.push_back({r.epoch, exact(r.train_loss), exact(r.train_acc), exact(r.seconds), exact(r.val_loss), exact(r.test_loss),
                 metrics_json(r.val), metrics_json(r.test), exact(r.wall_time)});
  return a;
}
std::vector<EpochRecord> records_from(const nlohmann::json& a) {
  std::vector<EpochRecord> rs;
  for (const auto& j : a) {
    EpochRecord r;
    r.epoch = j[0].get<int>();
    r.train_loss = exact(j[1]);
    r.train_acc = exact(j[2]);
    r.seconds = exact(j[3]);
    r.val_loss = exact(j[4]);
    r.test_loss = exact(j[5]);
    r.val = metrics_from(j[6]);
    r.test = metrics_from(j[7]);
    if (j.size() > 8) r.wall_time = exact(j[8]);  // absent in runs written before --tensorboard
    rs.push_back(r);
  }
  return rs;
}

double unix_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string epoch_events(const std::vector<EpochRecord>& rs, double fallback_wall_time) {
  std::vector<data::ScalarEvent> events;
  double start = fallback_wall_time;
  for (const EpochRecord& r : rs) {
    data::ScalarEvent e;
    e.wall_time = r.wall_time > 0 ? r.wall_time : fallback_wall_time;
    if (r.wall_time > 0) start = std::min(start, r.wall_time - r.seconds);
    e.step = r.epoch;
    e.scalars = {{"train/loss", r.train_loss}, {"train/accuracy", r.train_acc}, {"val/loss", r.val_loss},
                 {"val/accuracy", r.val.acc},  {"val/auc", r.val.auc},          {"val/f1", r.val.f1},
                 {"test/loss", r.test_loss},   {"test/accuracy", r.test.acc},   {"test/auc", r.test.auc},
                 {"test/f1", r.test.f1},       {"epoch_seconds", r.seconds}};
    events.push_back(std::move(e));
  }
  return data::tensorboard_event_file(start, events);
}

std::string epoch_csv(const std::vector<EpochRecord>& rs) {
  std::ostringstream s;
  s << "epoch,train_loss,train_acc,val_loss,val_acc,val_auc,val_f1,test_loss,test_acc,test_auc,test_f1,seconds\n";
  for (const EpochRecord& r : rs)
    s << r.epoch << ',' << fixed_text(r.train_loss, 6) << ',' << fixed_text(r.train_acc, 6) << ',' << fixed_text(r.val_loss, 6) << ','
      << fixed_text(r.val.acc, 6) << ',' << fixed_text(r.val.auc, 6) << ',' << fixed_text(r.val.f1, 6) << ',' << fixed_text(r.test_loss, 6) << ','
      << fixed_text(r.test.acc, 6) << ',' << fixed_text(r.test.auc, 6) << ',' << fixed_text(r.test.f1, 6) << ',' << fixed_text(r.seconds, 3) << '\n';
  return s.str();
}


std::string fold_result_path(const TrainOptions& o, int fold) {
  return (fs::path(o.save_dir) / "logs" / ("fold_" + std::to_string(fold) + "_result.json")).string();
}
std::string fold_last_path(const TrainOptions& o, int fold) {
  return (fs::path(o.save_dir) / "checkpoints" / ("fold_" + std::to_string(fold) + "_last.safetensors")).string();
}

void write_fold_result(const TrainOptions& o, const FoldResult& f) {
  nlohmann::json preds = nlohmann::json::array();
  for (const Prediction& p : f.test_predictions) {
    nlohmann::json probs = nlohmann::json::array();
    for (double v : p.probs) probs.push_back(exact(v));
    preds.push_back({p.slide, p.label, probs});
  }
  nlohmann::json j{{"fold", f.fold}, {"best_epoch", f.best_epoch}, {"val", metrics_json(f.val)}, {"test", metrics_json(f.test)},
                   {"epochs", records_json(f.epochs)}, {"predictions", preds}, {"checkpoint", f.checkpoint}};
  data::write_file_atomic(fold_result_path(o, f.fold), j.dump() + "\n");
}

FoldResult read_fold_result(const std::string& path) {
  std::ifstream in(path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    throw std::runtime_error("cannot resume: " + path + " is not valid JSON (" + e.what() + ")");
  }
  FoldResult f;
  f.fold = j.at("fold").get<int>();
  f.best_epoch = j.at("best_epoch").get<int>();
  f.val = metrics_from(j.at("val"));
  f.test = metrics_from(j.at("test"));
  f.epochs = records_from(j.at("epochs"));
  f.checkpoint = j.value("checkpoint", "");
  for (const auto& p : j.at("predictions")) {
    Prediction q;
    q.slide = p[0].get<std::string>();
    q.label = p[1].get<int>();
    for (const auto& v : p[2]) q.probs.push_back(exact(v));
    f.test_predictions.push_back(q);
  }
  return f;
}


}  // namespace lm::train
