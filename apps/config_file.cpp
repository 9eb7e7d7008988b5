// Reading `--config FILE` into flags (apps/config_file.h).
#include "apps/config_file.h"

#include <fstream>
#include <sstream>
#include <stdexcept>

#include "data/text_util.h"

namespace lm::app {

namespace {

using data::trim;

struct Value {
  std::vector<std::string> items;  // one for a scalar, any number for an array
  bool is_bool = false, truth = false;
};

[[noreturn]] void fail(const std::string& where, const std::string& what) { throw std::runtime_error(where + ": " + what); }

// One TOML scalar starting at s[i]; advances i past it.
std::string scalar(const std::string& s, size_t& i, const std::string& where, bool& is_bool, bool& truth) {
  is_bool = false;
  if (s[i] == '"' || s[i] == '\'') {
    const char q = s[i++];
    std::string out;
    for (; i < s.size() && s[i] != q; ++i) {
      if (q == '"' && s[i] == '\\' && i + 1 < s.size()) {
        const char e = s[++i];
        out += e == 'n' ? '\n' : e == 't' ? '\t' : e;
      } else {
        out += s[i];
      }
    }
    if (i >= s.size()) fail(where, "unterminated string");
    ++i;
    return out;
  }
  size_t j = i;
  while (j < s.size() && s[j] != ',' && s[j] != ']' && s[j] != '#' && !std::isspace((unsigned char)s[j])) ++j;
  const std::string tok = s.substr(i, j - i);
  i = j;
  if (tok == "true" || tok == "false") {
    is_bool = true, truth = tok == "true";
    return tok;
  }
  char* end = nullptr;
  std::strtod(tok.c_str(), &end);
  if (tok.empty() || *end != '\0') fail(where, "value '" + tok + "' is not a string, number, boolean or array (strings need quotes)");
  return tok;
}

Value parse_value(const std::string& s, const std::string& where) {
  Value v;
  size_t i = 0;
  auto skip = [&] {
    while (i < s.size() && std::isspace((unsigned char)s[i])) ++i;
  };
  skip();
  if (i >= s.size()) fail(where, "missing value after '='");
  if (s[i] == '[') {
    ++i;
    for (;;) {
      skip();
      if (i < s.size() && s[i] == ']') break;
      if (i >= s.size()) fail(where, "unterminated array (arrays must fit on one line)");
      bool b, t;
      v.items.push_back(scalar(s, i, where, b, t));
      skip();
      if (i < s.size() && s[i] == ',') ++i;
      else if (i >= s.size() || s[i] != ']') fail(where, "expected ',' or ']' in the array");
    }
    ++i;
  } else {
    v.items.push_back(scalar(s, i, where, v.is_bool, v.truth));
  }
  skip();
  if (i < s.size() && s[i] != '#') fail(where, "unexpected text after the value: '" + s.substr(i) + "'");
  return v;
}

// The command's option for a key written with '_' or '-'; null when there is none.
const CLI::Option* find_option(const CLI::App& cmd, const std::string& key) {
  std::string dashed = key, underscored = key;
  for (char& c : dashed) c = c == '_' ? '-' : c;
  for (char& c : underscored) c = c == '-' ? '_' : c;
  for (const std::string& k : {key, dashed, underscored})
    if (const CLI::Option* o = cmd.get_option_no_throw("--" + k)) return o;
  return nullptr;
}

bool on_command_line(const CLI::Option* opt, const std::vector<std::string>& args) {
  for (const std::string& name : opt->get_lnames())
    for (const std::string& a : args)
      if (a == "--" + name || a.rfind("--" + name + "=", 0) == 0) return true;
  return false;
}

}  // namespace

std::vector<std::string> expand_config_file(const CLI::App& command, const std::vector<std::string>& args) {
  std::string path;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--config") {
      if (i + 1 >= args.size()) throw std::runtime_error("--config needs a file");
      path = args[i + 1];
    } else if (args[i].rfind("--config=", 0) == 0) {
      path = args[i].substr(9);
    }
  }
  if (path.empty()) return args;
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": the --config file does not exist or cannot be read");
  std::vector<std::string> out = args;
  std::vector<std::string> seen;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    const std::string where = path + " line " + std::to_string(n);
    const std::string t = trim(line);
    if (t.empty() || t[0] == '#') continue;
    if (t[0] == '[') {
      const size_t close = t.find(']');
      const std::string table = close == std::string::npos ? "" : trim(t.substr(1, close - 1));
      if (table != command.get_name())
        fail(where, "table [" + table + "]: this file configures `libramil " + command.get_name() +
                        "`, whose keys go at the top or under [" + command.get_name() + "]");
      continue;
    }
    const size_t eq = t.find('=');
    if (eq == std::string::npos) fail(where, "expected 'key = value', got '" + t + "'");
    const std::string key = trim(t.substr(0, eq));
    if (key == "config") fail(where, "a config file cannot name another config file");
    const CLI::Option* opt = find_option(command, key);
    if (!opt) fail(where, "unknown key '" + key + "' (the keys are `libramil " + command.get_name() + " --help`'s flags)");
    for (const auto& s : seen)
      if (s == opt->get_name()) fail(where, "key '" + key + "' given twice");
    seen.push_back(opt->get_name());
    const Value v = parse_value(t.substr(eq + 1), where + " (key '" + key + "')");
    if (on_command_line(opt, args)) continue;  // the command line wins
    const bool flag = opt->get_expected_max() == 0;
    if (flag) {
      if (!v.is_bool) fail(where, "key '" + key + "' is a switch: write " + key + " = true or false");
      if (v.truth) out.push_back(opt->get_name());
      continue;
    }
    if (v.is_bool) fail(where, "key '" + key + "' takes a value, not true / false");
    if (v.items.size() > 1 && opt->get_expected_max() == 1)
      fail(where, "key '" + key + "' takes one value, got an array of " + std::to_string(v.items.size()));
    if (v.items.empty()) continue;
    out.push_back(opt->get_name());
    for (const auto& item : v.items) out.push_back(item);
  }
  return out;
}

}  // namespace lm::app
