// The whole-slide simulator (see simulate.h and docs/simulator.md for the generative model).
//
// Randomness: every draw comes from Philox (tensor/rng.h) under keys derived by hashing
// (seed, task, purpose, slide index), and per-patch noise is indexed by the patch number, so
// the output does not depend on the thread count and the same options give the same bytes.
#include "data/sim/simulate.h"
#include "data/sim/simulate_parts.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <numeric>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>

#include "data/atomic_file.h"
#include "data/formats/hdf5_writer.h"
#include "data/sim/priors_files.h"
#include "data/tables.h"
#include "tensor/rng.h"

namespace lm::data {

namespace fs = std::filesystem;

// ---- priors -------------------------------------------------------------------------------

std::vector<std::string> TaskPriors::bag_priors() const {
  std::vector<std::string> out = bag_low;
  out.insert(out.end(), bag_high.begin(), bag_high.end());
  return out;
}

std::string TaskPriors::entity_name(size_t k) const {
  const std::string& t = entities.at(k);
  size_t p = t.find(':');
  return p == std::string::npos ? t : t.substr(0, p);
}

std::vector<std::string> simulate_task_names() { return {"rcc", "nsclc", "camelyon16"}; }

const TaskPriors& task_priors(const std::string& task) {
  if (task == "rcc") return detail::rcc_priors();
  if (task == "nsclc") return detail::nsclc_priors();
  if (task == "camelyon16") return detail::camelyon16_priors();
  throw std::invalid_argument("unknown simulation task '" + task + "' (expected rcc, nsclc or camelyon16)");
}

using namespace sim;

namespace {

// ---- HDF5 output ------------------------------------------------------------------------

std::string simulated_statement(const SimulateOptions& o) {
  return std::string(kVersion) + ": SIMULATED DATA, not real whole-slide images. Features were drawn from a " +
         "synthetic generative model (docs/simulator.md), task " + o.task + ", seed " + std::to_string(o.seed) +
         "; do not use for clinical or biological conclusions.";
}

std::string fmt_double(double v) {
  std::ostringstream ss;
  ss.precision(6);
  ss << v;
  return ss.str();
}

// Through data/formats/hdf5_writer: built in memory, written with write_file_atomic, so a full
// disk is a plain write error (temporary removed, one line) and no HDF5 file is left half-closed
// for HDF5's exit handler to crash on (it did: "HDF5 failed to flush", then SIGSEGV).
void write_slide_h5(const std::string& path, const Slide& s, const SimulateOptions& o, const TaskPriors& p) {
  H5Writer w(path);
  const uint64_t n = (uint64_t)s.n, D = (uint64_t)o.dim;
  w.dataset_f32("features", {n, D}, s.features.data());
  w.dataset_i64("coords", {n, 2}, s.coords.data());
  w.dataset_i32("entity", {n}, s.entity.data());
  w.attr_string("/", "simulated", simulated_statement(o));
  w.attr_string("/", "task", o.task);
  w.attr_string("/", "class_name", p.class_names[s.label]);
  w.attr_i64("/", "label", s.label);
  w.attr_u64("/", "seed", o.seed);
  w.attr_f64("/", "alignment", o.alignment);
  w.attr_f64("/", "tumour_fraction", s.focal_fraction);
  w.attr_i64("/", "patch_size", o.patch_size);
  w.commit();
}

std::string readme_text(const SimulateOptions& o, const TaskPriors& p, const SimulateSummary& sum) {
  std::ostringstream r;
  r << "SIMULATED DATA - NOT REAL WHOLE-SLIDE IMAGES\n"
    << "============================================\n\n"
    << "Every file in this directory was produced by `libramil simulate` (" << kVersion << ").\n"
    << "No tissue was scanned and no patient is behind any of it: patch features are drawn from a\n"
    << "synthetic generative model in which each patch belongs to a pathological entity described by\n"
    << "the instance priors, and its feature is that entity's text embedding mapped into the image\n"
    << "space plus structured noise, a per-slide stain/scanner shift and uninformative background\n"
    << "patches. The data exist to test and benchmark the software and to measure the value of\n"
    << "language priors (--alignment); they support no clinical or biological conclusion.\n"
    << "The generative model is documented in docs/simulator.md of the libramil repository.\n\n"
    << "task:        " << o.task << "\n"
    << "classes:     ";
  for (int c = 0; c < p.num_classes(); ++c) r << (c ? ", " : "") << c << " = " << p.class_names[c];
  int64_t total = 0;
  for (auto& s : sum.slides) total += s.patches;
  r << "\nslides:      " << o.slides << " (" << total << " patches)\n"
    << "seed:        " << o.seed << "\n"
    << "alignment:   " << fmt_double(o.alignment) << "  (1 = image prototypes follow the text embeddings, 0 = text uninformative)\n"
    << "size scale:  " << fmt_double(o.size_scale) << "\n"
    << "feature dim: " << o.dim << " (text embedding dim " << sum.text_dim << ")\n"
    << "background:  " << fmt_double(o.background_fraction) << " mean share of background patches\n\n"
    << "Files\n"
    << "  features/<slide>.h5     CLAM-style bags: `features` float32 (N, D), `coords` int64 (N, 2)\n"
    << "                          (level-0 pixels, multiples of " << o.patch_size << "), `entity` int32 (N)\n"
    << "                          (ground-truth instance-prior index, -1 = background); attribute\n"
    << "                          `simulated` says these are simulated data\n"
    << "  labels.csv              name,label\n"
    << "  instance_priors.json    " << p.entities.size() << " entity descriptions (JSON list)\n"
    << "  bag_priors.csv          " << p.num_classes() << " low-resolution rows, then " << p.num_classes()
    << " high-resolution rows\n"
    << "  entities.csv            per slide and entity: ground-truth patch counts\n";
  return r.str();
}

// Writes the bags and tables of simulate_dataset into `root`, adding each file to `made`.
SimulateSummary write_dataset(const SimulateOptions& o, const TaskPriors& p, const Space& sp, const fs::path& root,
                              std::vector<fs::path>& made);

}  // namespace

SimulatedSpace simulated_space(const SimulateOptions& opts, const Tensor& text_emb) {
  Space s = build_space(opts, text_emb);
  SimulatedSpace out;
  out.text_map = to_tensor(s.A, s.D, s.Dt);
  out.text_dirs = to_tensor(s.u, s.K, s.D);
  out.prototypes = to_tensor(s.m, s.K, s.D);
  out.background = to_tensor(s.bg, kBackground, s.D);
  return out;
}

SimulateSummary simulate_dataset(const SimulateOptions& o, const EmbedTextsFn& embed_texts, const std::string& out_dir) {
  const TaskPriors& p = task_priors(o.task);
  validate(o, p);
  if (!embed_texts) throw std::invalid_argument("simulate: no text embedding function");
  Tensor emb = embed_texts(p.entities);
  if (!emb.defined() || emb.dim() != 2 || emb.shape()[0] != (int64_t)p.entities.size())
    throw std::runtime_error("simulate: the text encoder returned " + (emb.defined() ? emb.str() : std::string("nothing")) +
                             " for " + std::to_string(p.entities.size()) + " texts");
  Space sp = build_space(o, emb);

  const fs::path root(out_dir), fdir = root / "features";
  std::error_code ec;
  const bool made_root = !fs::exists(root, ec), made_fdir = !fs::exists(fdir, ec);
  prepare_output_dir(out_dir, o.overwrite);
  if (o.overwrite) {  // temporaries of this command's own files that a killed run left
    static const std::regex own("labels\\.csv|entities\\.csv|instance_priors\\.json|bag_priors\\.csv|README\\.txt|"
                                "(rcc|nsclc|camelyon16)_sim_[0-9]+\\.h5");
    for (const fs::path& d : {root, fdir})
      for (auto& e : fs::directory_iterator(d, ec))
        if (std::regex_match(atomic_target(e.path().filename().string()), own)) fs::remove(e.path(), ec);
  }
  fs::create_directories(fdir, ec);
  if (ec) throw std::runtime_error("cannot create directory " + fdir.string() + ": " + ec.message());
  // A failure from here on (a full disk, say) removes every file this call wrote and the
  // folders it made, so no partial dataset is left (files replaced under --overwrite are gone
  // either way).
  std::vector<fs::path> made;
  try {
    return write_dataset(o, p, sp, root, made);
  } catch (...) {
    for (const fs::path& f : made) fs::remove(f, ec);
    if (made_fdir) fs::remove(fdir, ec);  // only if empty
    if (made_root) fs::remove(root, ec);
    throw;
  }
}

namespace {

SimulateSummary write_dataset(const SimulateOptions& o, const TaskPriors& p, const Space& sp, const fs::path& root,
                              std::vector<fs::path>& made) {
  const fs::path fdir = root / "features";
  std::error_code ec;

  // Characteristic entities of each class: the class's weight dominates every other class's.
  const int C = p.num_classes();
  const int64_t K = (int64_t)p.entities.size();
  std::vector<std::vector<bool>> characteristic(C, std::vector<bool>(K, false));
  for (int c = 0; c < C; ++c)
    for (int64_t k = 0; k < K; ++k) {
      double other = 0;
      for (int d = 0; d < C; ++d)
        if (d != c) other = std::max(other, p.class_weight[k][d]);
      characteristic[c][k] = p.class_weight[k][c] > 0 && p.class_weight[k][c] >= 2.0 * other;
    }

  // Balanced labels in a seeded order.
  std::vector<int> labels(o.slides);
  for (int i = 0; i < o.slides; ++i) labels[i] = i % C;
  Generator lg(derive(derive(o.seed, hash_str(o.task)), 0x1ABE1ull));
  for (int i = o.slides - 1; i > 0; --i) std::swap(labels[i], labels[lg.next_below((uint64_t)i + 1)]);

  SimulateSummary sum;
  sum.text_dim = sp.Dt;
  std::set<std::string> written;
  std::ostringstream lab, ents;
  lab << "name,label\n";
  ents << "slide,label,entity,name,patches,fraction\n";
  for (int i = 0; i < o.slides; ++i) {
    Slide s = make_slide(o, p, sp, i, labels[i], characteristic);
    const std::string path = (fdir / (s.name + ".h5")).string();
    write_slide_h5(path, s, o, p);
    made.push_back(path);
    written.insert(s.name + ".h5");
    lab << s.name << "," << s.label << "\n";
    std::vector<int64_t> count(K + 1, 0);
    for (int32_t e : s.entity) ++count[e < 0 ? K : e];
    for (int64_t k = 0; k <= K; ++k) {
      if (count[k] == 0) continue;
      ents << s.name << "," << s.label << "," << (k == K ? -1 : k) << ","
           << csv_quoted(k == K ? std::string("background") : p.entity_name((size_t)k)) << "," << count[k] << ","
           << fmt_double((double)count[k] / (double)s.n) << "\n";
    }
    sum.slides.push_back({s.name, s.label, s.n, s.background, s.focal_fraction});
  }
  // With --overwrite: drop simulated bags of an earlier run that this run did not write, so
  // the features folder matches labels.csv.
  static const std::regex sim_name("(rcc|nsclc|camelyon16)_sim_[0-9]+\\.h5");
  for (auto& e : fs::directory_iterator(fdir, ec)) {
    std::string f = e.path().filename().string();
    if (std::regex_match(f, sim_name) && !written.count(f)) fs::remove(e.path(), ec);
  }

  for (const auto& [name, text] : std::vector<std::pair<const char*, std::string>>{
           {"labels.csv", lab.str()},
           {"entities.csv", ents.str()},
           {"instance_priors.json", instance_priors_json(p)},
           {"bag_priors.csv", bag_priors_csv(p)},
           {"README.txt", readme_text(o, p, sum)}}) {
    write_file_atomic((root / name).string(), text);
    made.push_back(root / name);
  }
  return sum;
}

}  // namespace

}  // namespace lm::data
