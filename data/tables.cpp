// Label tables, split files, prior files and the few-shot split maker. See tables.h.
#include "data/tables.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <stdexcept>

#include "data/atomic_file.h"
#include "tensor/rng.h"
#include "data/text_util.h"

namespace lm::data {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error("file " + path + ": " + what);
}

std::string read_file(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) fail(path, "no such file");
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(path, "cannot open for reading");
  std::stringstream ss;
  ss << f.rdbuf();
  std::string s = ss.str();
  if (s.size() >= 3 && (unsigned char)s[0] == 0xEF && (unsigned char)s[1] == 0xBB && (unsigned char)s[2] == 0xBF)
    s.erase(0, 3);  // UTF-8 BOM
  return s;
}

json read_json(const std::string& path) {
  std::string text = read_file(path);
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    fail(path, std::string("invalid JSON: ") + e.what());
  }
}

}  // namespace

// ---- CSV ---------------------------------------------------------------------------------

std::string csv_quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string csv_field(const std::string& s) { return s.find_first_of(",\"\n\r") == std::string::npos ? s : csv_quoted(s); }

std::vector<CsvRecord> parse_csv(const std::string& text, const std::string& origin) {
  std::vector<CsvRecord> out;
  CsvRecord rec;
  std::string field;
  int line = 1;
  rec.line = 1;
  bool in_quotes = false, after_quote = false, any_quoted = false;
  int quote_line = 0;
  auto end_field = [&] {
    rec.fields.push_back(std::move(field));
    field.clear();
    after_quote = false;
  };
  auto end_record = [&] {
    end_field();
    bool blank = rec.fields.size() == 1 && rec.fields[0].empty() && !any_quoted;
    if (!blank) out.push_back(std::move(rec));
    rec = CsvRecord{};
    any_quoted = false;
    rec.line = line + 1;
  };
  const size_t n = text.size();
  for (size_t i = 0; i < n; ++i) {
    char c = text[i];
    if (in_quotes) {
      if (c == '"') {
        if (i + 1 < n && text[i + 1] == '"') {
          field += '"';
          ++i;
        } else {
          in_quotes = false;
          after_quote = true;
        }
      } else if (c == '\r' && i + 1 < n && text[i + 1] == '\n') {
        field += '\n';
        ++i;
        ++line;
      } else {
        if (c == '\n') ++line;
        field += c;
      }
      continue;
    }
    if (c == ',') {
      end_field();
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < n && text[i + 1] == '\n') ++i;
      end_record();
      ++line;
    } else if (after_quote) {
      if (c != ' ' && c != '\t')
        throw std::runtime_error("file " + origin + ": line " + std::to_string(line) +
                                 ": unexpected text after a closing quote");
    } else if (c == '"' && trim(field).empty()) {
      field.clear();
      in_quotes = true;
      any_quoted = true;
      quote_line = line;
    } else {
      field += c;
    }
  }
  if (in_quotes)
    throw std::runtime_error("file " + origin + ": line " + std::to_string(quote_line) +
                             ": quoted field is never closed");
  if (!field.empty() || !rec.fields.empty() || any_quoted) end_record();
  return out;
}

// ---- labels --------------------------------------------------------------------------------

std::vector<LabeledSlide> read_labels_csv(const std::string& path, const std::vector<std::string>& class_names) {
  std::string text = read_file(path);
  std::vector<CsvRecord> recs = parse_csv(text, path);
  if (recs.empty()) fail(path, "empty file (expected a header `name,label` and one row per slide)");
  const CsvRecord& head = recs[0];
  int name_col = -1, label_col = -1, case_col = -1, name_rank = 9;
  for (size_t k = 0; k < head.fields.size(); ++k) {
    std::string h = lower(trim(head.fields[k]));
    // The slide column: `name` first, then CLAM / TRIDENT's `slide_id`.
    const int rank = h == "name" ? 0 : h == "slide_id" ? 1 : 9;
    if (rank < name_rank) name_col = (int)k, name_rank = rank;
    if (h == "label" && label_col < 0) label_col = (int)k;
    if (h == "case_id" && case_col < 0) case_col = (int)k;
  }
  std::string missing;
  if (name_col < 0) missing += "`name` (or `slide_id`)";
  if (label_col < 0) missing += std::string(missing.empty() ? "" : " and ") + "`label`";
  if (!missing.empty())
    fail(path, "line " + std::to_string(head.line) + ": header lacks the column " + missing +
                   " (expected a header like `name,label` or `case_id,slide_id,label`)");
  std::string known;
  for (size_t c = 0; c < class_names.size(); ++c) known += (c ? ", " : "") + class_names[c];
  std::vector<LabeledSlide> out;
  std::map<std::string, int> seen;  // name -> line
  for (size_t r = 1; r < recs.size(); ++r) {
    const CsvRecord& rec = recs[r];
    const std::string where = "line " + std::to_string(rec.line) + ": ";
    int need = std::max({name_col, label_col, case_col});
    if ((int)rec.fields.size() <= need)
      fail(path, where + "expected at least " + std::to_string(need + 1) + " fields, found " +
                     std::to_string(rec.fields.size()));
    std::string name = trim(rec.fields[name_col]);
    std::string lab = trim(rec.fields[label_col]);
    if (name.empty()) fail(path, where + "empty slide name");
    int value = -1;
    for (size_t c = 0; c < class_names.size(); ++c)
      if (lab == class_names[c]) value = (int)c;
    if (value < 0) {
      auto [ptr, ec] = std::from_chars(lab.data(), lab.data() + lab.size(), value);
      if (lab.empty() || ec != std::errc() || ptr != lab.data() + lab.size()) {
        if (class_names.empty())
          fail(path, where + "label '" + lab + "' of slide " + name +
                         " is not an integer; for class names give their order with --classes NAME,NAME,... "
                         "(the order of the bag priors' rows)");
        fail(path, where + "label '" + lab + "' of slide " + name + " is none of the --classes " + known);
      }
    }
    auto [it, fresh] = seen.emplace(name, rec.line);
    if (!fresh)
      fail(path, where + "duplicate slide name " + name + " (first on line " + std::to_string(it->second) + ")");
    out.push_back({name, value, case_col >= 0 ? trim(rec.fields[case_col]) : std::string()});
  }
  if (out.empty()) fail(path, "no data rows after the header");
  return out;
}

void validate_labels(const std::vector<LabeledSlide>& labels, int num_classes, const std::string& path) {
  if (num_classes < 1) throw std::invalid_argument("validate_labels: num_classes must be >= 1");
  for (const auto& s : labels)
    if (s.label < 0 || s.label >= num_classes)
      fail(path, "slide " + s.name + " has label " + std::to_string(s.label) + ", outside 0.." +
                     std::to_string(num_classes - 1) + " (" + std::to_string(num_classes) + " classes)");
}

// ---- splits --------------------------------------------------------------------------------

namespace {

std::vector<std::string> string_list(const std::string& path, const json& j, const std::string& key) {
  if (!j.is_array()) fail(path, "key '" + key + "' is not a list of slide names");
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (size_t i = 0; i < j.size(); ++i) {
    if (!j[i].is_string())
      fail(path, "key '" + key + "' entry " + std::to_string(i) + " is not a string (" + j[i].dump() + ")");
    std::string s = j[i].get<std::string>();
    if (!seen.insert(s).second) fail(path, "slide " + s + " is listed twice in '" + key + "'");
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace

namespace {

// CLAM's split folder: splits_<k>.csv per fold, a header with columns train, val, test (and an
// unnamed index column first, as pandas writes it), one slide per cell, empty cells where a
// column is shorter.
std::vector<FoldSplit> read_clam_splits(const std::string& dir, int folds) {
  namespace fs = std::filesystem;
  if (folds <= 0) {
    folds = 0;
    while (fs::exists(fs::path(dir) / ("splits_" + std::to_string(folds) + ".csv"))) ++folds;
    if (folds == 0) fail(dir, "a split folder needs CLAM's splits_0.csv, splits_1.csv, ... (or give a split JSON)");
  }
  std::vector<FoldSplit> out(folds);
  for (int f = 0; f < folds; ++f) {
    const std::string path = (fs::path(dir) / ("splits_" + std::to_string(f) + ".csv")).string();
    if (!fs::exists(path)) fail(path, "missing (" + std::to_string(folds) + " folds expected)");
    const std::vector<CsvRecord> recs = parse_csv(read_file(path), path);
    if (recs.empty()) fail(path, "empty file (expected CLAM's header ,train,val,test)");
    int col[3] = {-1, -1, -1};
    const char* names[3] = {"train", "val", "test"};
    for (size_t k = 0; k < recs[0].fields.size(); ++k)
      for (int c = 0; c < 3; ++c)
        if (lower(trim(recs[0].fields[k])) == names[c] && col[c] < 0) col[c] = (int)k;
    for (int c = 0; c < 3; ++c)
      if (col[c] < 0) fail(path, "line " + std::to_string(recs[0].line) + ": header lacks the column `" + names[c] + "`");
    std::vector<std::string>* lists[3] = {&out[f].train, &out[f].val, &out[f].test};
    for (size_t r = 1; r < recs.size(); ++r)
      for (int c = 0; c < 3; ++c)
        if (col[c] < (int)recs[r].fields.size()) {
          const std::string s = trim(recs[r].fields[col[c]]);
          if (!s.empty()) lists[c]->push_back(s);
        }
    std::map<std::string, int> where;
    for (int c = 0; c < 3; ++c)
      for (const auto& s : *lists[c]) {
        auto [it, fresh] = where.emplace(s, c);
        if (!fresh) fail(path, "slide " + s + " is in both " + names[it->second] + " and " + names[c]);
      }
    if (out[f].train.empty()) fail(path, "no training slides");
  }
  return out;
}

}  // namespace

std::vector<FoldSplit> read_split_json(const std::string& path, int folds) {
  if (std::filesystem::is_directory(path)) return read_clam_splits(path, folds);
  json j = read_json(path);
  if (!j.is_object()) fail(path, "expected a JSON object with keys train_0, val_0, test_0, ...");
  if (folds <= 0) {
    folds = 0;
    while (j.contains("train_" + std::to_string(folds))) ++folds;
    if (folds == 0) fail(path, "missing key 'train_0'");
  }
  std::vector<FoldSplit> out(folds);
  for (int f = 0; f < folds; ++f) {
    const char* names[3] = {"train_", "val_", "test_"};
    std::vector<std::string>* lists[3] = {&out[f].train, &out[f].val, &out[f].test};
    for (int k = 0; k < 3; ++k) {
      std::string key = names[k] + std::to_string(f);
      if (!j.contains(key)) fail(path, "missing key '" + key + "' (" + std::to_string(folds) + " folds expected)");
      *lists[k] = string_list(path, j[key], key);
    }
    std::map<std::string, int> where;
    for (int k = 0; k < 3; ++k)
      for (const auto& s : *lists[k]) {
        auto [it, fresh] = where.emplace(s, k);
        if (!fresh)
          fail(path, "fold " + std::to_string(f) + ": slide " + s + " is in both " + names[it->second] +
                         std::to_string(f) + " and " + names[k] + std::to_string(f));
      }
  }
  return out;
}

void write_split_json(const std::string& path, const std::vector<FoldSplit>& splits) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  for (size_t f = 0; f < splits.size(); ++f) {
    j["train_" + std::to_string(f)] = splits[f].train;
    j["val_" + std::to_string(f)] = splits[f].val;
    j["test_" + std::to_string(f)] = splits[f].test;
  }
  // Temporary file in the same directory, fsync, rename; errors name the path and errno's reason.
  write_file_atomic(path, j.dump(2) + "\n");
}

// ---- priors ----------------------------------------------------------------------------------

std::vector<std::string> read_instance_prompts(const std::string& path) {
  json j = read_json(path);
  if (!j.is_array()) fail(path, "expected a JSON list of strings (instance priors)");
  if (j.empty()) fail(path, "the list of instance priors is empty");
  std::vector<std::string> out;
  for (size_t i = 0; i < j.size(); ++i) {
    if (!j[i].is_string()) fail(path, "entry " + std::to_string(i) + " is not a string (" + j[i].dump() + ")");
    out.push_back(j[i].get<std::string>());
  }
  return out;
}

std::vector<std::string> read_bag_prompts_csv(const std::string& path) {
  std::string text = read_file(path);
  std::vector<CsvRecord> recs = parse_csv(text, path);
  std::vector<std::string> out;
  for (const auto& r : recs) {
    if (r.fields.size() != 1)
      fail(path, "line " + std::to_string(r.line) + ": expected one text per row, found " +
                     std::to_string(r.fields.size()) + " fields (quote texts that contain commas)");
    out.push_back(r.fields[0]);
  }
  if (out.empty()) fail(path, "empty file (expected one bag prior per row)");
  return out;
}

// ---- few-shot splits ---------------------------------------------------------------------------

std::vector<FoldSplit> make_few_shot_splits(const std::vector<LabeledSlide>& labels, int num_classes, int shots,
                                            int folds, uint64_t seed, double val_fraction, const std::string& labels_path,
                                            bool group_by_case) {
  if (num_classes < 1) throw std::invalid_argument("make_few_shot_splits: num_classes must be >= 1");
  if (shots < 0) throw std::invalid_argument("make_few_shot_splits: shots must be >= 0");
  if (folds < 1) throw std::invalid_argument("make_few_shot_splits: folds must be >= 1");
  if (!(val_fraction > 0.0 && val_fraction < 1.0))
    throw std::invalid_argument("make_few_shot_splits: val_fraction must lie in (0, 1)");
  const std::string src = labels_path.empty() ? "make_few_shot_splits" : "file " + labels_path;
  validate_labels(labels, num_classes, labels_path.empty() ? "<labels given to make_few_shot_splits>" : labels_path);
  // The units drawn: a slide each, or a patient (all its slides) with group_by_case; keyed and
  // ordered by slide name or case_id.
  std::vector<std::map<std::string, std::vector<std::string>>> units(num_classes);
  std::map<std::string, int> case_class;
  std::set<std::string> names;
  for (const auto& s : labels) {
    if (!names.insert(s.name).second)
      throw std::invalid_argument("make_few_shot_splits: duplicate slide name " + s.name);
    std::string key = s.name;
    if (group_by_case) {
      if (s.case_id.empty())
        throw std::runtime_error(src + ": slide " + s.name + " has no case_id (--group-by case_id needs a case_id column filled on every row)");
      auto [it, fresh] = case_class.emplace(s.case_id, s.label);
      if (!fresh && it->second != s.label)
        throw std::runtime_error(src + ": patient " + s.case_id + " has slides of class " + std::to_string(it->second) + " and " +
                                 std::to_string(s.label) + " (slide " + s.name + "); a patient-level split needs one class per patient");
      key = s.case_id;
    }
    units[s.label][key].push_back(s.name);
  }
  std::vector<std::vector<std::vector<std::string>>> by_class(num_classes);
  for (int c = 0; c < num_classes; ++c) {
    for (auto& [key, slides] : units[c]) {
      std::sort(slides.begin(), slides.end());
      by_class[c].push_back(slides);
    }
    if ((int64_t)by_class[c].size() < (int64_t)shots + 2)
      throw std::runtime_error(src + ": class " + std::to_string(c) + " has " + std::to_string(by_class[c].size()) +
                               (group_by_case ? " patients; " : " slides; ") + std::to_string(shots) + "-shot splits need at least " +
                               std::to_string(shots + 2) + " (shots for train, one for val, one for test)");
  }
  std::vector<FoldSplit> out(folds);
  for (int f = 0; f < folds; ++f) {
    Generator gen(seed);
    gen.set_state(seed, (uint64_t)f << 32);
    for (int c = 0; c < num_classes; ++c) {
      std::vector<std::vector<std::string>> v = by_class[c];
      for (size_t i = v.size() - 1; i > 0; --i) {  // Fisher-Yates
        size_t j = (size_t)gen.next_below(i + 1);
        std::swap(v[i], v[j]);
      }
      const int64_t r = (int64_t)v.size() - shots;
      int64_t nval = (int64_t)(r * val_fraction);
      nval = std::clamp<int64_t>(nval, 1, r - 1);
      for (int64_t i = 0; i < (int64_t)v.size(); ++i) {
        auto& part = i < shots ? out[f].train : i < shots + nval ? out[f].val : out[f].test;
        part.insert(part.end(), v[i].begin(), v[i].end());
      }
    }
  }
  return out;
}

}  // namespace lm::data
