// Reading small HDF5 files (coordinates, attributes) as the slide pipeline writes and TRIDENT
// writes them. Every error names the file and what is wrong in one line. HDF5 is entered only
// under hdf5_mutex() (data/formats/hdf5_writer.h): the reader holds it while open.
#pragma once
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace lm::data {

class H5Reader {
 public:
  // Opens `path` read-only; throws "<path>: ..." when it is missing or not an HDF5 file.
  explicit H5Reader(const std::string& path);
  ~H5Reader();
  H5Reader(const H5Reader&) = delete;
  H5Reader& operator=(const H5Reader&) = delete;

  const std::string& path() const { return path_; }
  bool has(const std::string& dataset) const;
  std::vector<int64_t> shape(const std::string& dataset) const;
  // An integer dataset of any width and sign, converted to int64 (throws for other classes).
  std::vector<int64_t> read_i64(const std::string& dataset) const;
  // A numeric dataset converted to float32.
  std::vector<float> read_f32(const std::string& dataset) const;
  // Attributes of `object` ("/" or a dataset); nullopt when absent, throws when of another kind.
  std::optional<double> attr_number(const std::string& object, const std::string& name) const;
  std::optional<std::string> attr_string(const std::string& object, const std::string& name) const;

 private:
  std::string path_;
  std::unique_lock<std::mutex> lock_;
  int64_t file_ = -1;  // hid_t
  int64_t open_dataset(const std::string& name) const;
  template <class T>
  void read_into(const std::string& dataset, int64_t mem_type, bool floats_ok, std::vector<T>& out) const;
};

}  // namespace lm::data
