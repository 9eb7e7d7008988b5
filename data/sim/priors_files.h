// `libramil priors`: the language priors shipped for a task (data/priors_<task>.cpp, written for
// this project) as the files `train` reads: instance_priors.json (a JSON list of entity
// descriptions), bag_priors.csv (C low-resolution rows, then C high-resolution rows, in label
// order), classes.csv (label,name: the class order the bag rows follow) and a README.txt saying
// where they come from and how to use the paper authors' own prompt files instead.
#pragma once
#include <string>
#include <vector>

#include "data/sim/simulate.h"

namespace lm::data {

// The two prior files' contents, as `train` reads them and `simulate` writes them too: the
// entity texts as a JSON list, and the bag texts one quoted row each (low rows, then high).
std::string instance_priors_json(const TaskPriors& p);
std::string bag_priors_csv(const TaskPriors& p);

// Writes the four files into `dir` (created if needed), each atomically. Refuses, naming the
// file, when one of them exists and `overwrite` is false. Returns the paths written.
std::vector<std::string> write_task_prior_files(const TaskPriors& p, const std::string& dir, bool overwrite);

}  // namespace lm::data
