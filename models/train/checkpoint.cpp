// Models and checkpoints (see checkpoint.h).
#include "models/train/checkpoint.h"

#include <nlohmann/json.hpp>
#include <stdexcept>

#include "data/formats/safetensors.h"
#include "models/mil/baselines.h"
#include "models/train/config_json.h"

namespace lm::train {

std::unique_ptr<nn::Module> make_model(const TrainOptions& o, const Dataset& d, Generator& gen) {
  if (o.model == "libramil") {
    models::LibraMILConfig c = o.libramil;
    c.dim = d.dim;
    c.num_classes = d.num_classes;
    if (!d.z_ins.defined() || !d.z_bag.defined())
      throw std::invalid_argument("Libra-MIL needs instance- and bag-prior embeddings");
    c.text_dim = d.z_ins.shape()[1];
    c.num_text_prototypes = d.z_ins.shape()[0];
    return std::make_unique<models::LibraMIL>(c, d.z_ins, d.z_bag, gen);
  }
  return models::make_baseline(o.model, d.dim, d.num_classes, gen);
}

void save_checkpoint(const std::string& path, nn::Module& model, const std::string& config_json) {
  data::write_safetensors_checked(path, model.ordered_state_dict(), {{"libramil.config", config_json}, {"format", "pt"}});
}

void load_checkpoint(const std::string& path, nn::Module& model) {
  data::SafetensorsFile f = data::read_safetensors(path);
  nn::StateDict sd(f.tensors.begin(), f.tensors.end());
  model.load_state_dict(sd, true);
}

namespace {

// What a checkpoint says about its model before any is built: the parsed "libramil.config"
// metadata (an empty object when absent) and the model's name (from the metadata, or
// "libramil" for a bare Libra-MIL state_dict, recognised by its 'proto_vis' tensor).
struct CheckpointHeader {
  nlohmann::json cfg = nlohmann::json::object();
  std::string model;
};

CheckpointHeader read_checkpoint_header(const data::SafetensorsFile& f, const std::string& path) {
  CheckpointHeader h;
  if (f.metadata.count("libramil.config")) {
    try {
      h.cfg = nlohmann::json::parse(f.metadata.at("libramil.config"));
    } catch (const std::exception&) {
      throw std::runtime_error(path + ": metadata 'libramil.config' is not valid JSON");
    }
  }
  if (!h.cfg.is_object()) throw std::runtime_error(path + ": metadata 'libramil.config' is not a JSON object");
  if (h.cfg.contains("model") && !h.cfg["model"].is_string())
    throw std::runtime_error(path + ": metadata 'libramil.config' has a 'model' that is not a string");
  h.model = h.cfg.value("model", f.contains("proto_vis") ? "libramil" : "");
  if (h.model.empty())
    throw std::runtime_error(path + ": not a libramil checkpoint (no 'libramil.config' metadata and no 'proto_vis' tensor)");
  return h;
}

// A positive integer of a baseline's metadata ("dim", "num_classes").
int64_t metadata_size(const CheckpointHeader& h, const char* key, const std::string& path) {
  if (!h.cfg.contains(key) || !h.cfg[key].is_number_integer() || h.cfg[key].get<int64_t>() <= 0)
    throw std::runtime_error(path + ": metadata lacks a positive integer '" + key + "' for model '" + h.model + "'");
  return h.cfg[key].get<int64_t>();
}

// The named tensor of a Libra-MIL checkpoint, which must be 2-d (its shape sizes the model).
const Tensor& tensor_2d(const data::SafetensorsFile& f, const char* name, const std::string& path) {
  const Tensor& t = f.at(name);
  if (t.dim() != 2) throw std::runtime_error(path + ": tensor '" + name + "' must be 2-d, got " + t.str());
  return t;
}

}  // namespace

std::unique_ptr<nn::Module> load_model_from_checkpoint(const std::string& path, const LibraMILOverrides& ov,
                                                       CheckpointShape* shape) {
  data::SafetensorsFile f = data::read_safetensors(path);
  const CheckpointHeader h = read_checkpoint_header(f, path);
  if (shape) {
    *shape = h.model == "libramil"
                 ? CheckpointShape{h.model, tensor_2d(f, "proto_vis", path).shape()[1], tensor_2d(f, "prompt_bag", path).shape()[0]}
                 : CheckpointShape{h.model, metadata_size(h, "dim", path), metadata_size(h, "num_classes", path)};
  }
  const nlohmann::json& cfg = h.cfg;
  const std::string& model = h.model;
  Generator gen(0);
  std::unique_ptr<nn::Module> m;
  if (model == "libramil") {
    const Tensor& pv = tensor_2d(f, "proto_vis", path);
    const Tensor& pi = tensor_2d(f, "prompt_inst", path);
    const Tensor& pb = tensor_2d(f, "prompt_bag", path);
    // The recorded settings (config_json.h), then the overrides the command was given.
    TrainOptions recorded;
    options_from_json(cfg, recorded, [&](const std::string& key, const nlohmann::json& value, const char* expected) {
      throw std::runtime_error(path + ": metadata 'libramil.config' has '" + key + "' = " + shown_json(value) + ", expected " +
                               expected);
    });
    models::LibraMILConfig c = recorded.libramil;
    c.mode = ov.mode.value_or(c.mode);
    c.fusion = ov.fusion.value_or(c.fusion);
    c.ot_epsilon = ov.ot_epsilon.value_or(c.ot_epsilon);
    c.ot_iter = ov.ot_iter.value_or(c.ot_iter);
    c.heads = ov.heads.value_or(c.heads);
    c.ablation = ov.ablation.value_or(c.ablation);
    c.num_vis_prototypes = pv.shape()[0];
    c.dim = pv.shape()[1];
    c.num_text_prototypes = pi.shape()[0];
    c.text_dim = pi.shape()[1];
    c.num_classes = pb.shape()[0];
    m = std::make_unique<models::LibraMIL>(c, pi.to(DType::F32), pb.to(DType::F32), gen);
  } else {
    m = models::make_baseline(model, metadata_size(h, "dim", path), metadata_size(h, "num_classes", path), gen);
  }
  nn::StateDict sd(f.tensors.begin(), f.tensors.end());
  nn::LoadResult lr = m->load_state_dict(sd, false);
  for (const std::string& k : lr.missing_keys)
    if (k.rfind("T_", 0) != 0) throw std::runtime_error(path + ": missing tensor '" + k + "'");
  if (!lr.unexpected_keys.empty()) throw std::runtime_error(path + ": unexpected tensor '" + lr.unexpected_keys[0] + "'");
  return m;
}

}  // namespace lm::train
