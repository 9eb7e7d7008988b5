// Input loading helpers shared by the subcommands.
#include "apps/inputs.h"

#include <filesystem>
#include <iostream>
#include <set>
#include <stdexcept>

#include "data/feature_bag.h"
#include "data/formats/safetensors.h"

namespace lm::app {

namespace fs = std::filesystem;

std::string find_feature_file(const std::string& dir, const std::string& slide) {
  std::vector<std::string> found;
  for (const char* ext : {".h5", ".hdf5", ".pt"}) {
    fs::path p = fs::path(dir) / (slide + ext);
    if (fs::exists(p)) found.push_back(p.string());
  }
  if (found.empty()) throw std::runtime_error("slide '" + slide + "': no feature file " + slide + ".h5 (or .hdf5/.pt) in " + dir);
  if (found.size() > 1) {
    // Once per slide and process; after 10 slides, one last line says that more are hidden.
    static std::set<std::string> warned;
    const size_t shown = 10;
    if (warned.insert(found[0]).second && warned.size() <= shown + 1) {
      std::string others;
      for (size_t i = 1; i < found.size(); ++i) others += (i > 1 ? " and " : "") + found[i];
      if (warned.size() <= shown)
        std::cerr << "libramil: warning: slide '" << slide << "': both " << found[0] << " and " << others
                  << " exist; using " << found[0] << "\n";
      else
        std::cerr << "libramil: warning: more slides in " << dir << " have several feature files; the first of .h5, "
                  << ".hdf5, .pt is used for each (no further warnings)\n";
    }
  }
  return found[0];
}

std::vector<std::string> select_bag_prompts(const std::vector<std::string>& rows, int c, const std::string& path) {
  if ((int)rows.size() == c) return rows;
  if ((int)rows.size() == 2 * c) return std::vector<std::string>(rows.begin() + c, rows.end());
  throw std::runtime_error("bag prior file " + path + " has " + std::to_string(rows.size()) + " rows; expected " +
                           std::to_string(c) + " (one per class) or " + std::to_string(2 * c) + " (two scales) for " +
                           std::to_string(c) + " classes");
}

void check_bag_width(const std::string& bag_path, int64_t model_width, const std::string& checkpoint, const std::string& slide) {
  const int64_t d = data::probe_feature_bag(bag_path).d;
  if (d != model_width)
    throw std::runtime_error("file " + bag_path + ": " + (slide.empty() ? std::string() : "slide '" + slide + "': ") +
                             "feature width " + std::to_string(d) + " does not match the model width " +
                             std::to_string(model_width) + " of checkpoint " + checkpoint);
}

Tensor read_embeddings(const std::string& path, int64_t expected_rows) {
  data::SafetensorsFile f = data::read_safetensors(path);
  const Tensor& e = f.at("embeddings");
  if (e.dim() != 2) throw std::runtime_error(path + ": tensor 'embeddings' must be 2-d, got " + e.str());
  if (expected_rows >= 0 && e.shape()[0] != expected_rows)
    throw std::runtime_error(path + ": 'embeddings' has " + std::to_string(e.shape()[0]) + " rows, expected " + std::to_string(expected_rows));
  return e.to(DType::F32).clone();
}

}  // namespace lm::app
