// `libramil simulate`: writes a simulated whole-slide dataset (feature bags, labels, instance
// and bag priors) for one task; the generative model is data/sim/simulate.h / docs/simulator.md.
#include <iostream>
#include <map>

#include "apps/commands.h"
#include "data/sim/simulate.h"
#include "models/text/text_encoder.h"

namespace lm::app {

Runner add_simulate(CLI::App& app) {
  struct Flags {
    data::SimulateOptions opt;
    std::string out, encoder;
    int threads = 0;
  };
  auto f = std::make_shared<Flags>();
  app.add_option("--task", f->opt.task, "rcc | nsclc | camelyon16")
      ->required()
      ->check(CLI::IsMember(data::simulate_task_names()));
  app.add_option("--slides", f->opt.slides, "number of slides (balanced over classes)")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--out", f->out, "output directory (must be empty or absent unless --overwrite)")->required();
  app.add_option("--seed", f->opt.seed)->capture_default_str();
  app.add_option("--alignment", f->opt.alignment, "0..1: how well image prototypes follow the text embeddings (0 = text uninformative)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--size-scale", f->opt.size_scale, "multiplies every bag size (e.g. 0.05 for a quick demo)")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--dim", f->opt.dim, "feature width D")->capture_default_str()->check(CLI::Range(8, 65536));
  app.add_option("--background", f->opt.background_fraction, "mean share of uninformative background patches")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 0.6));
  app.add_option("--encoder", f->encoder, "text encoder: converted .safetensors or Hugging Face BERT folder (default: all-MiniLM-L6-v2)");
  app.add_option("--threads", f->threads)->capture_default_str();
  app.add_flag("--overwrite", f->opt.overwrite, "write into a non-empty output directory");
  return [f] {
    set_threads(f->threads);
    const data::TaskPriors& pri = data::task_priors(f->opt.task);
    std::unique_ptr<models::TextEncoder> enc = models::load_text_encoder(f->encoder);
    auto embed = [&](const std::vector<std::string>& texts) { return enc->encode(texts); };
    data::SimulateSummary sum = data::simulate_dataset(f->opt, embed, f->out);
    std::map<int, int> per_class;
    int64_t total = 0, mn = INT64_MAX, mx = 0;
    for (const auto& s : sum.slides) {
      ++per_class[s.label];
      total += s.patches;
      mn = std::min(mn, s.patches);
      mx = std::max(mx, s.patches);
    }
    std::cout << "SIMULATED data (not real slides): task " << f->opt.task << ", " << sum.slides.size() << " slides, "
              << total << " patches (" << mn << " to " << mx << " per slide), D = " << f->opt.dim
              << ", text encoder " << enc->kind() << " (Dt = " << sum.text_dim << "), alignment " << f->opt.alignment << "\n";
    for (auto& [c, n] : per_class) std::cout << "  class " << c << " (" << pri.class_names[c] << "): " << n << " slides\n";
    std::cout << "  " << pri.entities.size() << " instance priors, " << 2 * pri.num_classes() << " bag priors -> " << f->out << "\n";
    return 0;
  };
}

}  // namespace lm::app
