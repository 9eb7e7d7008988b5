// data/: feature bags (HDF5 via the C API, torch.save .pt via the zip reader and restricted
// pickle interpreter), label / split / prior tables, the few-shot split maker, metrics against
// scikit-learn, and the parallel feature cache. Fixtures come from tools/data_fixtures.py
// (h5py, torch, sklearn), run once per test binary invocation.
#include <doctest/doctest.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "data/feature_bag.h"
#include "data/feature_cache.h"
#include "data/metrics.h"
#include "data/tables.h"
#include "tests/test_util.h"

namespace fs = std::filesystem;
using namespace lm;
using namespace lm::data;

namespace {

const fs::path& fixtures() {
  static const fs::path dir = [] {
    fs::path d = test::scratch_dir("data_fixtures");
    test::run_python_tool("data_fixtures.py", d.string() + " > " + (d / "log.txt").string() + " 2>&1");
    return d;
  }();
  return dir;
}

std::string fx(const std::string& name) { return (fixtures() / name).string(); }

// The message of the exception `f` throws, or "<no exception>".
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "<no exception>";
}

bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

template <class T>
std::vector<T> read_raw(const std::string& path) {
  std::string s = test::read_text(path);
  std::vector<T> v(s.size() / sizeof(T));
  std::memcpy(v.data(), s.data(), v.size() * sizeof(T));
  return v;
}

// Features as float32 values (either stored dtype).
std::vector<float> values(const Tensor& t) { return t.to_float_vector(); }

void check_bag(const std::string& file, int64_t n, int64_t d, bool with_coords) {
  CAPTURE(file);
  FeatureBag b = read_feature_bag(fx(file));
  CHECK(b.name == fs::path(file).stem().string());
  REQUIRE(b.features.defined());
  CHECK(b.features.dtype() == DType::F32);
  CHECK(b.features.is_contiguous());
  REQUIRE(b.features.shape() == Shape{n, d});
  std::vector<float> want = read_raw<float>(fx(file + ".expect"));
  std::vector<float> got = values(b.features);
  REQUIRE(want.size() == got.size());
  int64_t mismatches = 0;
  for (size_t i = 0; i < got.size(); ++i) mismatches += std::memcmp(&want[i], &got[i], 4) != 0;
  CHECK(mismatches == 0);
  CHECK(b.coords.defined() == with_coords);
  if (with_coords) {
    CHECK(b.coords.dtype() == DType::I64);
    CHECK(b.coords.shape() == Shape{n, 2});
    CHECK(b.coords.to_int_vector() == read_raw<int64_t>(fx(file + ".coords")));
  }
  BagInfo info = probe_feature_bag(fx(file));
  CHECK(info.n == n);
  CHECK(info.d == d);
}

void check_error(const std::string& file, const std::vector<std::string>& parts, DType keep = DType::F32) {
  CAPTURE(file);
  std::string msg = error_of([&] { read_feature_bag(fx(file), keep); });
  CAPTURE(msg);
  CHECK(has(msg, file));
  for (const auto& p : parts) {
    CAPTURE(p);
    CHECK(has(msg, p));
  }
}

}  // namespace

TEST_CASE("feature bags: HDF5 valid files") {
  check_bag("f32.h5", 50, 16, true);
  check_bag("f16.hdf5", 40, 24, true);
  check_bag("f64.h5", 30, 10, true);
  check_bag("batch1.h5", 30, 8, false);

  SUBCASE("float16 kept natively") {
    FeatureBag b = read_feature_bag(fx("f16.hdf5"), DType::F16);
    CHECK(b.features.dtype() == DType::F16);
    CHECK(values(b.features) == read_raw<float>(fx("f16.hdf5.expect")));
    BagInfo info = probe_feature_bag(fx("f16.hdf5"));
    CHECK(info.stored == DType::F16);
    // float32 data rounded to float16 on request
    FeatureBag h = read_feature_bag(fx("f32.h5"), DType::F16);
    CHECK(h.features.dtype() == DType::F16);
    std::vector<float> want = read_raw<float>(fx("f32.h5.expect"));
    std::vector<float> got = values(h.features);
    for (size_t i = 0; i < want.size(); ++i) CHECK(got[i] == half_to_float(float_to_half(want[i])));
  }
}

TEST_CASE("feature bags: HDF5 errors name the file and the problem") {
  check_error("missing.h5", {"no such file"});
  check_error("garbage.h5", {"not an HDF5 file"});
  check_error("truncated.h5", {"truncated"});
  check_error("nofeatures.h5", {"no dataset 'features'", "coords", "feats"});
  check_error("nan.h5", {"slide nan: 3 NaN/Inf values in features"});
  check_error("int.h5", {"integer", "int32"});
  check_error("zero.h5", {"zero instances"});
  check_error("rank1.h5", {"rank 1"});
  check_error("badcoords.h5", {"coords have 49 rows", "50 instances"});
  check_error("floatcoords.h5", {"coords", "integer"});
  CHECK(has(error_of([] { read_feature_bag(fx("labels_ok.csv")); }), "unsupported feature file extension"));
  CHECK(has(error_of([] { read_feature_bag(fx("f32.h5"), DType::F64); }), "keep must be"));
}

TEST_CASE("feature bags: torch.save files") {
  check_bag("f32.pt", 20, 12, false);
  check_bag("f16.pt", 20, 12, false);
  check_bag("f64.pt", 7, 5, false);
  check_bag("bf16.pt", 9, 6, false);
  check_bag("transposed.pt", 20, 12, false);
  check_bag("slice.pt", 20, 12, false);
  check_bag("strided.pt", 12, 5, false);
  check_bag("batch1.pt", 15, 4, false);
  check_bag("grad.pt", 6, 3, false);
  check_bag("wide.pt", 300, 257, false);
  check_bag("rezipped.pt", 20, 12, false);
  FeatureBag h = read_feature_bag(fx("f16.pt"), DType::F16);
  CHECK(h.features.dtype() == DType::F16);
  CHECK(values(h.features) == read_raw<float>(fx("f16.pt.expect")));
  CHECK(probe_feature_bag(fx("bf16.pt")).stored == DType::BF16);
  // The sliced view's storage holds 40 rows; only the 20 viewed are kept.
  CHECK(read_feature_bag(fx("slice.pt")).features.impl().storage->nbytes() < 40 * 12 * 4);
}

TEST_CASE("feature bags: .pt content other than one plain tensor is refused without executing it") {
  const std::string only = "only a plain tensor is accepted";
  check_error("dict.pt", {"object of type dict", only});
  check_error("list.pt", {"object of type list", only});
  check_error("param.pt", {"torch.nn.Parameter", only});
  check_error("subclass.pt", {"tensor subclass", only});
  check_error("evil.pt", {"object of type os.system", only});
  check_error("reduce.pt", {"object of type posix.system", only});
  check_error("int.pt", {"LongStorage", "floating point"});
  check_error("vector.pt", {"rank 1"});
  check_error("nan.pt", {"slide nan: 1 NaN/Inf values in features"});
  check_error("compressed.pt", {"compressed"});
  check_error("legacy.pt", {"legacy"});
  check_error("truncated.pt", {"truncated"});
  check_error("notzip.pt", {"not a zip"});
  check_error("missing.pt", {"no such file"});
  CHECK_FALSE(fs::exists(fixtures() / "PWNED_os"));
  CHECK_FALSE(fs::exists(fixtures() / "PWNED_reduce"));
}

TEST_CASE("feature bags: a refused .pt file leaves no file descriptor open") {
  // The zip reader opens the file before it checks it; a check that throws in its constructor
  // must still close it (fuzz_pt once ran out of descriptors after ~1000 corrupt inputs).
  auto open_descriptors = [] {
    size_t n = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator("/proc/self/fd")) ++n;
    return n;
  };
  const size_t before = open_descriptors();
  for (const char* name : {"truncated.pt", "notzip.pt", "compressed.pt", "legacy.pt", "dict.pt"})
    for (int i = 0; i < 50; ++i) {
      CHECK_THROWS(read_feature_bag(fx(name)));
      CHECK_THROWS(probe_feature_bag(fx(name)));
    }
  CHECK(open_descriptors() == before);
}

TEST_CASE("labels CSV") {
  auto l = read_labels_csv(fx("labels_ok.csv"));
  REQUIRE(l.size() == 4);
  CHECK(l[0].name == "slide_a");
  CHECK(l[0].label == 0);
  CHECK(l[1].name == "slide,b");
  CHECK(l[1].label == 1);
  CHECK(l[2].name == "slide_c");
  CHECK(l[2].label == 2);
  CHECK(l[3].name == "slide_d");
  CHECK_NOTHROW(validate_labels(l, 3, fx("labels_ok.csv")));
  std::string m = error_of([&] { validate_labels(l, 2, fx("labels_ok.csv")); });
  CHECK(has(m, "slide_c"));
  CHECK(has(m, "labels_ok.csv"));

  struct Bad {
    const char* file;
    std::vector<std::string> parts;
  };
  for (const Bad& b : std::vector<Bad>{{"labels_nolabel.csv", {"line 1", "`label`"}},
                                       {"labels_noname.csv", {"line 1", "`name`"}},
                                       {"labels_badint.csv", {"line 3", "x1", "not an integer"}},
                                       {"labels_float.csv", {"line 3", "1.5", "not an integer"}},
                                       {"labels_dup.csv", {"line 4", "duplicate", "s1", "line 2"}},
                                       {"labels_short.csv", {"line 3", "fields"}},
                                       {"labels_empty.csv", {"empty file"}},
                                       {"labels_headeronly.csv", {"no data rows"}},
                                       {"labels_missing.csv", {"no such file"}}}) {
    std::string msg = error_of([&] { read_labels_csv(fx(b.file)); });
    CAPTURE(msg);
    CHECK(has(msg, b.file));
    for (const auto& p : b.parts) CHECK(has(msg, p));
  }
  auto r = read_labels_csv(fx("labels_range.csv"));
  std::string msg = error_of([&] { validate_labels(r, 2, fx("labels_range.csv")); });
  CHECK(has(msg, "slide_far"));
  CHECK(has(msg, "labels_range.csv"));
}

TEST_CASE("split JSON") {
  auto s = read_split_json(fx("split_ok.json"), 2);
  REQUIRE(s.size() == 2);
  CHECK(s[0].train == std::vector<std::string>{"a", "b"});
  CHECK(s[0].val == std::vector<std::string>{"c"});
  CHECK(s[1].test == std::vector<std::string>{"b", "e"});
  CHECK(read_split_json(fx("split_ok.json")).size() == 2);  // inferred fold count
  CHECK(has(error_of([] { read_split_json(fx("split_ok.json"), 3); }), "missing key 'train_2'"));
  std::string m = error_of([] { read_split_json(fx("split_missing.json"), 2); });
  CHECK(has(m, "split_missing.json"));
  CHECK(has(m, "missing key 'val_1'"));
  m = error_of([] { read_split_json(fx("split_overlap.json"), 2); });
  CHECK(has(m, "split_overlap.json"));
  CHECK(has(m, "slide b"));
  CHECK(has(m, "train_0"));
  CHECK(has(m, "test_0"));
  CHECK(has(error_of([] { read_split_json(fx("split_nonstring.json"), 2); }), "not a string"));
  CHECK(has(error_of([] { read_split_json(fx("split_invalid.json"), 2); }), "invalid JSON"));

  fs::path dir = test::scratch_dir("data_split_write");
  std::string out = (dir / "splits.json").string();
  write_split_json(out, s);
  auto back = read_split_json(out, 2);
  for (int f = 0; f < 2; ++f) {
    CHECK(back[f].train == s[f].train);
    CHECK(back[f].val == s[f].val);
    CHECK(back[f].test == s[f].test);
  }
  int files = 0;
  for ([[maybe_unused]] auto& e : fs::directory_iterator(dir)) ++files;
  CHECK(files == 1);  // no temporary left behind
}

TEST_CASE("prior files") {
  auto p = read_instance_prompts(fx("prompts_ok.json"));
  CHECK(p == std::vector<std::string>{"a tile of tumour", "stroma, with \"fibres\"", "\xc3\xbcn\xc3\xaf" "code"});
  CHECK(has(error_of([] { read_instance_prompts(fx("prompts_bad.json")); }), "entry 1 is not a string"));
  CHECK(has(error_of([] { read_instance_prompts(fx("prompts_obj.json")); }), "prompts_obj.json"));
  auto b = read_bag_prompts_csv(fx("bag_ok.csv"));
  CHECK(b == std::vector<std::string>{"first prior", "with, a comma", "say \"hi\"", "two\nlines", "unquoted text"});
  std::string m = error_of([] { read_bag_prompts_csv(fx("bag_twofields.csv")); });
  CHECK(has(m, "bag_twofields.csv"));
  CHECK(has(m, "line 2"));
  m = error_of([] { read_bag_prompts_csv(fx("bag_unterminated.csv")); });
  CHECK(has(m, "bag_unterminated.csv"));
  CHECK(has(m, "line 2"));
  CHECK(has(m, "never closed"));
}

TEST_CASE("few-shot split maker") {
  std::vector<LabeledSlide> labels;
  const int counts[3] = {10, 7, 12};
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < counts[c]; ++i) {
      std::string name = "c";  // built with += : g++ 12 -O3 gives a false -Wrestrict on "c" + ...
      name += std::to_string(c);
      name += "_s";
      name += std::to_string(i);
      labels.push_back({name, c, ""});
    }
  std::map<std::string, int> label_of;
  for (auto& s : labels) label_of[s.name] = s.label;

  auto a = make_few_shot_splits(labels, 3, 4, 5, 7);
  auto again = make_few_shot_splits(labels, 3, 4, 5, 7);
  auto other = make_few_shot_splits(labels, 3, 4, 5, 8);
  REQUIRE(a.size() == 5);
  bool folds_differ = false, seeds_differ = false;
  for (int f = 0; f < 5; ++f) {
    CHECK(a[f].train == again[f].train);
    CHECK(a[f].val == again[f].val);
    CHECK(a[f].test == again[f].test);
    if (f > 0 && a[f].train != a[0].train) folds_differ = true;
    if (a[f].train != other[f].train) seeds_differ = true;
    // per-class counts: r = 6, 3, 8 -> val 3, 1, 4 and test 3, 2, 4
    const int want_val[3] = {3, 1, 4}, want_test[3] = {3, 2, 4};
    int tr[3] = {0, 0, 0}, va[3] = {0, 0, 0}, te[3] = {0, 0, 0};
    for (auto& n : a[f].train) ++tr[label_of.at(n)];
    for (auto& n : a[f].val) ++va[label_of.at(n)];
    for (auto& n : a[f].test) ++te[label_of.at(n)];
    for (int c = 0; c < 3; ++c) {
      CHECK(tr[c] == 4);
      CHECK(va[c] == want_val[c]);
      CHECK(te[c] == want_test[c]);
    }
    std::set<std::string> all;
    for (auto* v : {&a[f].train, &a[f].val, &a[f].test})
      for (auto& n : *v) CHECK(all.insert(n).second);
    CHECK(all.size() == labels.size());
  }
  CHECK(folds_differ);
  CHECK(seeds_differ);

  std::string m = error_of([&] { make_few_shot_splits(labels, 3, 6, 5, 7); });
  CHECK(has(m, "class 1 has 7 slides"));
  CHECK(has(m, "at least 8"));
  CHECK(has(error_of([&] { make_few_shot_splits(labels, 2, 1, 5, 7); }), "c2_s"));  // label 2 out of range

  // Round trip through the JSON writer/reader.
  fs::path dir = test::scratch_dir("data_fewshot");
  write_split_json((dir / "s.json").string(), a);
  auto back = read_split_json((dir / "s.json").string(), 5);
  CHECK(back[3].test == a[3].test);
}

TEST_CASE("metrics agree with scikit-learn") {
  auto cases = nlohmann::json::parse(test::read_text(fixtures() / "metrics.json"));
  REQUIRE(cases.size() >= 10);
  for (size_t k = 0; k < cases.size(); ++k) {
    const auto& c = cases[k];
    CAPTURE(k);
    int C = c["C"];
    std::vector<double> probs = c["probs"];
    std::vector<int> labels = c["labels"];
    Metrics m = compute_metrics(probs, labels, C);
    CHECK(std::abs(m.acc - c["acc"].get<double>()) <= 1e-12);
    CHECK(std::abs(m.auc - c["auc"].get<double>()) <= 1e-12);
    CHECK(std::abs(m.f1 - c["f1"].get<double>()) <= 1e-12);
    Metrics t = compute_metrics(Tensor::from_vector(probs, {(int64_t)labels.size(), (int64_t)C}), labels);
    CHECK(t.acc == m.acc);
    CHECK(t.auc == m.auc);
    CHECK(t.f1 == m.f1);
    Tensor pt = Tensor::from_vector(probs, {(int64_t)labels.size(), (int64_t)C});  // float64
    CHECK(accuracy(pt, labels) == m.acc);
    CHECK(roc_auc(pt, labels) == m.auc);
    CHECK(f1(pt, labels) == m.f1);
  }
}

TEST_CASE("metrics edge cases and mean/std") {
  // A class absent from the labels: AUC undefined (NaN), accuracy and F1 still defined.
  std::vector<double> p = {0.7, 0.2, 0.1, 0.1, 0.8, 0.1, 0.6, 0.3, 0.1};
  std::vector<int> y = {0, 1, 0};
  CHECK(std::isnan(roc_auc(p, y, 3)));
  CHECK(accuracy(p, y, 3) == 1.0);
  CHECK(f1(p, y, 3) == 1.0);  // macro over the classes present (0 and 1), like sklearn
  CHECK(std::isnan(roc_auc({0.4, 0.6, 0.3, 0.7}, {1, 1}, 2)));
  // Binary: no positive predictions -> F1 = 0.
  CHECK(f1({0.9, 0.1, 0.8, 0.2}, {1, 1}, 2) == 0.0);
  CHECK(binary_roc_auc({0.1, 0.4, 0.35, 0.8}, {0, 0, 1, 1}) == 0.75);
  CHECK(binary_roc_auc({0.5, 0.5, 0.5, 0.5}, {0, 1, 0, 1}) == 0.5);
  CHECK(has(error_of([] { accuracy({0.5, 0.5}, {2}, 2); }), "outside 0..1"));
  CHECK(has(error_of([] { accuracy({0.5, 0.5, 0.1}, {0}, 2); }), "3 probabilities"));

  MeanStd ms = mean_std({0.9, 0.8, 0.7, 0.95, 0.85});
  CHECK(ms.mean == doctest::Approx(0.84).epsilon(1e-14));
  CHECK(ms.std == doctest::Approx(0.0961769203083567).epsilon(1e-12));  // numpy std(ddof=1)
  CHECK(std::isnan(mean_std({1.0}).std));
}

TEST_CASE("feature cache") {
  const std::vector<std::string> files = {"f32.h5",    "f16.hdf5",      "f64.h5",  "batch1.h5", "slice.pt",
                                          "strided.pt", "transposed.pt", "bf16.pt", "wide.pt"};
  std::vector<std::string> paths;
  for (auto& f : files) paths.push_back(fx(f));

  SUBCASE("float32, parallel, progress") {
    std::atomic<int64_t> calls{0}, last{0}, last_total{0};
    FeatureCacheOptions o;
    o.workers = 3;
    o.progress = [&](int64_t loaded, int64_t total) {
      ++calls;
      last = loaded;
      last_total = total;
    };
    FeatureCache cache(o);
    cache.load(paths);
    CHECK(calls == (int64_t)files.size());
    CHECK(last == (int64_t)files.size());
    CHECK(last_total == (int64_t)files.size());
    CHECK(cache.size() == files.size());
    int64_t bytes = 0;
    for (auto& f : files) {
      CAPTURE(f);
      std::string name = fs::path(f).stem().string();
      REQUIRE(cache.contains(name));
      Tensor t = cache.get(name);
      CHECK(t.dtype() == DType::F32);
      CHECK(t.to_float_vector() == read_raw<float>(fx(f + ".expect")));
      bytes += (int64_t)t.nbytes();
    }
    CHECK(cache.bytes() == bytes);
    CHECK(has(error_of([&] { cache.get("nope"); }), "nope"));
    CHECK(has(error_of([&] { cache.load({fx("f32.pt")}); }), "more than once"));
    cache.load_named({{"f32_pt", fx("f32.pt")}});  // explicit names avoid the clash
    CHECK(cache.get("f32_pt").to_float_vector() == read_raw<float>(fx("f32.pt.expect")));
  }
  SUBCASE("float16 storage converts back on get") {
    FeatureCacheOptions o;
    o.workers = 2;
    o.store = DType::F16;
    FeatureCache cache(o);
    cache.load(paths);
    CHECK(cache.stored("f32").dtype() == DType::F16);
    std::vector<float> want = read_raw<float>(fx("f32.h5.expect"));
    std::vector<float> got = cache.get("f32").to_float_vector();
    REQUIRE(got.size() == want.size());
    for (size_t i = 0; i < want.size(); ++i) CHECK(got[i] == half_to_float(float_to_half(want[i])));
    CHECK(cache.get("f16").to_float_vector() == read_raw<float>(fx("f16.hdf5.expect")));
  }
  SUBCASE("byte budget") {
    FeatureCacheOptions o;
    o.byte_budget = 10000;
    FeatureCache cache(o);
    std::string m = error_of([&] { cache.load(paths); });
    CHECK(has(m, "need"));
    CHECK(has(m, "budget"));
    CHECK(has(m, "10000 bytes"));
    CHECK(cache.size() == 0);
  }
  SUBCASE("failures are collected") {
    FeatureCache cache;
    std::string m = error_of([&] { cache.load({fx("f32.h5"), fx("nan.h5"), fx("dict.pt"), fx("missing.h5")}); });
    CHECK(has(m, "2 of 4 slides failed to open"));
    CHECK(has(m, "dict.pt"));
    CHECK(has(m, "missing.h5"));
    m = error_of([&] { cache.load_named({{"a", fx("f32.h5")}, {"b", fx("nan.h5")}, {"c", fx("nan.pt")}}); });
    CHECK(has(m, "2 of 3 slides failed to load"));
    CHECK(has(m, "slide nan: 3 NaN/Inf"));
    CHECK(has(m, "nan.pt"));
    CHECK(cache.size() == 0);
  }
}
