// run_owns / remove_run_files (see run_files.h). The names follow the writers in
// models/trainer.cpp (logs, checkpoints, config.json) and apps/cmd_train.cpp (report.html).
#include "models/run_files.h"

#include <filesystem>
#include <regex>
#include <stdexcept>
#include <system_error>
#include <vector>

namespace lm::train {

namespace fs = std::filesystem;

namespace {

// A name the run writes in `folder` ("" for the run directory itself).
bool owned_name(const std::string& folder, const std::string& name) {
  static const std::regex top("config\\.json|report\\.html");
  static const std::regex logs("log_[0-9]+\\.csv|fold_[0-9]+_result\\.json|final_log\\.csv|summary_log\\.csv|test_predictions\\.csv");
  static const std::regex ckpts("fold_[0-9]+_(best|last)\\.safetensors");
  if (!folder.empty() && folder != "logs" && folder != "checkpoints") return false;
  const std::regex& re = folder.empty() ? top : folder == "logs" ? logs : ckpts;
  if (std::regex_match(name, re)) return true;
  // Temporaries: data::write_file_atomic's ".<name>.tmp-<digits>", write_safetensors'
  // "<name>.tmp-XXXXXX" (mkstemp).
  static const std::regex atomic_tmp("\\.(.+)\\.tmp-[0-9]+");
  static const std::regex st_tmp("(.+)\\.tmp-[A-Za-z0-9]{6}");
  std::smatch m;
  if (std::regex_match(name, m, atomic_tmp) && std::regex_match(m[1].str(), re)) return true;
  return std::regex_match(name, m, st_tmp) && std::regex_match(m[1].str(), re);
}

}  // namespace

bool run_owns(const std::string& relative_path) {
  const fs::path p(relative_path);
  const std::string folder = p.parent_path().generic_string();
  return owned_name(folder, p.filename().string());
}

int remove_run_files(const std::string& dir) {
  int removed = 0;
  for (const char* folder : {"", "logs", "checkpoints"}) {
    const fs::path d = fs::path(dir) / folder;
    std::error_code ec;
    if (!fs::is_directory(fs::symlink_status(d, ec))) continue;
    std::vector<fs::path> doomed;
    for (fs::directory_iterator it(d, ec), end; !ec && it != end; it.increment(ec)) {
      const fs::file_status st = it->symlink_status(ec);
      if (fs::is_directory(st)) continue;
      if (owned_name(folder, it->path().filename().string())) doomed.push_back(it->path());
    }
    if (ec) throw std::runtime_error("cannot list " + d.string() + ": " + ec.message());
    for (const fs::path& p : doomed) {
      if (!fs::remove(p, ec) && ec) throw std::runtime_error("cannot remove " + p.string() + ": " + ec.message());
      ++removed;
    }
  }
  for (const char* folder : {"logs", "checkpoints"}) {
    std::error_code ec;
    const fs::path d = fs::path(dir) / folder;
    if (fs::is_directory(fs::symlink_status(d, ec)) && fs::is_empty(d, ec)) fs::remove(d, ec);
  }
  return removed;
}

}  // namespace lm::train
