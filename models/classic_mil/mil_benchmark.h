// The classic MIL benchmark protocol (Musk1, Musk2, Fox, Tiger, Elephant) of Ilse, Tomczak,
// Welling 2018 ("Attention-based Deep Multiple Instance Learning", Table 1): for each of
// `reps` repetitions of `folds`-fold cross-validation (the fixed folds shipped with the data,
// data::MilDataset::test_folds), train a FRESH model on the training bags and measure the
// accuracy on the test bags; average over the folds of a repetition; report the mean over
// repetitions and its standard error (sample std over repetitions / sqrt(reps)).
//
// Per fold: features standardised with the per-feature mean / std of the training bags'
// instances (a constant feature keeps std 1); network = optional instance-embedding layers
// Linear+ReLU (all widths of `hidden` but the last) followed by the pooling model
// (models/mil/baselines.h) whose own embedding is Linear(., hidden.back())+ReLU; 2-class head,
// cross-entropy; Adam (coupled L2 weight decay), one bag per step, bags reshuffled every
// epoch; fixed number of epochs (no validation split, no early stopping); the model after the
// last epoch is evaluated. Everything random (initialisation, shuffling) is drawn from
// generators seeded by (seed, rep, fold), so a result does not depend on `threads`.
// Full description and the choices made: docs/mil_benchmarks.md.
#pragma once
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "models/classic_mil/mil_benchmark_data.h"
#include "models/nn/nn.h"

namespace lm::bench {

struct MilBenchmarkOptions {
  std::string model = "abmil";          // abmil | gated_abmil | meanpool | maxpool | libramil
  int reps = 5;                         // first `reps` repetitions of the dataset's folds
  int folds = 10;                       // first `folds` folds of each repetition
  int epochs = 15;
  double lr = 5e-4;
  double weight_decay = 5e-3;           // Adam, L2 (coupled), as torch.optim.Adam(weight_decay)
  double beta1 = 0.9, beta2 = 0.999;
  std::vector<int64_t> hidden = {128};  // instance-embedding widths (last: the pooling model's own)
  int64_t attn_dim = 64;                // attention width (abmil, gated_abmil)
  bool standardize = true;
  uint64_t seed = 1;
  // Folds trained concurrently, each with ONE OpenMP thread inside the ops (0: hardware
  // threads). 1 runs the folds one after another, also with single-threaded ops (these
  // models are far too small for OpenMP teams to pay off; see docs/mil_benchmarks.md).
  int threads = 0;
  // Libra-MIL only: the benchmarks have no text priors; random unit vectors stand in.
  int64_t libramil_text_dim = 64, libramil_instance_priors = 16, libramil_vis_prototypes = 10;
  // Libra-MIL only: paper mode's step 7 and ablation (LibraMILConfig; issue 23's study).
  std::string libramil_fusion = "softmax", libramil_ablation = "none";
  void validate() const;                // throws std::invalid_argument naming the bad field
};

struct MilFoldResult {
  int rep = 0, fold = 0;                // 0-based
  int n_train = 0, n_test = 0, correct = 0;
  double accuracy = 0;
  double final_train_loss = 0;          // mean loss of the last epoch
  double seconds = 0;
};

struct MilBenchmarkResult {
  std::string dataset, model;
  std::vector<MilFoldResult> folds;     // rep-major order
  std::vector<double> rep_accuracy;     // mean test accuracy over the folds of each repetition
  double accuracy_mean = 0;             // mean of rep_accuracy
  double accuracy_se = 0;               // sample std (ddof 1) of rep_accuracy / sqrt(reps); 0 for one rep
  double seconds = 0;
  int threads = 1;
};

// The network of the protocol (see the top) for `dim` input features and 2 classes.
std::unique_ptr<nn::Module> make_mil_benchmark_model(const MilBenchmarkOptions& o, int64_t dim, Generator& gen);

// Trains and evaluates one fold (0-based rep, fold).
MilFoldResult run_mil_fold(const data::MilDataset& ds, const MilBenchmarkOptions& o, int rep, int fold);

// The whole protocol. One progress line per finished fold goes to `log` (if given).
MilBenchmarkResult run_mil_benchmark(const data::MilDataset& ds, const MilBenchmarkOptions& o,
                                     std::ostream* log = nullptr);

// Ilse et al. 2018, Table 1 (accuracy): abmil / gated_abmil on Musk1 and Elephant (dataset
// name compared case-insensitively); nullopt when not known here.
std::optional<double> published_accuracy(const std::string& dataset, const std::string& model);

// The result as one JSON line: dataset, model, accuracy_mean, accuracy_se, reps, folds,
// seconds, published (null when unknown), rep_accuracy.
std::string mil_benchmark_json(const MilBenchmarkResult& r, const MilBenchmarkOptions& o);

}  // namespace lm::bench
