// The report's transport section (issue 23): for a Libra-MIL run, per fold the first and the
// last epoch of logs/transport_<fold>.csv (models/train/transport_log.h): how far the instance
// weights spread around 1, the effective sample size, the fused scores' spread, the gradients
// reaching the transport's parameters and the temperature.
#include <cmath>
#include <filesystem>
#include <sstream>

#include "models/report/sections.h"

namespace lm::report {

namespace {

std::string cell(double v, int prec = 4) {
  if (std::isnan(v)) return "-";
  std::ostringstream s;
  if (v != 0 && (std::abs(v) < 1e-3 || std::abs(v) >= 1e5)) s.precision(2), s << std::scientific << v;
  else s << fmt_fixed(v, prec);
  return s.str();
}

}  // namespace

std::string transport_section(const Run& r) {
  if (r.model != "libramil") return "";
  std::ostringstream s;
  s << "<h3 id=\"" << r.id << "-transport\">Transport: how much the instances are reweighted</h3>\n";
  std::ostringstream rows;
  int files = 0;
  double lo = INFINITY, hi = -INFINITY;
  for (int fold = 0; fold < std::max(r.folds, 1); ++fold) {
    const std::filesystem::path p = std::filesystem::path(r.dir) / "logs" / ("transport_" + std::to_string(fold) + ".csv");
    std::error_code ec;
    if (!std::filesystem::is_regular_file(p, ec)) continue;
    Table t;
    try {
      t = read_table(p);
    } catch (const std::exception& e) {
      s << note(h(e.what()));
      continue;
    }
    if (t.rows.empty()) continue;
    ++files;
    for (size_t i : {size_t(0), t.rows.size() - 1}) {
      lo = std::min(lo, t.num(i, "w_min"));
      hi = std::max(hi, t.num(i, "w_max"));
      rows << "<tr><td>" << fold << "</td><td>" << (int)t.num(i, "epoch") + 1 << "</td><td>" << cell(t.num(i, "w_min"))
           << "</td><td>" << cell(t.num(i, "w_max")) << "</td><td>" << cell(t.num(i, "w_ess_fraction")) << "</td><td>"
           << cell(t.num(i, "s_std")) << "</td><td>" << cell(t.num(i, "grad_proto_vis")) << "</td><td>"
           << cell(t.num(i, "grad_prompt_inst")) << "</td><td>" << cell(t.num(i, "grad_temp_vis")) << "</td><td>"
           << cell(t.num(i, "temp_vis")) << "</td></tr>\n";
      if (t.rows.size() == 1) break;
    }
  }
  if (files == 0) {
    s << note("No transport log (logs/transport_&lt;fold&gt;.csv; runs trained before it existed have none).");
    return s.str();
  }
  s << "<p>Instance weights w (X<sub>f</sub> = w V; 1 everywhere means the transport changes nothing), "
       "first and last epoch of each fold, means over the epoch's training bags.";
  if (std::isfinite(lo) && std::isfinite(hi))
    s << " Across these rows the weights stay within [" << cell(lo) << ", " << cell(hi) << "].";
  s << "</p>\n<table><tr><th>fold</th><th>epoch</th><th>w min</th><th>w max</th><th>ESS / N</th><th>s std</th>"
       "<th>|&nabla; proto_vis|</th><th>|&nabla; prompt_inst|</th><th>|&nabla; temp_vis|</th><th>temp_vis</th></tr>\n"
    << rows.str() << "</table>\n";
  return s.str();
}

}  // namespace lm::report
