// The report's explanation section for Libra-MIL runs: per test slide of fold 0, the instance
// weight and attention heatmaps (over the slide's thumbnail when the slide is found), the
// transport plan between visual and text prototypes, and the top patches per entity.
#include "models/report/sections.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>

#include "data/feature_bag.h"
#include "data/tables.h"
#include "models/mil/libramil.h"
#include "models/mil/patch_scores.h"
#include "models/report/report_slides.h"
#include "models/train/checkpoint.h"
#include "models/train/trainer.h"

namespace lm::report {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string feature_file(const std::string& dir, const std::string& slide) {
  for (const char* ext : {".h5", ".hdf5", ".pt", ".pth"}) {
    fs::path p = fs::path(dir) / (slide + ext);
    std::error_code ec;
    if (fs::is_regular_file(p, ec)) return p.string();
  }
  return "";
}

std::string entity_name(const std::string& prompt) { return models::entity_label(prompt); }

struct Explained {
  std::string slide;
  int label = -1, pred = 0;
  double prob = 0;
  bool has_coords = false;
  std::vector<int64_t> x, y;
  std::vector<double> weight, attention, sim;  // sim: (N, Kt)
  int64_t n = 0, kt = 0;
  std::vector<double> plan;                    // (Kv, Kt) or empty
  int64_t kv = 0;
};

std::vector<int64_t> top_k(const std::vector<double>& v, size_t k) {
  std::vector<int64_t> idx(v.size());
  for (size_t i = 0; i < v.size(); ++i) idx[i] = (int64_t)i;
  k = std::min(k, idx.size());
  std::partial_sort(idx.begin(), idx.begin() + (std::ptrdiff_t)k, idx.end(), [&](int64_t a, int64_t b) {
    double va = v[(size_t)a], vb = v[(size_t)b];
    if (std::isnan(va)) return false;
    if (std::isnan(vb)) return true;
    return va > vb;
  });
  idx.resize(k);
  return idx;
}

}  // namespace

std::string explain_section(const Run& r, int max_slides, const std::string& slides_dir) {
  std::ostringstream s;
  s << "<h3 id=\"" << r.id << "-explain\">Heatmaps, transport plan and top patches (fold 0)</h3>\n";
  if (r.model != "libramil") {
    s << note("Model <code>" + h(r.model) + "</code>: instance heatmaps, the transport plan and the text-prototype patches "
              "exist for Libra-MIL runs only.");
    return s.str();
  }
  if (max_slides <= 0) {
    s << note("Skipped (no slides requested).");
    return s.str();
  }
  fs::path ckpt = fs::path(r.dir) / "checkpoints" / "fold_0_best.safetensors";
  std::error_code ec;
  if (!fs::is_regular_file(ckpt, ec)) {
    s << note("Skipped: the fold-0 checkpoint <code>" + h(ckpt.string()) + "</code> is missing (was the run trained with "
              "checkpoints?), so no heatmaps, transport plan or top patches can be computed.");
    return s.str();
  }
  std::string feats = input(r, "features");
  if (feats.empty() || !fs::is_directory(feats, ec)) {
    s << note("Skipped: the features directory " + (feats.empty() ? std::string("is not recorded in config.json (inputs.features)") : "<code>" + h(feats) + "</code> does not exist") +
              ", so no slide can be explained.");
    return s.str();
  }
  // Test slides of fold 0: from the predictions (with label and probabilities), else the split.
  std::vector<std::pair<std::string, int>> test;
  for (const Pred& p : r.preds)
    if (p.fold == 0) test.push_back({p.slide, p.label});
  if (test.empty() && !input(r, "split").empty()) {
    try {
      for (auto& n : data::read_split_json(input(r, "split"), 0).at(0).test) test.push_back({n, -1});
    } catch (const std::exception& e) {
      s << note("The split could not be read: " + h(e.what()));
    }
  }
  if (test.empty()) {
    s << note("Skipped: no test slides of fold 0 are known (no predictions, no split).");
    return s.str();
  }
  // Up to max_slides, alternating between the true classes so every class shows.
  std::map<int, std::vector<std::string>> by_class;
  for (auto& [n, l] : test) by_class[l].push_back(n);
  std::vector<std::pair<std::string, int>> chosen;
  for (size_t round = 0; (int)chosen.size() < max_slides; ++round) {
    bool any = false;
    for (auto& [l, names] : by_class)
      if (round < names.size() && (int)chosen.size() < max_slides) chosen.push_back({names[round], l}), any = true;
    if (!any) break;
  }
  std::unique_ptr<nn::Module> module;
  try {
    module = train::load_model_from_checkpoint(ckpt.string());
  } catch (const std::exception& e) {
    s << note("Skipped: the checkpoint could not be loaded: " + h(e.what()));
    return s.str();
  }
  auto* model = dynamic_cast<models::LibraMIL*>(module.get());
  if (!model) {
    s << note("Skipped: the checkpoint does not hold a Libra-MIL model.");
    return s.str();
  }
  model->eval();
  std::vector<Explained> done;
  std::vector<std::string> problems;
  for (auto& [slide, label] : chosen) {
    std::string path = feature_file(feats, slide);
    if (path.empty()) {
      problems.push_back("no feature file for slide <code>" + h(slide) + "</code> in <code>" + h(feats) + "</code>");
      continue;
    }
    try {
      data::FeatureBag bag = data::read_feature_bag(path);
      models::LibraMILExplanation ex;
      Tensor logits = model->explain(bag.features, ex);
      std::vector<double> lg = logits.to_double_vector();
      double m = *std::max_element(lg.begin(), lg.end()), z = 0;
      for (double& v : lg) z += (v = std::exp(v - m));
      for (double& v : lg) v /= z;
      Explained e;
      e.slide = slide;
      e.label = label;
      e.pred = (int)(std::max_element(lg.begin(), lg.end()) - lg.begin());
      e.prob = lg[(size_t)e.pred];
      e.n = bag.features.shape()[0];
      if (bag.coords.defined()) {
        std::vector<double> c = bag.coords.to_double_vector();
        e.has_coords = true;
        for (int64_t i = 0; i < e.n; ++i) {
          e.x.push_back((int64_t)c[(size_t)(2 * i)]);
          e.y.push_back((int64_t)c[(size_t)(2 * i + 1)]);
        }
      }
      e.weight = ex.instance_weights.to_double_vector();
      std::vector<double> att = ex.attention.to_double_vector();
      e.attention.assign(att.begin() + (std::ptrdiff_t)(e.pred * e.n), att.begin() + (std::ptrdiff_t)((e.pred + 1) * e.n));
      e.sim = ex.sim_text.to_double_vector();
      e.kt = ex.sim_text.shape()[1];
      if (ex.plan.defined()) {
        e.plan = ex.plan.to_double_vector();
        e.kv = ex.plan.shape()[0];
      }
      done.push_back(std::move(e));
    } catch (const std::exception& ex) {
      problems.push_back("slide <code>" + h(slide) + "</code>: " + h(ex.what()));
    }
  }
  for (auto& p : problems) s << note("Not explained: " + p + ".");
  if (done.empty()) {
    s << note("No slide could be explained, so no heatmaps, transport plan or top patches.");
    return s.str();
  }
  // Entity names from the instance priors.
  const int64_t Kt = done[0].kt;
  std::vector<std::string> entities;
  std::string prior_path = input(r, "instance_priors");
  std::string entity_note;
  if (!prior_path.empty()) {
    try {
      std::vector<std::string> prompts = data::read_instance_prompts(prior_path);
      if ((int64_t)prompts.size() == Kt) {
        for (auto& p : prompts) entities.push_back(entity_name(p));
      } else {
        entity_note = "the instance priors hold " + std::to_string(prompts.size()) + " texts but the model has " +
                      std::to_string(Kt) + " text prototypes; prototypes are numbered instead";
      }
    } catch (const std::exception& e) {
      entity_note = std::string("the instance priors could not be read (") + e.what() + "); prototypes are numbered instead";
    }
  } else {
    entity_note = "config.json does not name the instance priors; prototypes are numbered instead";
  }
  if (entities.empty())
    for (int64_t k = 0; k < Kt; ++k) entities.push_back("text " + std::to_string(k));
  if (!entity_note.empty()) s << note(h(entity_note) + ".");

  // 1. Heatmaps per slide.
  s << "<h4>Instance weights and class attention on the slide</h4>\n"
    << "<p class=\"caption\">Each square is one patch at its position on the slide (coordinates of the feature file). "
       "Left: the fused instance weight w<sub>j</sub> that scales each instance before the class attention; right: the "
       "attention of the predicted class's prior over the instances (mean over heads). The five highest patches of each "
       "map are outlined in red. Where the slide's image is found (<code>--slides-dir</code>), the two maps are drawn over "
       "the slide itself instead, with the five highest patches of each cropped at full resolution.</p>\n";
  for (const Explained& e : done) {
    std::string head = "<b>" + h(e.slide) + "</b>: true " + (e.label >= 0 ? h(class_name(r, e.label)) : std::string("?")) +
                       ", predicted " + h(class_name(r, e.pred)) + " (p = " + fmt_fixed(e.prob, 3) + "), " +
                       std::to_string(e.n) + " patches";
    s << "<p class=\"slide-head\">" << head << "</p>\n";
    if (!e.has_coords) {
      s << note("The feature file has no coordinates (.pt bags carry none), so this slide cannot be drawn.");
      continue;
    }
    if (!slides_dir.empty()) {  // over the slide image itself (models/report/report_slides.h)
      const std::string file = find_slide_file(slides_dir, e.slide);
      if (file.empty()) {
        s << note("No image of slide <code>" + h(e.slide) + "</code> in <code>" + h(slides_dir) +
                  "</code>: its patches are drawn at their coordinates instead.");
      } else {
        try {
          slides::SlideScores geometry;
          slides::read_coords_attributes(feature_file(feats, e.slide), geometry);
          if (geometry.patch_size_level0 <= 0)
            throw std::runtime_error("the feature file's coords do not record patch_size_level0");
          std::vector<slides::Coord> coords;
          for (int64_t i = 0; i < e.n; ++i) coords.push_back({e.x[(size_t)i], e.y[(size_t)i]});
          const std::vector<SlideMap> maps = {{"instance weight", std::vector<float>(e.weight.begin(), e.weight.end())},
                                              {"attention of " + class_name(r, e.pred),
                                               std::vector<float>(e.attention.begin(), e.attention.end())}};
          s << slide_heatmaps_html(file, coords, geometry.patch_size_level0, maps, 640, 5);
          continue;
        } catch (const std::exception& ex) {
          s << note("The image of slide <code>" + h(e.slide) + "</code> could not be drawn (" + h(ex.what()) +
                    "); its patches are drawn at their coordinates instead.");
        }
      }
    }
    PatchMapOptions wo;
    wo.title = "instance weight";
    wo.value_label = "weight";
    wo.highlight = top_k(e.weight, 5);
    PatchMapOptions ao;
    ao.title = "attention of " + class_name(r, e.pred);
    ao.value_label = "attention";
    ao.highlight = top_k(e.attention, 5);
    s << "<div class=\"figs\">\n<figure>" << patch_map(e.x, e.y, e.weight, wo) << "</figure>\n<figure>"
      << patch_map(e.x, e.y, e.attention, ao) << "</figure>\n</div>\n";
  }

  // 2. Transport plan (mean over the explained slides: its marginals depend on the bag).
  s << "<h4>Transport plan between visual and text prototypes</h4>\n";
  std::vector<const Explained*> with_plan;
  for (const Explained& e : done)
    if (!e.plan.empty() && e.kt == Kt && e.kv == done[0].kv) with_plan.push_back(&e);
  if (with_plan.empty()) {
    s << note("This model computes no prototype-level transport plan (" +
              h("mode " + r.mode + ", ablation " + r.ablation) +
              "); only paper mode without ablation has one.");
  } else {
    const int64_t Kv = with_plan[0]->kv;
    std::vector<double> mean((size_t)(Kv * Kt), 0.0);
    for (const Explained* e : with_plan)
      for (size_t i = 0; i < mean.size(); ++i) mean[i] += e->plan[i] / (double)with_plan.size();
    std::vector<std::string> rows;
    for (int64_t v = 0; v < Kv; ++v) rows.push_back("visual " + std::to_string(v));
    HeatmapOptions ho;
    ho.title = "Transport plan T (" + std::to_string(Kv) + " visual x " + std::to_string(Kt) + " text prototypes)";
    ho.xlabel = "text prototype (entity of the instance priors)";
    ho.ylabel = "visual prototype";
    ho.max_width = 860;
    ho.vmin = 0;  // transported mass
    s << "<figure>" << heatmap(mean, (int)Kv, (int)Kt, rows, entities, ho) << "<figcaption class=\"wide\">Mass moved between "
      << "each learned visual prototype and each text prototype (entity), averaged over the " << with_plan.size()
      << " explained slide" << (with_plan.size() == 1 ? "" : "s") << " (the plan's marginals come from the bag's mean "
      << "similarities, so it varies a little from slide to slide). Hover a cell for its value.</figcaption></figure>\n";
  }

  // 3. Top patches per entity.
  s << "<h4>Top patches per text prototype</h4>\n";
  std::ostringstream t;
  t << "<table class=\"top\">\n<tr><th class=\"l\">entity</th><th>rank</th><th class=\"l\">slide</th><th>patch</th><th>x</th>"
       "<th>y</th><th>cosine similarity</th></tr>\n";
  for (int64_t k = 0; k < Kt; ++k) {
    struct Hit {
      const Explained* e;
      int64_t i;
      double v;
    };
    std::vector<Hit> hits;
    for (const Explained& e : done) {
      if (e.kt != Kt) continue;
      for (int64_t i = 0; i < e.n; ++i) hits.push_back({&e, i, e.sim[(size_t)(i * Kt + k)]});
    }
    size_t top = std::min<size_t>(5, hits.size());
    std::partial_sort(hits.begin(), hits.begin() + (std::ptrdiff_t)top, hits.end(),
                      [](const Hit& a, const Hit& b) { return a.v > b.v; });
    for (size_t j = 0; j < top; ++j) {
      const Hit& hit = hits[j];
      t << "<tr" << (j == 0 ? " class=\"first\"" : "") << ">";
      if (j == 0) t << "<td class=\"l ent\" rowspan=\"" << top << "\">" << h(entities[(size_t)k]) << "</td>";
      t << "<td>" << j + 1 << "</td><td class=\"l\">" << h(hit.e->slide) << "</td><td>" << hit.i << "</td>";
      if (hit.e->has_coords)
        t << "<td>" << hit.e->x[(size_t)hit.i] << "</td><td>" << hit.e->y[(size_t)hit.i] << "</td>";
      else
        t << "<td>&ndash;</td><td>&ndash;</td>";
      t << "<td>" << fmt_fixed(hit.v, 4) << "</td></tr>\n";
    }
  }
  t << "</table>\n";
  std::string caption = "<p class=\"caption\">For each text prototype, the five patches of the " + std::to_string(done.size()) +
                        " explained slide" + (done.size() == 1 ? "" : "s") +
                        " most similar to it (cosine similarity of the projected patch feature and the projected "
                        "entity text, <code>sim_text</code>); x, y are the patch's level-0 coordinates.</p>\n";
  s << caption;
  if (Kt > 12)
    s << "<details><summary>Show the table (" << Kt << " entities &times; 5 patches)</summary>\n" << t.str() << "</details>\n";
  else
    s << t.str();
  return s.str();
}
}  // namespace lm::report
