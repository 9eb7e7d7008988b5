// `libramil profile [--top K] [--csv FILE] COMMAND ARGS...`: runs any other subcommand with
// the per-op profiler on (tensor/profiler.h) and prints, on stderr so that the command's own
// stdout stays parseable, one row per op / kernel / backward node: calls, total and mean time,
// share of the command's wall time, achieved GFLOP/s and GB/s, and these as a percentage of
// the peak measured just before (a large matmul and a large copy on the same device and
// thread count).
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "apps/commands.h"
#include "ops/cpu/isa.h"
#include "data/atomic_file.h"
#include "ops/ops.h"
#include "tensor/profiler.h"

namespace lm::app {

namespace {

struct Peak {
  double gflops = 0, gbs = 0;
};

// Best of three: a square matmul for FLOP/s and a packed copy for memory bandwidth.
Peak measure_peak(Device dev) {
  using Clock = std::chrono::steady_clock;
  NoGradGuard ng;
  Generator gen(7);
  const int64_t n = dev.is_cpu() ? 1024 : 8192;
  const int64_t copy_elems = dev.is_cpu() ? (int64_t)64 << 20 : (int64_t)256 << 20;
  Tensor a = Tensor::randn({n, n}, gen).to(dev), b = Tensor::randn({n, n}, gen).to(dev);
  // Both buffers are written once first, so the copy measures memory traffic, not page faults.
  Tensor big = Tensor::zeros({copy_elems}, DType::F32).to(dev), dst = Tensor::zeros({copy_elems}, DType::F32).to(dev);
  Peak p;
  auto sync = [&] {
    if (!dev.is_cpu()) (void)Tensor::zeros({1}).to(dev).to(Device::cpu());  // a copy back waits for the stream
  };
  for (int r = 0; r < 3; ++r) {
    sync();
    auto t0 = Clock::now();
    Tensor c = matmul(a, b);
    sync();
    double s = std::chrono::duration<double>(Clock::now() - t0).count();
    p.gflops = std::max(p.gflops, 2.0 * n * n * n / s * 1e-9);
    t0 = Clock::now();
    dst.copy_from(big);
    sync();
    s = std::chrono::duration<double>(Clock::now() - t0).count();
    p.gbs = std::max(p.gbs, 2.0 * 4 * copy_elems / s * 1e-9);
  }
  return p;
}

std::string fmt_num(double v, int prec) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", prec, v);
  return buf;
}

}  // namespace

Runner add_profile(CLI::App& app, int (*run_cli)(int, char**)) {
  struct Flags {
    int top = 40;
    std::string csv;
    bool no_peak = false;
  };
  auto f = std::make_shared<Flags>();
  app.prefix_command();
  app.add_option("--top", f->top, "rows to print (0 = all)")->capture_default_str();
  app.add_option("--csv", f->csv, "also write every row to this CSV file");
  app.add_flag("--no-peak", f->no_peak, "skip the peak FLOP/s and bandwidth measurement");
  app.footer(
      "Example: libramil profile bench train-step --instances 8000 --threads 2\n"
      "Times are exclusive (nested scopes charge their own rows). Op rows are named after the op\n"
      "(matmul, gelu, ...); '<op>.backward' rows are backward nodes; kernels called from a backward\n"
      "node have their own rows (e.g. matmul.backward, softmax_backward). With CUDA tensors every\n"
      "scope waits for the device, so the total is slower than an unprofiled run, and the same names\n"
      "appear as NVTX ranges in Nsight Systems / Compute.");
  CLI::App* self = &app;
  return [f, self, run_cli]() -> int {
    std::vector<std::string> rest = self->remaining();
    if (rest.empty()) throw std::runtime_error("profile: give the command to profile, e.g. `libramil profile bench train-step`");
    if (rest[0] == "profile") throw std::runtime_error("profile: cannot profile `profile`");
    // The device and threads the command will use, for the peak measurement.
    Device dev = Device::cpu();
    for (size_t i = 0; i + 1 < rest.size(); ++i) {
      if (rest[i] == "--device" && rest[i + 1].rfind("cuda", 0) == 0) dev = Device::parse(rest[i + 1]);
      if (rest[i] == "--threads") set_threads(std::stoi(rest[i + 1]));
    }
    Peak peak;
    if (!f->no_peak) peak = measure_peak(dev);
    std::vector<std::string> args{"libramil"};
    args.insert(args.end(), rest.begin(), rest.end());
    std::vector<char*> argv;
    for (auto& s : args) argv.push_back(s.data());
    argv.push_back(nullptr);

    profiler::reset();
    profiler::set_enabled(true);
    auto t0 = std::chrono::steady_clock::now();
    int rc = run_cli((int)args.size(), argv.data());
    double wall_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    profiler::set_enabled(false);

    std::vector<profiler::Row> rows = profiler::snapshot();
    double tracked = 0;
    for (auto& r : rows) tracked += r.total_ms;
    std::ostream& out = std::cerr;
    out << "\nprofile of `" << rest[0] << (rest.size() > 1 ? " " + rest[1] : "") << "` on " << dev.str() << " ("
        << omp_get_max_threads() << " threads, CPU kernels " << cpu::isa_name(cpu::cpu_isa()) << "): wall " << fmt_num(wall_ms, 1) << " ms, in scopes "
        << fmt_num(tracked, 1) << " ms";
    if (!f->no_peak) out << "; measured peak " << fmt_num(peak.gflops, 1) << " GFLOP/s, " << fmt_num(peak.gbs, 1) << " GB/s";
    out << "\n";
    char line[512];
    std::snprintf(line, sizeof line, "%-34s %8s %11s %10s %7s %9s %8s %7s %7s\n", "op / kernel", "calls", "total ms",
                  "mean us", "share%", "GFLOP/s", "GB/s", "%peakF", "%peakB");
    out << line;
    int shown = 0;
    for (auto& r : rows) {
      if (f->top > 0 && shown++ >= f->top) break;
      double s = r.total_ms * 1e-3;
      double gf = r.flops > 0 && s > 0 ? r.flops / s * 1e-9 : 0, gb = r.bytes > 0 && s > 0 ? r.bytes / s * 1e-9 : 0;
      std::snprintf(line, sizeof line, "%-34s %8lld %11.2f %10.1f %7.2f %9s %8s %7s %7s\n", r.name.substr(0, 34).c_str(),
                    (long long)r.calls, r.total_ms, r.total_ms * 1e3 / std::max<int64_t>(r.calls, 1),
                    100.0 * r.total_ms / wall_ms, gf > 0 ? fmt_num(gf, 1).c_str() : "-", gb > 0 ? fmt_num(gb, 1).c_str() : "-",
                    gf > 0 && peak.gflops > 0 ? fmt_num(100 * gf / peak.gflops, 1).c_str() : "-",
                    gb > 0 && peak.gbs > 0 ? fmt_num(100 * gb / peak.gbs, 1).c_str() : "-");
      out << line;
    }
    std::snprintf(line, sizeof line, "%-34s %8s %11.2f %10s %7.2f\n", "(outside any scope)", "-", wall_ms - tracked, "-",
                  100.0 * (wall_ms - tracked) / wall_ms);
    out << line;
    if (!f->csv.empty() && rc == 0) {  // no output file for a failed command
      std::string text = "name,calls,total_ms,mean_us,share_percent,gflops_per_s,gb_per_s\n";
      for (auto& r : rows) {
        double s = r.total_ms * 1e-3;
        text += "\"" + r.name + "\"," + std::to_string(r.calls) + "," + fmt_num(r.total_ms, 4) + "," +
                fmt_num(r.total_ms * 1e3 / std::max<int64_t>(r.calls, 1), 2) + "," + fmt_num(100.0 * r.total_ms / wall_ms, 3) +
                "," + fmt_num(r.flops > 0 && s > 0 ? r.flops / s * 1e-9 : 0, 2) + "," +
                fmt_num(r.bytes > 0 && s > 0 ? r.bytes / s * 1e-9 : 0, 2) + "\n";
      }
      data::write_file_atomic(f->csv, text);
    }
    return rc;
  };
}

}  // namespace lm::app
