// The tables `libramil profile` prints (apps/cmd_profile.cpp), made from the profiler's rows
// and phases (tensor/profiler.h) and the peaks measured before the command. Kept apart from
// the command so that tests can render them from rows they make up. docs/profiler.md explains
// every column.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tensor/profiler.h"

namespace lm::profiler {

// What the machine can do, measured by `profile` just before the command. Bandwidths are the
// best of a copy and an in-place update streaming through buffers of each size, on every thread.
struct Peaks {
  double gflops = 0;        // a large matmul
  double dram_gbs = 0;      // buffers >= 4x the last-level cache
  double llc_gbs = 0;       // buffers filling half the last-level cache; 0 = not measured
  double l2_gbs = 0;        // buffers of 32 KiB and 256 KiB per thread (L1, L2), the faster; 0 = not measured
  int64_t l2_bytes = 0;     // the L2 caches of the threads together (per-core L2 x threads)
  int64_t llc_bytes = 0;    // the last-level cache
};

// The bandwidth peak a row's GB/s is compared with, by its mean working set per call: the L2
// peak when it fits the threads' L2 caches, the LLC peak when it fits the last-level cache,
// else the DRAM peak (a level not measured passes to the next one down).
struct BandwidthPeak {
  double gbs = 0;
  const char* level = "";  // "L2", "LLC" or "DRAM"
};
BandwidthPeak bandwidth_peak_for(const Row& row, const Peaks& peaks);

// Mean working set per call over the calls that moved data (0 when none did).
double working_set_per_call(const Row& row);

// The op / kernel table: one line per row (the `top` slowest; 0 = all), then "(outside any
// scope)". GFLOP/s and GB/s read "?" for rows whose op gives no count and "-" for rows that
// count no work of that kind (a copy's FLOPs, a wrapper's own time). `peaks` may be null.
std::string op_table(const std::vector<Row>& rows, double wall_ms, const Peaks* peaks, int top);

// The phases table: wall ms, share of the command's wall time and the part inside op scopes,
// one line per phase and one for the time outside every phase ("(other)"). Empty when the
// command opened no phase.
std::string phase_table(const std::vector<PhaseRow>& phases, const std::vector<Row>& rows, double wall_ms);

// Every row as CSV: name, calls, total_ms, mean_us, share_percent, gflops_per_s, gb_per_s,
// flops, bytes, peak_b_percent, peak_b_vs (rates 0 where not counted).
std::string csv(const std::vector<Row>& rows, double wall_ms, const Peaks* peaks);

// argv as one line a shell would split back into the same words (single quotes where needed).
std::string command_line(const std::vector<std::string>& args);

}  // namespace lm::profiler
