// The run directory of `train`: one writer at a time (a run holds an flock on
// <run_dir>/.libramil.lock for its whole life and a second writer is refused at once, naming
// the holder's pid), and `--overwrite` removes the files an earlier run wrote there (and only
// those) before the new run starts.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "tests/test_util.h"

using namespace lm;
namespace fs = std::filesystem;

namespace {

// A tiny 2-fold dataset (once per process) and the `train` flags that use it.
const fs::path& dataset() {
  static const fs::path d = test::make_tiny_dataset("run_dir", "--classes 2 --per-class 6 --dim 16 --folds 2 --seed 6");
  return d;
}

std::string train_args(const fs::path& save_dir, int folds, int epochs = 1) {
  return "train " + test::tiny_dataset_inputs(dataset()) + " --epochs " + std::to_string(epochs) + " --folds " +
         std::to_string(folds) + " --heads 2 --num_vis_prototypes 3 --threads 1 --quiet --save_dir " + save_dir.string();
}

int run(const std::string& args, const fs::path& log) { return test::run_libramil(args, log); }

// Holds an exclusive flock on `path` (as a running `train` would), with `pid` written in it.
struct HeldLock {
  int fd = -1;
  HeldLock(const fs::path& path, long pid) {
    fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    REQUIRE(fd >= 0);
    REQUIRE(::flock(fd, LOCK_EX | LOCK_NB) == 0);
    const std::string s = std::to_string(pid) + "\n";
    REQUIRE(::ftruncate(fd, 0) == 0);
    REQUIRE(::write(fd, s.data(), s.size()) == (ssize_t)s.size());
  }
  ~HeldLock() { ::close(fd); }
};

// True once `path` can be flocked by this process (its holder has exited); waits up to `secs`.
bool lock_free_within(const fs::path& path, int secs) {
  for (int i = 0; i < secs * 10; ++i) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return true;
    bool ok = ::flock(fd, LOCK_EX | LOCK_NB) == 0;
    ::close(fd);
    if (ok) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

// One line on stderr/stdout: "libramil: error: ..." that names the lock holder's pid.
void expect_refused(int rc, const fs::path& log, long pid) {
  const std::string out = test::read_text(log);
  INFO("output: " << out);
  CHECK(rc == 1);
  CHECK(out.rfind("libramil: error: ", 0) == 0);
  CHECK(std::count(out.begin(), out.end(), '\n') == 1);
  CHECK(out.find("pid " + std::to_string(pid)) != std::string::npos);
}

}  // namespace

TEST_CASE("run directory: a second writer is refused while a run holds the lock") {
  const fs::path dir = dataset();
  const fs::path run_dir = dir / "locked";
  fs::remove_all(run_dir);
  REQUIRE(run(train_args(run_dir, 2), dir / "locked_first.log") == 0);
  const std::string final_log = test::read_text(run_dir / "logs" / "final_log.csv");
  const auto ckpt_time = fs::last_write_time(run_dir / "checkpoints" / "fold_0_best.safetensors");
  const fs::path lock = run_dir / ".libramil.lock";
  {
    // This process stands in for a live run: --resume and --overwrite are both refused, at
    // once, and leave the run's files as they were.
    HeldLock held(lock, (long)::getpid());
    expect_refused(run("train --resume " + run_dir.string() + " --threads 1 --quiet", dir / "locked_resume.log"),
                   dir / "locked_resume.log", (long)::getpid());
    expect_refused(run(train_args(run_dir, 1) + " --overwrite", dir / "locked_overwrite.log"), dir / "locked_overwrite.log",
                   (long)::getpid());
    CHECK(test::read_text(run_dir / "logs" / "final_log.csv") == final_log);
    CHECK(fs::exists(run_dir / "logs" / "log_1.csv"));
    CHECK(fs::last_write_time(run_dir / "checkpoints" / "fold_0_best.safetensors") == ckpt_time);
  }
  // Lock released (a stale lock file with a dead pid in it does not block).
  CHECK(run("train --resume " + run_dir.string() + " --threads 1 --quiet", dir / "locked_resume_ok.log") == 0);

  // Two real runs: the second, started while the first trains, is refused naming its pid.
  const fs::path live = dir / "live";
  fs::remove_all(live);
  const fs::path pid_file = dir / "live.pid";
  fs::remove(pid_file);
  // A long run in the background, killed below; `ulimit -t` bounds it (2 CPU minutes) should this
  // test die before the kill. exec keeps its pid the one `$!` reports.
  test::run_or_throw("(ulimit -t 120; exec " + (test::binary_dir() / "libramil").string() + " " + train_args(live, 2, 100000) +
                     " > " + (dir / "live_first.log").string() + " 2>&1) & echo $! > " + pid_file.string());
  const long first = std::stol(test::read_text(pid_file));
  // Wait until the first run holds the lock (its pid is in the lock file).
  bool holding = false;
  for (int i = 0; i < 600 && !holding; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (!fs::exists(live / "config.json") || !fs::exists(live / ".libramil.lock")) continue;
    std::string s = test::read_text(live / ".libramil.lock");
    holding = !s.empty() && s.back() == '\n' && std::stol(s) == first;
  }
  CHECK_MESSAGE(holding, "the first run never held " << (live / ".libramil.lock"));
  if (holding) {
    const std::string config = test::read_text(live / "config.json");
    expect_refused(run(train_args(live, 1) + " --overwrite", dir / "live_second.log"), dir / "live_second.log", first);
    expect_refused(run("train --resume " + live.string() + " --threads 1 --quiet", dir / "live_resume.log"),
                   dir / "live_resume.log", first);
    CHECK(test::read_text(live / "config.json") == config);
  }
  ::kill((pid_t)first, SIGKILL);
  CHECK(lock_free_within(live / ".libramil.lock", 30));
}

TEST_CASE("run directory: --overwrite removes the earlier run's files and keeps the others") {
  const fs::path dir = dataset();
  const fs::path run_dir = dir / "overwritten";
  fs::remove_all(run_dir);
  REQUIRE(run(train_args(run_dir, 2), dir / "ow_first.log") == 0);
  REQUIRE(fs::exists(run_dir / "logs" / "log_1.csv"));
  REQUIRE(fs::exists(run_dir / "checkpoints" / "fold_1_best.safetensors"));
  REQUIRE(fs::exists(run_dir / "report.html"));
  // Files that train does not own, and leftovers it does (a resume state, a temporary).
  { std::ofstream(run_dir / "notes.txt") << "mine\n"; }
  { std::ofstream(run_dir / "logs" / "my_analysis.csv") << "mine\n"; }
  { std::ofstream(run_dir / "checkpoints" / "fold_1_best.safetensors.bak") << "mine\n"; }
  { std::ofstream(run_dir / "checkpoints" / "fold_3_last.safetensors") << "stale\n"; }
  { std::ofstream(run_dir / "logs" / ".final_log.csv.tmp-12345") << "stale\n"; }
  { std::ofstream(run_dir / "checkpoints" / "fold_0_best.safetensors.tmp-Ab3xYz") << "stale\n"; }

  REQUIRE(run(train_args(run_dir, 1) + " --overwrite", dir / "ow_second.log") == 0);
  // The new run's files, and nothing of the old fold 1.
  CHECK(fs::exists(run_dir / "logs" / "log_0.csv"));
  CHECK(fs::exists(run_dir / "checkpoints" / "fold_0_best.safetensors"));
  for (const char* f : {"logs/log_1.csv", "logs/fold_1_result.json", "checkpoints/fold_1_best.safetensors",
                        "checkpoints/fold_3_last.safetensors", "logs/.final_log.csv.tmp-12345",
                        "checkpoints/fold_0_best.safetensors.tmp-Ab3xYz"})
    CHECK_MESSAGE(!fs::exists(run_dir / f), f << " was kept");
  // The report plots the new fold 0 and no old fold 1.
  const std::string report = test::read_text(run_dir / "report.html");
  CHECK(report.find("fold 0: loss") != std::string::npos);
  CHECK(report.find("fold 1: loss") == std::string::npos);
  // Files the run does not own are kept as they were.
  CHECK(test::read_text(run_dir / "notes.txt") == "mine\n");
  CHECK(test::read_text(run_dir / "logs" / "my_analysis.csv") == "mine\n");
  CHECK(test::read_text(run_dir / "checkpoints" / "fold_1_best.safetensors.bak") == "mine\n");
}
