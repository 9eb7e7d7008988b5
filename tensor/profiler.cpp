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
thread_local Scope* t_top = nullptr;
thread_local Phase* t_phase = nullptr;
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
  if (g_hooks.sync) g_hooks.sync();
  if (g_hooks.range_push) g_hooks.range_push(name);
  active_ = true;
  name_ = name;
  work_ = w;
  parent_ = t_top;
  t_top = this;
  start_ = std::chrono::steady_clock::now();
}

void Scope::end() {
  if (g_hooks.sync) g_hooks.sync();
  const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start_).count();
  if (g_hooks.range_pop) g_hooks.range_pop();
  t_top = parent_;
  if (parent_) parent_->child_ns_ += ns;
  const double excl = std::max(0.0, ns - child_ns_);
  if (t_phase) t_phase->scoped_ns_ += excl;
  std::lock_guard<std::mutex> lock(g_mu);
  Row& r = table()[name_];
  if (r.name.empty()) r.name = name_;
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
  if (g_hooks.sync) g_hooks.sync();
  if (g_hooks.range_push) g_hooks.range_push(name);
  active_ = true;
  name_ = name;
  parent_ = t_phase;
  t_phase = this;
  {
    std::lock_guard<std::mutex> lock(g_mu);  // the row is made on first opening, to keep that order
    std::vector<PhaseRow>& t = phase_table();
    if (std::none_of(t.begin(), t.end(), [&](const PhaseRow& p) { return p.name == name; })) t.push_back(PhaseRow{name});
  }
  start_ = std::chrono::steady_clock::now();
}

void Phase::end() {
  if (g_hooks.sync) g_hooks.sync();
  const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start_).count();
  if (g_hooks.range_pop) g_hooks.range_pop();
  t_phase = parent_;
  if (parent_) parent_->child_ns_ += ns;
  const double excl = std::max(0.0, ns - child_ns_);
  std::lock_guard<std::mutex> lock(g_mu);
  std::vector<PhaseRow>& t = phase_table();
  auto it = std::find_if(t.begin(), t.end(), [&](const PhaseRow& p) { return p.name == name_; });
  if (it == t.end()) it = t.insert(t.end(), PhaseRow{name_});  // after a reset() mid-phase
  it->calls += 1;
  it->wall_ms += excl * 1e-6;
  it->in_scopes_ms += std::min(excl, scoped_ns_) * 1e-6;
}

}  // namespace lm::profiler
