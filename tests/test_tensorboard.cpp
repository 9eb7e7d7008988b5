// TensorBoard event files (data/formats/tensorboard.h, train --tensorboard): the CRC-32C
// against the standard's check values, an event file read back by TensorBoard's own loader
// (tools/tensorboard_check.py), and a training run's per-fold files against its log_<k>.csv;
// --overwrite removes them with the rest of an earlier run.
#include <doctest/doctest.h>

#include <cmath>
#include <fstream>
#include <sstream>
#include <nlohmann/json.hpp>
#include <string>

#include "data/atomic_file.h"
#include "data/formats/tensorboard.h"
#include "tests/test_util.h"

namespace {
namespace fs = std::filesystem;
using namespace lm;

nlohmann::json read_back(const fs::path& src, const fs::path& dir) {
  const fs::path out = dir / "read_back.json";
  test::run_python_tool("tensorboard_check.py", src.string() + " " + out.string());
  return nlohmann::json::parse(test::read_text(out));
}

}  // namespace

TEST_CASE("crc32c equals the standard's check values") {
  const std::string digits = "123456789";
  CHECK(data::crc32c(digits.data(), digits.size()) == 0xE3069283u);  // the CRC-32C "check" value
  const std::string zeros(32, '\0'), ones(32, '\xff');
  CHECK(data::crc32c(zeros.data(), zeros.size()) == 0x8A9136AAu);     // RFC 3720, B.4
  CHECK(data::crc32c(ones.data(), ones.size()) == 0x62A8AB43u);
  CHECK(data::crc32c(nullptr, 0) == 0u);
}

TEST_CASE("an event file reads back in TensorBoard with every scalar, step and time") {
  const fs::path dir = test::scratch_dir("tensorboard_file");
  std::vector<data::ScalarEvent> events;
  for (int step = 0; step < 5; ++step) {
    data::ScalarEvent e;
    e.wall_time = 1.7e9 + 2.5 * step;
    e.step = step == 4 ? (int64_t)1 << 40 : step;  // a step that needs a long varint
    e.scalars = {{"train/loss", 1.0 / (step + 1)}, {"a tag with spaces/and é", -3.25e-7 * step}};
    events.push_back(e);
  }
  data::write_file_atomic((dir / "events.out.tfevents.test").string(), data::tensorboard_event_file(1.7e9 - 1, events));
  const nlohmann::json j = read_back(dir, dir);
  CHECK(j["file_version"].get<double>() == 2.0);  // TensorBoard parses "brain.Event:2" into 2.0
  const auto& s = j["scalars"];
  REQUIRE(s.size() == 2);
  for (const char* tag : {"train/loss", "a tag with spaces/and é"}) {
    REQUIRE(s.contains(tag));
    REQUIRE(s[tag].size() == 5);
    for (int i = 0; i < 5; ++i) {
      const auto& p = s[tag][i];
      CHECK(p[0].get<int64_t>() == events[i].step);
      const double want = std::string(tag) == "train/loss" ? events[i].scalars[0].second : events[i].scalars[1].second;
      CHECK(p[1].get<double>() == (double)(float)want);  // simple_value is a float32
      CHECK(p[2].get<double>() == events[i].wall_time);
    }
  }
}

TEST_CASE("train --tensorboard writes one event file per fold that matches log_<k>.csv") {
  static const fs::path d = test::make_tiny_dataset("tensorboard_train", "--classes 2 --per-class 6 --dim 16 --folds 2 --seed 5");
  const fs::path run = d / "run";
  REQUIRE(test::run_libramil("train " + test::tiny_dataset_inputs(d) + " --model abmil --epochs 3 --folds 2 --quiet --tensorboard --out " +
                                 run.string(),
                             d / "log.txt") == 0);
  for (int fold = 0; fold < 2; ++fold) {
    const fs::path tb = run / "tensorboard" / ("fold_" + std::to_string(fold));
    REQUIRE(fs::exists(tb / "events.out.tfevents.libramil"));
    const nlohmann::json j = read_back(tb, d);
    const auto& s = j["scalars"];
    // log_<k>.csv: epoch,train_loss,train_acc,val_loss,val_acc,val_auc,val_f1,test_loss,test_acc,test_auc,test_f1,seconds
    const std::string csv = test::read_text(run / "logs" / ("log_" + std::to_string(fold) + ".csv"));
    std::istringstream in(csv);
    std::string line;
    std::getline(in, line);
    const char* tags[] = {"train/loss", "train/accuracy", "val/loss", "val/accuracy", "val/auc", "val/f1",
                          "test/loss", "test/accuracy", "test/auc", "test/f1"};
    int rows = 0;
    while (std::getline(in, line)) {
      std::vector<double> v;
      std::istringstream ls(line);
      for (std::string cell; std::getline(ls, cell, ',');) v.push_back(std::stod(cell));
      REQUIRE(v.size() == 12);
      for (int c = 0; c < 10; ++c) {
        CAPTURE(tags[c]);
        REQUIRE(s.contains(tags[c]));
        REQUIRE((int)s[tags[c]].size() == 3);
        CHECK(s[tags[c]][rows][0].get<int>() == (int)v[0]);
        CHECK(s[tags[c]][rows][1].get<double>() == doctest::Approx(v[c + 1]).epsilon(1e-5));  // CSV: 6 decimals
      }
      ++rows;
    }
    CHECK(rows == 3);
    const auto& times = s["train/loss"];
    CHECK(times[0][2].get<double>() <= times[2][2].get<double>());
    CHECK(times[0][2].get<double>() > 1.6e9);  // a real Unix time, not 0
  }
  const auto config = nlohmann::json::parse(test::read_text(run / "config.json"));
  CHECK(config["tensorboard"] == true);
  // An earlier run's event files go with --overwrite; a file of the user's in the folder stays.
  std::ofstream(run / "tensorboard" / "notes.txt") << "mine";
  REQUIRE(test::run_libramil("train " + test::tiny_dataset_inputs(d) + " --model abmil --epochs 1 --folds 1 --quiet --overwrite --out " +
                                 run.string(),
                             d / "log2.txt") == 0);
  CHECK_FALSE(fs::exists(run / "tensorboard" / "fold_0"));
  CHECK_FALSE(fs::exists(run / "tensorboard" / "fold_1"));
  CHECK(fs::exists(run / "tensorboard" / "notes.txt"));
}
