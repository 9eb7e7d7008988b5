// Input validation through the real binary: for each rule, a bad input written by
// tools/make_bad_inputs.py (next to a tiny dataset from tools/make_tiny_dataset.py) makes
// `libramil train | eval | dump | split | tokenize` exit non-zero with ONE error line on
// stderr that names the file (or the slide) and the problem, and leaves no output behind
// (the --save_dir is not created, an --out file is not created or changed).
#include <doctest/doctest.h>

#include <algorithm>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <vector>

#include "data/tables.h"
#include "tests/test_util.h"

using namespace lm;
namespace fs = std::filesystem;

namespace {

struct Result {
  int rc = -1;
  std::string err;
};

// Runs `libramil ARGS` (through sh, so `prefix` may hold e.g. `ulimit -f 0;`); stdin is
// /dev/null unless ARGS redirects it.
Result run(const std::string& args, const fs::path& log_dir, const std::string& tag, const std::string& prefix = "") {
  fs::path out = log_dir / (tag + ".out"), err = log_dir / (tag + ".err");
  std::string cmd = prefix + (test::binary_dir() / "libramil").string() + " " + args + " < /dev/null > " + out.string() +
                    " 2> " + err.string();
  int rc = std::system(("sh -c '" + cmd + "'").c_str());
  Result r;
  r.rc = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  r.err = test::read_text(err);
  return r;
}

const fs::path& dataset() {
  static const fs::path d = [] {
    fs::path dir = test::scratch_dir("validation");
    test::run_python_tool("make_tiny_dataset.py", dir.string() + " --classes 2 --per-class 6 --dim 16 --folds 2 --seed 3");
    test::run_python_tool("make_bad_inputs.py", dir.string());
    fs::create_directories(dir / "runs");
    fs::create_directories(dir / "logs");
    return dir;
  }();
  return d;
}

std::string p(const std::string& rel) { return (dataset() / rel).string(); }

// `train` with the good inputs, flags replaced by `over` (an empty value drops the flag).
std::string train_args(const std::string& save_dir, const std::map<std::string, std::string>& over = {}) {
  std::vector<std::pair<std::string, std::string>> flags = {
      {"--data_csv", p("labels.csv")},           {"--data_split_json", p("split.json")},
      {"--h5_file_dir", p("features")},          {"--instance_path", p("instance_priors.json")},
      {"--bag_path", p("bag_priors.csv")},       {"--instance_embeddings", p("z_ins.safetensors")},
      {"--bag_embeddings", p("z_bag.safetensors")}, {"--epochs", "1"}, {"--folds", "2"}, {"--heads", "2"},
      {"--num_vis_prototypes", "3"},             {"--threads", "1"},  {"--save_dir", save_dir}};
  std::string a = "train --quiet";
  std::map<std::string, std::string> rest = over;
  for (auto& [k, v] : flags) {
    auto it = rest.find(k);
    std::string val = it == rest.end() ? v : it->second;
    if (it != rest.end()) rest.erase(it);
    if (!val.empty()) a += " " + k + " " + val;
  }
  for (auto& [k, v] : rest) a += " " + k + (v.empty() ? "" : " " + v);
  return a;
}

// One error line ("libramil: error: ..."), holding every needle.
void expect_error(const Result& r, const std::vector<std::string>& needles) {
  CHECK(r.rc != 0);
  INFO("stderr: " << r.err);
  CHECK(r.err.rfind("libramil: error: ", 0) == 0);
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  for (const auto& n : needles) CHECK_MESSAGE(r.err.find(n) != std::string::npos, "missing '" << n << "'");
}

// A train run with `over` that must fail with `needles` and must not create its --save_dir.
void train_fails(const std::string& tag, const std::map<std::string, std::string>& over,
                 const std::vector<std::string>& needles) {
  CAPTURE(tag);
  fs::path save = dataset() / "runs" / tag;
  Result r = run(train_args(save.string(), over), dataset() / "logs", tag);
  expect_error(r, needles);
  CHECK_MESSAGE(!fs::exists(save), "the run directory was created: " << save);
}

}  // namespace

TEST_CASE("validation: feature bags (HDF5 and .pt)") {
  const std::string victim = "slide_c0_00";
  auto dir = [&](const std::string& c) { return p("bad/feat_" + c); };
  auto file = [&](const std::string& c, const char* ext = ".h5") { return "feat_" + c + "/" + victim + ext; };
  train_fails("feat_missing", {{"--h5_file_dir", dir("missing")}}, {victim, "no feature file", "feat_missing"});
  train_fails("feat_no_features", {{"--h5_file_dir", dir("no_features")}}, {file("no_features"), "no dataset 'features'"});
  train_fails("feat_rank", {{"--h5_file_dir", dir("rank")}}, {file("rank"), "rank 1"});
  train_fails("feat_rank3", {{"--h5_file_dir", dir("rank3")}}, {file("rank3"), "rank 3"});
  train_fails("feat_width", {{"--h5_file_dir", dir("width")}}, {file("width"), "feature width 8 differs", "16"});
  train_fails("feat_zero", {{"--h5_file_dir", dir("zero")}}, {file("zero"), "zero instances"});
  train_fails("feat_nan", {{"--h5_file_dir", dir("nan")}}, {file("nan"), "slide " + victim, "5 NaN/Inf values"});
  train_fails("feat_int", {{"--h5_file_dir", dir("int")}}, {file("int"), "integer-typed", "int32"});
  train_fails("feat_f64_overflow", {{"--h5_file_dir", dir("f64_overflow")}}, {file("f64_overflow"), "3 feature values overflow float32"});
  train_fails("feat_not_hdf5", {{"--h5_file_dir", dir("not_hdf5")}}, {file("not_hdf5"), "not an HDF5 file"});
  // A pickle that would run os.system is refused without being executed.
  train_fails("feat_pt_exec", {{"--h5_file_dir", dir("pt_exec")}},
              {file("pt_exec", ".pt"), "posix.system", "only a plain tensor is accepted"});
  CHECK_MESSAGE(!fs::exists(dataset() / "bad" / "PWNED"), "the .pt pickle was executed");
  train_fails("feat_pt_dict", {{"--h5_file_dir", dir("pt_dict")}}, {file("pt_dict", ".pt"), "dict", "only a plain tensor is accepted"});
}

TEST_CASE("validation: labels CSV") {
  auto bad = [&](const std::string& f) { return p("bad/" + f); };
  train_fails("labels_missing_slide", {{"--data_csv", bad("labels_missing_slide.csv")}},
              {"split.json", "slide_c0_00", "has no label in", "labels_missing_slide.csv"});
  train_fails("labels_negative", {{"--data_csv", bad("labels_negative.csv")}},
              {"labels_negative.csv", "slide_c0_00 has label -1, outside 0..1"});
  train_fails("labels_range", {{"--data_csv", bad("labels_range.csv")}, {"--num_classes", "2"}},
              {"labels_range.csv", "slide_c0_00 has label 2, outside 0..1"});
  train_fails("labels_duplicate", {{"--data_csv", bad("labels_duplicate.csv")}}, {"labels_duplicate.csv", "duplicate slide name"});
  train_fails("labels_not_int", {{"--data_csv", bad("labels_not_int.csv")}}, {"labels_not_int.csv", "'tumour'", "not an integer"});
  train_fails("labels_no_column", {{"--data_csv", bad("labels_no_column.csv")}}, {"labels_no_column.csv", "header lacks the column `name`"});
}

TEST_CASE("validation: split JSON") {
  auto bad = [&](const std::string& f) { return p("bad/" + f); };
  train_fails("split_missing_key", {{"--data_split_json", bad("split_missing_key.json")}}, {"split_missing_key.json", "missing key 'val_0'"});
  train_fails("split_folds", {{"--folds", "3"}}, {"split.json", "missing key 'train_2'"});
  train_fails("split_overlap", {{"--data_split_json", bad("split_overlap.json")}}, {"split_overlap.json", "in both train_0 and test_0"});
  train_fails("split_class_absent", {{"--data_split_json", bad("split_class_absent.json")}},
              {"split_class_absent.json", "class 1 is absent from 'train_0'"});
  train_fails("split_unknown_slide", {{"--data_split_json", bad("split_unknown_slide.json")}},
              {"split_unknown_slide.json", "slide_unknown_99", "has no label"});
  train_fails("split_not_json", {{"--data_split_json", bad("split_not_json.json")}}, {"split_not_json.json", "invalid JSON"});
}

TEST_CASE("validation: model and optimizer flags, before anything is created") {
  train_fails("flag_vis_prototypes", {{"--num_vis_prototypes", "0"}}, {"--num_vis_prototypes 0"});
  train_fails("flag_ot_epsilon", {{"--ot_epsilon", "nan"}}, {"--ot_epsilon nan"});
  train_fails("flag_heads", {{"--heads", "7"}}, {"--heads 7", "feature width 16"});
  train_fails("flag_lr", {{"--lr", "nan"}}, {"--lr nan"});
  train_fails("flag_warmup", {{"--warmup_steps", "-1"}}, {"--warmup_steps -1"});
  train_fails("flag_shots", {{"--shots", "0"}}, {"--shots 0"});
  train_fails("flag_num_classes", {{"--num_classes", "0"}}, {"--num_classes 0"});
  train_fails("flag_threads", {{"--threads", "-1"}}, {"--threads -1"});
  train_fails("flag_epochs", {{"--epochs", "0"}}, {"--epochs 0"});
  train_fails("flag_folds", {{"--folds", "0"}}, {"--folds 0"});
  train_fails("flag_ot_iter", {{"--ot_iter", "0"}}, {"--ot_iter 0"});
  train_fails("flag_weight_decay", {{"--weight_decay", "-0.5"}}, {"--weight_decay -0.5"});
  train_fails("flag_mode", {{"--mode", "papers"}}, {"--mode papers"});
  train_fails("flag_ablation", {{"--ablation", "concat"}, {"--mode", "reference"}}, {"--ablation concat", "paper mode"});
}

TEST_CASE("validation: a label beyond the task's classes is named with its slide and the labels file") {
  // A slide of test_0 relabelled 2 (a typo) in the 2-class task: without --num_classes the
  // classes become 0..2 and class 2 has no training slide. The error used to say only
  // "split.json: fold 0: class 2 is absent from 'train_0'".
  const auto split = nlohmann::json::parse(test::read_text(p("split.json")));
  const std::string victim = split.at("test_0").at(0).get<std::string>();
  const fs::path typo = dataset() / "typo" / "labels_typo.csv";
  fs::create_directories(typo.parent_path());
  {
    std::ofstream out(typo);
    out << "name,label\n";
    for (const auto& l : data::read_labels_csv(p("labels.csv"))) out << l.name << "," << (l.name == victim ? 2 : l.label) << "\n";
  }
  // Libra-MIL: the 2 bag priors are for 2 classes.
  train_fails("label_typo", {{"--data_csv", typo.string()}, {"--folds", "1"}},
              {"file " + typo.string(), "slide " + victim + " has label 2, outside 0..1", "bag_priors.csv"});
  // A baseline (no priors): the absent class is traced to the label, its slide and the file.
  train_fails("label_typo_meanpool", {{"--data_csv", typo.string()}, {"--folds", "1"}, {"--model", "meanpool"}},
              {"class 2 is absent from 'train_0'", "label 2 of slide " + victim, typo.string(), "out of range"});
}

TEST_CASE("validation: a one-fold summary prints '-' as its standard deviation") {
  fs::path save = dataset() / "runs" / "one_fold";
  fs::remove_all(save);
  Result r = run(train_args(save.string(), {{"--folds", "1"}, {"--model", "meanpool"}}), dataset() / "logs", "one_fold");
  REQUIRE_MESSAGE(r.rc == 0, r.err);
  const std::string out = test::read_text(dataset() / "logs" / "one_fold.out");
  INFO("stdout: " << out);
  CHECK(out.find("over 1 folds): acc ") != std::string::npos);
  CHECK(out.find(" +- -") != std::string::npos);
  CHECK(out.find("nan") == std::string::npos);
  const std::string report = test::read_text(save / "report.html");
  CHECK(report.find("&plusmn; -<") != std::string::npos);
}

TEST_CASE("validation: safetensors embeddings and prompt files") {
  auto bad = [&](const std::string& f) { return p("bad/" + f); };
  auto st = [&](const std::string& tag, const std::vector<std::string>& needles) {
    std::vector<std::string> n = needles;
    n.push_back(tag + ".safetensors");
    train_fails(tag, {{"--instance_embeddings", bad(tag + ".safetensors")}}, n);
  };
  st("st_header_len", {"header length 1099511627776 exceeds the file"});
  st("st_not_json", {"header is not valid JSON"});
  st("st_overlap", {"'embeddings' [0, 240) and 'other' [232, 240) overlap"});
  st("st_out_of_range", {"outside the data section"});
  st("st_dtype", {"unknown dtype 'Q4_K'"});
  st("st_rows", {"'embeddings' has 4 rows, expected 5"});
  train_fails("bag_priors_count", {{"--bag_path", bad("bag_priors_3rows.csv")}},
              {"bag_priors_3rows.csv", "has 3 rows; expected 2 (one per class) or 4"});
  train_fails("instance_priors_count", {{"--instance_path", bad("instance_priors_4.json")}},
              {"z_ins.safetensors", "has 5 rows, expected 4"});
  train_fails("instance_priors_type", {{"--instance_path", bad("instance_priors_not_list.json")}},
              {"instance_priors_not_list.json", "expected a JSON list of strings"});
}

TEST_CASE("validation: missing and unreadable files") {
  fs::path save = dataset() / "runs" / "missing_labels";
  Result r = run(train_args(save.string(), {{"--data_csv", p("no_such_labels.csv")}}), dataset() / "logs", "missing_labels");
  CHECK(r.rc != 0);
  CHECK(r.err.find("no_such_labels.csv") != std::string::npos);
  CHECK(r.err.find("does not exist") != std::string::npos);
  CHECK(!fs::exists(save));
  if (::geteuid() != 0) {  // root reads files whatever their mode
    fs::copy_file(p("labels.csv"), p("unreadable.csv"), fs::copy_options::overwrite_existing);
    fs::permissions(p("unreadable.csv"), fs::perms::none);
    train_fails("unreadable_labels", {{"--data_csv", p("unreadable.csv")}}, {"unreadable.csv", "cannot open"});
    fs::permissions(p("unreadable.csv"), fs::perms::owner_all);
  }
}

TEST_CASE("validation: tokenizer files of the wrong kind") {
  auto tok = [&](const std::string& f, const std::vector<std::string>& needles) {
    Result r = run("tokenize --tokenizer " + p("bad/" + f), dataset() / "logs", f);
    std::vector<std::string> n = needles;
    n.push_back(f);
    expect_error(r, n);
  };
  tok("tok_unigram.json", {"model type 'Unigram' is not supported"});
  tok("tok_no_model.json", {"no \"model\" object"});
  tok("tok_binary.json", {"is not valid JSON"});
}

TEST_CASE("validation: safe outputs") {
  fs::path logs = dataset() / "logs";
  // An existing, non-empty run directory is not touched without --overwrite.
  fs::path run_dir = dataset() / "runs" / "existing";
  fs::create_directories(run_dir);
  { std::ofstream(run_dir / "keep.txt") << "previous run\n"; }
  Result r = run(train_args(run_dir.string()), logs, "existing");
  expect_error(r, {run_dir.string(), "already exists", "--overwrite"});
  CHECK(test::read_text(run_dir / "keep.txt") == "previous run\n");
  CHECK(std::distance(fs::directory_iterator(run_dir), fs::directory_iterator()) == 1);

  // split: an existing --out is kept; bad labels leave no --out; errors while writing (no
  // such directory, file-size limit standing in for a full disk) name the path and leave
  // neither the file nor a temporary behind.
  fs::path out = dataset() / "out" / "split.json";
  fs::create_directories(out.parent_path());
  { std::ofstream(out) << "old\n"; }
  r = run("split --labels " + p("labels.csv") + " --shots 1 --folds 2 --out " + out.string(), logs, "split_exists");
  expect_error(r, {out.string(), "exists", "--overwrite"});
  CHECK(test::read_text(out) == "old\n");
  fs::remove(out);
  r = run("split --labels " + p("bad/labels_duplicate.csv") + " --shots 1 --out " + out.string(), logs, "split_bad_labels");
  expect_error(r, {"labels_duplicate.csv", "duplicate slide name"});
  CHECK(!fs::exists(out));
  fs::path nodir = dataset() / "out" / "no_such_dir" / "split.json";
  r = run("split --labels " + p("labels.csv") + " --shots 1 --out " + nodir.string(), logs, "split_nodir");
  expect_error(r, {nodir.string(), "No such file or directory"});
  CHECK(!fs::exists(nodir.parent_path()));
  // 512-byte file-size limit (the JSON of 5 folds is larger; the one-line error is smaller).
  r = run("split --labels " + p("labels.csv") + " --shots 1 --folds 5 --out " + out.string(), logs, "split_full",
          "trap \"\" XFSZ; ulimit -f 1; ");
  expect_error(r, {out.string(), "File too large"});
  CHECK(std::distance(fs::directory_iterator(out.parent_path()), fs::directory_iterator()) == 0);
  // Sanity: the same command without the limit succeeds.
  r = run("split --labels " + p("labels.csv") + " --shots 1 --out " + out.string(), logs, "split_ok");
  CHECK(r.rc == 0);
  CHECK(fs::exists(out));
}

TEST_CASE("validation: eval and dump on a checkpoint") {
  fs::path logs = dataset() / "logs";
  fs::path run_dir = dataset() / "runs" / "meanpool";
  fs::remove_all(run_dir);
  Result r = run(train_args(run_dir.string(), {{"--model", "meanpool"}, {"--folds", "1"}}), logs, "meanpool");
  REQUIRE_MESSAGE(r.rc == 0, r.err);
  std::string ckpt = (run_dir / "checkpoints" / "fold_0_best.safetensors").string();
  REQUIRE(fs::exists(ckpt));
  fs::path out = dataset() / "out" / "eval.csv";
  fs::remove(out);
  // A bag with NaN values: eval and dump name the file, the slide and the count.
  r = run("eval --checkpoint " + ckpt + " --features " + p("bad/feat_nan") + " --slides slide_c0_00 --out " + out.string(), logs,
          "eval_nan");
  expect_error(r, {"feat_nan/slide_c0_00.h5", "5 NaN/Inf values"});
  CHECK(!fs::exists(out));
  fs::path dump = dataset() / "out" / "dump.safetensors";
  r = run("dump --checkpoint " + ckpt + " --features " + p("bad/feat_nan/slide_c0_00.h5") + " --label 0 --out " + dump.string(),
          logs, "dump_nan");
  expect_error(r, {"feat_nan/slide_c0_00.h5", "5 NaN/Inf values"});
  CHECK(!fs::exists(dump));
  // A feature width that differs from the model's (16): the bag's file, its width, the model's
  // and the checkpoint are named. eval checks every bag of the directory before evaluating any
  // (the odd one is named among the 11 good ones).
  const std::string width_msg = "feature width 8 does not match the model width 16 of checkpoint " + ckpt;
  r = run("eval --checkpoint " + ckpt + " --features " + p("bad/feat_width") + " --out " + out.string(), logs, "eval_width");
  expect_error(r, {"file " + p("bad/feat_width/slide_c0_00.h5") + ": slide 'slide_c0_00': " + width_msg});
  CHECK(!fs::exists(out));
  r = run("dump --checkpoint " + ckpt + " --features " + p("bad/feat_width/slide_c0_00.h5") + " --label 0 --out " + dump.string(),
          logs, "dump_width");
  expect_error(r, {"file " + p("bad/feat_width/slide_c0_00.h5") + ": " + width_msg});
  CHECK(!fs::exists(dump));
  // An existing --out is left as it was.
  { std::ofstream(out) << "old\n"; }
  r = run("eval --checkpoint " + ckpt + " --features " + p("bad/feat_width") + " --overwrite --out " + out.string(), logs,
          "eval_width_overwrite");
  expect_error(r, {"feat_width/slide_c0_00.h5", width_msg});
  CHECK(test::read_text(out) == "old\n");
  fs::remove(out);
  // Sanity: the good bags pass the same checks.
  r = run("eval --checkpoint " + ckpt + " --features " + p("features") + " --out " + out.string(), logs, "eval_ok");
  CHECK_MESSAGE(r.rc == 0, r.err);
  CHECK(fs::exists(out));
  r = run("dump --checkpoint " + ckpt + " --features " + p("features/slide_c0_00.h5") + " --label 0 --out " + dump.string(), logs,
          "dump_ok");
  CHECK_MESSAGE(r.rc == 0, r.err);
  CHECK(fs::exists(dump));
  fs::remove(out);
  fs::remove(dump);
  // --labels lacking a selected slide, or giving one a label the 2-class model cannot have:
  // named before any bag is evaluated, and no output.
  {
    const std::string all = test::read_text(p("labels.csv"));
    std::ofstream(dataset() / "out" / "labels_missing.csv") << all.substr(0, all.find("slide_c0_00")) << "slide_c0_01,0\n";
    std::ofstream(dataset() / "out" / "labels_c5.csv") << "name,label\nslide_c0_00,5\n";
  }
  r = run("eval --checkpoint " + ckpt + " --features " + p("features") + " --slides slide_c0_00,slide_c0_01 --labels " +
              p("out/labels_missing.csv") + " --out " + out.string(),
          logs, "eval_label_missing");
  expect_error(r, {p("out/labels_missing.csv") + ": no label for slide 'slide_c0_00'"});
  CHECK(!fs::exists(out));
  r = run("eval --checkpoint " + ckpt + " --features " + p("features") + " --slides slide_c0_00 --labels " +
              p("out/labels_c5.csv") + " --out " + out.string(),
          logs, "eval_label_range");
  expect_error(r, {"labels_c5.csv", "slide slide_c0_00 has label 5, outside 0..1 (2 classes)"});
  CHECK(!fs::exists(out));
  // A checkpoint that is not a safetensors file.
  r = run("eval --checkpoint " + p("labels.csv") + " --features " + p("features") + " --out " + out.string(), logs, "eval_ckpt");
  expect_error(r, {"labels.csv", "safetensors file"});
  CHECK(!fs::exists(out));
}

TEST_CASE("messages: few-shot splits that cannot be drawn name the labels file") {
  // 6 slides per class; 8 shots need 10.
  const std::vector<std::string> needles = {"file " + p("labels.csv") + ": class 0 has 6 slides; 8-shot splits need at least 10"};
  train_fails("shots_too_many", {{"--data_split_json", ""}, {"--shots", "8"}}, needles);
  const fs::path out = dataset() / "out" / "split_8shot.json";
  fs::create_directories(out.parent_path());
  fs::remove(out);
  expect_error(run("split --labels " + p("labels.csv") + " --shots 8 --out " + out.string(), dataset() / "logs", "split_8shot"),
               needles);
  CHECK(!fs::exists(out));
}

TEST_CASE("messages: a slide with both a .h5 and a .pt file is warned about once, naming both and the one used") {
  const fs::path both = dataset() / "features_both", logs = dataset() / "logs";
  fs::remove_all(both);
  fs::copy(dataset() / "features", both, fs::copy_options::recursive);
  const std::string h5 = (both / "slide_c0_00.h5").string(), pt = (both / "slide_c0_00.pt").string();
  { std::ofstream(pt) << "not a torch file: reading it would fail\n"; }
  auto warnings = [](const std::string& err) {
    size_t n = 0;
    for (size_t at = err.find("libramil: warning:"); at != std::string::npos; at = err.find("libramil: warning:", at + 1)) ++n;
    return n;
  };
  const fs::path run_dir = dataset() / "runs" / "both";
  fs::remove_all(run_dir);
  Result r = run(train_args(run_dir.string(), {{"--h5_file_dir", both.string()}, {"--folds", "1"}}), logs, "both_train");
  CHECK_MESSAGE(r.rc == 0, r.err);
  CHECK(warnings(r.err) == 1);
  CHECK_MESSAGE(r.err.find("slide 'slide_c0_00': both " + h5 + " and " + pt + " exist; using " + h5) != std::string::npos, r.err);
  // eval over the folder: the slide is evaluated once (it was listed twice), one warning.
  const fs::path out = dataset() / "out" / "eval_both.csv";
  fs::create_directories(out.parent_path());
  fs::remove(out);
  r = run("eval --checkpoint " + (run_dir / "checkpoints" / "fold_0_best.safetensors").string() + " --features " + both.string() +
              " --out " + out.string(),
          logs, "both_eval");
  CHECK_MESSAGE(r.rc == 0, r.err);
  CHECK(warnings(r.err) == 1);
  CHECK(r.err.find("using " + h5) != std::string::npos);
  const std::string csv = test::read_text(out);
  CHECK(std::count(csv.begin(), csv.end(), '\n') == 13);  // header + 12 slides
  CHECK(csv.find("slide_c0_00,") == csv.rfind("slide_c0_00,"));
}

TEST_CASE("messages: a config.json value of the wrong type is named with the key (resume: an error, report: a note)") {
  const fs::path logs = dataset() / "logs", run_dir = dataset() / "runs" / "typed";
  fs::remove_all(run_dir);
  Result r = run(train_args(run_dir.string(), {{"--model", "meanpool"}, {"--folds", "1"}}), logs, "typed_train");
  REQUIRE_MESSAGE(r.rc == 0, r.err);
  const fs::path cfg_path = run_dir / "config.json";
  nlohmann::json cfg = nlohmann::json::parse(test::read_text(cfg_path));
  cfg["epochs"] = "ten";
  cfg["folds"] = "two";
  cfg["inputs"]["labels"] = 5;
  std::ofstream(cfg_path) << cfg.dump(2);
  r = run("train --resume " + run_dir.string() + " --threads 1 --quiet", logs, "typed_resume");
  expect_error(r, {"file " + cfg_path.string() + ": 'epochs' is \"ten\", expected an integer", "--overwrite"});
  // The report is still written; each value set aside is named.
  r = run("report " + run_dir.string() + " --overwrite", logs, "typed_report");
  CHECK_MESSAGE(r.rc == 0, r.err);
  const std::string html = test::read_text(run_dir / "report.html");
  for (const char* key : {"epochs", "folds", "inputs.labels"})
    CHECK_MESSAGE(html.find("config.json: &#39;" + std::string(key) + "&#39; is ") != std::string::npos, std::string(key));
  CHECK(html.find("expected an integer; ignored.") != std::string::npos);
}
