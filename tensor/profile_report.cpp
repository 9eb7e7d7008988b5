// The tables of `libramil profile` (see profile_report.h): formatting only, no measuring.
#include "tensor/profile_report.h"

#include <algorithm>
#include <cstdio>

namespace lm::profiler {

namespace {

std::string fmt_num(double v, int prec) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", prec, v);
  return buf;
}

constexpr int kNameWidth = 40;

// A rate cell: the number, "?" when some call gave no count, "-" when the row counts no work of this kind.
std::string rate_cell(double amount, double seconds, const Row& r, int prec) {
  if (amount > 0 && seconds > 0) return fmt_num(amount / seconds * 1e-9, prec);
  return r.uncounted_calls > 0 ? "?" : "-";
}

double sum_ms(const std::vector<Row>& rows) {
  double t = 0;
  for (const Row& r : rows) t += r.total_ms;
  return t;
}

}  // namespace

double working_set_per_call(const Row& row) {
  return row.calls_with_bytes > 0 ? row.working_set / (double)row.calls_with_bytes : 0;
}

BandwidthPeak bandwidth_peak_for(const Row& row, const Peaks& peaks) {
  const double ws = working_set_per_call(row);
  if (peaks.l2_gbs > 0 && ws <= (double)peaks.l2_bytes) return {peaks.l2_gbs, "L2"};
  if (peaks.llc_gbs > 0 && ws <= (double)peaks.llc_bytes) return {peaks.llc_gbs, "LLC"};
  return {peaks.dram_gbs, "DRAM"};
}

std::string op_table(const std::vector<Row>& rows, double wall_ms, const Peaks* peaks, int top) {
  std::string out;
  char line[512];
  std::snprintf(line, sizeof line, "%-*s %8s %11s %10s %7s %9s %8s %7s %7s %5s\n", kNameWidth, "op / kernel", "calls",
                "total ms", "mean us", "share%", "GFLOP/s", "GB/s", "%peakF", "%peakB", "vs");
  out += line;
  int shown = 0;
  for (const Row& r : rows) {
    if (top > 0 && shown++ >= top) break;
    const double s = r.total_ms * 1e-3;
    std::string peak_f = "-", peak_b = "-", vs = "-";
    if (peaks && r.flops > 0 && s > 0 && peaks->gflops > 0) peak_f = fmt_num(100 * r.flops / s * 1e-9 / peaks->gflops, 1);
    if (peaks && r.bytes > 0 && s > 0) {
      const BandwidthPeak bp = bandwidth_peak_for(r, *peaks);
      if (bp.gbs > 0) {
        peak_b = fmt_num(100 * r.bytes / s * 1e-9 / bp.gbs, 1);
        vs = bp.level;
      }
    }
    std::snprintf(line, sizeof line, "%-*s %8lld %11.2f %10.1f %7.2f %9s %8s %7s %7s %5s\n", kNameWidth,
                  r.name.substr(0, kNameWidth).c_str(), (long long)r.calls, r.total_ms,
                  r.total_ms * 1e3 / (double)std::max<int64_t>(r.calls, 1), 100.0 * r.total_ms / wall_ms,
                  rate_cell(r.flops, s, r, 1).c_str(), rate_cell(r.bytes, s, r, 1).c_str(), peak_f.c_str(), peak_b.c_str(),
                  vs.c_str());
    out += line;
  }
  const double outside = wall_ms - sum_ms(rows);
  std::snprintf(line, sizeof line, "%-*s %8s %11.2f %10s %7.2f\n", kNameWidth, "(outside any scope)", "-", outside, "-",
                100.0 * outside / wall_ms);
  out += line;
  return out;
}

std::string phase_table(const std::vector<PhaseRow>& phases, const std::vector<Row>& rows, double wall_ms) {
  if (phases.empty()) return "";
  std::string out;
  char line[256];
  std::snprintf(line, sizeof line, "%-*s %8s %11s %7s %14s\n", kNameWidth, "phase", "calls", "wall ms", "share%",
                "in op scopes%");
  out += line;
  double phase_ms = 0, phase_scoped_ms = 0;
  auto add = [&](const std::string& name, const std::string& calls, double ms, double scoped_ms) {
    std::snprintf(line, sizeof line, "%-*s %8s %11.2f %7.2f %14s\n", kNameWidth, name.substr(0, kNameWidth).c_str(),
                  calls.c_str(), ms, 100.0 * ms / wall_ms, ms > 0 ? fmt_num(100.0 * scoped_ms / ms, 1).c_str() : "-");
    out += line;
  };
  for (const PhaseRow& p : phases) {
    add(p.name, std::to_string(p.calls), p.wall_ms, p.in_scopes_ms);
    phase_ms += p.wall_ms;
    phase_scoped_ms += p.in_scopes_ms;
  }
  add("(other: outside every phase)", "-", std::max(0.0, wall_ms - phase_ms),
      std::max(0.0, sum_ms(rows) - phase_scoped_ms));
  return out;
}

std::string csv(const std::vector<Row>& rows, double wall_ms, const Peaks* peaks) {
  std::string text = "name,calls,total_ms,mean_us,share_percent,gflops_per_s,gb_per_s,flops,bytes,peak_b_percent,peak_b_vs\n";
  for (const Row& r : rows) {
    const double s = r.total_ms * 1e-3;
    const double gf = r.flops > 0 && s > 0 ? r.flops / s * 1e-9 : 0, gb = r.bytes > 0 && s > 0 ? r.bytes / s * 1e-9 : 0;
    double peak_b = 0;
    std::string vs;
    if (peaks && gb > 0) {
      const BandwidthPeak bp = bandwidth_peak_for(r, *peaks);
      if (bp.gbs > 0) {
        peak_b = 100 * gb / bp.gbs;
        vs = bp.level;
      }
    }
    text += "\"" + r.name + "\"," + std::to_string(r.calls) + "," + fmt_num(r.total_ms, 4) + "," +
            fmt_num(r.total_ms * 1e3 / (double)std::max<int64_t>(r.calls, 1), 2) + "," + fmt_num(100.0 * r.total_ms / wall_ms, 3) +
            "," + fmt_num(gf, 2) + "," + fmt_num(gb, 2) + "," + fmt_num(r.flops, 0) + "," + fmt_num(r.bytes, 0) + "," +
            fmt_num(peak_b, 1) + "," + vs + "\n";
  }
  return text;
}

std::string command_line(const std::vector<std::string>& args) {
  std::string out;
  for (const std::string& a : args) {
    if (!out.empty()) out += ' ';
    const bool plain = !a.empty() && std::all_of(a.begin(), a.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || std::string("-_./=:,+@%").find(c) != std::string::npos;
    });
    if (plain) {
      out += a;
      continue;
    }
    out += '\'';
    for (char c : a) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    out += '\'';
  }
  return out;
}

}  // namespace lm::profiler
