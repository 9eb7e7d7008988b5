// Reading small HDF5 files (data/formats/hdf5_reader.h).
#include "data/formats/hdf5_reader.h"

#include <hdf5.h>

#include <filesystem>
#include <stdexcept>

#include "data/formats/hdf5_writer.h"

namespace lm::data {

namespace {

// Closes an HDF5 identifier when leaving scope.
struct Closer {
  hid_t id;
  herr_t (*close)(hid_t);
  ~Closer() {
    if (id >= 0) close(id);
  }
};

[[noreturn]] void fail(const std::string& path, const std::string& what) { throw std::runtime_error(path + ": " + what); }

}  // namespace

H5Reader::H5Reader(const std::string& path) : path_(path), lock_(hdf5_mutex()) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) fail(path, "no such file");
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  if (H5Fis_hdf5(path.c_str()) <= 0) fail(path, "not an HDF5 file (or a truncated one)");
  file_ = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file_ < 0) fail(path, "cannot be opened as HDF5 (corrupt or truncated)");
}

H5Reader::~H5Reader() {
  if (file_ >= 0) H5Fclose(file_);
}

bool H5Reader::has(const std::string& dataset) const {
  return H5Lexists(file_, dataset.c_str(), H5P_DEFAULT) > 0 &&
         H5Oexists_by_name(file_, dataset.c_str(), H5P_DEFAULT) > 0;
}

int64_t H5Reader::open_dataset(const std::string& name) const {
  if (!has(name)) fail(path_, "has no dataset '" + name + "'");
  const hid_t ds = H5Dopen2(file_, name.c_str(), H5P_DEFAULT);
  if (ds < 0) fail(path_, "dataset '" + name + "' cannot be opened");
  return ds;
}

std::vector<int64_t> H5Reader::shape(const std::string& dataset) const {
  Closer ds{open_dataset(dataset), H5Dclose};
  Closer space{H5Dget_space(ds.id), H5Sclose};
  const int nd = H5Sget_simple_extent_ndims(space.id);
  if (nd < 0) fail(path_, "dataset '" + dataset + "' has an unreadable shape");
  std::vector<hsize_t> dims(nd);
  if (nd > 0) H5Sget_simple_extent_dims(space.id, dims.data(), nullptr);
  return std::vector<int64_t>(dims.begin(), dims.end());
}

// Reads a whole dataset converted to `mem_type` into out (sized here); integer datasets always,
// float datasets only when `floats_ok`.
template <class T>
void H5Reader::read_into(const std::string& dataset, int64_t mem_type, bool floats_ok, std::vector<T>& out) const {
  Closer ds{open_dataset(dataset), H5Dclose};
  Closer type{H5Dget_type(ds.id), H5Tclose};
  const H5T_class_t c = H5Tget_class(type.id);
  if (c != H5T_INTEGER && !(floats_ok && c == H5T_FLOAT))
    fail(path_, "dataset '" + dataset + (floats_ok ? "' is not numeric" : "' is not integer-valued"));
  Closer space{H5Dget_space(ds.id), H5Sclose};
  const hssize_t n = H5Sget_simple_extent_npoints(space.id);
  if (n < 0) fail(path_, "dataset '" + dataset + "' has an unreadable shape");
  out.assign(static_cast<size_t>(n), T{});
  if (n > 0 && H5Dread(ds.id, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) < 0)
    fail(path_, "dataset '" + dataset + "' cannot be read (corrupt or truncated)");
}

std::vector<int64_t> H5Reader::read_i64(const std::string& dataset) const {
  std::vector<int64_t> out;
  read_into(dataset, H5T_NATIVE_INT64, false, out);
  return out;
}

std::vector<float> H5Reader::read_f32(const std::string& dataset) const {
  std::vector<float> out;
  read_into(dataset, H5T_NATIVE_FLOAT, true, out);
  return out;
}

std::optional<double> H5Reader::attr_number(const std::string& object, const std::string& name) const {
  if (H5Aexists_by_name(file_, object.c_str(), name.c_str(), H5P_DEFAULT) <= 0) return std::nullopt;
  Closer a{H5Aopen_by_name(file_, object.c_str(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose};
  if (a.id < 0) fail(path_, "attribute '" + name + "' of '" + object + "' cannot be opened");
  Closer type{H5Aget_type(a.id), H5Tclose};
  const H5T_class_t c = H5Tget_class(type.id);
  if (c != H5T_INTEGER && c != H5T_FLOAT) fail(path_, "attribute '" + name + "' of '" + object + "' is not a number");
  Closer space{H5Aget_space(a.id), H5Sclose};
  if (H5Sget_simple_extent_npoints(space.id) != 1)
    fail(path_, "attribute '" + name + "' of '" + object + "' is not a single number");
  double v = 0;
  if (H5Aread(a.id, H5T_NATIVE_DOUBLE, &v) < 0) fail(path_, "attribute '" + name + "' of '" + object + "' cannot be read");
  return v;
}

std::optional<std::string> H5Reader::attr_string(const std::string& object, const std::string& name) const {
  if (H5Aexists_by_name(file_, object.c_str(), name.c_str(), H5P_DEFAULT) <= 0) return std::nullopt;
  Closer a{H5Aopen_by_name(file_, object.c_str(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose};
  if (a.id < 0) fail(path_, "attribute '" + name + "' of '" + object + "' cannot be opened");
  Closer type{H5Aget_type(a.id), H5Tclose};
  if (H5Tget_class(type.id) != H5T_STRING) fail(path_, "attribute '" + name + "' of '" + object + "' is not a string");
  if (H5Tis_variable_str(type.id) > 0) {
    char* s = nullptr;
    Closer mem{H5Tcopy(H5T_C_S1), H5Tclose};
    H5Tset_size(mem.id, H5T_VARIABLE);
    H5Tset_cset(mem.id, H5Tget_cset(type.id));  // UTF-8 (as H5Writer and h5py write) does not convert to ASCII
    if (H5Aread(a.id, mem.id, &s) < 0) fail(path_, "attribute '" + name + "' cannot be read");
    std::string out = s ? s : "";
    H5free_memory(s);
    return out;
  }
  const size_t n = H5Tget_size(type.id);
  std::string out(n, '\0');
  if (H5Aread(a.id, type.id, out.data()) < 0) fail(path_, "attribute '" + name + "' cannot be read");
  out.resize(out.find('\0') == std::string::npos ? n : out.find('\0'));
  return out;
}

}  // namespace lm::data
