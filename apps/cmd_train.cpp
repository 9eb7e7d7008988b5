// `libramil train`: flags (the reference code's names plus ours), input loading, the
// protocol run (models/train/trainer.h) and the results table.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <fstream>
#include <nlohmann/json.hpp>

#include "apps/commands.h"
#include "apps/inputs.h"
#include "apps/run_config.h"
#include "data/atomic_file.h"
#include "data/libramil_home.h"
#include "data/run_lock.h"
#include "models/mil/baselines.h"
#include "models/report/report.h"
#include "models/train/config_json.h"
#include "models/train/run_files.h"
#include "models/text/text_encoder.h"
#include "models/train/trainer.h"
#include "tensor/profiler.h"

namespace lm::app {

namespace fs = std::filesystem;

namespace {

// Writes to a terminal stream and, when given, a log file; the file gets no '\r'-redrawn bar
// (a '\r' drops what the current line holds so far in the file).
class TeeBuf : public std::streambuf {
 public:
  TeeBuf(std::streambuf* screen, std::streambuf* file) : screen_(screen), file_(file) {}

 protected:
  int overflow(int c) override {
    if (c == EOF) return !EOF;
    screen_->sputc(char(c));
    if (file_) {
      if (c == '\r') line_.clear();
      else if (c == '\n') {
        file_->sputn(line_.data(), std::streamsize(line_.size()));
        file_->sputc('\n');
        line_.clear();
      } else line_ += char(c);
    }
    return c;
  }
  int sync() override {
    screen_->pubsync();
    if (file_) file_->pubsync();
    return 0;
  }

 private:
  std::streambuf* screen_;
  std::streambuf* file_;
  std::string line_;
};

std::string timestamp() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", std::localtime(&t));
  return buf;
}

std::string join_names(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& n : v) s += (s.empty() ? "" : ",") + n;
  return s;
}

struct TrainFlags {
  std::string split_json, labels_csv, features_dir, instance_path, bag_path, encoder, save_dir;
  std::string instance_embeddings, bag_embeddings, device = "cpu", cache_dtype = "f32", resume;
  std::string resident = "off";
  std::string config_file;  // --config: read into flags before parsing (apps/config_file.h)
  std::vector<std::string> classes;  // --classes: class names in label order
  std::string group_by;              // --group-by case_id: patient-level --shots splits
  int num_classes = 0, threads = 0, shots = 0;
  bool shots_given = false, num_classes_given = false;  // on the command line (or in --resume's config.json)
  bool overwrite = false, quiet = false;
  train::TrainOptions opt;
};

void print_table(const train::RunResult& r, const std::string& model, std::ostream& out) {
  out << "\n" << std::left << std::setw(10) << "fold" << std::setw(12) << "best epoch" << std::setw(10) << "acc"
      << std::setw(10) << "auc" << "f1\n";
  for (const auto& f : r.folds)
    out << std::left << std::setw(10) << f.fold << std::setw(12) << f.best_epoch + 1 << std::fixed << std::setprecision(4)
        << std::setw(10) << f.test.acc << std::setw(10) << f.test.auc << f.test.f1 << "\n";
  auto ms = [](const data::MeanStd& v) {  // one fold has no standard deviation: "-", not "nan"
    std::ostringstream s;
    s << std::fixed << std::setprecision(4) << v.mean << " +- ";
    if (std::isnan(v.std)) s << "-";
    else s << v.std;
    return s.str();
  };
  out << model << " test (mean +- std over " << r.folds.size() << " folds): acc " << ms(r.acc) << " | auc " << ms(r.auc)
      << " | f1 " << ms(r.f1) << "  (" << std::fixed << std::setprecision(1) << r.seconds << " s)\n";
}

std::string str(double v) {
  std::ostringstream o;
  o << v;
  return o.str();
}

// A flag with a value it cannot have: "--lr nan: <why>" (under --resume the value came from
// the run's config.json, which is named instead).
[[noreturn]] void bad_flag(const TrainFlags& f, const std::string& flag, const std::string& value, const std::string& why) {
  if (!f.resume.empty())
    throw std::runtime_error("file " + (fs::path(f.resume) / "config.json").string() + ": '" + flag.substr(2) + "' " + value + ": " + why);
  throw std::runtime_error(flag + " " + value + ": " + why);
}

// Every model and optimizer setting, before anything is loaded or created (the heads against
// the feature width come later, in run_train, once the bags are read but still before the run
// directory is made).
void check_flags(const TrainFlags& f) {
  const train::TrainOptions& o = f.opt;
  std::vector<std::string> models = models::baseline_names();
  models.insert(models.begin(), "libramil");
  if (std::find(models.begin(), models.end(), o.model) == models.end()) {
    std::string valid;
    for (const std::string& m : models) valid += (valid.empty() ? "" : ", ") + m;
    bad_flag(f, "--model", o.model, "unknown model (valid: " + valid + ")");
  }
  if (o.epochs < 1) bad_flag(f, "--epochs", std::to_string(o.epochs), "must be 1 or more");
  if (o.folds < 1) bad_flag(f, "--folds", std::to_string(o.folds), "must be 1 or more");
  if (!(std::isfinite(o.lr) && o.lr > 0)) bad_flag(f, "--lr", str(o.lr), "the learning rate must be a positive number");
  if (!(std::isfinite(o.weight_decay) && o.weight_decay >= 0))
    bad_flag(f, "--weight_decay", str(o.weight_decay), "must be a number >= 0");
  if (o.warmup_steps < 0) bad_flag(f, "--warmup_steps", std::to_string(o.warmup_steps), "must be 0 or more");
  if (f.shots_given && f.shots < 1) bad_flag(f, "--shots", std::to_string(f.shots), "must be 1 or more training slides per class");
  if (f.num_classes_given && f.num_classes < 2)
    bad_flag(f, "--num_classes", std::to_string(f.num_classes), "a classifier needs 2 classes or more");
  if (o.model != "libramil") return;  // the Libra-MIL settings below do nothing for baselines
  const models::LibraMILConfig& m = o.libramil;
  if (m.mode != "paper" && m.mode != "reference") bad_flag(f, "--mode", m.mode, "expected paper or reference");
  if (m.fusion != "softmax" && m.fusion != "literal" && m.fusion != "standardised")
    bad_flag(f, "--fusion", m.fusion, "expected softmax, literal or standardised");
  if (m.ablation != "none" && m.ablation != "no_instance_priors" && m.ablation != "no_visual_prototypes" &&
      m.ablation != "concat" && m.ablation != "no_transport")
    bad_flag(f, "--ablation", m.ablation, "expected none, no_instance_priors, no_visual_prototypes, concat or no_transport");
  if (m.ablation != "none" && m.mode != "paper")
    bad_flag(f, "--ablation", m.ablation, "ablations apply to paper mode only (--mode is " + m.mode + ")");
  if (m.num_vis_prototypes < 1)
    bad_flag(f, "--num_vis_prototypes", std::to_string(m.num_vis_prototypes), "Libra-MIL needs 1 visual prototype or more");
  if (m.heads < 1) bad_flag(f, "--heads", std::to_string(m.heads), "must be 1 or more");
  if (!(std::isfinite(m.ot_epsilon) && m.ot_epsilon > 0))
    bad_flag(f, "--ot_epsilon", str(m.ot_epsilon), "the Sinkhorn regularisation must be a positive number");
  if (m.ot_iter < 1) bad_flag(f, "--ot_iter", std::to_string(m.ot_iter), "must be 1 or more Sinkhorn iterations");
}

}  // namespace

// Fills the flags from <run_dir>/config.json, written by the interrupted run (apps/run_config.h:
// a missing or unreadable file, or a value of the wrong type, is one line naming it).
void load_resume_flags(TrainFlags& f) {
  const RunConfig c(f.resume);
  auto& o = f.opt;
  // The run's options through the one reader of config.json (models/train/config_json.h).
  train::options_from_json(c.json(), o, [&](const std::string& key, const nlohmann::json& value, const char* expected) {
    c.wrong(key, value, expected);
  });
  if (!o.class_names.empty()) f.classes = o.class_names;
  f.num_classes = c.integer("num_classes", f.num_classes);
  f.num_classes_given = c.contains("num_classes");
  f.labels_csv = c.input("labels");
  f.split_json = c.input("split");
  f.features_dir = c.input("features");
  f.instance_path = c.input("instance_priors");
  f.bag_path = c.input("bag_priors");
  f.encoder = c.input("text_encoder");
  f.instance_embeddings = c.input("instance_embeddings");
  f.bag_embeddings = c.input("bag_embeddings");
  f.shots = c.input_integer("shots", f.shots);
  f.shots_given = !c.input("shots").empty();
  f.group_by = c.input("group_by");
  f.save_dir = f.resume;
  f.overwrite = true;
  o.resume = true;
}

int run_train(TrainFlags& f) {
  if (f.threads < 0) throw std::runtime_error("--threads " + std::to_string(f.threads) + ": must be 0 (all cores) or a number of threads");
  set_threads(f.threads);
  if (f.resume.empty()) check_flags(f);
  // One writer per run directory (data/run_lock.h), held to the end of the run, report
  // included. --resume locks its directory before reading it; a --save_dir that exists is
  // locked at once too (so a second writer is refused before anything is loaded), one that
  // does not when it is created.
  std::unique_ptr<data::DirLock> lock;
  if (!f.resume.empty()) {
    lock = std::make_unique<data::DirLock>(f.resume);
    load_resume_flags(f);
    check_flags(f);
  } else if (!f.save_dir.empty()) {
    data::check_output_dir(f.save_dir, f.overwrite);
    if (fs::is_directory(f.save_dir)) lock = std::make_unique<data::DirLock>(f.save_dir);
  }
  if (f.labels_csv.empty()) throw std::runtime_error("--data_csv (labels CSV) is required");
  if (f.features_dir.empty()) throw std::runtime_error("--h5_file_dir (feature bag directory) is required");
  // The device first: a missing GPU is reported before anything is loaded or written.
  try {
    f.opt.device = Device::parse(f.device);
  } catch (const std::exception&) {
    throw std::runtime_error("--device " + f.device + ": expected cpu, cuda or cuda:<index>");
  }
  check_device_available(f.opt.device);
  if (f.resident != "off") {
    if (f.opt.device.is_cpu()) throw std::runtime_error("--resident-features " + f.resident + " needs --device cuda (the features already live in memory for CPU training)");
    f.opt.resident_features = f.resident == "f32" ? DType::F32 : f.resident == "f16" ? DType::F16 : DType::BF16;
  }
  // Labels and splits.
  if (!f.classes.empty()) {
    std::set<std::string> distinct(f.classes.begin(), f.classes.end());
    if (distinct.size() != f.classes.size() || distinct.count(""))
      throw std::runtime_error("--classes must name each class once, got '" + join_names(f.classes) + "'");
    if (f.num_classes_given && f.num_classes != (int)f.classes.size())
      throw std::runtime_error("--num_classes " + std::to_string(f.num_classes) + " disagrees with --classes " +
                               join_names(f.classes) + " (" + std::to_string(f.classes.size()) + " classes)");
    f.num_classes = (int)f.classes.size();
    f.num_classes_given = true;
  }
  f.opt.class_names = f.classes;
  // Labels, splits, feature bags and priors: the "loading" phase of `libramil profile`.
  std::optional<profiler::Phase> loading(std::in_place, "loading");
  std::vector<data::LabeledSlide> labels = data::read_labels_csv(f.labels_csv, f.classes);
  int max_label = 0;
  for (auto& l : labels) max_label = std::max(max_label, l.label);
  std::vector<std::string> bag_rows;
  if (!f.bag_path.empty()) bag_rows = data::read_bag_prompts_csv(f.bag_path);
  int C = f.num_classes > 0 ? f.num_classes : max_label + 1;
  data::validate_labels(labels, C, f.labels_csv);
  // Without --num_classes the classes are 0..the largest label, so a label typed out of range
  // makes a class of its own; it is named here with its slide and the labels file (it used to
  // show only as "split.json: fold 0: class 3 is absent").
  auto slide_with_label = [&](int from) {
    for (auto& l : labels)
      if (l.label >= from) return l;
    return labels.front();
  };
  if (!f.num_classes_given && f.opt.model == "libramil" && !bag_rows.empty()) {
    const int rows = (int)bag_rows.size(), k = rows < C ? rows : rows % 2 == 0 ? rows / 2 : C;  // the priors' classes
    if (rows != C && rows != 2 * C && k >= 2 && k < C) {
      const data::LabeledSlide bad = slide_with_label(k);
      throw std::runtime_error("file " + f.labels_csv + ": slide " + bad.name + " has label " + std::to_string(bad.label) +
                               ", outside 0.." + std::to_string(k - 1) + " (the " + std::to_string(rows) + " bag priors of " +
                               f.bag_path + " are for " + std::to_string(k) + " classes; --num_classes sets the classes)");
    }
  }
  train::Dataset ds;
  ds.num_classes = C;
  for (auto& l : labels) ds.labels[l.name] = l.label;
  if (!f.split_json.empty()) {
    ds.splits = data::read_split_json(f.split_json, f.opt.folds);
  } else if (f.shots > 0) {
    ds.splits = data::make_few_shot_splits(labels, C, f.shots, f.opt.folds, f.opt.seed, 0.5, f.labels_csv, !f.group_by.empty());
  } else {
    throw std::runtime_error("give --data_split_json FILE, or --shots K to draw few-shot splits from the labels");
  }
  // Feature bags of every slide the folds use.
  std::set<std::string> used;
  for (int i = 0; i < f.opt.folds && i < (int)ds.splits.size(); ++i)
    for (auto* v : {&ds.splits[i].train, &ds.splits[i].val, &ds.splits[i].test}) used.insert(v->begin(), v->end());
  std::vector<std::string> paths;
  for (const std::string& s : used) {
    if (!ds.labels.count(s)) throw std::runtime_error("file " + f.split_json + ": slide '" + s + "' has no label in " + f.labels_csv);
    paths.push_back(find_feature_file(f.features_dir, s));
  }
  // Every fold needs non-empty lists and training slides of every class (checked here, before
  // the run directory is created, rather than in the middle of the protocol).
  const std::string split_src = f.split_json.empty() ? f.labels_csv + " (--shots " + std::to_string(f.shots) + " splits)" : f.split_json;
  for (int i = 0; i < f.opt.folds && i < (int)ds.splits.size(); ++i) {
    const char* names[3] = {"train_", "val_", "test_"};
    const std::vector<std::string>* lists[3] = {&ds.splits[i].train, &ds.splits[i].val, &ds.splits[i].test};
    for (int k = 0; k < 3; ++k)
      if (lists[k]->empty())
        throw std::runtime_error("file " + split_src + ": fold " + std::to_string(i) + ": the list '" + names[k] + std::to_string(i) + "' is empty");
    std::vector<int> per_class(C, 0);
    for (const std::string& s : ds.splits[i].train) per_class[ds.labels.at(s)]++;
    for (int c = 0; c < C; ++c)
      if (per_class[c] == 0) {
        std::string why = "every class needs training slides";
        if (!f.num_classes_given && c == max_label)
          why += "; label " + std::to_string(c) + " of slide " + slide_with_label(c).name + " is the largest in " + f.labels_csv +
                 " and makes " + std::to_string(C) + " classes: is it out of range? (--num_classes sets the classes)";
        throw std::runtime_error("file " + split_src + ": fold " + std::to_string(i) + ": class " + std::to_string(c) +
                                 " is absent from 'train_" + std::to_string(i) + "' (" + why + ")");
      }
  }
  data::FeatureCacheOptions co;
  co.store = f.cache_dtype == "f16" ? DType::F16 : DType::F32;
  // A terminal gets a counter rewritten in place; a file or pipe one line when loading is done.
  if (!f.quiet)
    co.progress = [tty = bool(isatty(2))](int64_t done, int64_t total) {
      if (tty) std::cerr << "\rloading feature bags " << done << "/" << total << std::flush;
      if (done == total) std::cerr << (tty ? "\n" : "loaded " + std::to_string(total) + " feature bags\n");
    };
  auto cache = std::make_unique<data::FeatureCache>(co);
  cache->load(paths);
  ds.features = cache.get();
  // The feature width is the most common one; a slide that differs is named with its file.
  std::map<int64_t, int> widths;
  for (const std::string& s : used) widths[cache->stored(s).shape()[1]]++;
  ds.dim = std::max_element(widths.begin(), widths.end(), [](auto& a, auto& b) { return a.second < b.second; })->first;
  for (const std::string& s : used)
    if (cache->stored(s).shape()[1] != ds.dim)
      throw std::runtime_error("file " + find_feature_file(f.features_dir, s) + ": slide '" + s + "': feature width " +
                               std::to_string(cache->stored(s).shape()[1]) + " differs from the other slides' " +
                               std::to_string(ds.dim));
  if (f.opt.model == "libramil" && ds.dim % f.opt.libramil.heads != 0)
    bad_flag(f, "--heads", std::to_string(f.opt.libramil.heads),
             "must divide the feature width " + std::to_string(ds.dim) + " (of the bags in " + f.features_dir + ")");
  // Priors and their embeddings (Libra-MIL only).
  if (f.opt.model == "libramil") {
    if (f.instance_path.empty() || f.bag_path.empty())
      throw std::runtime_error(
          "Libra-MIL needs --instance_path (instance priors JSON) and --bag_path (bag priors CSV); `libramil priors --task "
          "rcc|nsclc|camelyon16 --out DIR` writes the ones shipped for those tasks, or give your own (docs/priors.md)");
    ds.instance_prompts = data::read_instance_prompts(f.instance_path);
    std::vector<std::string> bag = select_bag_prompts(bag_rows, C, f.bag_path);
    if (!f.instance_embeddings.empty()) {
      ds.z_ins = read_embeddings(f.instance_embeddings, (int64_t)ds.instance_prompts.size());
      if (f.bag_embeddings.empty()) throw std::runtime_error("--instance_embeddings needs --bag_embeddings too");
      ds.z_bag = read_embeddings(f.bag_embeddings, C);
    } else {
      std::unique_ptr<models::TextEncoder> enc = models::load_text_encoder(f.encoder);
      std::string cache_dir = (fs::path(data::libramil_home()) / "embeddings").string();
      ds.z_ins = models::encode_cached(*enc, ds.instance_prompts, cache_dir);
      ds.z_bag = models::encode_cached(*enc, bag, cache_dir);
    }
  }
  loading.reset();
  if (f.opt.model == "libramil") {  // what check_flags could not see (classes, priors), before the directory is made
    models::LibraMILConfig c = f.opt.libramil;
    c.dim = ds.dim;
    c.num_classes = C;
    c.text_dim = ds.z_ins.shape()[1];
    c.num_text_prototypes = ds.z_ins.shape()[0];
    c.validate();
  }
  if (!f.save_dir.empty() && f.resume.empty()) {
    data::prepare_output_dir(f.save_dir, f.overwrite);
    if (!lock) lock = std::make_unique<data::DirLock>(f.save_dir);
    // --overwrite: the earlier run's files go (all of them: a 1-fold run must not leave an
    // old fold 1 for the report), every other file stays (models/train/run_files.h).
    if (f.overwrite) train::remove_run_files(f.save_dir);
    // A split drawn here (--shots) is kept with the run, in --data_split_json's format.
    if (f.split_json.empty()) data::write_split_json((fs::path(f.save_dir) / "split.json").string(), ds.splits);
  }
  if (!f.resume.empty()) {  // what the killed run left that the resume does not use (models/train/run_files.h)
    const std::vector<std::string> gone = train::remove_resume_leftovers(f.resume);
    if (!gone.empty() && !f.quiet) {
      std::cerr << "resume: removed " << gone.size() << " file(s) the interrupted run left:";
      for (const std::string& g : gone) std::cerr << " " << g;
      std::cerr << "\n";
    }
  }
  f.opt.save_dir = f.save_dir;
  auto abs = [](const std::string& p) { return p.empty() ? p : fs::absolute(p).string(); };
  f.opt.inputs = {{"labels", abs(f.labels_csv)},         {"split", abs(f.split_json)},
                  {"features", abs(f.features_dir)},     {"instance_priors", abs(f.instance_path)},
                  {"bag_priors", abs(f.bag_path)},       {"text_encoder", f.encoder},
                  {"instance_embeddings", abs(f.instance_embeddings)}, {"bag_embeddings", abs(f.bag_embeddings)},
                  {"shots", f.split_json.empty() && f.shots > 0 ? std::to_string(f.shots) : ""},
                  {"group_by", f.split_json.empty() ? f.group_by : ""}};
  f.opt.show_progress = !f.quiet;
  f.opt.progress_bar = !f.quiet && isatty(2);
  // The progress lines and the final table also go to RUN/run.log (appended on --resume), plain
  // lines without the terminal's in-place bar.
  std::ofstream run_log;
  if (!f.save_dir.empty()) run_log.open(fs::path(f.save_dir) / "run.log", std::ios::app);
  TeeBuf tee(std::cerr.rdbuf(), run_log.is_open() ? run_log.rdbuf() : nullptr);
  std::ostream log(&tee);
  if (run_log.is_open()) {
    run_log << "# libramil train" << (f.resume.empty() ? "" : " --resume") << ", " << timestamp() << "\n";
    for (const auto& [k, v] : f.opt.inputs)
      if (!v.empty()) run_log << "# " << k << ": " << v << "\n";
  }
  train::RunResult r = train::run_protocol(f.opt, ds, log);
  print_table(r, f.opt.model, std::cout);
  if (run_log.is_open()) print_table(r, f.opt.model, run_log);
  if (!f.save_dir.empty()) {
    std::cout << "logs and checkpoints: " << f.save_dir << "\n";
    try {
      profiler::Phase saving("saving");
      report::ReportOptions ro;
      ro.run_dirs = {f.save_dir};
      report::write_report(ro);
      std::cout << "report: " << report::report_path(ro) << "\n";
    } catch (const std::exception& e) {
      std::cerr << "libramil: warning: the run finished but its report could not be written: " << e.what() << "\n";
    }
  }
  return 0;
}

Runner add_train(CLI::App& app) {
  auto f = std::make_shared<TrainFlags>();
  app.add_option("--config", f->config_file,
                 "read flags from a TOML file: keys are the long flag names (epochs = 1, model = \"abmil\"); flags on the command line win; unknown keys are errors (docs/config.md)");
  app.add_option("--data_split_json,--split", f->split_json,
                 "split JSON with train_i/val_i/test_i lists, or a folder of CLAM's splits_<i>.csv (columns train, val, test)")
      ->check(CLI::ExistingPath);
  app.add_option("--data_csv,--labels", f->labels_csv, "labels CSV (name,label) [required unless --resume]")->check(CLI::ExistingFile);
  app.add_option("--h5_file_dir,--features", f->features_dir, "directory of <slide>.h5 / .pt feature bags [required unless --resume]")->check(CLI::ExistingDirectory);
  app.add_option("--resume", f->resume, "continue the interrupted run in this directory (its config.json gives every other flag)")->check(CLI::ExistingDirectory);
  app.add_option("--instance_path", f->instance_path, "instance priors (JSON list of texts)")->check(CLI::ExistingFile);
  app.add_option("--bag_path", f->bag_path, "bag priors (CSV, one text per class, or two scales)")->check(CLI::ExistingFile);
  app.add_option("--text_model_weights_path,--text-encoder", f->encoder,
                 "text encoder: converted .safetensors or a Hugging Face BERT folder (default: all-MiniLM-L6-v2)");
  app.add_option("--instance_embeddings", f->instance_embeddings, "precomputed instance-prior embeddings (libramil encode-text)");
  app.add_option("--bag_embeddings", f->bag_embeddings, "precomputed bag-prior embeddings (libramil encode-text)");
  app.add_option("--save_dir,--out", f->save_dir, "run directory for logs/ and checkpoints/");
  app.add_flag("--overwrite", f->overwrite, "write into a non-empty run directory: the files an earlier run wrote there (config.json, report.html, logs/, checkpoints/, tensorboard/) are removed first, other files are kept");
  app.add_option("--model", f->opt.model, "libramil | abmil | gated_abmil | meanpool | maxpool | transmil")->capture_default_str();
  app.add_option("--mode", f->opt.libramil.mode, "Libra-MIL fusion: paper | reference")->capture_default_str();
  app.add_option("--fusion", f->opt.libramil.fusion, "paper mode step 7: softmax | literal | standardised (s standardised within the bag before the temperature; docs/science.md)")->capture_default_str();
  app.add_option("--ablation", f->opt.libramil.ablation,
                 "paper mode: none | no_instance_priors | no_visual_prototypes | concat | no_transport (every "
                 "instance weighs 1: the transport and the reweighting are switched off)")->capture_default_str();
  app.add_option("--num_vis_prototypes", f->opt.libramil.num_vis_prototypes, "Kv")->capture_default_str();
  app.add_option("--heads", f->opt.libramil.heads, "attention heads")->capture_default_str();
  app.add_option("--ot_epsilon", f->opt.libramil.ot_epsilon, "Sinkhorn entropic regularisation")->capture_default_str();
  app.add_option("--ot_iter", f->opt.libramil.ot_iter, "Sinkhorn iterations")->capture_default_str();
  CLI::Option* num_classes = app.add_option("--num_classes", f->num_classes, "classes (default: max label + 1)");
  app.add_option("--group-by", f->group_by,
                 "case_id: --shots splits draw patients (the labels' case_id column), all slides of a patient in one part, "
                 "shots counting patients")
      ->check(CLI::IsMember({"case_id"}));
  app.add_option("--classes", f->classes,
                 "class names in label order, e.g. CCRCC,PRCC,CHRCC: the labels CSV may then hold these names (CLAM / TRIDENT "
                 "tables), name k is class k and must match row k of the bag priors; test_predictions.csv shows the names")
      ->delimiter(',');
  app.add_option("--epochs,--epoches", f->opt.epochs, "epochs per fold")->capture_default_str();
  app.add_option("--folds,--flods", f->opt.folds, "folds")->capture_default_str();
  CLI::Option* shots = app.add_option("--shots", f->shots, "draw K-shot splits from the labels instead of --data_split_json");
  app.add_option("--lr", f->opt.lr, "AdamW learning rate")->capture_default_str();
  app.add_option("--weight_decay", f->opt.weight_decay, "AdamW weight decay")->capture_default_str();
  app.add_option("--warmup_steps", f->opt.warmup_steps, "linear warm-up steps")->capture_default_str();
  app.add_option("--select", f->opt.select,
                 "which epoch each fold keeps: val_acc (reference rule: best val accuracy, ties by AUC) | val_auc | val_loss | last")
      ->capture_default_str()
      ->check(CLI::IsMember({"val_acc", "val_auc", "val_loss", "last"}));
  app.add_option("--seed", f->opt.seed, "random seed")->capture_default_str();
  app.add_option("--device", f->device, "cpu | cuda | cuda:<index>: where the model trains (CUDA: parameters, optimizer state and activations stay on the GPU; bags are uploaded through pinned buffers)")->capture_default_str();
  app.add_option("--resident-features", f->resident, "CUDA: keep every bag on the GPU for the whole run, stored as f32 | f16 | bf16 (converted to float32 on the GPU at each use); off: upload each bag when used")
      ->check(CLI::IsMember({"off", "f32", "f16", "bf16"}))
      ->capture_default_str();
  app.add_option("--threads", f->threads, "CPU threads (0 = all cores)")->capture_default_str();
  app.add_option("--feature-dtype", f->cache_dtype, "in-memory feature cache: f32 | f16")->check(CLI::IsMember({"f32", "f16"}))->capture_default_str();
  app.add_flag("--quiet", f->quiet, "no progress output");
  app.add_flag("--tensorboard", f->opt.tensorboard,
               "also write TensorBoard event files, one folder per fold: <out>/tensorboard/fold_<k>/ (open with tensorboard --logdir <out>/tensorboard; docs/formats.md)");
  return [f, shots, num_classes] {
    f->shots_given = shots->count() > 0;
    f->num_classes_given = num_classes->count() > 0;
    return run_train(*f);
  };
}

}  // namespace lm::app
