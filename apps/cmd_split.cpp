// `libramil split`: k-fold train / val / test splits of a labels CSV, written as split JSON.
#include <filesystem>
#include <iostream>

#include "apps/commands.h"
#include "apps/inputs.h"
#include "data/tables.h"

namespace lm::app {

namespace fs = std::filesystem;

Runner add_split(CLI::App& app) {
  struct Flags {
    std::string labels, out, group_by;
    std::vector<std::string> classes;
    int shots = 0, folds = 5, num_classes = 0;
    uint64_t seed = 7;
    bool overwrite = false;
  };
  auto f = std::make_shared<Flags>();
  app.add_option("--labels", f->labels, "labels CSV (name,label, or CLAM's case_id,slide_id,label)")->required()->check(CLI::ExistingFile);
  app.add_option("--shots", f->shots,
                 "training slides (patients with --group-by) per class; of the rest of each class, val gets "
                 "floor(rest / 2) clamped to 1..rest-1, test the remainder (an odd rest gives test the extra one)")
      ->required()
      ->check(CLI::PositiveNumber);
  app.add_option("--group-by", f->group_by, "case_id: draw patients, all slides of a patient in one part")
      ->check(CLI::IsMember({"case_id"}));
  app.add_option("--classes", f->classes, "class names in label order when the labels are names (e.g. CCRCC,PRCC,CHRCC)")
      ->delimiter(',');
  app.add_option("--folds", f->folds)->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--seed", f->seed)->capture_default_str();
  app.add_option("--num_classes", f->num_classes, "classes (default: max label + 1)");
  app.add_option("--out", f->out, "output split JSON")->required();
  app.add_flag("--overwrite", f->overwrite, "replace an existing output file");
  return [f] {
    if (fs::exists(f->out) && !f->overwrite) throw std::runtime_error(f->out + " exists (pass --overwrite to replace it)");
    auto labels = data::read_labels_csv(f->labels, f->classes);
    int C = f->classes.empty() ? f->num_classes : (int)f->classes.size();
    if (C <= 0)
      for (auto& l : labels) C = std::max(C, l.label + 1);
    data::validate_labels(labels, C, f->labels);
    auto splits = data::make_few_shot_splits(labels, C, f->shots, f->folds, f->seed, 0.5, f->labels, !f->group_by.empty());
    data::write_split_json(f->out, splits);
    std::cout << f->folds << " folds of " << f->shots << " shots per class -> " << f->out << "\n";
    return 0;
  };
}

}  // namespace lm::app
