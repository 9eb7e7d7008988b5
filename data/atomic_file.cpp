// write_file_atomic / prepare_output_dir (see atomic_file.h).
#include "data/atomic_file.h"

#include <cctype>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>
#include <stdexcept>

#include "data/run_lock.h"

namespace lm::data {

namespace fs = std::filesystem;

void write_file_atomic(const std::string& path, const std::string& content) {
  fs::path p(path);
  fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
  std::random_device rd;
  std::string tmp = (dir / ("." + p.filename().string() + ".tmp-" + std::to_string(rd()))).string();
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot write " + path + ": " + std::strerror(errno));
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      throw std::runtime_error("cannot write " + path + ": " + std::strerror(e));
    }
    done += (size_t)n;
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    throw std::runtime_error("cannot write " + path + ": " + std::strerror(e));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    throw std::runtime_error("cannot write " + path + ": " + std::strerror(e));
  }
}

void check_output_dir(const std::string& dir, bool overwrite) {
  std::error_code ec;
  if (fs::exists(dir, ec)) {
    if (!fs::is_directory(dir, ec)) throw std::runtime_error("output path " + dir + " exists and is not a directory");
    if (overwrite) return;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
      if (it->path().filename() != kLockFileName)
        throw std::runtime_error("output directory " + dir + " already exists and is not empty (pass --overwrite to replace its files)");
  }
}

std::string atomic_target(const std::string& name) {
  const size_t k = name.rfind(".tmp-");
  if (k == std::string::npos || k + 5 >= name.size()) return "";
  const std::string suffix = name.substr(k + 5);
  auto all = [&](int (*is)(int)) {
    for (unsigned char c : suffix)
      if (!is(c)) return false;
    return true;
  };
  if (name[0] == '.' && k > 1 && all(isdigit)) return name.substr(1, k - 1);  // write_file_atomic
  if (k > 0 && suffix.size() == 6 && all(isalnum)) return name.substr(0, k);   // write_safetensors
  return "";
}

void prepare_output_dir(const std::string& dir, bool overwrite) {
  check_output_dir(dir, overwrite);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw std::runtime_error("cannot create directory " + dir + ": " + ec.message());
}

}  // namespace lm::data
