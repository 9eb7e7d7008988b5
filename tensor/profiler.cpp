// Per-op profiler (see profiler.h): thread-local stacks of open scopes and phases for
// exclusive times, and two tables, guarded by a mutex, that they add to when they close.
#include "tensor/profiler.h"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>

namespace lm::profiler {

namespace detail {
std::atomic<bool> g_enabled{false};
}

namespace {
std::mutex g_mu;
std::map<std::string, Row>& table() {
  static std::map<std::string, Row> t;
  return t;
}
std::vector<PhaseRow>& phase_table() {  // first-opened order; few entries
  static std::vector<PhaseRow> t;
  return t;
}
Hooks g_hooks;
thread_local detail::Frame* t_top = nullptr;    // innermost open op scope
thread_local detail::Frame* t_phase = nullptr;  // innermost open phase

// Opening and closing a Scope's or a Phase's frame: the device sync and the NVTX range around
// it, the per-thread stack `top`, and the exclusive time, which close returns (ns).
void open_frame(detail::Frame& f, detail::Frame*& top, const char* name) {
  if (g_hooks.sync) g_hooks.sync();
  if (g_hooks.range_push) g_hooks.range_push(name);
  f.name = name;
  f.parent = top;
  top = &f;
  f.start = std::chrono::steady_clock::now();
}
double close_frame(detail::Frame& f, detail::Frame*& top) {
  if (g_hooks.sync) g_hooks.sync();
  const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - f.start).count();
  if (g_hooks.range_pop) g_hooks.range_pop();
  top = f.parent;
  if (f.parent) f.parent->child_ns += ns;
  return std::max(0.0, ns - f.child_ns);
}
}  // namespace

void set_enabled(bool on) { detail::g_enabled.store(on, std::memory_order_relaxed); }

void reset() {
  std::lock_guard<std::mutex> lock(g_mu);
  table().clear();
  phase_table().clear();
}

std::vector<Row> snapshot() {
  std::lock_guard<std::mutex> lock(g_mu);
  std::vector<Row> rows;
  for (auto& [k, r] : table()) rows.push_back(r);
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.total_ms > b.total_ms; });
  return rows;
}

std::vector<PhaseRow> phases() {
  std::lock_guard<std::mutex> lock(g_mu);
  return phase_table();
}

bool detail_shapes() {
  static const bool on = [] {
    const char* e = std::getenv("LIBRAMIL_PROFILE_SHAPES");
    return e && std::string(e) == "1";
  }();
  return on;
}

void set_hooks(const Hooks& h) { g_hooks = h; }

const char* intern(const std::string& name) {
  static std::mutex mu;
  static std::set<std::string> names;
  std::lock_guard<std::mutex> lock(mu);
  return names.insert(name).first->c_str();
}

void Scope::begin(const char* name, Work w) {
  active_ = true;
  work_ = w;
  open_frame(frame_, t_top, name);
}

void Scope::end() {
  const double excl = close_frame(frame_, t_top);
  if (t_phase) t_phase->scoped_ns += excl;
  std::lock_guard<std::mutex> lock(g_mu);
  Row& r = table()[frame_.name];
  if (r.name.empty()) r.name = frame_.name;
  r.calls += 1;
  r.total_ms += excl * 1e-6;
  if (work_.flops < 0 && work_.bytes < 0) {
    r.uncounted_calls += 1;
  } else {
    r.flops += std::max(0.0, work_.flops);
    r.bytes += std::max(0.0, work_.bytes);
    if (work_.bytes > 0) {
      r.calls_with_bytes += 1;
      r.working_set += work_.working_set >= 0 ? work_.working_set : work_.bytes;
    }
  }
}

void Phase::begin(const char* name) {
  active_ = true;
  {
    std::lock_guard<std::mutex> lock(g_mu);  // the row is made on first opening, to keep that order
    std::vector<PhaseRow>& t = phase_table();
    if (std::none_of(t.begin(), t.end(), [&](const PhaseRow& p) { return p.name == name; })) t.push_back(PhaseRow{name});
  }
  open_frame(frame_, t_phase, name);
}

void Phase::end() {
  const double excl = close_frame(frame_, t_phase);
  std::lock_guard<std::mutex> lock(g_mu);
  std::vector<PhaseRow>& t = phase_table();
  auto it = std::find_if(t.begin(), t.end(), [&](const PhaseRow& p) { return p.name == frame_.name; });
  if (it == t.end()) it = t.insert(t.end(), PhaseRow{frame_.name});  // after a reset() mid-phase
  it->calls += 1;
  it->wall_ms += excl * 1e-6;
  it->in_scopes_ms += std::min(excl, frame_.scoped_ns) * 1e-6;
}

}  // namespace lm::profiler
