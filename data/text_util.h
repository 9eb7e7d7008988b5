// Two string helpers the readers, the reports and the slide commands share: ASCII lower-casing
// and trimming of white space (std::isspace's set: space, \t, \n, \v, \f, \r) at both ends.
#pragma once
#include <cctype>
#include <string>

namespace lm::data {

inline std::string lower(std::string s) {
  for (char& c : s) c = (char)std::tolower((unsigned char)c);
  return s;
}

inline std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace((unsigned char)s[b])) ++b;
  while (e > b && std::isspace((unsigned char)s[e - 1])) --e;
  return s.substr(b, e - b);
}

}  // namespace lm::data
