// The subcommands of the `libramil` binary. Each registers its flags on a CLI11 app and
// returns the function that runs it. The logic lives in the libraries (models/, data/), so
// that tests reach it; these files only parse flags, load inputs and print.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>

namespace lm::app {

using Runner = std::function<int()>;

Runner add_train(CLI::App& app);
Runner add_eval(CLI::App& app);
Runner add_dump(CLI::App& app);
Runner add_split(CLI::App& app);
Runner add_tokenize(CLI::App& app);
Runner add_encode_text(CLI::App& app);
Runner add_bench(CLI::App& app);
Runner add_simulate(CLI::App& app);
Runner add_demo(CLI::App& app);
Runner add_report(CLI::App& app);
Runner add_mil_benchmark(CLI::App& app);
Runner add_patch(CLI::App& app);
Runner add_extract(CLI::App& app);
Runner add_priors(CLI::App& app);
Runner add_heatmap(CLI::App& app);
// `profile COMMAND...` re-enters the command-line parser through `run_cli`.
Runner add_profile(CLI::App& app, int (*run_cli)(int, char**));

// Shared: sets the OpenMP thread count (0 = all cores).
void set_threads(int threads);

}  // namespace lm::app
