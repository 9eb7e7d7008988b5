// DirLock (see run_lock.h): flock(2) on a lock file; the pid goes into the file after the lock
// is taken. A holder removes the file when it lets go, so a taker checks, once it holds the
// lock, that the name still leads to the file it locked (else it took a removed file's lock
// and tries again).
#include "data/run_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <thread>

namespace lm::data {

namespace {

// The pid a holder wrote (it writes it just after taking the lock: wait a moment for it).
std::string holder_pid(int fd) {
  for (int attempt = 0; attempt < 20; ++attempt) {
    char buf[32] = {0};
    ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    if (n > 0 && buf[n - 1] == '\n') return std::string(buf, (size_t)n - 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return "unknown";
}

}  // namespace

DirLock::DirLock(const std::string& dir) : path_((std::filesystem::path(dir) / kLockFileName).string()) {
  for (int attempt = 0;; ++attempt) {
    int fd = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) throw std::runtime_error("cannot create the lock file " + path_ + ": " + std::strerror(errno));
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int e = errno;
      const std::string pid = e == EWOULDBLOCK ? holder_pid(fd) : "";
      ::close(fd);
      if (e == EWOULDBLOCK)
        throw std::runtime_error("run directory " + dir + " is in use by another libramil process (pid " + pid + ", lock file " +
                                 path_ + ")");
      throw std::runtime_error("cannot lock " + path_ + ": " + std::strerror(e));
    }
    struct stat held {}, named {};
    if (::fstat(fd, &held) == 0 && ::stat(path_.c_str(), &named) == 0 && held.st_ino == named.st_ino &&
        held.st_dev == named.st_dev) {
      fd_ = fd;
      break;
    }
    ::close(fd);  // the file was removed by its last holder after we opened it: again
    if (attempt == 100) throw std::runtime_error("cannot lock " + path_ + ": the file keeps being replaced");
  }
  const std::string pid = std::to_string((long)::getpid()) + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, pid.data(), pid.size(), 0) != (ssize_t)pid.size()) {
    const int e = errno;
    ::unlink(path_.c_str());
    ::close(fd_);
    throw std::runtime_error("cannot write the lock file " + path_ + ": " + std::strerror(e));
  }
}

DirLock::~DirLock() {
  if (fd_ < 0) return;
  ::unlink(path_.c_str());  // before the lock is let go: a taker then finds the name gone
  ::close(fd_);
}

}  // namespace lm::data
