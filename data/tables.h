// Labels, fold splits and prior (prompt) files in the formats users already have (SPEC "Data
// formats users already have"), and the few-shot split maker. Every error is a
// std::runtime_error naming the file (and the line / key / slide where there is one).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace lm::data {

struct LabeledSlide {
  std::string name;
  int label = 0;
  std::string case_id;  // the patient, when the table has a case_id column ("" otherwise)
};

// CSV with a header row holding a slide column (`name`, or CLAM / TRIDENT's `slide_id`) and a
// `label` column, optionally `case_id` (found by name, in any order; other
// columns are ignored; a UTF-8 BOM, CRLF line ends, RFC-4180 quoting and blank lines are
// tolerated). A label is an integer class index, or a class name when `class_names` is given
// (train --classes CCRCC,PRCC,CHRCC: name k is class k, matched exactly). Errors (with file and
// line): empty file, missing column, missing field, a label that is neither (naming the known
// classes, or asking for --classes when the table holds names), duplicate name, empty name, no
// data rows.
std::vector<LabeledSlide> read_labels_csv(const std::string& path, const std::vector<std::string>& class_names = {});

// Throws naming the slide when a label lies outside 0..num_classes-1. `path` names the
// source in the message.
void validate_labels(const std::vector<LabeledSlide>& labels, int num_classes, const std::string& path);

struct FoldSplit {
  std::vector<std::string> train, val, test;
};

// JSON object with keys train_i, val_i, test_i (i = 0..folds-1), each a list of slide names.
// folds <= 0 means "as many folds as there are consecutive train_i keys" (at least one).
// Errors: not a JSON object, a missing key (named), a non-list / non-string entry, a slide
// listed twice in one list, a slide in two of train/val/test of the same fold (named).
// `path` may also be a folder of CLAM's splits_<k>.csv files (columns train, val, test; empty
// cells allowed), read into the same folds.
std::vector<FoldSplit> read_split_json(const std::string& path, int folds = 0);

// Writes the same format (keys train_0, val_0, test_0, train_1, ...), atomically: a temporary
// file in the same directory is written, flushed and renamed over `path`.
void write_split_json(const std::string& path, const std::vector<FoldSplit>& splits);

// Instance priors: a JSON list of (non-empty list of) strings.
std::vector<std::string> read_instance_prompts(const std::string& path);

// Bag priors: CSV without header, one (usually quoted) text per row; RFC-4180 quoting with
// doubled quotes and embedded commas / newlines. Blank lines are skipped; a row with more than
// one field (an unquoted comma) is an error naming the line.
std::vector<std::string> read_bag_prompts_csv(const std::string& path);

// Few-shot folds from a label table. For each fold and class (slides of a class taken in
// name order): a Fisher-Yates shuffle drawn from lm::Generator(seed) at counter offset
// fold << 32 (so folds use different, reproducible draws); the first `shots` go to train, the
// remaining r = count - shots are split per class into val = clamp(floor(r * val_fraction),
// 1, r - 1) and test = the rest (so with the default 0.5, an odd remainder gives test the
// extra slide). Lists are ordered class by class, in draw order. Requires every class
// 0..num_classes-1 to have at least shots + 2 slides (error names the class and its count,
// and `labels_path`, the file the labels came from, when given: "file labels.csv: class 0
// has 3 slides; 8-shot splits need at least 10 ...").
//
// group_by_case (train / split --group-by case_id, against leakage between a patient's slides):
// the units drawn are patients (case_id) instead of slides, in case_id order; `shots` counts
// patients per class, and every slide of a patient lands in the same part. Each patient must
// have one class and every row a case_id (errors name the file, the patient and the classes).
// With one slide per patient the split equals the ungrouped one.
std::vector<FoldSplit> make_few_shot_splits(const std::vector<LabeledSlide>& labels, int num_classes, int shots,
                                            int folds, uint64_t seed, double val_fraction = 0.5,
                                            const std::string& labels_path = "", bool group_by_case = false);

// RFC-4180 CSV parsing used by the readers above: records with the 1-based line on which
// each starts. Throws (naming `origin`) on an unterminated quote or text after a closing quote.
struct CsvRecord {
  std::vector<std::string> fields;
  int line = 0;
};
std::vector<CsvRecord> parse_csv(const std::string& text, const std::string& origin);
// A CSV field as RFC 4180 writes it: quoted (inner quotes doubled) only when it holds a comma, a
// quote or a line break; csv_quoted always quotes (the bag-prior files' one quoted text per row).
std::string csv_field(const std::string& s);
std::string csv_quoted(const std::string& s);

}  // namespace lm::data
