// `libramil profile [--top K] [--csv FILE] COMMAND ARGS...`: runs any other subcommand with
// the per-op profiler on (tensor/profiler.h) and prints, on stderr so that the command's own
// stdout stays parseable: a header with the full command and the peaks measured just before
// it (a large matmul; a copy through DRAM and one that stays in cache, on the same device and
// thread count), one row per op / kernel / backward node (calls, total and mean time, share of
// the wall time, achieved GFLOP/s and GB/s and these as a percentage of the peaks), and the
// command's phases (loading, training, ...). The tables are made by tensor/profile_report.h;
// docs/profiler.md explains them.
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "apps/commands.h"
#include "data/atomic_file.h"
#include "data/feature_cache.h"
#include "ops/cpu/isa.h"
#include "ops/ops.h"
#include "tensor/profile_report.h"
#include "tensor/profiler.h"

namespace lm::app {

namespace {

using Clock = std::chrono::steady_clock;

// The L2 cache of one core and the last-level cache it can use: cpu0's data / unified caches in
// sysfs (sysconf's L3 can be the whole package's on a VM), else sysconf, else 1 MiB and 32 MiB.
struct CacheSizes {
  int64_t l2 = 0, llc = 0;
};
CacheSizes cache_sizes() {
  CacheSizes c;
  int llc_level = 0;
  for (int i = 0; i < 8; ++i) {
    const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i) + "/";
    std::ifstream level_in(dir + "level"), type_in(dir + "type"), size_in(dir + "size");
    int level = 0;
    std::string type, size;
    if (!(level_in >> level) || !(type_in >> type) || !(size_in >> size) || type == "Instruction") continue;
    int64_t bytes = std::atoll(size.c_str());
    if (size.back() == 'K') bytes <<= 10;
    if (size.back() == 'M') bytes <<= 20;
    if (bytes <= 0) continue;
    if (level == 2) c.l2 = bytes;
    if (level > llc_level) c.llc = bytes, llc_level = level;
  }
  if (c.l2 <= 0) c.l2 = std::max<long>(sysconf(_SC_LEVEL2_CACHE_SIZE), 0);
  if (c.llc <= 0) c.llc = std::max<long>(sysconf(_SC_LEVEL3_CACHE_SIZE), 0);
  if (c.l2 <= 0) c.l2 = (int64_t)1 << 20;
  if (c.llc <= 0) c.llc = std::max<int64_t>(c.l2, (int64_t)32 << 20);
  return c;
}

// The streams' loops, compiled for AVX-512 / AVX2 / baseline (the loader picks the widest the
// CPU runs, as for the kernels: ops/cpu/adam.cpp), so that no peak is held down by narrow
// loads. A copy (out = in s + add) and an in-place update (x = x s + add): a copy's stores first
// read their lines (write-allocate), which an in-place update, like the optimizer's, does not.
#if LM_X86
#define LM_STREAM_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define LM_STREAM_CLONES
#endif
LM_STREAM_CLONES void scale_add(const float* __restrict in, float* __restrict out, int64_t n, float s, float add) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = in[i] * s + add;
}
LM_STREAM_CLONES void scale_add_in_place(float* __restrict x, int64_t n, float s, float add) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) x[i] = x[i] * s + add;
}

// GB/s (bytes read + written) of the faster of the copy and the in-place update, every thread
// at once, each over its own `elems` floats per array, `passes` passes per round, best of three rounds.
double stream_gbs(int64_t elems, int passes) {
  const int T = std::max(1, omp_get_max_threads());
  std::vector<std::vector<float>> src(T), dst(T);
#pragma omp parallel num_threads(T)
  {  // each thread writes its own buffers first: local pages, no page faults in the timing
    const int t = omp_get_thread_num();
    src[t].assign(elems, 1.0f);
    dst[t].assign(elems, 0.0f);
  }
  volatile float scale = 0.5f;
  const float s = scale;
  double best = 0;
  for (int in_place = 0; in_place < 2; ++in_place)
    for (int round = 0; round < 3; ++round) {
      const auto t0 = Clock::now();
#pragma omp parallel num_threads(T)
      {
        const int t = omp_get_thread_num();
        for (int p = 0; p < passes; ++p) {
          if (in_place) scale_add_in_place(dst[t].data(), elems, s, (float)p);
          else scale_add(src[t].data(), dst[t].data(), elems, s, (float)p);
        }
      }
      const double sec = std::chrono::duration<double>(Clock::now() - t0).count();
      best = std::max(best, 2.0 * sizeof(float) * (double)elems * T * passes / sec * 1e-9);
    }
  volatile float sink = dst[0][elems / 2];  // the results are used
  (void)sink;
  return best;
}

// FLOP/s: a square matmul through the ISA's kernels in use (LIBRAMIL_CPU_ISA), one warm-up call
// (thread pool, packing buffers) and the best of five; on the CPU 1536^3 (~35 ms a call: a
// 1024^3 best of three read anywhere from 129 to 203 GFLOP/s on one 2-core host). Bandwidth: on
// the CPU streams through DRAM, the last-level cache and L1 / L2 (stream_gbs), on a GPU a device
// copy. `what` describes the sizes for the header.
profiler::Peaks measure_peaks(Device dev, std::string& what) {
  NoGradGuard ng;
  Generator gen(7);
  profiler::Peaks p;
  const int64_t n = dev.is_cpu() ? 1536 : 8192;
  Tensor a = Tensor::randn({n, n}, gen).to(dev), b = Tensor::randn({n, n}, gen).to(dev);
  auto sync = [&] {
    if (!dev.is_cpu()) (void)Tensor::zeros({1}).to(dev).to(Device::cpu());  // a copy back waits for the stream
  };
  (void)matmul(a, b);  // warm-up
  for (int r = 0; r < 5; ++r) {
    sync();
    const auto t0 = Clock::now();
    Tensor c = matmul(a, b);
    sync();
    p.gflops = std::max(p.gflops, 2.0 * n * n * n / std::chrono::duration<double>(Clock::now() - t0).count() * 1e-9);
  }
  what = std::to_string(n) + "^3 matmul";
  if (!dev.is_cpu()) {  // device memory only: a device copy of 2 x 1 GiB
    const int64_t elems = (int64_t)256 << 20;
    Tensor big = Tensor::zeros({elems}, DType::F32).to(dev), dst = Tensor::zeros({elems}, DType::F32).to(dev);
    for (int r = 0; r < 3; ++r) {
      sync();
      const auto t0 = Clock::now();
      dst.copy_from(big);
      sync();
      p.dram_gbs = std::max(p.dram_gbs, 2.0 * 4 * elems / std::chrono::duration<double>(Clock::now() - t0).count() * 1e-9);
    }
    what += "; device memory: copy of 2 x 1 GiB; no cache peaks on this device: every row is held against device memory";
    return p;
  }
  const CacheSizes caches = cache_sizes();
  const int T = std::max(1, omp_get_max_threads());
  p.l2_bytes = caches.l2 * T;
  p.llc_bytes = caches.llc;
  // DRAM: each array at least 4x the last-level cache (and 64 MiB), at most 1 GiB, split over the threads.
  const int64_t dram_array = std::min<int64_t>(std::max<int64_t>(4 * caches.llc, (int64_t)64 << 20), (int64_t)1 << 30);
  p.dram_gbs = stream_gbs(dram_array / 4 / T, 1);
  // LLC: the two arrays together half the last-level cache; ~1 GiB moved per round.
  const int64_t llc_array = caches.llc / 4;
  p.llc_gbs = stream_gbs(llc_array / 4 / T, (int)std::max<int64_t>(1, ((int64_t)1 << 30) / (2 * llc_array)));
  // L1 / L2: 16 + 16 KiB and 128 + 128 KiB per thread, the faster; 512 MiB moved per round.
  p.l2_gbs = std::max(stream_gbs((16 << 10) / 4, 16384), stream_gbs((128 << 10) / 4, 2048));
  what += "; DRAM: 2 x " + data::format_bytes(dram_array) + "; LLC (" + data::format_bytes(caches.llc) + "): 2 x " +
          data::format_bytes(llc_array) + "; L1/L2 (" + data::format_bytes(caches.l2) +
          " L2 per core): 2 x 16 KiB and 2 x 128 KiB per thread; each the faster of a copy and an in-place update";
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
      "The header (on stderr, after the command's own output) repeats the full command, the device,\n"
      "threads and CPU kernels, and the peaks measured just before.\n"
      "Times are exclusive (nested scopes charge their own rows). Op rows are named after the op\n"
      "(matmul, gelu, ...); '<op>.backward' rows are backward nodes; kernels called from a backward\n"
      "node have their own rows (e.g. matmul.backward, softmax_backward).\n"
      "GFLOP/s and GB/s count each op's minimal work (docs/profiler.md has the convention); '?' means\n"
      "the op gives no count, '-' that it counts no work of that kind (a copy's FLOPs, a wrapper).\n"
      "%peakF is against the measured matmul peak; %peakB against the bandwidth peak of the memory\n"
      "level the op's working set per call fits in (vs: L2 = the threads' L2 caches, LLC = the\n"
      "last-level cache, DRAM = neither); the header gives the three peaks and the sizes.\n"
      "`train` marks phases (loading, training, evaluation, saving): a second table gives each one's\n"
      "wall time, its share, and how much of it was inside op scopes; '(other)' is the rest.\n"
      "LIBRAMIL_PROFILE_SHAPES=1 splits the matmul rows by shape, e.g. 'matmul 300x512x1024 tB'\n"
      "(M x N x K, a leading 'Bx' for B batched products, tA / tB for a transposed operand).\n"
      "With CUDA tensors every scope waits for the device, so the total is slower than an unprofiled\n"
      "run, and the same names appear as NVTX ranges in Nsight Systems / Compute.");
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
    profiler::Peaks peaks;
    std::string peak_sizes;
    if (!f->no_peak) peaks = measure_peaks(dev, peak_sizes);
    std::vector<std::string> args{"libramil"};
    args.insert(args.end(), rest.begin(), rest.end());
    std::vector<char*> argv;
    for (auto& s : args) argv.push_back(s.data());
    argv.push_back(nullptr);

    profiler::reset();
    profiler::set_enabled(true);
    auto t0 = Clock::now();
    int rc = run_cli((int)args.size(), argv.data());
    double wall_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    profiler::set_enabled(false);

    std::vector<profiler::Row> rows = profiler::snapshot();
    double tracked = 0;
    for (auto& r : rows) tracked += r.total_ms;
    std::ostream& out = std::cerr;
    out << "\nprofile of `" << profiler::command_line(args) << "`\n  on " << dev.str() << " (" << omp_get_max_threads()
        << " threads, CPU kernels " << cpu::isa_name(cpu::cpu_isa()) << "): wall " << fmt_num(wall_ms, 1) << " ms, in op scopes "
        << fmt_num(tracked, 1) << " ms (" << fmt_num(100 * tracked / wall_ms, 1) << "%)\n";
    if (!f->no_peak) {
      out << "  measured peak: " << fmt_num(peaks.gflops, 1) << " GFLOP/s; bandwidth " << fmt_num(peaks.dram_gbs, 1) << " GB/s DRAM";
      if (peaks.llc_gbs > 0) out << ", " << fmt_num(peaks.llc_gbs, 1) << " GB/s LLC";
      if (peaks.l2_gbs > 0) out << ", " << fmt_num(peaks.l2_gbs, 1) << " GB/s L2";
      out << "\n  (" << peak_sizes << ")\n";
    }
    out << profiler::op_table(rows, wall_ms, f->no_peak ? nullptr : &peaks, f->top);
    const std::string phases = profiler::phase_table(profiler::phases(), rows, wall_ms);
    if (!phases.empty()) out << "\n" << phases;
    if (!f->csv.empty() && rc == 0)  // no output file for a failed command
      data::write_file_atomic(f->csv, profiler::csv(rows, wall_ms, f->no_peak ? nullptr : &peaks));
    return rc;
  };
}

}  // namespace lm::app
