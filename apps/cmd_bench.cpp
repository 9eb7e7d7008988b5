// `libramil bench train-step`: times forward+backward+AdamW and an inference forward on
// random data. `libramil bench sinkhorn`: times forward+backward of reference-mode Sinkhorn
// fusion alone (bench/compare_sinkhorn.py). `libramil bench attention`: forward+backward of
// scaled_dot_product_attention through a chosen path (fused / composed / cudnn). The last line
// of each is JSON (median_ms, forward_median_ms, peak_bytes, peak_rss_bytes, ...).
#include <sys/resource.h>

#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "apps/commands.h"
#include "ops/cpu/isa.h"
#include "data/formats/safetensors.h"
#include "bench/drivers/attention_benchmark.h"
#include "bench/drivers/benchmark.h"
#include "bench/drivers/sinkhorn_benchmark.h"

namespace lm::app {

namespace {

// Peak resident set size of this process: VmHWM (Linux), else getrusage's ru_maxrss. Not
// ru_maxrss first: Linux carries it over exec from the process that spawned us, so under a
// Python driver (bench/compare_*.py) it reports the driver's peak when that is larger.
int64_t peak_rss_bytes() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;  // "VmHWM:  1234 kB"
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (int64_t)ru.ru_maxrss * 1024;
}

// --threads, --device and --isa, shared by the bench subcommands.
struct CommonFlags {
  int threads = 0;
  std::string device = "cpu", isa;
};
void add_common_flags(CLI::App* c, CommonFlags& f) {
  c->add_option("--threads", f.threads, "CPU threads (0 = all)")->capture_default_str();
  c->add_option("--device", f.device, "cpu | cuda | cuda:<index> (CUDA: peak_bytes is the device allocator's peak)")
      ->capture_default_str();
  // Read by apps/main.cpp before anything runs (it sets LIBRAMIL_CPU_ISA); listed here for --help.
  c->add_option("--isa", f.isa, "CPU kernels' instruction set: avx512 | avx2 | scalar (as LIBRAMIL_CPU_ISA; default: the processor's best)")
      ->check(CLI::IsMember({"avx512", "avx2", "scalar"}));
}
// Applies --threads and returns the parsed --device.
Device apply_common_flags(const CommonFlags& f) {
  set_threads(f.threads);
  try {
    return Device::parse(f.device);
  } catch (const std::exception&) {
    throw std::runtime_error("--device " + f.device + ": expected cpu, cuda or cuda:<index>");
  }
}

// `bench sinkhorn`.
Runner add_bench_sinkhorn(CLI::App& app) {
  CLI::App* sk = app.add_subcommand(
      "sinkhorn", "time forward+backward of reference-mode Sinkhorn fusion (per-instance column sums) on random data");
  struct Flags : CommonFlags {
    bench::SinkhornBenchOptions o;
    std::string check_inputs, check_output;
  };
  auto f = std::make_shared<Flags>();
  sk->add_option("--instances", f->o.instances, "N, transport problems (one per instance)")->capture_default_str();
  sk->add_option("--text-prototypes", f->o.text_prototypes, "Kt, rows of each plan")->capture_default_str();
  sk->add_option("--visual-prototypes", f->o.visual_prototypes, "Kv, columns of each plan")->capture_default_str();
  sk->add_option("--iterations", f->o.config.iterations, "Sinkhorn iterations")->capture_default_str();
  sk->add_option("--epsilon", f->o.config.epsilon, "entropic regularisation")->capture_default_str();
  sk->add_flag("--log-domain", f->o.config.log_domain, "log-domain kernels (omit the 1e-8 terms: a different function)");
  sk->add_option("--repeats", f->o.repeats, "timed repeats (median reported)")->capture_default_str();
  sk->add_option("--seed", f->o.seed, "seed of the random inputs (CUDA: made on the CPU, moved to the GPU)")
      ->capture_default_str();
  add_common_flags(sk, *f);
  sk->add_option("--check-inputs", f->check_inputs,
                 "instead of timing: one step on a_t, a_v, cost, weights read from this safetensors file");
  sk->add_option("--check-output", f->check_output, "with --check-inputs: write cols, grad_a_t, grad_a_v, grad_cost here");
  return [f, sk]() -> int {
    if (!*sk) return -1;  // not this subcommand
    f->o.device = apply_common_flags(*f);
    if (!f->check_inputs.empty()) {
      if (f->check_output.empty()) throw std::runtime_error("--check-inputs needs --check-output");
      data::SafetensorsFile in = data::read_safetensors(f->check_inputs);
      bench::SinkhornStepResult r =
          bench::sinkhorn_step(in.at("a_t"), in.at("a_v"), in.at("cost"), in.at("weights"), f->o.config, f->o.device);
      data::write_safetensors(f->check_output, {{"cols", r.cols},
                                                {"grad_a_t", r.grad_a_t},
                                                {"grad_a_v", r.grad_a_v},
                                                {"grad_cost", r.grad_cost}});
      std::cout << nlohmann::json{{"impl", "libramil"}, {"check_output", f->check_output}}.dump() << std::endl;
      return 0;
    }
    bench::SinkhornBenchResult r = bench::bench_sinkhorn(f->o);
    nlohmann::json j{{"impl", "libramil"},
                     {"op", "sinkhorn_column_sums"},
                     {"instances", f->o.instances},
                     {"text_prototypes", f->o.text_prototypes},
                     {"visual_prototypes", f->o.visual_prototypes},
                     {"iterations", f->o.config.iterations},
                     {"epsilon", f->o.config.epsilon},
                     {"log_domain", f->o.config.log_domain},
                     {"threads", f->threads},
                     {"device", f->o.device.str()}, {"isa", cpu::isa_name(cpu::cpu_isa())},
                     {"repeats", f->o.repeats},
                     {"median_ms", r.median_ms},
                     {"min_ms", r.min_ms},
                     {"forward_median_ms", r.forward_median_ms},
                     {"inputs_bytes", r.inputs_bytes},
                     {"peak_bytes", r.peak_bytes},
                     {"rss_before_bytes", r.rss_before_bytes},
                     {"peak_rss_bytes", peak_rss_bytes()}};
    std::cout << j.dump() << std::endl;
    return 0;
  };
}

// `bench attention`.
Runner add_bench_attention(CLI::App& app) {
  CLI::App* at = app.add_subcommand(
      "attention", "time forward+backward of scaled_dot_product_attention on random data through a chosen path");
  struct Flags : CommonFlags {
    bench::AttentionBenchOptions o;
  };
  auto f = std::make_shared<Flags>();
  at->add_option("--batch", f->o.B, "B")->capture_default_str();
  at->add_option("--heads", f->o.H, "H")->capture_default_str();
  at->add_option("--queries", f->o.Lq, "Lq, query rows per head")->capture_default_str();
  at->add_option("--keys", f->o.Lk, "Lk, key rows per head")->capture_default_str();
  at->add_option("--head-dim", f->o.d, "d, width of q and k")->capture_default_str();
  at->add_option("--value-dim", f->o.dv, "dv, width of v")->capture_default_str();
  at->add_option("--path", f->o.path,
                 "fused | composed | cudnn: LIBRAMIL_CUDA_ATTENTION for the run (default: the environment's; "
                 "the CPU always composes; the JSON says what ran)");
  at->add_flag("--forward-only", f->o.forward_only, "time only the forward");
  at->add_option("--repeats", f->o.repeats, "timed repeats (median reported)")->capture_default_str();
  at->add_option("--seed", f->o.seed, "seed of the random inputs")->capture_default_str();
  add_common_flags(at, *f);
  return [f, at]() -> int {
    if (!*at) return -1;  // not this subcommand
    f->o.device = apply_common_flags(*f);
    bench::AttentionBenchResult r = bench::bench_attention(f->o);
    nlohmann::json j{{"impl", "libramil"},
                     {"op", "scaled_dot_product_attention"},
                     {"shape", {f->o.B, f->o.H, f->o.Lq, f->o.Lk, f->o.d, f->o.dv}},
                     {"dtype", "float32"},
                     {"path", f->o.path},
                     {"forward_ran", r.forward_ran},
                     {"backward_ran", r.backward_ran},
                     {"forward_only", f->o.forward_only},
                     {"threads", f->threads},
                     {"device", f->o.device.str()}, {"isa", cpu::isa_name(cpu::cpu_isa())},
                     {"repeats", f->o.repeats},
                     {"median_ms", r.median_ms},
                     {"min_ms", r.min_ms},
                     {"forward_median_ms", r.forward_median_ms},
                     {"peak_bytes", r.peak_bytes},
                     {"peak_rss_bytes", peak_rss_bytes()}};
    std::cout << j.dump() << std::endl;
    return 0;
  };
}

}  // namespace

Runner add_bench(CLI::App& app) {
  app.require_subcommand(1);
  CLI::App* ts = app.add_subcommand("train-step", "time one training step and one inference forward on random data");
  struct Flags : CommonFlags {
    bench::TrainStepOptions o;
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
  add_common_flags(ts, *f);
  ts->add_flag("--forward-only", f->o.forward_only, "time only the inference forward (e.g. under `libramil profile`)");
  ts->add_flag("--cuda-graph", f->o.cuda_graph,
               "CUDA: also time the step with zero_grad + forward + backward replayed as one captured CUDA graph "
               "(same model and data from the same seed; AdamW eager), and report the largest loss difference "
               "against the eager steps");
  ts->add_flag("--fusion", f->o.fusion,
               "Libra-MIL: also time forward + backward of the transport fusion alone (the --mode's steps 2-7 "
               "on random inputs of the same sizes) and report its share of the training step");
  Runner sinkhorn = add_bench_sinkhorn(app);
  Runner attention = add_bench_attention(app);
  return [f, ts, sinkhorn, attention] {
    if (!*ts) {
      const int rc = sinkhorn();
      return rc != -1 ? rc : attention();
    }
    f->o.device = apply_common_flags(*f);
    bench::TrainStepResult r = bench::bench_train_step(f->o);
    nlohmann::json j{{"impl", "libramil"},         {"model", f->o.model},           {"mode", f->o.mode},
                     {"instances", f->o.instances}, {"dim", f->o.dim},               {"threads", f->threads}, {"device", f->o.device.str()}, {"isa", cpu::isa_name(cpu::cpu_isa())},
                     {"median_ms", r.median_ms},   {"min_ms", r.min_ms},            {"forward_median_ms", r.forward_median_ms},
                     {"peak_bytes", r.peak_bytes}, {"parameters", r.parameters}};
    j["peak_rss_bytes"] = peak_rss_bytes();
    if (f->o.cuda_graph) {
      j["graph_median_ms"] = r.graph_median_ms;
      j["graph_nodes"] = r.graph_nodes;
      j["graph_max_abs_loss_diff"] = r.graph_max_abs_loss_diff;
      j["graph_steps_compared"] = r.graph_steps_compared;
    }
    if (f->o.fusion) {
      j["fusion_median_ms"] = r.fusion.median_ms;
      j["fusion_forward_median_ms"] = r.fusion.forward_median_ms;
      j["fusion_share_of_step"] = r.median_ms > 0 ? r.fusion.median_ms / r.median_ms : 0.0;
    }
    std::cout << j.dump() << std::endl;
    return 0;
  };
}

}  // namespace lm::app
