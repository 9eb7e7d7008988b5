// `libramil heatmap`: per-patch scores drawn on the slide itself, for each slide and score a
// heatmap (PNG + JPEG) over a pyramid level, the patches as QuPath GeoJSON, and the top-k patches
// at full resolution (docs/heatmaps.md). The scores come from `eval --scores` files, or from a
// checkpoint run here on the features. The drawing lives in data/slides/heatmap.h, the scores in
// models/mil/patch_scores.h; this file pairs inputs, writes each slide's folder and prints.
//
// A slide's outputs are built in a temporary folder beside OUT/<slide> and renamed into place
// when complete, so a failure (coordinates outside the slide, a checkpoint of another feature
// width, an unreadable slide) leaves nothing of that slide: one line naming the file, exit 1.
#include <unistd.h>

#include <chrono>
#include <exception>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>

#include "apps/commands.h"
#include "apps/inputs.h"
#include "data/atomic_file.h"
#include "data/slides/heatmap.h"
#include "data/slides/image_io.h"
#include "data/slides/patching.h"
#include "data/slides/scores_file.h"
#include "models/mil/patch_scores.h"
#include "models/train/checkpoint.h"
#include "models/train/trainer.h"

namespace lm::app {

namespace fs = std::filesystem;

namespace {

struct HeatmapFlags {
  std::vector<std::string> slides;
  std::string scores, features, checkpoint, instance_path, out, object_type = "tile";
  std::vector<std::string> score = {"all"};
  slides::HeatmapStyle style;
  int vis_level = -1, max_side = 4096, top_k = 8, jpeg_quality = 90, threads = 0;
  int64_t patch_size_level0 = 0;
  bool overwrite = false, keep_going = false;
};

// The scores / features file of `slide` under `where` (a file: itself, when one slide is drawn).
std::string pair_file(const std::string& where, const std::string& slide, bool single) {
  std::error_code ec;
  if (!fs::is_directory(where, ec)) return single ? where : "";
  for (const char* ext : {".h5", ".hdf5"}) {
    const fs::path p = fs::path(where) / (slide + ext);
    if (fs::is_regular_file(p, ec)) return p.string();
  }
  return "";
}

// One score of one slide into `dir`: <score>.png and .jpg, gallery/<score>/; returns its record.
nlohmann::json draw_score(const HeatmapFlags& f, const slides::Slide& slide, const slides::VisImage& vis,
                          const slides::SlideScores& sc, int64_t p0, const slides::ScoreColumn& s, const fs::path& dir) {
  const slides::RgbImage img = slides::draw_heatmap(vis, sc.coords, p0, s.values, f.style);
  data::write_file_atomic((dir / (s.name + ".png")).string(), slides::encode_png(img));
  data::write_file_atomic((dir / (s.name + ".jpg")).string(), slides::encode_jpeg(img, f.jpeg_quality));
  const fs::path gallery = dir / "gallery" / s.name;
  fs::create_directories(gallery);
  nlohmann::json top = nlohmann::json::array();
  for (const slides::GalleryPatch& g : slides::top_patches(slide, sc.coords, p0, s.values, f.top_k)) {
    data::write_file_atomic((gallery / g.file_name).string(), slides::encode_png(g.image));
    top.push_back({{"rank", g.rank}, {"patch", g.index}, {"score", g.score}, {"x", g.coord[0]}, {"y", g.coord[1]},
                   {"file", "gallery/" + s.name + "/" + g.file_name}});
  }
  return {{"name", s.name}, {"label", s.label}, {"description", s.description}, {"heatmap", s.name + ".png"}, {"top", top}};
}

// One slide: everything into a temporary folder, renamed to OUT/<slide> at the end.
void draw_slide(const HeatmapFlags& f, const std::string& slide_path, const std::string& input, nn::Module* model,
                const train::CheckpointShape& shape, const std::vector<std::string>& entities) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::string name = slides::slide_name(slide_path);
  const fs::path final_dir = fs::path(f.out) / name;
  std::error_code ec;
  if (fs::exists(final_dir, ec) && !f.overwrite)
    throw std::runtime_error(final_dir.string() + " exists (pass --overwrite to replace it)");
  const slides::Slide slide(slide_path);
  slides::SlideScores sc;
  if (model) {
    check_bag_width(input, shape.dim, f.checkpoint, name);
    sc = models::score_features_file(*model, input, f.checkpoint, entities);
  } else {
    sc = slides::read_scores_h5(input);
  }
  const int64_t p0 = f.patch_size_level0 > 0 ? f.patch_size_level0 : sc.patch_size_level0;
  if (p0 <= 0)
    throw std::runtime_error(input + ": 'coords' has no patch_size_level0 attribute; give --patch-size-level0");
  slides::check_patches_inside(slide, sc.coords, p0, input);
  const std::vector<const slides::ScoreColumn*> chosen = slides::select_scores(sc, f.score, input);
  const slides::VisImage vis = slides::read_vis_image(slide, f.vis_level, f.max_side);

  const fs::path tmp = fs::path(f.out) / ("." + name + ".tmp-" + std::to_string(getpid()));
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp);
  try {
    nlohmann::json rec = {{"slide", fs::absolute(slide_path).string()},
                          {model ? "features" : "scores_file", fs::absolute(input).string()},
                          {"level", vis.level},
                          {"reduction", vis.reduction},
                          {"level0_pixels_per_image_pixel", {vis.dx, vis.dy}},
                          {"image_size", {vis.image.width, vis.image.height}},
                          {"patch_size_level0", p0},
                          {"patches", sc.coords.size()},
                          {"alpha", f.style.alpha},
                          {"cmap", f.style.cmap},
                          {"normalize", f.style.normalize}};
    for (const char* k : {"model", "checkpoint", "probabilities", "prediction"})
      if (sc.info.count(k)) rec[k] = sc.info.at(k);
    // Each score's picture, its encodings and its gallery, the scores spread over the threads.
    std::vector<nlohmann::json> entries(chosen.size());
    fs::create_directories(tmp / "gallery");
    std::exception_ptr error;
    std::mutex error_mutex;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t i = 0; i < int64_t(chosen.size()); ++i) {
      try {
        entries[size_t(i)] = draw_score(f, slide, vis, sc, p0, *chosen[size_t(i)], tmp);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
      }
    }
    if (error) std::rethrow_exception(error);
    rec["scores"] = entries;
    data::write_file_atomic((tmp / (name + ".geojson")).string(), slides::scores_geojson(sc.coords, p0, chosen, f.object_type));
    rec["geojson"] = name + ".geojson";
    rec["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    data::write_file_atomic((tmp / "heatmap.json").string(), rec.dump(2) + "\n");
    if (fs::exists(final_dir, ec)) fs::remove_all(final_dir);
    fs::rename(tmp, final_dir);
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
  std::cout << "heatmap: " << name << ": " << chosen.size() << " score" << (chosen.size() == 1 ? "" : "s") << " of "
            << sc.coords.size() << " patches on level " << vis.level
            << (vis.reduction > 1 ? " / " + std::to_string(vis.reduction) : std::string()) << " (" << vis.image.width << " x "
            << vis.image.height << ") -> " << final_dir.string() << " ("
            << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() << " s)\n";
}

int run_heatmap(const HeatmapFlags& f) {
  set_threads(f.threads);
  const bool from_model = !f.checkpoint.empty();
  if (from_model == !f.scores.empty())
    throw std::runtime_error("give either --scores (files of `libramil eval --scores`) or --features with --checkpoint");
  if (from_model && f.features.empty()) throw std::runtime_error("--checkpoint needs --features (the slides' features files)");
  if (!from_model && !f.features.empty()) throw std::runtime_error("--features needs --checkpoint (or give --scores instead)");
  if (!slides::is_colormap(f.style.cmap)) slides::colormap(f.style.cmap, 0);  // throws naming the valid ones
  if (!(f.style.alpha >= 0 && f.style.alpha <= 1)) throw std::runtime_error("--alpha must lie in [0, 1]");
  if (f.object_type != "tile" && f.object_type != "detection") throw std::runtime_error("--object-type must be tile or detection");
  const std::vector<std::string> slide_files = slides::list_slides(f.slides);
  const std::string& where = from_model ? f.features : f.scores;
  const bool single = slide_files.size() == 1;
  std::error_code ec;
  if (!fs::exists(where, ec)) throw std::runtime_error(where + ": no such file or folder");
  if (!fs::is_directory(where, ec) && !single)
    throw std::runtime_error(where + ": give a folder of <slide>.h5 files when drawing several slides");
  std::vector<std::pair<std::string, std::string>> jobs;  // slide, scores or features file
  for (const std::string& s : slide_files) {
    const std::string file = pair_file(where, slides::slide_name(s), single);
    if (file.empty()) std::cerr << "libramil: warning: slide " << s << ": no " << slides::slide_name(s) << ".h5 in " << where << "; skipped\n";
    else jobs.push_back({s, file});
  }
  if (jobs.empty()) throw std::runtime_error("no slide of " + f.slides.front() + " has a file in " + where);
  std::unique_ptr<nn::Module> model;
  train::CheckpointShape shape;
  std::vector<std::string> entities;
  if (from_model) {
    model = train::load_model_from_checkpoint(f.checkpoint, {}, &shape);
    if (!models::has_patch_scores(*model))
      throw std::runtime_error("checkpoint " + f.checkpoint + " holds a " + shape.model +
                               " model, which has no per-patch scores (Libra-MIL, abmil, gated_abmil and transmil have them)");
    if (shape.model == "libramil") entities = models::entity_names_for(f.checkpoint, f.instance_path);
  }
  fs::create_directories(f.out);
  int failed = 0;
  for (const auto& [slide, file] : jobs) {
    try {
      draw_slide(f, slide, file, model.get(), shape, entities);
    } catch (const std::exception& e) {
      std::cerr << "libramil: error: " << e.what() << std::endl;
      ++failed;
    }
  }
  if (failed && jobs.size() > 1)
    std::cerr << "libramil: error: " << failed << " of " << jobs.size() << " slides failed (see above)\n";
  return failed && !f.keep_going ? 1 : 0;
}

}  // namespace

Runner add_heatmap(CLI::App& app) {
  auto f = std::make_shared<HeatmapFlags>();
  app.add_option("--slide,--slides", f->slides, "slide files and / or folders of slides")->required()->expected(1, -1);
  app.add_option("--scores", f->scores, "the slide's scores file of `libramil eval --scores`, or their folder (<slide>.h5)");
  app.add_option("--features", f->features, "the slide's features file, or their folder (<slide>.h5), with --checkpoint");
  app.add_option("--checkpoint", f->checkpoint, "a checkpoint of train (Libra-MIL, abmil, gated_abmil, transmil): scores computed here")
      ->check(CLI::ExistingFile);
  app.add_option("--instance_path", f->instance_path, "instance priors (JSON) naming Libra-MIL's entities (default: the run's)")
      ->check(CLI::ExistingFile);
  app.add_option("--out", f->out, "output folder: OUT/<slide>/ per slide")->required();
  app.add_option("--score", f->score, "weight | attention:CLASS | entity:NAME | a score's dataset name | all (repeat or comma-separate)")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--vis-level", f->vis_level, "pyramid level to draw on (-1: the finest whose long side is at most --max-side)")
      ->capture_default_str();
  app.add_option("--max-side", f->max_side, "longest side of the heatmap in pixels (the level is box-reduced beyond it)")
      ->capture_default_str();
  app.add_option("--alpha", f->style.alpha, "opacity of the colours over the slide (0..1)")->capture_default_str();
  app.add_option("--cmap", f->style.cmap, "jet | viridis")->capture_default_str();
  app.add_option("--normalize", f->style.normalize, "percentile (rank; every colour equally often) | minmax")
      ->check(CLI::IsMember({"percentile", "minmax"}))
      ->capture_default_str();
  app.add_option("--top-k", f->top_k, "patches per score cropped at full resolution into gallery/<score>/")->capture_default_str();
  app.add_option("--object-type", f->object_type, "QuPath object type of the GeoJSON squares: tile | detection")->capture_default_str();
  app.add_option("--patch-size-level0", f->patch_size_level0, "patch side at level 0 when the coords file does not record it");
  app.add_option("--jpeg-quality", f->jpeg_quality, "JPEG quality 1..100")->check(CLI::Range(1, 100))->capture_default_str();
  app.add_option("--threads", f->threads, "CPU threads for the model and the scores' pictures (0 = all cores)")->capture_default_str();
  app.add_flag("--overwrite", f->overwrite, "replace a slide's existing output folder");
  app.add_flag("--keep-going", f->keep_going, "exit 0 even when some slides failed (the failures are still printed)");
  return [f] { return run_heatmap(*f); };
}

}  // namespace lm::app
