// `libramil eval`: a checkpoint on a labelled set of bags: metrics, per-slide predictions, optional per-patch scores.
#include <algorithm>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "apps/commands.h"
#include "apps/inputs.h"
#include "data/atomic_file.h"
#include "data/feature_bag.h"
#include "data/formats/hdf5_reader.h"
#include "data/slides/scores_file.h"
#include "data/tables.h"
#include "models/mil/patch_scores.h"
#include "models/train/checkpoint.h"
#include "ops/ops.h"
#include "models/train/trainer.h"

namespace lm::app {

namespace fs = std::filesystem;

Runner add_eval(CLI::App& app) {
  struct Flags {
    std::string checkpoint, features, split, labels, out, part = "test", scores, instance_path;
    std::vector<std::string> slides;
    int fold = 0, threads = 0;
    bool overwrite = false;
  };
  auto f = std::make_shared<Flags>();
  app.add_option("--checkpoint", f->checkpoint, "checkpoint written by train")->required()->check(CLI::ExistingFile);
  app.add_option("--features", f->features, "directory of feature bags")->required()->check(CLI::ExistingDirectory);
  app.add_option("--split", f->split, "split JSON; evaluates --part of --fold")->check(CLI::ExistingFile);
  app.add_option("--fold", f->fold, "fold of --split")->capture_default_str();
  app.add_option("--part", f->part, "train | val | test")->check(CLI::IsMember({"train", "val", "test"}))->capture_default_str();
  app.add_option("--slides", f->slides, "slide names (default: every bag in --features)")->delimiter(',');
  app.add_option("--labels", f->labels, "labels CSV: adds a label column and prints metrics")->check(CLI::ExistingFile);
  app.add_option("--out", f->out, "output CSV of per-slide probabilities")->required();
  app.add_option("--scores", f->scores,
                 "also write each slide's per-patch scores to DIR/<slide>.h5 (coords + one dataset per score; "
                 "docs/heatmaps.md): Libra-MIL, ABMIL, gated ABMIL, TransMIL");
  app.add_option("--instance_path", f->instance_path,
                 "instance priors (JSON) naming Libra-MIL's entity scores (default: those of the run's config.json)")
      ->check(CLI::ExistingFile);
  app.add_option("--threads", f->threads)->capture_default_str();
  app.add_flag("--overwrite", f->overwrite, "replace an existing output file (and the files of --scores)");
  return [f] {
    set_threads(f->threads);
    if (fs::exists(f->out) && !f->overwrite) throw std::runtime_error(f->out + " exists (pass --overwrite to replace it)");
    if (!f->scores.empty()) data::check_output_dir(f->scores, f->overwrite);
    std::vector<std::string> slides = f->slides;
    if (!f->split.empty()) {
      auto splits = data::read_split_json(f->split);
      if (f->fold < 0 || f->fold >= (int)splits.size()) throw std::runtime_error(f->split + ": no fold " + std::to_string(f->fold));
      const auto& s = splits[f->fold];
      slides = f->part == "train" ? s.train : f->part == "val" ? s.val : s.test;
    }
    if (slides.empty())
      for (auto& e : fs::directory_iterator(f->features)) {
        std::string ext = e.path().extension().string();
        if (ext == ".h5" || ext == ".hdf5" || ext == ".pt") slides.push_back(e.path().stem().string());
      }
    std::sort(slides.begin(), slides.end());
    slides.erase(std::unique(slides.begin(), slides.end()), slides.end());  // s.h5 beside s.pt: one slide
    if (slides.empty()) throw std::runtime_error("no slides to evaluate in " + f->features);
    train::CheckpointShape shape;
    std::unique_ptr<nn::Module> m = train::load_model_from_checkpoint(f->checkpoint, {}, &shape);
    // Every slide's label (with --labels) and every bag's file and width are checked against
    // the model's (shapes only) before any bag is evaluated: a bad one is named with its file.
    std::map<std::string, int> labels;
    if (!f->labels.empty()) {
      std::vector<data::LabeledSlide> selected;
      for (auto& l : data::read_labels_csv(f->labels)) labels[l.name] = l.label;
      for (const std::string& s : slides) {
        if (!labels.count(s)) throw std::runtime_error(f->labels + ": no label for slide '" + s + "'");
        selected.push_back({s, labels[s], ""});
      }
      data::validate_labels(selected, (int)shape.num_classes, f->labels);  // the model's classes
    }
    std::vector<std::string> files;
    for (const std::string& s : slides) {
      files.push_back(find_feature_file(f->features, s));
      check_bag_width(files.back(), shape.dim, f->checkpoint, s);
    }
    // --scores: a model with per-patch scores, and every bag with coordinates, before anything.
    std::vector<std::string> entities;
    if (!f->scores.empty()) {
      if (!models::has_patch_scores(*m))
        throw std::runtime_error("--scores: checkpoint " + f->checkpoint + " holds a " + shape.model +
                                 " model, which has no per-patch scores (Libra-MIL, abmil, gated_abmil and transmil have them)");
      for (const std::string& file : files) {
        const bool h5 = fs::path(file).extension() != ".pt";
        if (!h5 || !data::H5Reader(file).has("coords"))
          throw std::runtime_error(file + ": no 'coords' dataset, so --scores cannot place its patches (.pt bags carry "
                                          "none; features from `libramil extract`, TRIDENT or CLAM do)");
      }
      if (shape.model == "libramil") entities = models::entity_names_for(f->checkpoint, f->instance_path);
      fs::create_directories(f->scores);
    }
    m->eval();
    NoGradGuard ng;
    std::ostringstream csv;
    std::vector<double> probs;
    std::vector<int> ys;
    int C = 0;
    for (size_t i = 0; i < slides.size(); ++i) {
      const std::string& s = slides[i];
      std::vector<double> p;
      if (f->scores.empty()) {
        Tensor logits = (*m)(data::read_feature_bag(files[i]).features);
        p = softmax(logits, 0).to_double_vector();
      } else {
        slides::SlideScores sc = models::score_features_file(*m, files[i], f->checkpoint, entities, &p);
        sc.info["written_by"] = "libramil eval";
        slides::write_scores_h5((fs::path(f->scores) / (s + ".h5")).string(), sc);
      }
      C = (int)p.size();
      if (csv.tellp() == 0) {
        csv << "slide";
        if (!labels.empty()) csv << ",label";
        for (int c = 0; c < C; ++c) csv << ",prob_" << c;
        csv << ",prediction\n";
      }
      csv << s;
      if (!labels.empty()) {
        csv << "," << labels[s];
        ys.push_back(labels[s]);
        probs.insert(probs.end(), p.begin(), p.end());
      }
      for (double v : p) csv << "," << v;
      csv << "," << (std::max_element(p.begin(), p.end()) - p.begin()) << "\n";
    }
    data::write_file_atomic(f->out, csv.str());
    std::cout << slides.size() << " slides -> " << f->out << "\n";
    if (!f->scores.empty()) std::cout << "per-patch scores of " << slides.size() << " slides -> " << f->scores << "\n";
    if (!ys.empty()) {
      data::Metrics mt = data::compute_metrics(probs, ys, C);
      std::cout << "acc " << mt.acc << " auc " << mt.auc << " f1 " << mt.f1 << "\n";
    }
    return 0;
  };
}

}  // namespace lm::app
