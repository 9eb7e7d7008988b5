// One writer at a time in an output directory: an exclusive flock on <dir>/.libramil.lock,
// held for as long as the writer lives, with the holder's pid written in the file.
#pragma once
#include <string>

namespace lm::data {

// The lock file's name. prepare_output_dir does not count it as content.
inline constexpr const char* kLockFileName = ".libramil.lock";

// Takes the lock of `dir` (which must exist) without waiting, and holds it until destroyed;
// the kernel drops it when the process ends in any way (kill -9 included), so a lock file
// left behind by a dead process never blocks. Throws a one-line error when another process
// holds it: "run directory DIR is in use by another libramil process (pid N, lock file
// DIR/.libramil.lock)". The destructor removes the lock file.
class DirLock {
 public:
  explicit DirLock(const std::string& dir);
  ~DirLock();
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace lm::data
