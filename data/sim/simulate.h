// Simulated whole-slide datasets (`libramil simulate`): feature bags, labels and language
// priors in the users' own formats (SPEC "Data formats users already have"), drawn from a
// documented generative model (docs/simulator.md) in which patch features live in a space
// aligned with the text encoder, the way CONCH's image and text embeddings are.
//
// data/ must not depend on models/, so the text encoder comes in as a function: embed_texts
// returns (K, Dt) L2-normalised float32 rows for K texts.
//
// Output (DIR = out_dir):
//   DIR/features/<task>_sim_NNNN.h5  datasets `features` float32 (N, D), `coords` int64 (N, 2)
//                                    (level-0 pixels, multiples of 512), `entity` int32 (N)
//                                    (index into the instance priors; -1 = background patch);
//                                    root attributes `simulated` (a plain statement that the data
//                                    are simulated), `task`, `label`, `class_name`, `seed`,
//                                    `alignment`, `tumour_fraction` (camelyon16; 0 elsewhere)
//   DIR/labels.csv                   name,label (balanced over classes)
//   DIR/instance_priors.json         JSON list of the task's entity descriptions
//   DIR/bag_priors.csv               C low-resolution rows, then C high-resolution rows
//   DIR/entities.csv                 per slide and entity: patch count and fraction (ground truth)
//   DIR/README.txt                   says that the data are simulated, and how
// Same options and embeddings -> byte-identical files (counter-based RNG, no timestamps).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace lm::data {

// The language priors of a task, written in this repository (data/priors_<task>.cpp).
struct TaskPriors {
  std::string task;                      // "rcc" | "nsclc" | "camelyon16"
  std::vector<std::string> class_names;  // C, in label order
  std::vector<std::string> entities;     // Kt instance priors, "Entity name: description."
  std::vector<std::string> bag_low;      // C low-resolution (whole-slide architecture) texts
  std::vector<std::string> bag_high;     // C high-resolution (cellular) texts
  // Simulator only: relative abundance of each entity in each class (Kt rows of C values).
  std::vector<std::vector<double>> class_weight;
  // Simulator only: when >= 0, slides of this class look like `focal_base_class` slides
  // except for a focal minority of patches (fraction uniform in [focal_min, focal_max])
  // drawn from the entities weighted in this class's column (camelyon16: metastases).
  int focal_class = -1;
  int focal_base_class = 0;
  double focal_min = 0.0, focal_max = 0.0;

  int num_classes() const { return (int)class_names.size(); }
  // "low rows then high rows", the bag-prior file order.
  std::vector<std::string> bag_priors() const;
  // The part of an entity text before the first ':'.
  std::string entity_name(size_t k) const;
};

// "rcc", "nsclc", "camelyon16".
std::vector<std::string> simulate_task_names();
// Throws std::invalid_argument naming the valid tasks for an unknown name.
const TaskPriors& task_priors(const std::string& task);

struct SimulateOptions {
  std::string task = "rcc";
  int slides = 60;                  // total, split evenly over classes (remainder to the first)
  uint64_t seed = 0;
  double alignment = 1.0;           // 0..1: share of the prototype taken from the text embedding
  double size_scale = 1.0;          // multiplies every bag size (demo: 0.05)
  int64_t dim = 512;                // feature width D
  double background_fraction = 0.1; // mean share of uninformative background patches
  double isotropic_noise = 0.03;    // per-dimension std of the white noise
  double structured_noise = 0.2;    // std of each low-rank (shared and per-entity) coefficient
  double slide_shift = 0.35;        // norm scale of the per-slide stain/scanner shift
  double mixture_concentration = 12.0;  // Dirichlet concentration of per-slide entity mixtures
  // Share of a slide's tissue drawn from its class's characteristic entities (uniform in
  // [min, max] per slide; the rest from shared entities and other classes' look-alikes).
  // Not used by camelyon16, whose tumour slides carry a focal 1-8% of metastasis instead.
  double tumour_content_min = 0.15, tumour_content_max = 0.8;
  int64_t patch_size = 512;         // grid step of coords (level-0 pixels)
  bool overwrite = false;           // allow writing into a non-empty out_dir
};

using EmbedTextsFn = std::function<Tensor(const std::vector<std::string>&)>;

// Per-slide summary returned by simulate_dataset (also written to entities.csv).
struct SimulatedSlide {
  std::string name;
  int label = 0;
  int64_t patches = 0;
  int64_t background = 0;
  double focal_fraction = 0.0;  // share of focal (tumour) patches; 0 for non-focal slides
};

struct SimulateSummary {
  std::vector<SimulatedSlide> slides;
  int64_t text_dim = 0;
};

// Writes the dataset (see the top of this file). Throws std::invalid_argument on bad options
// and std::runtime_error on I/O problems or a malformed embed_texts result.
SimulateSummary simulate_dataset(const SimulateOptions& opts, const EmbedTextsFn& embed_texts,
                                 const std::string& out_dir);

// The image space of a task (deterministic in task, seed, dim and the embeddings), exposed so
// that tests and analyses can relate features to the text:
struct SimulatedSpace {
  Tensor text_map;     // A (D, Dt): column-orthonormal when D >= Dt (row-orthonormal otherwise)
  Tensor text_dirs;    // u (K, D): unit rows, normalize(A normalize(z_k - mean z))
  Tensor prototypes;   // m (K, D): unit rows, normalize(sqrt(a) u_k + sqrt(1 - a) r_k)
  Tensor background;   // (B, D): unit rows, background prototypes (independent of the text)
};
// `text_emb` is (K, Dt) float32 (the embed_texts result for the task's entities).
SimulatedSpace simulated_space(const SimulateOptions& opts, const Tensor& text_emb);

namespace detail {
const TaskPriors& rcc_priors();
const TaskPriors& nsclc_priors();
const TaskPriors& camelyon16_priors();
}  // namespace detail

}  // namespace lm::data
