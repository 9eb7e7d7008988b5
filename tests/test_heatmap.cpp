// Explanations on the slide (docs/heatmaps.md) on the two shipped real slides: registration of
// the heatmap (scores equal to each patch's x give a left-to-right ramp; one hot patch lands on
// its box within 1 px) at two scales of each slide; the GeoJSON's squares and the scores files
// read back by an independent reader (tools/heatmap_check.py: json + h5py); `eval --scores` and
// `heatmap` end to end with features from the extract pipeline; the colormaps against
// matplotlib's viridis, the tick labels; `report --slides-dir`; and bad input (coordinates
// outside the slide, a checkpoint of another feature width, an unreadable slide, features
// without coordinates).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <tuple>
#include <nlohmann/json.hpp>

#include "data/formats/hdf5_writer.h"
#include "data/slides/colormap.h"
#include "data/slides/feature_extraction.h"
#include "data/slides/heatmap.h"
#include "data/slides/image_io.h"
#include "data/slides/patching.h"
#include "data/slides/scores_file.h"
#include "models/mil/baselines.h"
#include "models/mil/libramil.h"
#include "models/train/checkpoint.h"
#include "models/train/trainer.h"
#include "tests/slide_test_util.h"
#include "tests/test_util.h"

namespace {

namespace fs = std::filesystem;
using namespace lm;
using namespace test::slide_fixtures;
using nlohmann::json;


// The patches of one slide at 20x, `size` pixels (the TCGA slide has no mpp: 0.5 is given).
slides::PatchCoords patches(const std::string& slide, int size, const fs::path& dir) {
  const std::string config = patch_slide(slide, dir, 20, size);
  return slides::read_patch_coords((dir / config / "patches" / (slide + "_patches.h5")).string());
}

// Nearest colormap position of a colour (1024 steps).
double invert(const std::string& cmap, const uint8_t* px) {
  static std::map<std::string, std::vector<slides::Rgb>> luts;
  auto& lut = luts[cmap];
  if (lut.empty())
    for (int i = 0; i < 1024; ++i) lut.push_back(slides::colormap(cmap, i / 1023.0));
  int best = 0, best_d = 1 << 30;
  for (int i = 0; i < 1024; ++i) {
    int d = 0;
    for (int c = 0; c < 3; ++c) d += (int(px[c]) - lut[size_t(i)][size_t(c)]) * (int(px[c]) - lut[size_t(i)][size_t(c)]);
    if (d < best_d) best_d = d, best = i;
  }
  return best / 1023.0;
}

json run_check(const std::string& args, const fs::path& log) {
  test::run_or_throw("/usr/bin/python3 " + q(test::source_dir() / "tools" / "heatmap_check.py") + " " + args + " > " + q(log));
  return json::parse(test::read_text(log));
}

struct Scale {
  int level, max_side;
};

}  // namespace

TEST_CASE("heatmap registration: an x ramp runs left to right and one hot patch lands on its box, both slides, two scales") {
  if (!have_openslide()) return;
  const fs::path dir = test::scratch_dir("heatmap_registration");
  struct Case {
    const char* slide;
    std::vector<Scale> scales;
  };
  // cmu has one level: full resolution and reduced by 3; tcga: level 0 whole and level 1.
  for (const Case& c : {Case{kCmu, {{0, 4096}, {0, 1024}}}, Case{kTcga, {{0, 8192}, {1, 4096}}}}) {
    const slides::PatchCoords pc = patches(c.slide, 128, dir / c.slide);
    const int64_t n = int64_t(pc.coords.size()), p0 = pc.patch_size_level0;
    REQUIRE(n > 20);
    const slides::Slide slide(slide_path(c.slide).string());
    const std::string slide_name = c.slide;
    for (const Scale& s : c.scales) {
      CAPTURE(slide_name);
      CAPTURE(s.level);
      CAPTURE(s.max_side);
      const slides::VisImage vis = slides::read_vis_image(slide, s.level, s.max_side);
      CHECK(vis.level == s.level);
      CHECK(std::max(vis.image.width, vis.image.height) <= s.max_side);
      slides::HeatmapStyle st;
      st.alpha = 1;
      st.cmap = "viridis";
      st.normalize = "minmax";
      st.colour_bar = false;

      // (1) Ramp: scores = x. Over the pixels well inside some patch box (one pixel in from its
      // edges, computed here from the coordinates), each column's mean colour position must not
      // decrease from left to right and must equal the patch's (x - min x) / (max x - min x).
      std::vector<float> xs;
      int64_t xmin = INT64_MAX, xmax = 0;
      for (const auto& co : pc.coords) xs.push_back(float(co[0])), xmin = std::min(xmin, co[0]), xmax = std::max(xmax, co[0]);
      const fs::path png = dir / (std::string(c.slide) + "_ramp_" + std::to_string(s.level) + "_" + std::to_string(s.max_side) + ".png");
      {
        const std::string bytes = slides::encode_png(slides::draw_heatmap(vis, pc.coords, p0, xs, st));
        std::ofstream(png, std::ios::binary) << bytes;
      }
      const slides::RgbImage img = slides::read_image_file(png.string());
      REQUIRE(img.width == vis.image.width);
      REQUIRE(img.height == vis.image.height);
      std::vector<double> col_sum(size_t(img.width), 0), col_n(size_t(img.width), 0);
      double worst = 0;
      for (const auto& co : pc.coords) {
        const int x0 = int(std::ceil(co[0] / vis.dx)) + 1, x1 = int(std::floor((co[0] + p0) / vis.dx)) - 1;
        const int y0 = int(std::ceil(co[1] / vis.dy)) + 1, y1 = int(std::floor((co[1] + p0) / vis.dy)) - 1;
        const double want = double(co[0] - xmin) / double(xmax - xmin);
        for (int y = y0; y < y1 && y < img.height; ++y)
          for (int x = x0; x < x1 && x < img.width; ++x) {
            const double t = invert("viridis", img.pixel(x, y));
            worst = std::max(worst, std::abs(t - want));
            col_sum[size_t(x)] += t, col_n[size_t(x)] += 1;
          }
      }
      CHECK(worst < 0.01);
      double prev = -1, first = -1, last = -1;
      int columns = 0, decreases = 0;
      for (int x = 0; x < img.width; ++x) {
        if (col_n[size_t(x)] == 0) continue;
        const double m = col_sum[size_t(x)] / col_n[size_t(x)];
        if (m < prev - 1e-9) ++decreases;
        prev = m;
        if (first < 0) first = m;
        last = m;
        ++columns;
      }
      CHECK(columns > 10);
      CHECK(decreases == 0);
      CHECK(first < 0.02);
      CHECK(last > 0.98);
      MESSAGE(slide_name << " level " << vis.level << " / " << vis.reduction << " (" << img.width << " x " << img.height << "): "
                      << columns << " tissue columns, ramp " << first << " -> " << last << ", worst colour error " << worst);

      // (2) One hot patch (first, middle, last): the pixels of the top colour form exactly one
      // rectangle whose edges are within 1 px of the patch's box at this scale.
      for (int64_t hot : {int64_t(0), n / 2, n - 1}) {
        CAPTURE(hot);
        std::vector<float> v(size_t(n), 0.0f);
        v[size_t(hot)] = 1.0f;
        const slides::RgbImage h = slides::draw_heatmap(vis, pc.coords, p0, v, st);
        const slides::Rgb top = slides::colormap("viridis", 1.0);
        int bx0 = INT32_MAX, by0 = INT32_MAX, bx1 = -1, by1 = -1;
        int64_t count = 0;
        for (int y = 0; y < h.height; ++y)
          for (int x = 0; x < h.width; ++x) {
            const uint8_t* p = h.pixel(x, y);
            if (p[0] == top[0] && p[1] == top[1] && p[2] == top[2])
              bx0 = std::min(bx0, x), by0 = std::min(by0, y), bx1 = std::max(bx1, x + 1), by1 = std::max(by1, y + 1), ++count;
          }
        REQUIRE(count > 0);
        CHECK(count == int64_t(bx1 - bx0) * (by1 - by0));
        const auto& co = pc.coords[size_t(hot)];
        CHECK(std::abs(bx0 - co[0] / vis.dx) <= 1.0);
        CHECK(std::abs(by0 - co[1] / vis.dy) <= 1.0);
        CHECK(std::abs(bx1 - (co[0] + p0) / vis.dx) <= 1.0);
        CHECK(std::abs(by1 - (co[1] + p0) / vis.dy) <= 1.0);
      }
    }
  }
}

TEST_CASE("heatmap colours: viridis within 2/255 of matplotlib's table, jet's control points, tick labels tell ticks apart") {
  const fs::path dir = test::scratch_dir("heatmap_colours");
  const json ref = run_check("viridis", dir / "viridis.json");
  REQUIRE(ref.size() == 256);
  int worst = 0;
  for (int i = 0; i < 256; ++i) {
    const slides::Rgb c = slides::colormap("viridis", i / 255.0);
    for (int k = 0; k < 3; ++k) worst = std::max(worst, std::abs(int(c[size_t(k)]) - ref[size_t(i)][size_t(k)].get<int>()));
  }
  MESSAGE("viridis: worst 8-bit difference from matplotlib " << worst);
  CHECK(worst <= 2);
  CHECK(slides::colormap("jet", 0) == slides::Rgb{0, 0, 128});
  CHECK(slides::colormap("jet", 1) == slides::Rgb{128, 0, 0});
  const slides::Rgb mid = slides::colormap("jet", 0.5);  // between cyan and yellow: (0.48, 1, 0.48)
  CHECK(mid[1] == 255);
  CHECK(std::abs(int(mid[0]) - 123) <= 1);
  CHECK(std::abs(int(mid[2]) - 123) <= 1);
  CHECK_THROWS_AS(slides::colormap("rainbow", 0.5), std::invalid_argument);

  // What %.3g prints as "0.997, 1, 1" (the report's old colour bar) gets the digits it needs.
  CHECK(slides::tick_labels({0.997, 0.9996, 1.0}) == std::vector<std::string>{"0.9970", "0.9996", "1.0000"});
  CHECK(slides::tick_labels({0, 0.5, 1}) == std::vector<std::string>{"0.0", "0.5", "1.0"});
  CHECK(slides::tick_labels({0, 250, 500, 750, 1000}) == std::vector<std::string>{"0", "250", "500", "750", "1000"});
  CHECK(slides::tick_labels({1.2e-5, 3.4e-5}) == std::vector<std::string>{"1e-05", "3e-05"});
  for (const auto& l : slides::tick_labels({0.99991, 0.99993, 0.99995, 0.99997, 0.99999}))
    CHECK(l.size() == std::string("0.99991").size());
  // Percentile normalisation: ranks over (n - 1), ties share their mean rank; minmax linear.
  const std::vector<float> v = {3, 1, 2, 2, NAN};
  const std::vector<double> pct = slides::normalize_scores(v, "percentile"), mm = slides::normalize_scores(v, "minmax");
  CHECK(pct[0] == doctest::Approx(1.0));
  CHECK(pct[1] == doctest::Approx(0.0));
  CHECK(pct[2] == doctest::Approx(0.5));
  CHECK(std::isnan(pct[4]));
  CHECK(mm[2] == doctest::Approx(0.5));
  CHECK(slides::score_at(v, "percentile", 0.5) == doctest::Approx(2.0));
}

namespace {

// Features from the extract pipeline (6 pixel statistics per patch) for one slide.
fs::path extract_features(const std::string& slide, const fs::path& dir) {
  const fs::path pdir = dir / ("patches_" + slide), odir = dir / ("features_" + slide);
  patches(slide, 256, pdir);
  slides::ExtractOptions o;
  o.slides = {slide_path(slide).string()};
  o.patches = pdir.string();
  o.out = odir.string();
  o.encoder_name = "pixelstats";
  o.feature_dim = 6;
  auto encode = [](const std::vector<const uint8_t*>& rgb, int64_t h, int64_t w) {
    std::vector<float> out;
    for (const uint8_t* p : rgb) {
      double s[6] = {0, 0, 0, 0, 0, 0};
      for (int64_t y = 0; y < h; ++y)
        for (int64_t x = 0; x < w; ++x)
          for (int c = 0; c < 3; ++c) s[(x >= w / 2 ? 3 : 0) + c] += p[3 * (y * w + x) + c] / 255.0 / double(h * w / 2);
      for (double v : s) out.push_back(float(v));
    }
    return Tensor::from_vector(out, {int64_t(rgb.size()), 6});
  };
  const auto recs = slides::run_extraction(o, encode, {});
  REQUIRE(recs.size() == 1);
  REQUIRE_MESSAGE(recs[0].status == "ok", recs[0].reason);
  return recs[0].output;
}

// A checkpoint of `model` for bags of width `dim`, 2 classes.
fs::path checkpoint(const std::string& model, int64_t dim, const fs::path& dir) {
  Generator gen(5);
  const fs::path path = dir / (model + "_" + std::to_string(dim) + ".safetensors");
  if (model == "libramil") {
    models::LibraMILConfig c;
    c.dim = dim, c.text_dim = 4, c.num_vis_prototypes = 3, c.num_text_prototypes = 3, c.num_classes = 2, c.heads = 2;
    models::LibraMIL m(c, Tensor::randn({3, 4}, gen), Tensor::randn({2, 4}, gen), gen);
    train::save_checkpoint(path.string(), m, json{{"model", "libramil"}, {"heads", 2}}.dump());
  } else {
    auto m = models::make_baseline(model, dim, 2, gen);
    train::save_checkpoint(path.string(), *m, json{{"model", model}, {"dim", dim}, {"num_classes", 2}}.dump());
  }
  return path;
}

}  // namespace

TEST_CASE("eval --scores and heatmap end to end: scores files, GeoJSON squares and pictures, read back by h5py") {
  if (!have_openslide()) return;
  const fs::path dir = test::scratch_dir("heatmap_end_to_end");
  const fs::path examples = test::binary_dir() / "heatmap_examples";
  for (const std::string slide : {kCmu, kTcga}) {
    CAPTURE(slide);
    const fs::path feats = extract_features(slide, dir / slide);
    for (const std::string model : {"libramil", "abmil", "gated_abmil", "transmil"}) {
      CAPTURE(model);
      const fs::path ck = checkpoint(model, 6, dir);
      const fs::path sdir = dir / slide / ("scores_" + model), out = dir / slide / ("heatmaps_" + model);
      const fs::path log = dir / (std::string(slide) + "_" + model + ".log");
      int rc = test::run_libramil("eval --checkpoint " + q(ck) + " --features " + q(feats.parent_path()) + " --out " +
                                      q(dir / slide / (model + "_probs.csv")) + " --scores " + q(sdir) + " --overwrite",
                                  log);
      INFO(test::read_text(log));
      REQUIRE(rc == 0);
      const fs::path scores = sdir / (std::string(slide) + ".h5");
      const json sj = run_check("scores " + q(scores) + " " + q(feats), dir / "scores.json");
      CHECK(sj["coords_equal"] == true);
      CHECK(sj["patch_size_equal"] == true);
      CHECK(sj["model"] == model);
      CHECK(sj["written_by"] == "libramil eval");
      CHECK(sj["checkpoint"] == fs::absolute(ck).string());
      std::vector<std::string> want = {"attention"};
      if (model == "libramil") want = {"weight", "attention_0", "attention_1", "entity_0", "entity_1", "entity_2"};
      if (model == "transmil") want = {"attention", "attention_layer1"};
      CHECK(sj["scores"].get<std::vector<std::string>>() == want);
      if (model == "abmil" || model == "gated_abmil") CHECK(sj["sums"]["attention"].get<double>() == doctest::Approx(1.0).epsilon(1e-5));

      // heatmap from the scores file; then from the checkpoint directly: the same pictures.
      rc = test::run_libramil("heatmap --slide " + q(slide_path(slide)) + " --scores " + q(scores) + " --out " + q(out) +
                                  " --top-k 3 --overwrite",
                              log);
      INFO(test::read_text(log));
      REQUIRE(rc == 0);
      const fs::path sd = out / slide;
      const json rec = json::parse(test::read_text(sd / "heatmap.json"));
      CHECK(rec["scores"].size() == want.size());
      for (const std::string& w : want) {
        CHECK(fs::file_size(sd / (w + ".png")) > 1000);
        CHECK(fs::file_size(sd / (w + ".jpg")) > 1000);
        int n = 0;
        for (const auto& e : fs::directory_iterator(sd / "gallery" / w)) {
          const slides::RgbImage g = slides::read_image_file(e.path().string());
          CHECK(g.width == 256);  // patch_size_level0 of 256 px at 20x on both (cmu 20x, tcga 0.5 um/px)
          ++n;
        }
        CHECK(n == 3);
      }
      const json gj = run_check("geojson " + q(sd / (std::string(slide) + ".geojson")) + " " + q(scores), dir / "geojson.json");
      CHECK(gj["features"] == sj["patches"]);
      CHECK(gj["size"] == 256);
      CHECK(gj["measurements"].size() == want.size());
      CHECK(gj["max_rel_err"].get<double>() < 1e-6);
      if (model == "abmil") {
        const fs::path out2 = dir / slide / "heatmaps_direct";
        rc = test::run_libramil("heatmap --slide " + q(slide_path(slide)) + " --features " + q(feats) + " --checkpoint " + q(ck) +
                                    " --out " + q(out2) + " --top-k 3 --overwrite",
                                log);
        INFO(test::read_text(log));
        REQUIRE(rc == 0);
        CHECK(test::read_text(out2 / slide / "attention.png") == test::read_text(sd / "attention.png"));
      }
      if (model == "libramil") {  // example pictures for a person to look at
        fs::create_directories(examples);
        for (const char* f : {"weight.jpg", "attention_1.jpg"})
          fs::copy_file(sd / f, examples / (std::string(slide) + "_libramil_" + f), fs::copy_options::overwrite_existing);
        fs::copy_file(sd / (std::string(slide) + ".geojson"), examples / (std::string(slide) + "_libramil.geojson"),
                      fs::copy_options::overwrite_existing);
      }
      MESSAGE(slide << " " << model << ": " << sj["patches"] << " patches, scores " << sj["scores"] << ", geojson " << gj.dump());
    }
  }
  // Many slides at once: a folder of slides and a folder of scores files pair up by name; a slide
  // without a scores file is skipped with a warning.
  const fs::path many = dir / "many_scores";
  fs::create_directories(many);
  fs::copy_file(dir / kCmu / "scores_abmil" / (std::string(kCmu) + ".h5"), many / (std::string(kCmu) + ".h5"));
  fs::copy_file(dir / kTcga / "scores_transmil" / (std::string(kTcga) + ".h5"), many / (std::string(kTcga) + ".h5"));
  const fs::path log = dir / "many.log";
  int rc = test::run_libramil("heatmap --slides " + q(test::test_data("slides")) + " --scores " + q(many) + " --out " +
                                  q(dir / "many_out") + " --score attention --top-k 1",
                              log);
  INFO(test::read_text(log));
  CHECK(rc == 0);
  for (const char* s : {kCmu, kTcga}) CHECK(fs::exists(dir / "many_out" / s / "attention.png"));
  CHECK(!fs::exists(dir / "many_out" / kTcga / "attention_layer1.png"));  // --score attention: that one only
  fs::remove(many / (std::string(kTcga) + ".h5"));
  rc = test::run_libramil("heatmap --slides " + q(test::test_data("slides")) + " --scores " + q(many) + " --out " +
                              q(dir / "many_out2") + " --top-k 1",
                          log);
  const std::string text = test::read_text(log);
  INFO(text);
  CHECK(rc == 0);
  CHECK(fs::exists(dir / "many_out2" / kCmu / "attention.png"));
  CHECK(!fs::exists(dir / "many_out2" / kTcga));
  CHECK(text.find("warning: slide " + slide_path(kTcga).string() + ": no " + kTcga + ".h5") != std::string::npos);
}

TEST_CASE("heatmap and eval --scores refuse bad input with one line naming the file and leave no output") {
  if (!have_openslide()) return;
  const fs::path dir = test::scratch_dir("heatmap_bad");
  const slides::PatchCoords pc = patches(kCmu, 256, dir / "p");
  auto write_scores = [&](const fs::path& path, std::vector<slides::Coord> coords) {
    slides::SlideScores s;
    s.coords = coords;
    s.patch_size_level0 = pc.patch_size_level0;
    std::vector<float> v(coords.size());
    for (size_t i = 0; i < v.size(); ++i) v[i] = float(i);
    s.scores.push_back({"weight", "weight", "", v});
    slides::write_scores_h5(path.string(), s);
  };
  auto expect_refused = [&](const std::string& args, const std::string& must_name, const fs::path& out) {
    const fs::path log = dir / "log.txt";
    const int rc = test::run_libramil(args, log);
    const std::string text = test::read_text(log);
    INFO(args);
    INFO(text);
    CHECK(rc == 1);
    CHECK(text.find(must_name) != std::string::npos);
    CHECK(std::count(text.begin(), text.end(), '\n') == 1);
    bool empty = true;
    if (fs::exists(out))
      for (const auto& e : fs::recursive_directory_iterator(out)) empty = empty && e.is_directory() && fs::is_empty(e.path());
    CHECK_MESSAGE(empty, "output left in " << out);
  };
  // Coordinates outside the slide.
  std::vector<slides::Coord> outside = pc.coords;
  outside.push_back({4000, 100});  // cmu is 2220 x 2967
  write_scores(dir / "outside.h5", outside);
  expect_refused("heatmap --slide " + q(slide_path(kCmu)) + " --scores " + q(dir / "outside.h5") + " --out " + q(dir / "o1"),
                 (dir / "outside.h5").string(), dir / "o1");
  // An unreadable slide.
  std::ofstream(dir / "broken.svs") << "not a slide at all";
  write_scores(dir / "broken.h5", pc.coords);
  expect_refused("heatmap --slide " + q(dir / "broken.svs") + " --scores " + q(dir / "broken.h5") + " --out " + q(dir / "o2"),
                 (dir / "broken.svs").string(), dir / "o2");
  // A checkpoint of another feature width (features are 6 wide, the model 8).
  const fs::path feats = extract_features(kCmu, dir / "f");
  const fs::path ck8 = checkpoint("abmil", 8, dir);
  expect_refused("heatmap --slide " + q(slide_path(kCmu)) + " --features " + q(feats) + " --checkpoint " + q(ck8) + " --out " +
                     q(dir / "o3"),
                 feats.string(), dir / "o3");
  // A score the file does not have.
  write_scores(dir / "cmu.h5", pc.coords);
  expect_refused("heatmap --slide " + q(slide_path(kCmu)) + " --scores " + q(dir / "cmu.h5") + " --score entity:nuclei --out " +
                     q(dir / "o4"),
                 "entity:nuclei", dir / "o4");
  // eval --scores on features without coordinates; and on a model without per-patch scores.
  fs::create_directories(dir / "nocoords");
  {
    data::H5Writer w((dir / "nocoords" / "s.h5").string());
    std::vector<float> x(5 * 6, 0.5f);
    w.dataset_f32("features", {5, 6}, x.data());
    w.commit();
  }
  const fs::path ck6 = checkpoint("abmil", 6, dir);
  expect_refused("eval --checkpoint " + q(ck6) + " --features " + q(dir / "nocoords") + " --out " + q(dir / "o5" / "p.csv") +
                     " --scores " + q(dir / "o5" / "scores"),
                 (dir / "nocoords" / "s.h5").string(), dir / "o5");
  const fs::path ckm = checkpoint("meanpool", 6, dir);
  expect_refused("eval --checkpoint " + q(ckm) + " --features " + q(feats.parent_path()) + " --out " + q(dir / "o6" / "p.csv") +
                     " --scores " + q(dir / "o6" / "scores"),
                 "meanpool", dir / "o6");
}

TEST_CASE("report --slides-dir: a Libra-MIL run's explained slides drawn over their images, with top patches inline") {
  if (!have_openslide()) return;
  // Six slides: three names for each shipped slide (symbolic links), features from the extract
  // pipeline copied under each name, labels 0 (cmu) and 1 (tcga); fold 0 tests cmu_2, tcga_2.
  const fs::path d = test::make_tiny_dataset("heatmap_report", "--classes 2 --per-class 3 --dim 6 --folds 1 --kt 3");
  const fs::path slides_dir = d / "slides", feats = d / "features";
  fs::create_directories(slides_dir);
  for (const auto& e : fs::directory_iterator(feats)) fs::remove(e.path());
  std::ofstream labels(d / "labels.csv");
  labels << "name,label\n";
  json split;
  for (const auto& [slide, tag, label] : {std::tuple{kCmu, "cmu", 0}, std::tuple{kTcga, "tcga", 1}}) {
    const fs::path f = extract_features(slide, d / "extract" / tag);
    for (int i = 0; i < 3; ++i) {
      const std::string name = std::string(tag) + "_" + std::to_string(i);
      fs::copy_file(f, feats / (name + ".h5"));
      fs::create_symlink(slide_path(slide), slides_dir / (name + ".svs"));
      labels << name << "," << label << "\n";
      split[i == 0 ? "train_0" : i == 1 ? "val_0" : "test_0"].push_back(name);
    }
  }
  labels.close();
  std::ofstream(d / "split.json") << split.dump();
  const fs::path run = d / "run", log = d / "log.txt";
  int rc = test::run_libramil("train " + test::tiny_dataset_inputs(d) + " --folds 1 --epochs 1 --heads 2 --quiet --save_dir " + q(run), log);
  INFO(test::read_text(log));
  REQUIRE(rc == 0);
  rc = test::run_libramil("report " + q(run) + " --slides-dir " + q(slides_dir) + " --out " + q(d / "report.html"), log);
  INFO(test::read_text(log));
  REQUIRE(rc == 0);
  const std::string html = test::read_text(d / "report.html");
  auto count = [&](const std::string& what) {
    size_t n = 0;
    for (size_t at = html.find(what); at != std::string::npos; at = html.find(what, at + 1)) ++n;
    return n;
  };
  // Two test slides x two maps over the slide, each with its five top patches.
  CHECK(count("<img src=\"data:image/jpeg;base64,") == 2 * 2 * (1 + 5));
  CHECK(count("over the slide (level") == 4);
  CHECK(html.find("could not be drawn") == std::string::npos);
  CHECK(html.find("No image of slide") == std::string::npos);
  // Without --slides-dir: today's coordinate plots, no images.
  rc = test::run_libramil("report " + q(run) + " --out " + q(d / "report_plain.html"), log);
  REQUIRE(rc == 0);
  CHECK(test::read_text(d / "report_plain.html").find("data:image/jpeg") == std::string::npos);
  fs::create_directories(test::binary_dir() / "heatmap_examples");
  fs::copy_file(d / "report.html", test::binary_dir() / "heatmap_examples" / "report_with_slides.html",
                fs::copy_options::overwrite_existing);
}
