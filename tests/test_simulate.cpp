// The whole-slide simulator (data/sim/simulate.h): the written priors, the files it writes (read
// back with the project's own readers), determinism, the alignment knob, camelyon16's focal
// tumour share, the coordinate grid, refusal to overwrite, and a full disk (through the binary
// on a small tmpfs). A fake deterministic "text encoder" (random unit vectors seeded by a hash
// of each text) stands in for the real one in the library tests.
#include <doctest/doctest.h>
#include <hdf5.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>

#include "data/feature_bag.h"
#include "data/sim/simulate.h"
#include "data/tables.h"
#include "models/text/text_encoder.h"
#include "tensor/rng.h"
#include "tests/test_util.h"

using namespace lm;
using namespace lm::data;
namespace fs = std::filesystem;

namespace {

Tensor fake_embed(const std::vector<std::string>& texts, int64_t dt = 48) {
  std::vector<float> v(texts.size() * dt);
  for (size_t k = 0; k < texts.size(); ++k) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (unsigned char c : texts[k]) h = (h ^ c) * 0x100000001b3ull;
    double s = 0;
    for (int64_t j = 0; j < dt; ++j) s += std::pow(v[k * dt + j] = (float)philox_normal(h, (uint64_t)j), 2);
    for (int64_t j = 0; j < dt; ++j) v[k * dt + j] /= (float)std::sqrt(s);
  }
  return Tensor::from_vector(v, {(int64_t)texts.size(), dt});
}

SimulateOptions small(const std::string& task, int slides, uint64_t seed = 3) {
  SimulateOptions o;
  o.task = task;
  o.slides = slides;
  o.seed = seed;
  o.size_scale = 0.05;
  o.dim = 64;
  return o;
}

std::vector<int32_t> read_entity(const std::string& path) {
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  REQUIRE(f >= 0);
  hid_t d = H5Dopen2(f, "entity", H5P_DEFAULT);
  REQUIRE(d >= 0);
  hid_t sp = H5Dget_space(d);
  hsize_t n = 0;
  H5Sget_simple_extent_dims(sp, &n, nullptr);
  std::vector<int32_t> e(n);
  H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, e.data());
  H5Sclose(sp);
  H5Dclose(d);
  H5Fclose(f);
  return e;
}

std::string read_attr_string(const std::string& path, const char* name) {
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  REQUIRE(f >= 0);
  hid_t a = H5Aopen(f, name, H5P_DEFAULT);
  REQUIRE(a >= 0);
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  char* c = nullptr;
  std::string s;
  if (H5Aread(a, t, &c) >= 0 && c) s = c;
  if (c) H5free_memory(c);
  H5Tclose(t);
  H5Aclose(a);
  H5Fclose(f);
  return s;
}

std::string bag_path(const fs::path& dir, const std::string& name) { return (dir / "features" / (name + ".h5")).string(); }

bool has(const std::string& s, const std::string& sub) { return s.find(sub) != std::string::npos; }

}  // namespace

TEST_CASE("simulate: the written language priors") {
  std::map<std::string, std::pair<size_t, int>> want = {{"rcc", {46, 3}}, {"nsclc", {33, 2}}, {"camelyon16", {29, 2}}};
  CHECK(simulate_task_names() == std::vector<std::string>{"rcc", "nsclc", "camelyon16"});
  for (const std::string& task : simulate_task_names()) {
    CAPTURE(task);
    const TaskPriors& p = task_priors(task);
    CHECK(p.entities.size() == want[task].first);
    CHECK(p.num_classes() == want[task].second);
    CHECK(p.bag_low.size() == (size_t)p.num_classes());
    CHECK(p.bag_high.size() == (size_t)p.num_classes());
    CHECK(p.bag_priors().size() == 2 * (size_t)p.num_classes());
    REQUIRE(p.class_weight.size() == p.entities.size());
    std::set<std::string> names;
    std::vector<double> colsum(p.num_classes(), 0.0);
    for (size_t k = 0; k < p.entities.size(); ++k) {
      const std::string& t = p.entities[k];
      CAPTURE(t);
      size_t colon = t.find(": ");
      CHECK(colon != std::string::npos);
      CHECK(colon > 2);
      CHECK(t.back() == '.');
      CHECK(names.insert(p.entity_name(k)).second);
      REQUIRE(p.class_weight[k].size() == (size_t)p.num_classes());
      double any = 0;
      for (int c = 0; c < p.num_classes(); ++c) colsum[c] += p.class_weight[k][c], any += p.class_weight[k][c];
      CHECK(any > 0);
    }
    for (double s : colsum) CHECK(s > 0);
  }
  CHECK_THROWS_AS(task_priors("brca"), std::invalid_argument);
}

TEST_CASE("simulate: files read back with the project's readers") {
  auto dir = test::scratch_dir("simulate_files");
  SimulateOptions o = small("rcc", 9);
  int calls = 0;
  SimulateSummary sum = simulate_dataset(o, [&](const std::vector<std::string>& t) { ++calls; return fake_embed(t); }, dir.string());
  CHECK(calls == 1);
  const TaskPriors& p = task_priors("rcc");

  auto labels = read_labels_csv((dir / "labels.csv").string());
  REQUIRE(labels.size() == 9);
  std::map<int, int> per_class;
  for (auto& l : labels) ++per_class[l.label];
  CHECK(per_class == std::map<int, int>{{0, 3}, {1, 3}, {2, 3}});
  CHECK(labels[0].name == "rcc_sim_0001");
  CHECK(read_instance_prompts((dir / "instance_priors.json").string()) == p.entities);
  auto bag = read_bag_prompts_csv((dir / "bag_priors.csv").string());
  REQUIRE(bag.size() == 6);
  for (int c = 0; c < 3; ++c) {
    CHECK(bag[c] == p.bag_low[c]);
    CHECK(bag[3 + c] == p.bag_high[c]);
  }
  std::string readme = test::read_text(dir / "README.txt");
  CHECK(has(readme, "SIMULATED DATA"));
  CHECK(has(test::read_text(dir / "entities.csv"), "slide,label,entity,name,patches,fraction\n"));
  CHECK(sum.text_dim == 48);

  REQUIRE(sum.slides.size() == 9);
  for (size_t i = 0; i < labels.size(); ++i) {
    CAPTURE(labels[i].name);
    std::string path = bag_path(dir, labels[i].name);
    FeatureBag b = read_feature_bag(path);
    CHECK(b.name == labels[i].name);
    REQUIRE(b.features.dim() == 2);
    const int64_t n = b.features.shape()[0];
    CHECK(b.features.shape()[1] == 64);
    CHECK(n >= 16);
    CHECK(n == sum.slides[i].patches);
    REQUIRE(b.coords.defined());
    CHECK(b.coords.shape() == Shape{n, 2});
    std::vector<int64_t> xy = b.coords.to_int_vector();
    std::set<std::pair<int64_t, int64_t>> uniq;
    bool grid = true;
    for (int64_t j = 0; j < n; ++j) {
      grid = grid && xy[2 * j] % 512 == 0 && xy[2 * j + 1] % 512 == 0 && xy[2 * j] >= 0 && xy[2 * j + 1] >= 0;
      uniq.insert({xy[2 * j], xy[2 * j + 1]});
    }
    CHECK(grid);
    CHECK((int64_t)uniq.size() == n);
    std::vector<int32_t> e = read_entity(path);
    CHECK((int64_t)e.size() == n);
    int64_t bg = 0;
    bool in_range = true;
    for (int32_t v : e) {
      bg += v < 0;
      in_range = in_range && v >= -1 && v < (int32_t)p.entities.size();
    }
    CHECK(in_range);
    CHECK(bg == sum.slides[i].background);
    CHECK(bg < n);
    CHECK(has(read_attr_string(path, "simulated"), "SIMULATED"));
    CHECK(read_attr_string(path, "task") == "rcc");
  }
}

TEST_CASE("simulate: same seed gives identical files, another seed different ones") {
  auto a = test::scratch_dir("simulate_det_a"), b = test::scratch_dir("simulate_det_b"), c = test::scratch_dir("simulate_det_c");
  SimulateOptions o = small("nsclc", 4, 11);
  auto emb = [](const std::vector<std::string>& t) { return fake_embed(t); };
  simulate_dataset(o, emb, a.string());
  simulate_dataset(o, emb, b.string());
  o.seed = 12;
  simulate_dataset(o, emb, c.string());
  for (const char* f : {"labels.csv", "entities.csv", "instance_priors.json", "bag_priors.csv", "README.txt"})
    CHECK(test::read_text(a / f) == test::read_text(b / f));
  for (auto& l : read_labels_csv((a / "labels.csv").string())) {
    CAPTURE(l.name);
    CHECK(test::read_text(bag_path(a, l.name)) == test::read_text(bag_path(b, l.name)));  // byte-identical
    CHECK(read_feature_bag(bag_path(a, l.name)).features.to_float_vector() !=
          read_feature_bag(bag_path(c, l.name)).features.to_float_vector());
  }
}

TEST_CASE("simulate: the alignment knob decides whether features follow the text") {
  // Mean cosine between each tissue patch and its entity's text direction u = A z (centred).
  auto mean_cos = [](double alignment) {
    auto dir = test::scratch_dir("simulate_align");
    SimulateOptions o = small("rcc", 3, 5);
    o.dim = 128;
    o.alignment = alignment;
    auto emb = [](const std::vector<std::string>& t) { return fake_embed(t); };
    simulate_dataset(o, emb, dir.string());
    SimulatedSpace sp = simulated_space(o, fake_embed(task_priors("rcc").entities));
    CHECK(sp.text_map.shape() == Shape{128, 48});
    std::vector<float> u = sp.text_dirs.to_float_vector();
    double acc = 0;
    int64_t cnt = 0;
    for (auto& l : read_labels_csv((dir / "labels.csv").string())) {
      std::string path = bag_path(dir, l.name);
      std::vector<float> x = read_feature_bag(path).features.to_float_vector();
      std::vector<int32_t> e = read_entity(path);
      for (size_t j = 0; j < e.size(); ++j) {
        if (e[j] < 0) continue;
        double d = 0, nx = 0;
        for (int64_t i = 0; i < 128; ++i) d += x[j * 128 + i] * u[e[j] * 128 + i], nx += x[j * 128 + i] * x[j * 128 + i];
        acc += d / std::sqrt(nx);
        ++cnt;
      }
    }
    return acc / (double)cnt;
  };
  double c1 = mean_cos(1.0), c0 = mean_cos(0.0), ch = mean_cos(0.5);
  CAPTURE(c1);
  CAPTURE(ch);
  CAPTURE(c0);
  CHECK(c1 > 0.45);
  CHECK(std::abs(c0) < 0.08);
  CHECK(ch > c0 + 0.15);
  CHECK(ch < c1 - 0.1);
  // The text map is column-orthonormal (D >= Dt), so it preserves the text geometry.
  SimulateOptions o = small("rcc", 3);
  Tensor A = simulated_space(o, fake_embed(task_priors("rcc").entities)).text_map;
  std::vector<float> a = A.to_float_vector();
  for (int c1i = 0; c1i < 3; ++c1i)
    for (int c2i = 0; c2i < 3; ++c2i) {
      double d = 0;
      for (int64_t r = 0; r < 64; ++r) d += a[r * 48 + c1i] * a[r * 48 + c2i];
      CHECK(d == doctest::Approx(c1i == c2i ? 1.0 : 0.0).epsilon(1e-4));
    }
}

TEST_CASE("simulate: camelyon16 tumour slides carry a small focal share of tumour patches") {
  auto dir = test::scratch_dir("simulate_camelyon");
  SimulateOptions o = small("camelyon16", 8, 21);
  o.size_scale = 0.1;
  SimulateSummary sum = simulate_dataset(o, [](const std::vector<std::string>& t) { return fake_embed(t); }, dir.string());
  const TaskPriors& p = task_priors("camelyon16");
  std::vector<bool> tumour_entity(p.entities.size());
  for (size_t k = 0; k < p.entities.size(); ++k) tumour_entity[k] = p.class_weight[k][0] == 0 && p.class_weight[k][1] > 0;
  int tumour_slides = 0;
  for (auto& s : sum.slides) {
    CAPTURE(s.name);
    std::vector<int32_t> e = read_entity(bag_path(dir, s.name));
    int64_t t = 0;
    for (int32_t v : e) t += v >= 0 && tumour_entity[v];
    double frac = (double)t / (double)e.size();
    if (s.label == 1) {
      ++tumour_slides;
      CHECK(t >= 1);
      CHECK(frac >= 0.01 - 0.5 / (double)e.size());
      CHECK(frac <= 0.08 + 0.5 / (double)e.size());
      CHECK(s.focal_fraction == doctest::Approx(frac));
    } else {
      CHECK(t == 0);
      CHECK(s.focal_fraction == 0.0);
    }
  }
  CHECK(tumour_slides == 4);
}

TEST_CASE("simulate: bag sizes vary and scale with --size-scale") {
  auto dir = test::scratch_dir("simulate_sizes");
  SimulateOptions o = small("rcc", 12, 8);
  o.dim = 8;
  o.size_scale = 0.2;
  SimulateSummary sum = simulate_dataset(o, [](const std::vector<std::string>& t) { return fake_embed(t); }, dir.string());
  int64_t mn = INT64_MAX, mx = 0;
  for (auto& s : sum.slides) mn = std::min(mn, s.patches), mx = std::max(mx, s.patches);
  CHECK(mn >= 50);     // 250 * 0.2
  CHECK(mx <= 8000);   // 40000 * 0.2
  CHECK(mx > 2 * mn);  // realistic spread
}

TEST_CASE("simulate: refuses a non-empty output directory and bad options") {
  auto dir = test::scratch_dir("simulate_refuse");
  test::run_or_throw("echo x > " + (dir / "keep.txt").string());
  SimulateOptions o = small("camelyon16", 2);
  auto emb = [](const std::vector<std::string>& t) { return fake_embed(t); };
  std::string msg;
  try {
    simulate_dataset(o, emb, dir.string());
  } catch (const std::exception& e) {
    msg = e.what();
  }
  CHECK(has(msg, "not empty"));
  CHECK_FALSE(fs::exists(dir / "labels.csv"));
  o.overwrite = true;
  CHECK_NOTHROW(simulate_dataset(o, emb, dir.string()));
  CHECK(fs::exists(dir / "keep.txt"));
  CHECK(read_labels_csv((dir / "labels.csv").string()).size() == 2);

  auto fresh = test::scratch_dir("simulate_bad") / "out";
  SimulateOptions bad = small("rcc", 2);  // fewer slides than classes
  CHECK_THROWS_AS(simulate_dataset(bad, emb, fresh.string()), std::invalid_argument);
  bad = small("rcc", 6);
  bad.alignment = 1.5;
  CHECK_THROWS_AS(simulate_dataset(bad, emb, fresh.string()), std::invalid_argument);
  bad = small("kidney", 6);
  CHECK_THROWS_AS(simulate_dataset(bad, emb, fresh.string()), std::invalid_argument);
  bad = small("rcc", 6);
  CHECK_THROWS_AS(simulate_dataset(bad, [](const std::vector<std::string>&) { return Tensor::zeros({3, 4}); }, fresh.string()),
                  std::runtime_error);
  CHECK_FALSE(fs::exists(fresh));  // nothing written on bad input
}

// A full disk (a 200 KiB tmpfs, which needs root to mount: skipped, with the reason, when the
// mount fails): `libramil simulate` ends with one line and exit 1 (it used to say "HDF5 failed
// to flush" and then crash in HDF5's exit handler, SIGSEGV, leaving .rcc_sim_0006.h5.tmp) and
// leaves nothing on the disk: no temporary, no half dataset.
TEST_CASE("simulate: a full disk is one error line, exit 1, and nothing left behind") {
  if (!test::data_present(models::default_encoder_path(), "the default text encoder")) return;
  const fs::path dir = test::scratch_dir("simulate_full_disk"), mnt = dir / "mnt";
  fs::create_directories(mnt);
  const fs::path mount_err = dir / "mount.err";
  if (std::system(("mount -t tmpfs -o size=200k tmpfs " + mnt.string() + " 2> " + mount_err.string()).c_str()) != 0) {
    std::fprintf(stderr, "SKIPPED: cannot mount a 200 KiB tmpfs to fill (%s)\n", test::read_text(mount_err).c_str());
    return;
  }
  struct Unmount {
    fs::path at;
    ~Unmount() { (void)std::system(("umount " + at.string()).c_str()); }
  } unmount{mnt};
  const fs::path out = mnt / "sim";
  // 12 slides of ~15-55 KB: the first five fit, the sixth does not.
  const int rc = test::run_libramil("simulate --task rcc --slides 12 --size-scale 0.02 --dim 64 --threads 1 --out " + out.string(),
                                    dir / "sim.log");
  const std::string log = test::read_text(dir / "sim.log");
  INFO("output: " << log);
  CHECK(rc == 1);
  CHECK(log.rfind("libramil: error: cannot write " + (out / "features").string() + "/rcc_sim_", 0) == 0);
  CHECK(log.find("No space left on device") != std::string::npos);
  CHECK(std::count(log.begin(), log.end(), '\n') == 1);
  CHECK_MESSAGE(fs::is_empty(mnt), "left on the full disk: " << (fs::exists(out) ? out.string() : std::string("?")));
  // Sanity: the disk takes a dataset that fits.
  CHECK(test::run_libramil("simulate --task rcc --slides 3 --size-scale 0.02 --dim 16 --threads 1 --out " + out.string(),
                           dir / "sim_small.log") == 0);
  CHECK(fs::exists(out / "labels.csv"));
}
