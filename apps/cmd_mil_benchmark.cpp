// `libramil mil-benchmark`: the classic MIL benchmarks (Musk1, Musk2, Fox, Tiger, Elephant)
// under the 5 x 10-fold protocol of Ilse et al. 2018 (models/classic_mil/mil_benchmark.h,
// docs/mil_benchmarks.md). Progress on stderr; the last stdout line is the result as JSON.
#include <iostream>

#include "apps/commands.h"
#include "models/classic_mil/mil_benchmark_data.h"
#include "models/classic_mil/mil_benchmark.h"

namespace lm::app {

Runner add_mil_benchmark(CLI::App& app) {
  struct Flags {
    std::string data;
    bench::MilBenchmarkOptions o;
    bool no_standardize = false;
  };
  auto f = std::make_shared<Flags>();
  app.add_option("--data", f->data, "dataset folder (data.csv, bagids.csv, labels.csv, cvindexes/)")
      ->required()
      ->check(CLI::ExistingDirectory);
  app.add_option("--model", f->o.model, "abmil | gated_abmil | meanpool | maxpool | libramil")
      ->check(CLI::IsMember({"abmil", "gated_abmil", "meanpool", "maxpool", "libramil"}))
      ->capture_default_str();
  app.add_option("--fusion", f->o.libramil_fusion, "libramil: paper mode step 7: softmax | literal | standardised")
      ->capture_default_str();
  app.add_option("--ablation", f->o.libramil_ablation,
                 "libramil: none | no_instance_priors | no_visual_prototypes | concat | no_transport")
      ->capture_default_str();
  app.add_option("--reps", f->o.reps, "repetitions of the cross-validation")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--folds", f->o.folds, "folds per repetition")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--epochs", f->o.epochs)->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--lr", f->o.lr, "Adam learning rate")->capture_default_str();
  app.add_option("--weight-decay", f->o.weight_decay, "Adam L2 weight decay")->capture_default_str();
  app.add_option("--hidden", f->o.hidden, "instance-embedding widths (comma-separated)")->delimiter(',')->capture_default_str();
  app.add_option("--attn-dim", f->o.attn_dim, "attention width (abmil, gated_abmil)")->capture_default_str();
  app.add_flag("--no-standardize", f->no_standardize, "do not standardise the features");
  app.add_option("--seed", f->o.seed)->capture_default_str();
  app.add_option("--threads", f->o.threads,
                 "folds trained concurrently, one OpenMP thread each (0 = all cores; 1 = one fold at a time)")
      ->capture_default_str();
  return [f] {
    f->o.standardize = !f->no_standardize;
    f->o.validate();
    data::MilDataset ds = data::read_mil_dataset(f->data);
    std::cerr << "mil-benchmark: " << ds.name << ": " << ds.num_bags() << " bags, " << ds.num_instances
              << " instances, " << ds.dim << " features, " << ds.reps() << " x " << ds.folds() << " folds; model "
              << f->o.model << ", " << f->o.reps << " x " << f->o.folds << " folds, " << f->o.epochs << " epochs\n";
    bench::MilBenchmarkResult r = bench::run_mil_benchmark(ds, f->o, &std::cerr);
    std::cerr << "mil-benchmark: " << ds.name << " " << f->o.model << ": accuracy " << r.accuracy_mean << " +- "
              << r.accuracy_se << " (SE over " << f->o.reps << " repetitions), " << r.seconds << " s on " << r.threads
              << " thread(s)\n";
    std::cout << bench::mil_benchmark_json(r, f->o) << std::endl;
    return 0;
  };
}

}  // namespace lm::app
