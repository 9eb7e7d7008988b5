// A run directory's config.json (written by `train`, read back by `train --resume`), read
// with one-line errors that name the file, the key where there is one, and how to proceed:
// a config.json that is missing (a run killed before it wrote one), unreadable, not JSON, or
// that holds a value of the wrong type ("epochs": "ten") never surfaces as a raw exception.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace lm::app {

class RunConfig {
 public:
  // Reads <run_dir>/config.json; throws when it is missing, unreadable, not valid JSON or
  // not a JSON object.
  explicit RunConfig(const std::string& run_dir);

  const std::string& path() const { return path_; }
  const nlohmann::json& json() const { return json_; }
  bool contains(const char* key) const { return json_.contains(key); }

  // The value of `key`, or `fallback` when the key is absent (the run's options are read with
  // models/train/config_json.h's options_from_json, given wrong() below). A value of another type (or
  // out of range) throws "file <path>: 'epochs' is "ten", expected an integer; ...".
  int integer(const char* key, int fallback) const;

  // inputs.<key>: a string, "" when absent (or "inputs" is).
  std::string input(const char* key) const;
  // inputs.<key> holding a whole number as text (e.g. "shots": "8"); `fallback` when absent or "".
  int input_integer(const char* key, int fallback) const;

  // Throws "file <path>: '<key>' is <value>, expected <expected>; fix the value, or ...".
  [[noreturn]] void wrong(const std::string& key, const nlohmann::json& value, const char* expected) const;

 private:
  std::string dir_, path_;
  nlohmann::json json_;
};

}  // namespace lm::app
