// Writing a task's shipped language priors as files (data/sim/priors_files.h).
#include "data/sim/priors_files.h"

#include <filesystem>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "data/atomic_file.h"
#include "data/tables.h"

namespace lm::data {

namespace fs = std::filesystem;

namespace {

std::string readme(const TaskPriors& p) {
  std::string r =
      "Language priors for the task '" + p.task + "', written by `libramil priors`.\n\n"
      "These texts were written for the libramil project (data/priors_" + p.task + ".cpp), in our own\n"
      "words from standard histopathology descriptions. They are NOT the Libra-MIL paper authors'\n"
      "prompt files. To use the authors' own files, pass them instead:\n"
      "  libramil train ... --instance_path THEIR_instance_priors.json --bag_path THEIR_bag_priors.csv\n\n"
      "Files\n"
      "  instance_priors.json  " + std::to_string(p.entities.size()) + " instance priors (entity descriptions), a JSON list of strings\n"
      "  bag_priors.csv        " + std::to_string(p.num_classes()) + " low-resolution rows (whole-slide architecture), then " +
      std::to_string(p.num_classes()) + " high-resolution rows\n"
      "                        (cellular detail), one quoted text per row, classes in label order;\n"
      "                        with two scales `train` uses the high-resolution rows\n"
      "  classes.csv           label,name: label k of your labels CSV must mean the class on row k\n\n"
      "Use: libramil train --labels labels.csv --features FEATURES/ --instance_path instance_priors.json \\\n"
      "                    --bag_path bag_priors.csv ...\n";
  return r;
}

}  // namespace

std::string instance_priors_json(const TaskPriors& p) { return nlohmann::json(p.entities).dump(2) + "\n"; }

std::string bag_priors_csv(const TaskPriors& p) {
  std::string bag;
  for (const std::string& t : p.bag_priors()) bag += csv_quoted(t) + "\n";
  return bag;
}

std::vector<std::string> write_task_prior_files(const TaskPriors& p, const std::string& dir, bool overwrite) {
  std::string classes = "label,name\n";
  for (int c = 0; c < p.num_classes(); ++c) classes += std::to_string(c) + "," + csv_field(p.class_names[c]) + "\n";
  const std::vector<std::pair<std::string, std::string>> files = {
      {"instance_priors.json", instance_priors_json(p)},
      {"bag_priors.csv", bag_priors_csv(p)},
      {"classes.csv", classes},
      {"README.txt", readme(p)}};
  std::error_code ec;
  if (!overwrite)
    for (const auto& [name, text] : files)
      if (fs::exists(fs::path(dir) / name, ec))
        throw std::runtime_error((fs::path(dir) / name).string() + ": already exists (give --overwrite to replace it)");
  fs::create_directories(dir);
  std::vector<std::string> out;
  for (const auto& [name, text] : files) {
    write_file_atomic((fs::path(dir) / name).string(), text);
    out.push_back((fs::path(dir) / name).string());
  }
  return out;
}

}  // namespace lm::data
