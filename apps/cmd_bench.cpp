// `libramil bench train-step`: times forward+backward+AdamW and an inference forward on
// random data; the last line is JSON (median_ms, forward_median_ms, peak_bytes, ...).
#include <sys/resource.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "apps/commands.h"
#include "models/benchmark.h"

namespace lm::app {

Runner add_bench(CLI::App& app) {
  app.require_subcommand(1);
  CLI::App* ts = app.add_subcommand("train-step", "time one training step and one inference forward on random data");
  struct Flags {
    bench::TrainStepOptions o;
    int threads = 0;
    std::string device = "cpu";
  };
  auto f = std::make_shared<Flags>();
  ts->add_option("--instances", f->o.instances, "N, instances in the bag")->capture_default_str();
  ts->add_option("--dim", f->o.dim, "D, feature width")->capture_default_str();
  ts->add_option("--text-prototypes", f->o.text_prototypes, "Kt")->capture_default_str();
  ts->add_option("--visual-prototypes", f->o.visual_prototypes, "Kv")->capture_default_str();
  ts->add_option("--classes", f->o.classes, "C")->capture_default_str();
  ts->add_option("--mode", f->o.mode, "paper | reference")->capture_default_str();
  ts->add_option("--model", f->o.model, "libramil | abmil | ...")->capture_default_str();
  ts->add_option("--repeats", f->o.repeats, "timed repeats (median reported)")->capture_default_str();
  ts->add_option("--threads", f->threads, "CPU threads (0 = all)")->capture_default_str();
  ts->add_option("--device", f->device, "cpu | cuda")->capture_default_str();
  return [f] {
    set_threads(f->threads);
    if (f->device != "cpu") throw std::runtime_error("--device " + f->device + ": the CUDA training path is not available in this build yet");
    bench::TrainStepResult r = bench::bench_train_step(f->o);
    nlohmann::json j{{"impl", "libramil"},         {"model", f->o.model},           {"mode", f->o.mode},
                     {"instances", f->o.instances}, {"dim", f->o.dim},               {"threads", f->threads},
                     {"median_ms", r.median_ms},   {"min_ms", r.min_ms},            {"forward_median_ms", r.forward_median_ms},
                     {"peak_bytes", r.peak_bytes}, {"parameters", r.parameters}};
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    j["peak_rss_bytes"] = (int64_t)ru.ru_maxrss * 1024;
    std::cout << j.dump() << std::endl;
    return 0;
  };
}

}  // namespace lm::app
