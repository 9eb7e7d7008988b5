// Writing HDF5 files safely: the file is built in memory (HDF5's core driver) and commit() writes
// the finished image through data/atomic_file.h (a temporary file beside the destination,
// fsync, rename). An error at any point (a full disk, a failed write) closes what is open, leaves
// no temporary file and throws one line naming the destination, so no partial file is left under
// either name, and HDF5 never holds a half-written file on disk.
// HDF5 (Debian's serial build) must never be entered by two threads at once: every use of the
// library in the project holds hdf5_mutex().
#pragma once
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace lm::data {

std::mutex& hdf5_mutex();

class H5Writer {
 public:
  // Creates the in-memory file (holds hdf5_mutex() until commit() or destruction).
  explicit H5Writer(const std::string& path);
  ~H5Writer();  // without commit(): closes everything and removes the temporary file
  H5Writer(const H5Writer&) = delete;
  H5Writer& operator=(const H5Writer&) = delete;

  // Datasets of row-major data with the given dimensions, stored little-endian.
  void dataset_i64(const std::string& name, const std::vector<uint64_t>& dims, const int64_t* data);
  void dataset_f32(const std::string& name, const std::vector<uint64_t>& dims, const float* data);
  void dataset_i32(const std::string& name, const std::vector<uint64_t>& dims, const int32_t* data);
  // Attributes on "/" (the file) or on a dataset written before.
  void attr_string(const std::string& object, const std::string& name, const std::string& value);
  void attr_i64(const std::string& object, const std::string& name, int64_t value);
  void attr_u64(const std::string& object, const std::string& name, uint64_t value);
  void attr_f64(const std::string& object, const std::string& name, double value);
  // Takes the file's image, closes it, and writes the image atomically onto the destination.
  void commit();

 private:
  std::string path_;
  std::unique_lock<std::mutex> lock_;
  int64_t file_ = -1;  // hid_t
  bool committed_ = false;
  void dataset(const std::string& name, const std::vector<uint64_t>& dims, int64_t mem_type, int64_t file_type,
               const void* data);
  int64_t open_object(const std::string& object);
  void abandon() noexcept;
};

}  // namespace lm::data
