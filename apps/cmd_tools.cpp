// `libramil eval | dump | split | tokenize | encode-text`.
#include <algorithm>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "apps/commands.h"
#include "apps/inputs.h"
#include "data/atomic_file.h"
#include "data/feature_bag.h"
#include "data/safetensors.h"
#include "data/tokenizer.h"
#include "data/formats/hdf5_reader.h"
#include "data/slides/scores_file.h"
#include "models/patch_scores.h"
#include "models/text_encoder.h"
#include "models/trainer.h"
#include "ops/ops.h"

namespace lm::app {

namespace fs = std::filesystem;

// ---- dump -------------------------------------------------------------------------------
Runner add_dump(CLI::App& app) {
  struct Flags {
    std::string checkpoint, features, out, dtype = "float32";
    int label = -1;
    models::LibraMILConfig cfg;
    bool overwrite = false;
  };
  auto f = std::make_shared<Flags>();
  app.add_option("--checkpoint", f->checkpoint, "model weights (.safetensors, reference names)")->required()->check(CLI::ExistingFile);
  app.add_option("--features", f->features, "one bag (.h5 or .pt)")->required()->check(CLI::ExistingFile);
  app.add_option("--label", f->label, "class label of the bag")->required();
  // The model flags replace the checkpoint's recorded values only when given (issue 19).
  CLI::Option* mode = app.add_option("--mode", f->cfg.mode, "paper | reference (default: the checkpoint's)");
  CLI::Option* fusion = app.add_option("--fusion", f->cfg.fusion, "softmax | literal (default: the checkpoint's)");
  CLI::Option* eps = app.add_option("--ot_epsilon", f->cfg.ot_epsilon, "Sinkhorn regularisation (default: the checkpoint's)");
  CLI::Option* iter = app.add_option("--ot_iter", f->cfg.ot_iter, "Sinkhorn iterations (default: the checkpoint's)");
  CLI::Option* heads = app.add_option("--heads", f->cfg.heads, "attention heads (default: the checkpoint's)");
  app.add_option("--dtype", f->dtype, "float32 | float64")->check(CLI::IsMember({"float32", "float64"}))->capture_default_str();
  app.add_option("--out", f->out, "output .safetensors")->required();
  app.add_flag("--overwrite", f->overwrite, "replace an existing output file");
  return [f, mode, fusion, eps, iter, heads] {
    if (fs::exists(f->out) && !f->overwrite) throw std::runtime_error(f->out + " exists (pass --overwrite to replace it)");
    train::LibraMILOverrides ov;
    if (mode->count() > 0) ov.mode = f->cfg.mode;
    if (fusion->count() > 0) ov.fusion = f->cfg.fusion;
    if (eps->count() > 0) ov.ot_epsilon = f->cfg.ot_epsilon;
    if (iter->count() > 0) ov.ot_iter = f->cfg.ot_iter;
    if (heads->count() > 0) ov.heads = f->cfg.heads;
    train::CheckpointShape shape;
    std::unique_ptr<nn::Module> m = train::load_model_from_checkpoint(f->checkpoint, ov, &shape);
    check_bag_width(f->features, shape.dim, f->checkpoint);
    DType dt = f->dtype == "float64" ? DType::F64 : DType::F32;
    m->to(dt);
    Tensor x = data::read_feature_bag(f->features).features.to(dt);
    Tensor logits = (*m)(x);
    int64_t C = logits.shape()[0];
    if (f->label < 0 || f->label >= C)
      throw std::runtime_error("--label " + std::to_string(f->label) + " is outside 0.." + std::to_string(C - 1));
    Tensor loss = cross_entropy(unsqueeze(logits, 0), Tensor::from_vector(std::vector<int64_t>{f->label}, {1}));
    backward(loss);
    std::vector<std::pair<std::string, Tensor>> out{{"logits", logits.detach().to(DType::F32)}, {"loss", loss.detach().to(DType::F32)}};
    for (auto& [name, p] : m->named_parameters()) {
      Tensor g = p.grad().defined() ? p.grad() : Tensor::zeros(p.shape(), p.dtype());
      out.emplace_back("grad." + name, g.to(DType::F32));
    }
    data::write_safetensors(f->out, out, {{"checkpoint", f->checkpoint}, {"features", f->features}});
    std::cout << "loss " << loss.item() << ", logits written with " << out.size() - 2 << " gradients to " << f->out << "\n";
    return 0;
  };
}

// ---- eval -------------------------------------------------------------------------------
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

// ---- split ------------------------------------------------------------------------------
Runner add_split(CLI::App& app) {
  struct Flags {
    std::string labels, out, group_by;
    std::vector<std::string> classes;
    int shots = 0, folds = 5, num_classes = 0;
    uint64_t seed = 7;
    bool overwrite = false;
  };
  auto f = std::make_shared<Flags>();
  app.add_option("--labels", f->labels, "labels CSV (name,label, or CLAM's case_id,slide_id,label)")->required()->check(CLI::ExistingFile);
  app.add_option("--shots", f->shots,
                 "training slides (patients with --group-by) per class; of the rest of each class, val gets "
                 "floor(rest / 2) clamped to 1..rest-1, test the remainder (an odd rest gives test the extra one)")
      ->required()
      ->check(CLI::PositiveNumber);
  app.add_option("--group-by", f->group_by, "case_id: draw patients, all slides of a patient in one part")
      ->check(CLI::IsMember({"case_id"}));
  app.add_option("--classes", f->classes, "class names in label order when the labels are names (e.g. CCRCC,PRCC,CHRCC)")
      ->delimiter(',');
  app.add_option("--folds", f->folds)->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--seed", f->seed)->capture_default_str();
  app.add_option("--num_classes", f->num_classes, "classes (default: max label + 1)");
  app.add_option("--out", f->out, "output split JSON")->required();
  app.add_flag("--overwrite", f->overwrite, "replace an existing output file");
  return [f] {
    if (fs::exists(f->out) && !f->overwrite) throw std::runtime_error(f->out + " exists (pass --overwrite to replace it)");
    auto labels = data::read_labels_csv(f->labels, f->classes);
    int C = f->classes.empty() ? f->num_classes : (int)f->classes.size();
    if (C <= 0)
      for (auto& l : labels) C = std::max(C, l.label + 1);
    data::validate_labels(labels, C, f->labels);
    auto splits = data::make_few_shot_splits(labels, C, f->shots, f->folds, f->seed, 0.5, f->labels, !f->group_by.empty());
    data::write_split_json(f->out, splits);
    std::cout << f->folds << " folds of " << f->shots << " shots per class -> " << f->out << "\n";
    return 0;
  };
}

// ---- tokenize ---------------------------------------------------------------------------
Runner add_tokenize(CLI::App& app) {
  struct Flags {
    std::string tokenizer;
    int64_t max_length = 0;
  };
  auto f = std::make_shared<Flags>();
  app.add_option("--tokenizer", f->tokenizer, "tokenizer.json (byte-level BPE or WordPiece) or vocab.txt")->required()->check(CLI::ExistingFile);
  app.add_option("--max-length", f->max_length, "truncate to this many ids incl. specials (0 = no limit)")->capture_default_str();
  return [f] {
    data::Tokenizer tok = data::Tokenizer::from_file(f->tokenizer);
    std::string line;
    bool warned = false;
    while (std::getline(std::cin, line)) {
      data::Encoding e = tok.encode_full(line, f->max_length);
      if (e.truncated && !warned) {
        std::cerr << "libramil tokenize: note: lines longer than " << f->max_length << " tokens are truncated\n";
        warned = true;
      }
      for (size_t i = 0; i < e.ids.size(); ++i) std::cout << (i ? " " : "") << e.ids[i];
      std::cout << "\n";
    }
    return 0;
  };
}

// ---- encode-text --------------------------------------------------------------------------
Runner add_encode_text(CLI::App& app) {
  struct Flags {
    std::string encoder, texts, out;
    int threads = 0;
    bool overwrite = false;
  };
  auto f = std::make_shared<Flags>();
  app.add_option("--encoder", f->encoder, "converted .safetensors or Hugging Face BERT folder (default: all-MiniLM-L6-v2)");
  app.add_option("--texts", f->texts, "JSON list of strings, or CSV with one quoted text per row")->required()->check(CLI::ExistingFile);
  app.add_option("--out", f->out, "output .safetensors with tensor 'embeddings' (K, Dt)")->required();
  app.add_option("--threads", f->threads)->capture_default_str();
  app.add_flag("--overwrite", f->overwrite, "replace an existing output file");
  return [f] {
    set_threads(f->threads);
    if (fs::exists(f->out) && !f->overwrite) throw std::runtime_error(f->out + " exists (pass --overwrite to replace it)");
    std::string ext = fs::path(f->texts).extension().string();
    std::vector<std::string> texts = ext == ".json" ? data::read_instance_prompts(f->texts) : data::read_bag_prompts_csv(f->texts);
    std::unique_ptr<models::TextEncoder> enc = models::load_text_encoder(f->encoder);
    Tensor e = enc->encode(texts);
    data::write_safetensors(f->out, std::vector<std::pair<std::string, Tensor>>{{"embeddings", e}}, {{"encoder", enc->id()}, {"texts", f->texts}});
    std::cout << texts.size() << " texts -> " << f->out << " (" << e.shape()[0] << " x " << e.shape()[1] << ")\n";
    return 0;
  };
}

}  // namespace lm::app
