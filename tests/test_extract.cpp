// `libramil extract`'s pipeline (data/slides/feature_extraction.h) with a stand-in encoder whose
// features are pixel statistics (mean R, G, B of each patch's left half, then its right half), so
// that every patch's pixels, position, level and row order are checked against an independent
// reading of the same slide by openslide-python (tools/extract_check.py); plus resuming, shards,
// tiles, and bad input (a patches file of another slide, a corrupt tile, an encoder that returns
// NaN or the wrong width): one line naming the file and no output file. Last, the command itself
// with the real EfficientNet-Lite0 on a shipped slide (features that train reads; a text
// encoder file refused).
#include <doctest/doctest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "data/feature_bag.h"
#include "data/formats/hdf5_reader.h"
#include "data/slides/feature_extraction.h"
#include "data/slides/image_io.h"
#include "data/slides/patching.h"
#include "data/slides/slide.h"
#include "models/patch_encoders/patch_encoder.h"
#include "tests/slide_test_util.h"
#include "tests/test_util.h"

namespace {

namespace fs = std::filesystem;
using namespace lm;
using namespace test::slide_fixtures;
using nlohmann::json;


// The stand-in encoder: 6 pixel statistics per patch (see the file comment).
Tensor pixel_stats(const std::vector<const uint8_t*>& rgb, int64_t h, int64_t w) {
  std::vector<float> out;
  for (const uint8_t* p : rgb) {
    double s[6] = {0, 0, 0, 0, 0, 0};
    int64_t nl = 0, nr = 0;
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) {
        const bool right = x >= w / 2;
        for (int c = 0; c < 3; ++c) s[(right ? 3 : 0) + c] += p[3 * (y * w + x) + c] / 255.0;
        (right ? nr : nl) += 1;
      }
    for (int k = 0; k < 6; ++k) out.push_back(float(s[k] / double(k < 3 ? nl : nr)));
  }
  return Tensor::from_vector(out, {int64_t(rgb.size()), 6});
}

slides::ExtractOptions options(const fs::path& patches, const fs::path& out, const std::vector<std::string>& slide_names) {
  slides::ExtractOptions o;
  for (const auto& s : slide_names) o.slides.push_back(slide_path(s).string());
  o.patches = patches.string();
  o.out = out.string();
  o.encoder_name = "pixelstats";
  o.feature_dim = 6;
  o.batch = 7;  // not a divisor of the patch counts: the last batch is short
  o.readers = 3;
  return o;
}

json check(const std::string& args, const fs::path& log) {
  test::run_or_throw(test::python() + " " + q(test::source_dir() / "tools" / "extract_check.py") + " " + args + " > " + q(log));
  return json::parse(test::read_text(log));
}

}  // namespace

TEST_CASE("extract: every patch's pixels, level and row order agree with openslide-python on both real slides") {
  if (!have_openslide()) return;
  const fs::path dir = test::scratch_dir("extract_pixels");
  struct Case {
    std::string slide;
    double mag;
    int level, size;  // what the reference reads
  };
  // cmu: one level, 20x -> level 0, 256 px. tcga (mpp 0.5 given): 10x -> patch 512 px at level 0,
  // read from level 1 (downsample 2.0005) as 256 px.
  for (const Case& c : {Case{"cmu-1-small-region", 20, 0, 256}, Case{"tcga-cr-7395-01a-01-ts1", 10, 1, 256}}) {
    CAPTURE(c.slide);
    const fs::path pdir = dir / ("patches_" + c.slide), odir = dir / ("features_" + c.slide);
    const std::string config = patch_slide(c.slide, pdir, c.mag);
    std::vector<std::string> lines;
    const auto recs = slides::run_extraction(options(pdir, odir, {c.slide}), pixel_stats,
                                             {nullptr, [&](const std::string& l) { lines.push_back(l); }});
    REQUIRE(recs.size() == 1);
    REQUIRE_MESSAGE(recs[0].status == "ok", recs[0].reason);
    CHECK(lines.size() == 1);
    const fs::path feats = odir / config / "features_pixelstats" / (c.slide + ".h5");
    CHECK(recs[0].output == feats.string());
    const fs::path patches_h5 = pdir / config / "patches" / (c.slide + "_patches.h5");
    const json r = check("slide " + q(slide_path(c.slide)) + " " + q(patches_h5) + " " + q(feats) + " " +
                             std::to_string(c.level) + " " + std::to_string(c.size),
                         dir / (c.slide + ".json"));
    MESSAGE(c.slide << ": " << r.dump());
    CHECK(r["rows"].get<int64_t>() == recs[0].patches);
    CHECK(r["rows"].get<int64_t>() > 5);
    CHECK(r["dim"] == 6);
    CHECK(r["dtype"] == "float32");
    CHECK(r["coords_dtype"] == "int64");
    CHECK(r["coords_equal"] == true);
    CHECK(r["encoder"] == "pixelstats");
    REQUIRE(!r["max_abs"].is_null());
    CHECK(r["max_abs"].get<double>() < 1e-5);
    // The file is what `train` reads: read_patch_coords accepts it too, and the read plan agrees.
    slides::Slide s(slide_path(c.slide).string());
    const auto pc = slides::read_patch_coords(patches_h5.string());
    const auto plan = slides::plan_read(s.levels(), pc.patch_size_level0, pc.patch_size);
    CHECK(plan.level == c.level);
    CHECK(plan.read_size == c.size);
  }
}

TEST_CASE("extract: a second run skips finished slides; shards split the slides; --overwrite redoes") {
  if (!have_openslide()) return;
  const fs::path dir = test::scratch_dir("extract_resume");
  const fs::path pdir = dir / "patches";
  const std::string config = patch_slide("cmu-1-small-region", pdir, 20);
  // The tcga slide at 20x (its mpp given) into the same patch folder.
  patch_slide("tcga-cr-7395-01a-01-ts1", pdir, 20);
  const std::vector<std::string> both = {"cmu-1-small-region", "tcga-cr-7395-01a-01-ts1"};
  auto o = options(pdir, dir / "out", both);
  int calls = 0;
  auto counting = [&](const std::vector<const uint8_t*>& rgb, int64_t h, int64_t w) {
    ++calls;
    return pixel_stats(rgb, h, w);
  };
  o.shard_index = 1, o.shard_count = 2;
  auto recs = slides::run_extraction(o, counting, {});
  REQUIRE(recs.size() == 1);
  CHECK(recs[0].slide == "tcga-cr-7395-01a-01-ts1");  // sorted by path: share 1 of 2 is the second
  o.shard_index = 0;
  recs = slides::run_extraction(o, counting, {});
  REQUIRE(recs.size() == 1);
  CHECK(recs[0].slide == "cmu-1-small-region");
  const int before = calls;
  o.shard_count = 1;
  recs = slides::run_extraction(o, counting, {});
  REQUIRE(recs.size() == 2);
  CHECK(recs[0].skipped);
  CHECK(recs[1].skipped);
  CHECK(calls == before);
  o.overwrite = true;
  recs = slides::run_extraction(o, counting, {});
  CHECK(!recs[0].skipped);
  CHECK(calls > before);
}

TEST_CASE("extract: bad input fails one slide with a line naming the file, and writes nothing for it") {
  if (!have_openslide()) return;
  const fs::path dir = test::scratch_dir("extract_bad");
  const fs::path pdir = dir / "patches";
  const std::string config = patch_slide("tcga-cr-7395-01a-01-ts1", pdir, 20);
  // The tcga patches file renamed as cmu's: its coordinates lie outside the smaller cmu slide.
  fs::create_directories(pdir / config / "patches");
  fs::copy_file(pdir / config / "patches" / "tcga-cr-7395-01a-01-ts1_patches.h5",
                pdir / config / "patches" / "cmu-1-small-region_patches.h5");
  auto o = options(pdir, dir / "out", {"cmu-1-small-region"});
  auto recs = slides::run_extraction(o, pixel_stats, {});
  REQUIRE(recs.size() == 1);
  CHECK(recs[0].status == "failed");
  CHECK(recs[0].reason.find("cmu-1-small-region_patches.h5") != std::string::npos);
  CHECK(recs[0].reason.find("lies outside") != std::string::npos);
  CHECK(!fs::exists(dir / "out" / config / "features_pixelstats" / "cmu-1-small-region.h5"));

  // An encoder that returns NaN for one patch, or the wrong width: no features file.
  o.slides = {slide_path("tcga-cr-7395-01a-01-ts1").string()};
  auto nan_encoder = [](const std::vector<const uint8_t*>& rgb, int64_t h, int64_t w) {
    Tensor t = pixel_stats(rgb, h, w);
    t.data<float>()[3] = std::nanf("");
    return t;
  };
  recs = slides::run_extraction(o, nan_encoder, {});
  CHECK(recs[0].status == "failed");
  CHECK(recs[0].reason.find("non-finite") != std::string::npos);
  o.feature_dim = 5;
  recs = slides::run_extraction(o, pixel_stats, {});
  CHECK(recs[0].status == "failed");
  CHECK(recs[0].reason.find("expected") != std::string::npos);
  CHECK(!fs::exists(dir / "out" / config / "features_pixelstats" / "tcga-cr-7395-01a-01-ts1.h5"));
  if (fs::exists(dir / "out"))
    for (const auto& e : fs::recursive_directory_iterator(dir / "out")) CHECK_MESSAGE(!e.is_regular_file(), e.path());

  // A slide with no patches file; a patches file that is not HDF5.
  o.feature_dim = 6;
  o.slides = {slide_path("cmu-1-small-region").string()};
  fs::remove(pdir / config / "patches" / "cmu-1-small-region_patches.h5");
  recs = slides::run_extraction(o, pixel_stats, {});
  CHECK(recs[0].reason.find("no patches file for slide 'cmu-1-small-region'") != std::string::npos);
  std::ofstream(pdir / config / "patches" / "cmu-1-small-region_patches.h5") << "not hdf5";
  recs = slides::run_extraction(o, pixel_stats, {});
  CHECK(recs[0].reason.find("cmu-1-small-region_patches.h5: not an HDF5 file") != std::string::npos);
}

TEST_CASE("extract --tiles: folders of PNG / JPEG tiles, coordinates from the names, a corrupt tile refused") {
  if (!have_openslide()) return;
  const fs::path dir = test::scratch_dir("extract_tiles");
  // Tiles cut from the cmu slide (so they hold real tissue), written as PNG with x_y names.
  slides::Slide s(slide_path("cmu-1-small-region").string());
  const fs::path bag = dir / "tiles" / "bagA";
  fs::create_directories(bag);
  std::vector<std::string> files;
  for (int64_t y : {0, 224})
    for (int64_t x : {448, 672, 896}) {
      const fs::path f = bag / ("bagA_" + std::to_string(x) + "_" + std::to_string(y) + ".png");
      std::ofstream(f, std::ios::binary) << slides::encode_png(s.read_region(0, x, y, 224, 224));
      files.push_back(f.string());
    }
  std::sort(files.begin(), files.end());
  slides::ExtractOptions o;
  o.tiles = (dir / "tiles").string();
  o.out = (dir / "out").string();
  o.encoder_name = "pixelstats";
  o.feature_dim = 6;
  o.batch = 4;
  auto recs = slides::run_extraction(o, pixel_stats, {});
  REQUIRE(recs.size() == 1);
  REQUIRE_MESSAGE(recs[0].status == "ok", recs[0].reason);
  const fs::path feats = dir / "out" / "features_pixelstats" / "bagA.h5";
  std::string args = "tiles " + q(feats);
  for (const auto& f : files) args += " " + q(f);
  const json r = check(args, dir / "tiles.json");
  CHECK(r["rows"] == 6);
  REQUIRE(!r["max_abs"].is_null());
  CHECK(r["max_abs"].get<double>() < 1e-5);
  {
    data::H5Reader h(feats.string());
    const auto c = h.read_i64("coords");
    REQUIRE(c.size() == 12);
    CHECK(c[0] == 448);  // sorted names: bagA_448_0, bagA_448_224, bagA_672_0, ...
    CHECK(c[1] == 0);
    CHECK(c[3] == 224);
  }
  slides::Coord c;
  CHECK(slides::coords_from_tile_name("x/12_34.jpg", c));
  CHECK(c == slides::Coord{12, 34});
  CHECK(!slides::coords_from_tile_name("x/tile.jpg", c));
  CHECK(!slides::coords_from_tile_name("x/a_12.jpg", c));
  // A corrupt tile: the bag fails naming it, and its earlier features file stays as it was.
  std::ofstream(bag / "bagA_999_999.png") << "\x89PNG garbage";
  o.overwrite = true;
  const auto before = fs::last_write_time(feats);
  recs = slides::run_extraction(o, pixel_stats, {});
  CHECK(recs[0].status == "failed");
  CHECK(recs[0].reason.find("bagA_999_999.png") != std::string::npos);
  CHECK(fs::last_write_time(feats) == before);
}

TEST_CASE("libramil extract: EfficientNet-Lite0 features of a real slide that train reads; a wrong encoder file refused") {
  if (!have_openslide()) return;
  const fs::path encoder = models::patch_encoder_path("efficientnet-lite0");
  if (!test::data_present(encoder, "EfficientNet-Lite0 (tools/setup.sh converts it)")) return;
  const fs::path dir = test::scratch_dir("extract_cli");
  const std::string config = patch_slide("cmu-1-small-region", dir / "run", 20);
  const std::string slide = slide_path("cmu-1-small-region").string();
  REQUIRE(test::run_libramil("extract --slides " + slide + " --patches " + (dir / "run").string() + " --out " +
                                 (dir / "run").string() + " --batch 12 --threads 2",
                             dir / "log.txt") == 0);
  const std::string log = test::read_text(dir / "log.txt");
  CHECK(log.find("1 done now") != std::string::npos);
  const fs::path feats = dir / "run" / config / "features_efficientnet-lite0" / "cmu-1-small-region.h5";
  const auto info = data::probe_feature_bag(feats.string());
  CHECK(info.n == 32);
  CHECK(info.d == 1280);
  // A second run finds the slide done.
  REQUIRE(test::run_libramil("extract --slides " + slide + " --patches " + (dir / "run").string() + " --out " + (dir / "run").string(),
                             dir / "log2.txt") == 0);
  CHECK(test::read_text(dir / "log2.txt").find("1 done before") != std::string::npos);
  // A text encoder given as the patch encoder: one line naming the file, exit 1, nothing written.
  const fs::path text_enc = encoder.parent_path() / "all-MiniLM-L6-v2.safetensors";
  if (fs::exists(text_enc)) {
    CHECK(test::run_libramil("extract --slides " + slide + " --patches " + (dir / "run").string() + " --encoder " + text_enc.string() +
                                 " --out " + (dir / "other").string(),
                             dir / "log3.txt") == 1);
    const std::string err = test::read_text(dir / "log3.txt");
    CHECK_MESSAGE(err.find(text_enc.string()) != std::string::npos, err);
    CHECK(!fs::exists(dir / "other"));
  }
}
