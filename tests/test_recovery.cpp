// What a killed or damaged run leaves, and how `train --resume`, `eval`, `dump` and `report`
// deal with it: the atomic writers' temporaries and the resume state of a finished fold are
// removed by the resume (and nothing else is); a run directory without a readable config.json
// is one error line saying how to proceed; a checkpoint whose tensor bytes changed after
// train wrote it is refused on every load, naming the file. The kills are simulated by
// putting the leftovers in place by hand (or with the LIBRAMIL_KILL_AT_STEP test hook).
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "data/formats/safetensors.h"
#include "tests/test_util.h"

using namespace lm;
namespace fs = std::filesystem;

namespace {

// A tiny 2-fold dataset (once per process): 4 training bags per fold.
const fs::path& dataset() {
  static const fs::path d = test::make_tiny_dataset("recovery", "--classes 2 --per-class 6 --dim 16 --folds 2 --seed 9");
  return d;
}

std::string train_args(const fs::path& save_dir, int folds, int epochs) {
  return "train " + test::tiny_dataset_inputs(dataset()) + " --epochs " + std::to_string(epochs) + " --folds " +
         std::to_string(folds) + " --heads 2 --num_vis_prototypes 3 --lr 1e-3 --warmup_steps 2 --threads 1 --save_dir " +
         save_dir.string();
}

struct Result {
  int rc = -1;
  std::string out;  // stdout and stderr together
};

Result run(const std::string& args, const std::string& tag, const std::string& env = "") {
  const fs::path log = dataset() / (tag + ".log");
  Result r;
  r.rc = test::run_libramil(args, log, env);
  r.out = test::read_text(log);
  return r;
}

// Exit status 1 and one line, "libramil: error: ...", holding every needle.
void expect_error(const Result& r, const std::vector<std::string>& needles) {
  INFO("output: " << r.out);
  CHECK(r.rc == 1);
  CHECK(r.out.rfind("libramil: error: ", 0) == 0);
  CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 1);
  for (const std::string& n : needles) CHECK_MESSAGE(r.out.find(n) != std::string::npos, "missing '" << n << "'");
}

void write_file(const fs::path& p, const std::string& content) {
  std::ofstream f(p, std::ios::binary);
  f << content;
  REQUIRE(f.good());
}

// Flips the low bit of the byte in the middle of a safetensors file's data section (inside a
// tensor: the files train writes have no gaps).
void flip_tensor_byte(const fs::path& p) {
  std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
  REQUIRE(f.good());
  uint64_t header_len = 0;
  f.read(reinterpret_cast<char*>(&header_len), 8);
  const uint64_t data_size = fs::file_size(p) - 8 - header_len;
  REQUIRE(data_size > 0);
  const std::streamoff at = (std::streamoff)(8 + header_len + data_size / 2);
  char c = 0;
  f.seekg(at);
  f.read(&c, 1);
  c ^= 1;
  f.seekp(at);
  f.write(&c, 1);
  REQUIRE(f.good());
}

}  // namespace

TEST_CASE("recovery: train --resume removes what a killed run left, and only that") {
  const fs::path full = dataset() / "full", killed = dataset() / "killed";
  fs::remove_all(full);
  fs::remove_all(killed);
  REQUIRE(run(train_args(full, 2, 3) + " --quiet", "full").rc == 0);
  // Killed in fold 1 (step 6: epoch 2 of 3), after fold 0 finished.
  REQUIRE(run(train_args(killed, 2, 3) + " --quiet", "killed", "LIBRAMIL_KILL_AT_STEP=1:6").rc == 128 + 9);
  REQUIRE(fs::exists(killed / "logs" / "fold_0_result.json"));
  REQUIRE(fs::exists(killed / "checkpoints" / "fold_1_last.safetensors"));
  // What kills at other moments leave: the atomic writers' temporaries (half written), and
  // the resume state of fold 0, whose result was written just before the kill.
  const std::vector<std::string> leftovers = {
      ".config.json.tmp-4242",        "logs/.summary_log.csv.tmp-12345",          "logs/.log_1.csv.tmp-7",
      "logs/.fold_1_result.json.tmp-99", "checkpoints/fold_1_last.safetensors.tmp-Ab3xYz",
      "checkpoints/fold_0_best.safetensors.tmp-000000", ".report.html.tmp-5"};
  for (const std::string& f : leftovers) write_file(killed / f, "half");
  fs::copy_file(killed / "checkpoints" / "fold_0_best.safetensors", killed / "checkpoints" / "fold_0_last.safetensors");
  // Files the run does not own, some named like temporaries: kept.
  const std::vector<std::string> mine = {"notes.txt", "logs/.my_notes.txt.tmp-123", "checkpoints/other.safetensors.tmp-abcdef",
                                         "checkpoints/fold_0_best.safetensors.bak", "logs/summary_log.csv.old"};
  for (const std::string& f : mine) write_file(killed / f, "mine");

  const Result r = run("train --resume " + killed.string() + " --threads 1", "resumed");
  REQUIRE_MESSAGE(r.rc == 0, r.out);
  // Fold 1 continued from its resume state (which the cleaning kept) ...
  CHECK_MESSAGE(r.out.find("fold 1: resuming after epoch") != std::string::npos, r.out);
  CHECK(test::read_text(killed / "logs" / "final_log.csv") == test::read_text(full / "logs" / "final_log.csv"));
  CHECK(test::read_text(killed / "logs" / "summary_log.csv") == test::read_text(full / "logs" / "summary_log.csv"));
  // ... and every leftover is gone, fold 0's resume state included.
  for (const std::string& f : leftovers) CHECK_MESSAGE(!fs::exists(killed / f), f << " was left");
  for (int fold = 0; fold < 2; ++fold) {
    const std::string last = "checkpoints/fold_" + std::to_string(fold) + "_last.safetensors";
    CHECK_MESSAGE(!fs::exists(killed / last), last << " was left");
  }
  for (const std::string& f : mine) CHECK_MESSAGE(test::read_text(killed / f) == "mine", f << " was changed");
}

TEST_CASE("recovery: a run directory without a usable config.json is one error line saying what to do") {
  const fs::path dir = dataset() / "no_config";
  fs::remove_all(dir);
  // A run killed while it wrote config.json: the folders, a half temporary, a stale lock file.
  fs::create_directories(dir / "logs");
  fs::create_directories(dir / "checkpoints");
  write_file(dir / ".config.json.tmp-31337", "{\"model\": \"libra");
  write_file(dir / ".libramil.lock", "999999999\n");
  const std::string resume = "train --resume " + dir.string() + " --threads 1 --quiet";
  expect_error(run(resume, "no_config"), {dir.string(), "config.json", "--overwrite"});
  // Started again without --overwrite: refused, saying how.
  expect_error(run(train_args(dir, 1, 1) + " --quiet", "no_config_reuse"), {dir.string(), "--overwrite"});
  // config.json cut short, not an object, holding a value of the wrong type, a folder: one
  // line naming it (and the key), never a raw exception.
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"{\"model\": \"libramil\", \"epo", "not valid JSON"},
      {"[1, 2]", "not a JSON object"},
      {"null", "not a JSON object"},
      {"{\"epochs\": \"ten\"}", "'epochs' is \"ten\", expected an integer"},
      {"{\"lr\": [0.001]}", "'lr' is [0.001], expected a number"},
      {"{\"seed\": -1}", "'seed' is -1, expected a non-negative integer"},
      {"{\"heads\": 1e99}", "'heads' is 1e+99, expected an integer"},
      {"{\"inputs\": {\"labels\": 5}}", "'inputs.labels' is 5, expected a string"},
      {"{\"inputs\": {\"shots\": \"eight\"}}", "'inputs.shots' is \"eight\", expected a whole number"}};
  for (const auto& [content, why] : bad) {
    CAPTURE(content);
    write_file(dir / "config.json", content);
    expect_error(run(resume, "bad_config"), {(dir / "config.json").string(), why, "--overwrite"});
  }
  fs::remove(dir / "config.json");
  fs::create_directories(dir / "config.json");
  expect_error(run(resume, "config_dir"), {(dir / "config.json").string(), "not a regular file", "--overwrite"});
  fs::remove(dir / "config.json");
  // What the errors say works: --overwrite reuses the directory, and the temporary goes.
  const Result r = run(train_args(dir, 1, 1) + " --quiet --overwrite", "no_config_overwrite");
  CHECK_MESSAGE(r.rc == 0, r.out);
  CHECK(fs::exists(dir / "config.json"));
  CHECK(!fs::exists(dir / ".config.json.tmp-31337"));
}

TEST_CASE("recovery: train --resume refuses a resume state whose tensor bytes changed, naming the file") {
  const fs::path dir = dataset() / "damaged";
  fs::remove_all(dir);
  // Killed in epoch 2 of fold 0 (4 bags per epoch): the resume state is after epoch 1.
  REQUIRE(run(train_args(dir, 1, 3) + " --quiet", "damaged_killed", "LIBRAMIL_KILL_AT_STEP=0:6").rc == 128 + 9);
  const fs::path last = dir / "checkpoints" / "fold_0_last.safetensors";
  REQUIRE(fs::exists(last));
  const std::string resume = "train --resume " + dir.string() + " --threads 1 --quiet";
  flip_tensor_byte(last);
  expect_error(run(resume, "damaged_resume"), {"file '" + last.string() + "'", "checksum"});
  CHECK(fs::exists(last));  // kept as it was for the user to look at
  flip_tensor_byte(last);   // the same bit back: the file is as train wrote it
  const Result r = run(resume, "damaged_resume_ok");
  CHECK_MESSAGE(r.rc == 0, r.out);
}

TEST_CASE("recovery: eval, dump and report refuse a best checkpoint whose tensor bytes changed") {
  const fs::path dir = dataset() / "damaged_best";
  fs::remove_all(dir);
  REQUIRE(run(train_args(dir, 1, 2) + " --quiet", "damaged_best_train").rc == 0);
  const fs::path best = dir / "checkpoints" / "fold_0_best.safetensors";
  const fs::path bag = dataset() / "features" / "slide_c0_00.h5";
  const fs::path out = dir / "eval.csv", dumped = dir / "dump.safetensors";
  const std::string eval = "eval --checkpoint " + best.string() + " --features " + (dataset() / "features").string() +
                           " --overwrite --out " + out.string();
  const std::string dump = "dump --checkpoint " + best.string() + " --features " + bag.string() + " --label 0 --overwrite --out " +
                           dumped.string();
  flip_tensor_byte(best);
  expect_error(run(eval, "damaged_eval"), {"file '" + best.string() + "'", "checksum"});
  CHECK(!fs::exists(out));
  expect_error(run(dump, "damaged_dump"), {"file '" + best.string() + "'", "checksum"});
  CHECK(!fs::exists(dumped));
  // The report is written without the checkpoint's pictures and says why.
  Result r = run("report " + dir.string() + " --overwrite", "damaged_report");
  CHECK_MESSAGE(r.rc == 0, r.out);
  const std::string html = test::read_text(dir / "report.html");
  CHECK(html.find("does not match its checksum") != std::string::npos);
  flip_tensor_byte(best);
  r = run(eval, "damaged_eval_ok");
  CHECK_MESSAGE(r.rc == 0, r.out);

  // A checkpoint without the checksum (an older one, or one saved elsewhere) still loads: it
  // cannot be checked, so a changed byte goes unseen.
  const fs::path plain = dir / "plain.safetensors";
  {
    data::SafetensorsFile f = data::read_safetensors(best.string());
    REQUIRE(f.metadata.count("libramil.checksum") == 1);
    std::map<std::string, std::string> meta = f.metadata;
    meta.erase("libramil.checksum");
    data::write_safetensors(plain.string(), f.tensors, meta);
  }
  flip_tensor_byte(plain);
  r = run("eval --checkpoint " + plain.string() + " --features " + (dataset() / "features").string() + " --overwrite --out " +
              out.string(),
          "plain_eval");
  CHECK_MESSAGE(r.rc == 0, r.out);
}
