// `libramil dump`: a checkpoint's logits (and Libra-MIL's intermediate tensors) for one bag, as safetensors.
#include <filesystem>
#include <iostream>

#include "apps/commands.h"
#include "apps/inputs.h"
#include "data/feature_bag.h"
#include "data/formats/safetensors.h"
#include "models/train/checkpoint.h"
#include "ops/ops.h"

namespace lm::app {

namespace fs = std::filesystem;

Runner add_dump(CLI::App& app) {
  struct Flags {
    std::string checkpoint, features, out, dtype = "float32";
    int label = -1;
    models::LibraMILConfig cfg;
    bool overwrite = false;
  };
  auto f = std::make_shared<Flags>();
  app.add_option("--checkpoint", f->checkpoint, "model weights (.safetensors, reference names)")->required()->check(CLI::ExistingFile);
  app.add_option("--features", f->features, "one bag (.h5 or .pt)")->required()->check(CLI::ExistingFile);
  app.add_option("--label", f->label, "class label of the bag")->required();
  // The model flags replace the checkpoint's recorded values only when given (issue 19).
  CLI::Option* mode = app.add_option("--mode", f->cfg.mode, "paper | reference (default: the checkpoint's)");
  CLI::Option* fusion = app.add_option("--fusion", f->cfg.fusion, "softmax | literal | standardised (default: the checkpoint's)");
  CLI::Option* eps = app.add_option("--ot_epsilon", f->cfg.ot_epsilon, "Sinkhorn regularisation (default: the checkpoint's)");
  CLI::Option* iter = app.add_option("--ot_iter", f->cfg.ot_iter, "Sinkhorn iterations (default: the checkpoint's)");
  CLI::Option* heads = app.add_option("--heads", f->cfg.heads, "attention heads (default: the checkpoint's)");
  app.add_option("--dtype", f->dtype, "float32 | float64")->check(CLI::IsMember({"float32", "float64"}))->capture_default_str();
  app.add_option("--out", f->out, "output .safetensors")->required();
  app.add_flag("--overwrite", f->overwrite, "replace an existing output file");
  return [f, mode, fusion, eps, iter, heads] {
    if (fs::exists(f->out) && !f->overwrite) throw std::runtime_error(f->out + " exists (pass --overwrite to replace it)");
    train::LibraMILOverrides ov;
    if (mode->count() > 0) ov.mode = f->cfg.mode;
    if (fusion->count() > 0) ov.fusion = f->cfg.fusion;
    if (eps->count() > 0) ov.ot_epsilon = f->cfg.ot_epsilon;
    if (iter->count() > 0) ov.ot_iter = f->cfg.ot_iter;
    if (heads->count() > 0) ov.heads = f->cfg.heads;
    train::CheckpointShape shape;
    std::unique_ptr<nn::Module> m = train::load_model_from_checkpoint(f->checkpoint, ov, &shape);
    check_bag_width(f->features, shape.dim, f->checkpoint);
    DType dt = f->dtype == "float64" ? DType::F64 : DType::F32;
    m->to(dt);
    Tensor x = data::read_feature_bag(f->features).features.to(dt);
    Tensor logits = (*m)(x);
    int64_t C = logits.shape()[0];
    if (f->label < 0 || f->label >= C)
      throw std::runtime_error("--label " + std::to_string(f->label) + " is outside 0.." + std::to_string(C - 1));
    Tensor loss = cross_entropy(unsqueeze(logits, 0), Tensor::from_vector(std::vector<int64_t>{f->label}, {1}));
    backward(loss);
    std::vector<std::pair<std::string, Tensor>> out{{"logits", logits.detach().to(DType::F32)}, {"loss", loss.detach().to(DType::F32)}};
    for (auto& [name, p] : m->named_parameters()) {
      Tensor g = p.grad().defined() ? p.grad() : Tensor::zeros(p.shape(), p.dtype());
      out.emplace_back("grad." + name, g.to(DType::F32));
    }
    data::write_safetensors(f->out, out, {{"checkpoint", f->checkpoint}, {"features", f->features}});
    std::cout << "loss " << loss.item() << ", logits written with " << out.size() - 2 << " gradients to " << f->out << "\n";
    return 0;
  };
}

}  // namespace lm::app
