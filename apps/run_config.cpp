// RunConfig (see run_config.h). Every error ends with what to do: fix the file, or start the
// run again in the same directory with --overwrite (which removes only the run's own files,
// models/train/run_files.h).
#include "apps/run_config.h"

#include "models/train/config_json.h"

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>

namespace lm::app {

namespace fs = std::filesystem;

namespace {

std::string how_to_proceed(const std::string& dir) {
  return "start the run again with its flags and --save_dir " + dir + " --overwrite";
}

// A value as it appears in the file, shortened for the message.
}  // namespace

RunConfig::RunConfig(const std::string& run_dir) : dir_(run_dir), path_((fs::path(run_dir) / "config.json").string()) {
  std::error_code ec;
  const fs::file_status st = fs::status(path_, ec);
  if (!fs::exists(st))
    throw std::runtime_error("--resume " + dir_ + ": no config.json there, so there is no run to resume (a run killed before it "
                             "wrote config.json leaves none); " + how_to_proceed(dir_));
  if (!fs::is_regular_file(st)) throw std::runtime_error("file " + path_ + ": not a regular file; " + how_to_proceed(dir_));
  std::ifstream in(path_, std::ios::binary);
  if (!in) throw std::runtime_error("file " + path_ + ": cannot be read (" + std::strerror(errno) + "); " + how_to_proceed(dir_));
  std::stringstream text;
  text << in.rdbuf();
  try {
    json_ = nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::parse_error& e) {
    throw std::runtime_error("file " + path_ + ": not valid JSON (at byte " + std::to_string(e.byte) +
                             "), so the run cannot be resumed; " + how_to_proceed(dir_));
  }
  if (!json_.is_object())
    throw std::runtime_error("file " + path_ + ": not a JSON object, so the run cannot be resumed; " + how_to_proceed(dir_));
  if (json_.contains("inputs") && !json_["inputs"].is_object()) wrong("inputs", json_["inputs"], "an object");
}

void RunConfig::wrong(const std::string& key, const nlohmann::json& value, const char* expected) const {
  throw std::runtime_error("file " + path_ + ": '" + key + "' is " + train::shown_json(value) + ", expected " + expected +
                           "; fix the value, or " + how_to_proceed(dir_));
}

int RunConfig::integer(const char* key, int fallback) const {
  if (!json_.contains(key)) return fallback;
  const nlohmann::json& v = json_[key];
  if (!v.is_number_integer()) wrong(key, v, "an integer");
  if (v.is_number_unsigned() ? v.get<uint64_t>() > (uint64_t)std::numeric_limits<int>::max()
                             : (v.get<int64_t>() > std::numeric_limits<int>::max() || v.get<int64_t>() < std::numeric_limits<int>::min()))
    wrong(key, v, "an integer of at most 10 digits");
  return v.get<int>();
}

std::string RunConfig::input(const char* key) const {
  if (!json_.contains("inputs") || !json_["inputs"].contains(key)) return "";
  const nlohmann::json& v = json_["inputs"][key];
  if (!v.is_string()) wrong(std::string("inputs.") + key, v, "a string");
  return v.get<std::string>();
}

int RunConfig::input_integer(const char* key, int fallback) const {
  const std::string s = input(key);
  if (s.empty()) return fallback;
  int n = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec != std::errc() || end != s.data() + s.size()) wrong(std::string("inputs.") + key, json_["inputs"][key], "a whole number as text");
  return n;
}

}  // namespace lm::app
