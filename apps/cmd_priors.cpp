// `libramil priors --task rcc|nsclc|camelyon16 --out DIR`: writes the language priors shipped
// for a task (written for this project; data/sim/priors_files.h) as the files `train` reads.
#include <iostream>

#include "apps/commands.h"
#include "data/sim/priors_files.h"

namespace lm::app {

Runner add_priors(CLI::App& app) {
  struct Flags {
    std::string task, out;
    bool overwrite = false;
  };
  auto f = std::make_shared<Flags>();
  app.add_option("--task", f->task, "rcc | nsclc | camelyon16")->required()->check(CLI::IsMember(data::simulate_task_names()));
  app.add_option("--out", f->out, "folder for instance_priors.json, bag_priors.csv, classes.csv, README.txt")->required();
  app.add_flag("--overwrite", f->overwrite, "replace those files when they exist");
  return [f] {
    const data::TaskPriors& p = data::task_priors(f->task);
    for (const auto& path : data::write_task_prior_files(p, f->out, f->overwrite)) std::cout << path << "\n";
    std::cout << "priors: task " << p.task << ", " << p.entities.size() << " instance priors, " << p.num_classes()
              << " classes (";
    for (int c = 0; c < p.num_classes(); ++c) std::cout << (c ? ", " : "") << c << " = " << p.class_names[c];
    std::cout << "); written for this project, not the paper authors' files (see README.txt)\n";
    return 0;
  };
}

}  // namespace lm::app
