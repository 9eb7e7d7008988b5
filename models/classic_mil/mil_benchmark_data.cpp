#include "models/classic_mil/mil_benchmark_data.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <stdexcept>
#include "data/text_util.h"

namespace lm::data {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void fail(const fs::path& file, const std::string& msg) {
  throw std::runtime_error(file.string() + ": " + msg);
}

std::string read_all(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) fail(p, "cannot open (MIL dataset layout: data.csv, bagids.csv, labels.csv, cvindexes/)");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Lines without their terminator ('\n' or "\r\n"); a final empty line (trailing newline) and
// trailing blank lines are dropped.
std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start <= text.size()) {
    size_t nl = text.find('\n', start);
    size_t end = nl == std::string::npos ? text.size() : nl;
    std::string line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  auto blank = [](const std::string& s) { return s.find_first_not_of(" \t") == std::string::npos; };
  while (!lines.empty() && blank(lines.back())) lines.pop_back();
  return lines;
}

std::string where(size_t line, size_t col = 0) {
  std::string w = "line " + std::to_string(line);
  if (col) w += ", column " + std::to_string(col);
  return w;
}

double parse_double(const std::string& tok, const fs::path& file, size_t line, size_t col) {
  std::string t = trim(tok);
  double v = 0;
  const char* b = t.data();
  const char* e = t.data() + t.size();
  if (!t.empty() && *b == '+') ++b;
  auto [ptr, ec] = std::from_chars(b, e, v);
  if (t.empty() || ec != std::errc() || ptr != e || !std::isfinite(v))
    fail(file, where(line, col) + ": '" + t + "' is not a finite number");
  return v;
}

int64_t parse_int(const std::string& tok, const fs::path& file, size_t line) {
  std::string t = trim(tok);
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (t.empty() || ec != std::errc() || ptr != t.data() + t.size()) {
    // Accept integral values written as floats ("1.0"), as some exports do.
    double d = 0;
    auto [p2, e2] = std::from_chars(t.data(), t.data() + t.size(), d);
    if (t.empty() || e2 != std::errc() || p2 != t.data() + t.size() || d != std::floor(d) || std::fabs(d) > 1e15)
      fail(file, where(line) + ": '" + t + "' is not an integer");
    v = (int64_t)d;
  }
  return v;
}

// One integer per line.
std::vector<int64_t> read_int_column(const fs::path& file) {
  std::vector<std::string> lines = split_lines(read_all(file));
  std::vector<int64_t> out;
  out.reserve(lines.size());
  for (size_t i = 0; i < lines.size(); ++i) {
    std::string t = trim(lines[i]);
    if (t.find_first_of(",\t ") != std::string::npos) fail(file, where(i + 1) + ": expected one value per line, got '" + t + "'");
    out.push_back(parse_int(t, file, i + 1));
  }
  return out;
}

}  // namespace

std::vector<int> MilDataset::train_bags(int rep, int fold) const {
  if (rep < 0 || rep >= reps() || fold < 0 || fold >= (int)test_folds[rep].size())
    throw std::out_of_range(name + ": no cross-validation fold rep=" + std::to_string(rep + 1) + " fold=" +
                            std::to_string(fold + 1) + " (have " + std::to_string(reps()) + " x " +
                            std::to_string(folds()) + ")");
  std::vector<char> test(bags.size(), 0);
  for (int b : test_folds[rep][fold]) test[b] = 1;
  std::vector<int> out;
  for (int b = 0; b < (int)bags.size(); ++b)
    if (!test[b]) out.push_back(b);
  return out;
}

MilDataset read_mil_dataset(const std::string& dir_str) {
  fs::path dir(dir_str);
  if (!fs::is_directory(dir)) throw std::runtime_error(dir_str + ": not a directory (expected a MIL dataset folder)");
  MilDataset ds;
  ds.name = fs::path(dir_str).lexically_normal().filename().string();
  if (ds.name.empty()) ds.name = fs::path(dir_str).lexically_normal().parent_path().filename().string();

  // ---- data.csv: features x instances ------------------------------------------------
  const fs::path data_file = dir / "data.csv";
  std::vector<std::string> rows = split_lines(read_all(data_file));
  if (rows.empty()) fail(data_file, "empty file");
  const int64_t D = (int64_t)rows.size();
  int64_t N = -1;
  std::vector<float> values;  // row-major (D, N) until the transpose below
  for (size_t r = 0; r < rows.size(); ++r) {
    const std::string& line = rows[r];
    int64_t cols = 0;
    size_t start = 0;
    while (true) {
      size_t tab = line.find('\t', start);
      std::string tok = line.substr(start, tab == std::string::npos ? std::string::npos : tab - start);
      ++cols;
      values.push_back((float)parse_double(tok, data_file, r + 1, (size_t)cols));
      if (tab == std::string::npos) break;
      start = tab + 1;
    }
    if (N < 0) N = cols;
    else if (cols != N)
      fail(data_file, "ragged rows: " + where(r + 1) + " has " + std::to_string(cols) + " values, line 1 has " +
                          std::to_string(N) + " (one row per feature, one tab-separated column per instance)");
  }

  // ---- bagids.csv ----------------------------------------------------------------------
  const fs::path bag_file = dir / "bagids.csv";
  std::vector<int64_t> bagids = read_int_column(bag_file);
  if ((int64_t)bagids.size() != N)
    fail(bag_file, std::to_string(bagids.size()) + " bag ids, but " + data_file.string() + " has " + std::to_string(N) +
                       " instances (columns)");
  for (size_t i = 0; i < bagids.size(); ++i) {
    int64_t expect_lo = i == 0 ? 1 : bagids[i - 1];
    int64_t expect_hi = i == 0 ? 1 : bagids[i - 1] + 1;
    if (bagids[i] < expect_lo || bagids[i] > expect_hi)
      fail(bag_file, "bag ids not contiguous: " + where(i + 1) + " has bag id " + std::to_string(bagids[i]) +
                         (i == 0 ? std::string(", expected 1 (ids are 1-based)")
                                 : ", after " + std::to_string(bagids[i - 1]) + " expected " + std::to_string(expect_lo) +
                                       " or " + std::to_string(expect_hi) +
                                       " (instances of a bag must be consecutive, ids 1, 2, ... in order)"));
  }
  const int B = N > 0 ? (int)bagids.back() : 0;
  if (B == 0) fail(bag_file, "no instances");

  // ---- labels.csv ----------------------------------------------------------------------
  const fs::path label_file = dir / "labels.csv";
  std::vector<int64_t> inst_labels = read_int_column(label_file);
  if ((int64_t)inst_labels.size() != N)
    fail(label_file, std::to_string(inst_labels.size()) + " labels, but " + data_file.string() + " has " +
                         std::to_string(N) + " instances (columns)");
  ds.labels.assign(B, -1);
  for (size_t i = 0; i < inst_labels.size(); ++i) {
    int64_t y = inst_labels[i];
    if (y != 0 && y != 1) fail(label_file, where(i + 1) + ": label " + std::to_string(y) + " is not 0 or 1");
    int b = (int)bagids[i] - 1;
    if (ds.labels[b] < 0) ds.labels[b] = (int)y;
    else if (ds.labels[b] != (int)y)
      fail(label_file, "bag " + std::to_string(b + 1) + " has instances labelled both 0 and 1 (" + where(i + 1) +
                           " says " + std::to_string(y) + "); the label must be constant within a bag");
  }

  // ---- bags: transpose (D, N) into (n_b, D) per bag -------------------------------------
  ds.dim = D;
  ds.num_instances = N;
  ds.bags.reserve(B);
  int64_t first = 0;
  for (int b = 0; b < B; ++b) {
    int64_t last = first;
    while (last < N && bagids[last] == b + 1) ++last;
    const int64_t n = last - first;
    std::vector<float> x((size_t)(n * D));
    for (int64_t i = 0; i < n; ++i)
      for (int64_t d = 0; d < D; ++d) x[(size_t)(i * D + d)] = values[(size_t)(d * N + first + i)];
    ds.bags.push_back(Tensor::from_vector(x, {n, D}));
    first = last;
  }

  // ---- cvindexes/ ----------------------------------------------------------------------
  const fs::path cv_dir = dir / "cvindexes";
  if (fs::is_directory(cv_dir)) {
    std::map<std::pair<int, int>, fs::path> files;
    const std::regex re(R"(rep=(\d+)_fold=(\d+)\.csv)");
    int R = 0, F = 0;
    for (const auto& e : fs::directory_iterator(cv_dir)) {
      std::smatch m;
      std::string fname = e.path().filename().string();
      if (!std::regex_match(fname, m, re)) continue;
      int r = std::stoi(m[1].str()), f = std::stoi(m[2].str());
      if (r < 1 || f < 1) fail(e.path(), "repetition and fold numbers are 1-based");
      files[{r, f}] = e.path();
      R = std::max(R, r);
      F = std::max(F, f);
    }
    if (files.empty()) fail(cv_dir, "no rep=R_fold=F.csv files");
    for (int r = 1; r <= R; ++r)
      for (int f = 1; f <= F; ++f)
        if (!files.count({r, f}))
          fail(cv_dir / ("rep=" + std::to_string(r) + "_fold=" + std::to_string(f) + ".csv"),
               "missing (the folder has repetitions 1.." + std::to_string(R) + " and folds 1.." + std::to_string(F) + ")");
    ds.test_folds.assign(R, std::vector<std::vector<int>>(F));
    for (int r = 1; r <= R; ++r) {
      std::vector<int> owner(B, 0);  // fold (1-based) holding each bag in this repetition
      for (int f = 1; f <= F; ++f) {
        const fs::path& p = files.at({r, f});
        std::vector<int64_t> ids = read_int_column(p);
        if (ids.empty()) fail(p, "empty test fold");
        std::vector<int>& fold = ds.test_folds[r - 1][f - 1];
        for (size_t i = 0; i < ids.size(); ++i) {
          if (ids[i] < 1 || ids[i] > B)
            fail(p, where(i + 1) + ": bag id " + std::to_string(ids[i]) + " is out of range 1.." + std::to_string(B));
          int b = (int)ids[i] - 1;
          if (owner[b])
            fail(p, where(i + 1) + ": bag " + std::to_string(ids[i]) + " is already in the test fold of " +
                        (owner[b] == f ? std::string("this file") : "fold " + std::to_string(owner[b])) +
                        " of repetition " + std::to_string(r));
          owner[b] = f;
          fold.push_back(b);
        }
        std::sort(fold.begin(), fold.end());
      }
      for (int b = 0; b < B; ++b)
        if (!owner[b])
          fail(cv_dir, "repetition " + std::to_string(r) + ": bag " + std::to_string(b + 1) +
                           " is in no test fold (the folds of a repetition must cover every bag)");
    }
  }
  return ds;
}

}  // namespace lm::data
