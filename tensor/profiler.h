// Per-op profiler: `libramil profile <command>` turns it on, every op, backward node and
// optimizer step opens a Scope, and the table at the end lists where the time went.
//
// Times are exclusive: time spent in a nested Scope is charged to that Scope only, so the
// rows add up to (at most) the wall time of the command. When profiling is off a Scope costs
// one relaxed atomic load. On the GPU the CUDA backend registers hooks that synchronise the
// device at scope boundaries (so host timings cover the kernels) and push/pop NVTX ranges of
// the same names for Nsight Systems / Compute.
//
// A Scope may carry the FLOPs and bytes of its call (the minimal work, per the convention in
// docs/profiler.md; ops/work_counts.h has the per-op formulas), or say nothing (kNotCounted).
//
// Phases (Phase below) are coarser: named stretches of a command (loading, training,
// evaluation, ...) whose wall times `profile` prints as a second, small table.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace lm::profiler {

// A scope that gives no FLOP / byte count (as opposed to a count of zero: a copy does no
// arithmetic, a wrapper scope does no work of its own).
inline constexpr double kNotCounted = -1;

// The work of one call: FLOPs, bytes read + written, and the working set (the distinct bytes
// touched, less than `bytes` for an op that updates in place; kNotCounted: the same as bytes),
// which decides the bandwidth peak a row is compared with (tensor/profile_report.h).
struct Work {
  double flops = kNotCounted;
  double bytes = kNotCounted;
  double working_set = kNotCounted;
};

struct Row {
  std::string name;
  int64_t calls = 0;
  double total_ms = 0;           // exclusive wall time
  double flops = 0;              // summed over the calls that gave a count
  double bytes = 0;              // bytes read + written, summed over the calls that gave a count
  int64_t uncounted_calls = 0;   // calls whose scope gave no count (kNotCounted)
  int64_t calls_with_bytes = 0;  // calls that moved bytes (> 0)
  double working_set = 0;        // summed over those calls: working_set / calls_with_bytes is the mean per call
};

namespace detail {
extern std::atomic<bool> g_enabled;
}
inline bool enabled() { return detail::g_enabled.load(std::memory_order_relaxed); }
void set_enabled(bool on);
// Clears the op rows and the phases.
void reset();
// Rows sorted by total time, largest first.
std::vector<Row> snapshot();

// Device hooks, set by the CUDA backend: synchronise before reading the clock, and NVTX.
struct Hooks {
  void (*sync)() = nullptr;
  void (*range_push)(const char* name) = nullptr;
  void (*range_pop)() = nullptr;
};
void set_hooks(const Hooks& h);

namespace detail {
// What a Scope and a Phase both keep while open: they nest on per-thread stacks, and each
// charges its wall time to the frame it was opened in, so every frame's time is exclusive.
struct Frame {
  const char* name = nullptr;
  double child_ns = 0;   // wall time of the frames opened inside this one
  double scoped_ns = 0;  // phases only: exclusive time of op scopes that closed while this phase was innermost
  Frame* parent = nullptr;
  std::chrono::steady_clock::time_point start;
};
}  // namespace detail

class Scope {
 public:
  // `name` must outlive the profiler session (a string literal or an interned name).
  explicit Scope(const char* name, double flops = kNotCounted, double bytes = kNotCounted) {
    if (enabled()) begin(name, Work{flops, bytes});
  }
  Scope(const char* name, Work w) {
    if (enabled()) begin(name, w);
  }
  ~Scope() {
    if (active_) end();
  }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  void begin(const char* name, Work w);
  void end();
  bool active_ = false;
  Work work_;
  detail::Frame frame_;
};

// One phase of a command, summed over the times it was opened. Exclusive like the op rows: a
// phase opened inside another charges its wall time to itself only.
struct PhaseRow {
  std::string name;
  int64_t calls = 0;
  double wall_ms = 0;       // exclusive wall time
  double in_scopes_ms = 0;  // of which inside op scopes (the rest is outside any op scope)
};
// Phases in the order they were first opened.
std::vector<PhaseRow> phases();

// `Phase p("training");` marks the enclosing block as a phase of the command. A no-op (one
// relaxed atomic load) when profiling is off. Phases are per thread, like scopes.
class Phase {
 public:
  // `name` must outlive the profiler session (a string literal or an interned name).
  explicit Phase(const char* name) {
    if (enabled()) begin(name);
  }
  ~Phase() {
    if (active_) end();
  }
  Phase(const Phase&) = delete;
  Phase& operator=(const Phase&) = delete;

 private:
  void begin(const char* name);
  void end();
  bool active_ = false;
  detail::Frame frame_;
};

// True when LIBRAMIL_PROFILE_SHAPES=1: ops that know their shapes (matmul) name one row per shape.
bool detail_shapes();

// A stable const char* for a runtime name (backward nodes are named by std::string).
const char* intern(const std::string& name);

}  // namespace lm::profiler
