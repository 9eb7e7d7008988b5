// libramil: train, evaluate, explain and profile Libra-MIL and baseline MIL models on
// whole-slide-image feature bags. Every error ends as one line on stderr and exit code 1.
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <map>

#include "apps/commands.h"
#include "apps/config_file.h"
#include "ops/cpu/isa.h"

namespace lm::app {
void set_threads(int threads) {
  if (threads > 0) omp_set_num_threads(threads);
}
}  // namespace lm::app

// Parses argv and runs one subcommand (`profile` calls this again for the command it wraps).
static int run_cli(int argc, char** argv) {
  CLI::App app{"libramil: few-shot whole-slide-image classification with Libra-MIL (from-scratch C++/CUDA stack)"};
  app.require_subcommand(1);
  // The CPU kernels' instruction set (ops/cpu/isa.h): the bench commands' --isa X is
  // LIBRAMIL_CPU_ISA=X, set before the first kernel asks; a bad value stops here in one line.
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--isa" && i + 1 < argc) setenv("LIBRAMIL_CPU_ISA", argv[i + 1], 1);
    else if (a.rfind("--isa=", 0) == 0) setenv("LIBRAMIL_CPU_ISA", a.c_str() + 6, 1);
  }
  std::string isa;
  try {
    isa = lm::cpu::isa_name(lm::cpu::cpu_isa());
  } catch (const std::exception& e) {
    std::cerr << "libramil: error: " << e.what() << std::endl;
    return 1;
  }
  const std::string hw = lm::cpu::isa_name(lm::cpu::hardware_isa());
  // Off x86 the only level is scalar: the portable kernels, vectorised for the target (NEON on aarch64).
  const std::string arch = LM_X86 ? "" : std::string(", portable C++ for ") + lm::cpu::target_arch();
  app.set_version_flag("--version", "libramil 0.1.0 (CPU kernels: " + isa + arch +
                                        (isa == hw ? "" : ", forced by LIBRAMIL_CPU_ISA; the processor has " + hw) + ")");
  std::map<CLI::App*, lm::app::Runner> runners;
  auto add = [&](const char* name, const char* help, lm::app::Runner (*fn)(CLI::App&)) {
    CLI::App* sub = app.add_subcommand(name, help);
    runners[sub] = fn(*sub);
  };
  add("patch", "whole-slide images -> tissue -> patch coordinates (OpenSlide; TRIDENT's layout)", lm::app::add_patch);
  add("extract", "patches or tiles -> a patch encoder on our own engine -> feature bags (TRIDENT's layout) that train reads", lm::app::add_extract);
  add("train", "run the few-shot training/evaluation protocol (K folds)", lm::app::add_train);
  add("eval", "evaluate a checkpoint on feature bags; writes per-slide probabilities (CSV)", lm::app::add_eval);
  add("dump", "one forward+backward on one bag; writes logits, loss and every parameter gradient", lm::app::add_dump);
  add("split", "make few-shot K-fold splits from a labels CSV", lm::app::add_split);
  add("tokenize", "tokenize lines of stdin with a tokenizer.json / vocab.txt; prints ids", lm::app::add_tokenize);
  add("encode-text", "embed texts (JSON list or one-column CSV) with a text encoder", lm::app::add_encode_text);
  add("bench", "benchmarks (train-step, sinkhorn, attention)", lm::app::add_bench);
  add("simulate", "write a simulated whole-slide dataset (features, labels, priors) -- simulated data", lm::app::add_simulate);
  add("demo", "simulate RCC data, train Libra-MIL and baselines at 1/4/16 shots, print the table, write a report", lm::app::add_demo);
  add("heatmap", "per-patch scores on the slide: heatmaps (PNG, JPEG), QuPath GeoJSON, top-patch galleries", lm::app::add_heatmap);
  add("report", "write an HTML report (tables, curves, ROC, heatmaps) for one or more run directories", lm::app::add_report);
  add("priors", "write the language priors shipped for a task (instance_priors.json, bag_priors.csv, classes.csv)", lm::app::add_priors);
  {
    CLI::App* sub = app.add_subcommand("profile", "run any other command with the per-op profiler; prints a table per op/kernel");
    runners[sub] = lm::app::add_profile(*sub, &run_cli);
  }
  add("mil-benchmark", "classic MIL benchmarks (Musk1, Elephant, ...): 5 x 10-fold protocol of Ilse et al. 2018; prints JSON", lm::app::add_mil_benchmark);
  // `--config FILE` of the chosen subcommand becomes flags before parsing (apps/config_file.h).
  std::vector<std::string> args(argv + 1, argv + argc);
  try {
    for (size_t i = 0; i < args.size(); ++i) {
      if (args[i].empty() || args[i][0] == '-') continue;
      const auto found = app.get_subcommands([&](CLI::App* s) { return s->get_name() == args[i]; });
      CLI::App* sub = found.empty() ? nullptr : found[0];
      if (sub && sub->get_option_no_throw("--config")) {
        std::vector<std::string> rest(args.begin() + long(i) + 1, args.end());
        rest = lm::app::expand_config_file(*sub, rest);
        args.resize(i + 1);
        args.insert(args.end(), rest.begin(), rest.end());
      }
      break;
    }
  } catch (const std::exception& e) {
    std::cerr << "libramil: error: " << e.what() << std::endl;
    return 1;
  }
  try {
    std::reverse(args.begin(), args.end());  // CLI11 takes the arguments last-first
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    for (CLI::App* sub : app.get_subcommands()) return runners.at(sub)();
  } catch (const std::exception& e) {
    std::cerr << "libramil: error: " << e.what() << std::endl;
    return 1;
  }
  return 0;
}

int main(int argc, char** argv) { return run_cli(argc, argv); }
