// run_owns / remove_run_files / remove_resume_leftovers (see run_files.h). The names follow
// the writers in models/train/trainer.cpp (logs, checkpoints, config.json) and apps/cmd_train.cpp
// (report.html).
#include "models/train/run_files.h"

#include "data/atomic_file.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <stdexcept>
#include <system_error>
#include <vector>

namespace lm::train {

namespace fs = std::filesystem;

namespace {

enum class Owned { No, File, Temporary };

// Whether the run writes `name` in `folder` ("" for the run directory itself), as the file
// itself or as a writer's temporary of it.
Owned owned(const std::string& folder, const std::string& name) {
  static const std::regex top("config\\.json|report\\.html|split\\.json|run\\.log");
  static const std::regex logs("log_[0-9]+\\.csv|transport_[0-9]+\\.csv|fold_[0-9]+_result\\.json|final_log\\.csv|summary_log\\.csv|test_predictions\\.csv");
  static const std::regex ckpts("fold_[0-9]+_(best|last)\\.safetensors");
  static const std::regex tb_folder("tensorboard/fold_[0-9]+"), tb("events\\.out\\.tfevents\\.libramil");  // kEventFileName
  const bool is_tb = std::regex_match(folder, tb_folder);
  if (!folder.empty() && folder != "logs" && folder != "checkpoints" && !is_tb) return Owned::No;
  const std::regex& re = folder.empty() ? top : folder == "logs" ? logs : is_tb ? tb : ckpts;
  if (std::regex_match(name, re)) return Owned::File;
  // A writer's temporary of one of those files (data/atomic_file.h).
  const std::string target = data::atomic_target(name);
  if (!target.empty() && std::regex_match(target, re)) return Owned::Temporary;
  return Owned::No;
}

bool owned_name(const std::string& folder, const std::string& name) { return owned(folder, name) != Owned::No; }

// True when `path` holds a finished fold's result: a JSON object whose "fold" is `fold` (the
// result is written atomically, so this only fails for a file changed by hand; its resume
// state is then kept and the resume reports the file).
bool holds_fold_result(const fs::path& path, int fold) {
  std::ifstream in(path);
  if (!in) return false;
  const nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
  return j.is_object() && j.contains("fold") && j["fold"].is_number_integer() && j["fold"].get<int64_t>() == fold;
}

// The folders a run writes files in: the run directory, logs/, checkpoints/ and the
// tensorboard/fold_<k>/ folders that exist.
std::vector<std::string> run_folders(const std::string& dir) {
  std::vector<std::string> folders{"", "logs", "checkpoints"};
  std::error_code ec;
  const fs::path tb = fs::path(dir) / "tensorboard";
  if (!fs::is_directory(fs::symlink_status(tb, ec))) return folders;
  static const std::regex fold("fold_[0-9]+");
  for (fs::directory_iterator it(tb, ec), end; !ec && it != end; it.increment(ec))
    if (fs::is_directory(it->symlink_status(ec)) && std::regex_match(it->path().filename().string(), fold))
      folders.push_back("tensorboard/" + it->path().filename().string());
  return folders;
}

void remove_file(const fs::path& p) {
  std::error_code ec;
  if (!fs::remove(p, ec) && ec) throw std::runtime_error("cannot remove " + p.string() + ": " + ec.message());
}

}  // namespace

bool run_owns(const std::string& relative_path) {
  const fs::path p(relative_path);
  const std::string folder = p.parent_path().generic_string();
  return owned_name(folder, p.filename().string());
}

int remove_run_files(const std::string& dir) {
  int removed = 0;
  const std::vector<std::string> folders = run_folders(dir);
  for (const std::string& folder : folders) {
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
      remove_file(p);
      ++removed;
    }
  }
  std::vector<std::string> emptied(folders.begin() + 1, folders.end());  // not the run directory
  emptied.push_back("tensorboard");  // after its fold folders
  for (const std::string& folder : emptied) {
    std::error_code ec;
    const fs::path d = fs::path(dir) / folder;
    if (fs::is_directory(fs::symlink_status(d, ec)) && fs::is_empty(d, ec)) fs::remove(d, ec);
  }
  return removed;
}

std::vector<std::string> remove_resume_leftovers(const std::string& dir) {
  std::vector<std::string> removed;
  for (const std::string& folder : run_folders(dir)) {
    const fs::path d = fs::path(dir) / folder;
    std::error_code ec;
    if (!fs::is_directory(fs::symlink_status(d, ec))) continue;
    std::vector<std::string> doomed;
    for (fs::directory_iterator it(d, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (fs::is_directory(it->symlink_status(ec))) continue;
      if (owned(folder, name) == Owned::Temporary) doomed.push_back(name);
      static const std::regex last("fold_([0-9]{1,9})_last\\.safetensors");
      std::smatch m;
      if (folder == "checkpoints" && std::regex_match(name, m, last) &&
          holds_fold_result(fs::path(dir) / "logs" / ("fold_" + m[1].str() + "_result.json"), std::stoi(m[1].str())))
        doomed.push_back(name);
    }
    if (ec) throw std::runtime_error("cannot list " + d.string() + ": " + ec.message());
    std::sort(doomed.begin(), doomed.end());
    for (const std::string& name : doomed) {
      remove_file(d / name);
      removed.push_back((fs::path(folder) / name).generic_string());
    }
  }
  return removed;
}

}  // namespace lm::train
