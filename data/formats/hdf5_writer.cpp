// HDF5 output through a temporary file and an atomic rename (data/formats/hdf5_writer.h).
#include "data/formats/hdf5_writer.h"

#include "data/atomic_file.h"

#include <hdf5.h>

#include <stdexcept>

namespace lm::data {

std::mutex& hdf5_mutex() {
  static std::mutex m;
  return m;
}

namespace {

// Closes an HDF5 handle when it goes out of scope.
struct Handle {
  hid_t id;
  herr_t (*close)(hid_t);
  ~Handle() {
    if (id >= 0) close(id);
  }
};

}  // namespace

H5Writer::H5Writer(const std::string& path) : path_(path), lock_(hdf5_mutex()) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  // In memory (the core driver without a backing store): nothing touches the disk until
  // commit() writes the finished image, so a full disk can never leave HDF5 holding a
  // half-written file (which its exit handler then crashes on).
  Handle fapl{H5Pcreate(H5P_FILE_ACCESS), H5Pclose};
  if (fapl.id < 0 || H5Pset_fapl_core(fapl.id, size_t(1) << 20, 0) < 0)
    throw std::runtime_error("cannot write " + path_ + ": cannot set up an in-memory HDF5 file");
  file_ = H5Fcreate(path_.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.id);
  if (file_ < 0) throw std::runtime_error("cannot write " + path_ + ": cannot create the HDF5 file");
}

H5Writer::~H5Writer() {
  if (!committed_) abandon();
}

void H5Writer::abandon() noexcept {
  if (file_ >= 0) {
    H5Fclose(hid_t(file_));  // in memory: nothing on disk to remove
    file_ = -1;
  }
}

void H5Writer::dataset(const std::string& name, const std::vector<uint64_t>& dims, int64_t mem_type, int64_t file_type,
                       const void* data) {
  std::vector<hsize_t> d(dims.begin(), dims.end());
  Handle space{H5Screate_simple(int(d.size()), d.data(), nullptr), H5Sclose};
  if (space.id < 0) throw std::runtime_error("cannot write " + path_ + ": dataspace of " + name);
  // No modification times in the file, so that the same data give the same bytes.
  Handle dcpl{H5Pcreate(H5P_DATASET_CREATE), H5Pclose};
  if (dcpl.id < 0 || H5Pset_obj_track_times(dcpl.id, 0) < 0)
    throw std::runtime_error("cannot write " + path_ + ": dataset properties of " + name);
  Handle set{H5Dcreate2(hid_t(file_), name.c_str(), hid_t(file_type), space.id, H5P_DEFAULT, dcpl.id, H5P_DEFAULT),
             H5Dclose};
  if (set.id < 0) throw std::runtime_error("cannot write " + path_ + ": cannot create dataset " + name);
  size_t n = 1;
  for (auto x : dims) n *= x;
  if (n > 0 && H5Dwrite(set.id, hid_t(mem_type), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
    throw std::runtime_error("cannot write " + path_ + ": writing dataset " + name + " failed (disk full?)");
}

void H5Writer::dataset_i64(const std::string& name, const std::vector<uint64_t>& dims, const int64_t* data) {
  dataset(name, dims, H5T_NATIVE_INT64, H5T_STD_I64LE, data);
}
void H5Writer::dataset_f32(const std::string& name, const std::vector<uint64_t>& dims, const float* data) {
  dataset(name, dims, H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, data);
}
void H5Writer::dataset_i32(const std::string& name, const std::vector<uint64_t>& dims, const int32_t* data) {
  dataset(name, dims, H5T_NATIVE_INT32, H5T_STD_I32LE, data);
}

int64_t H5Writer::open_object(const std::string& object) {
  hid_t o = H5Oopen(hid_t(file_), object.c_str(), H5P_DEFAULT);
  if (o < 0) throw std::runtime_error("cannot write " + path_ + ": no object " + object + " for an attribute");
  return o;
}

void H5Writer::attr_string(const std::string& object, const std::string& name, const std::string& value) {
  Handle obj{hid_t(open_object(object)), H5Oclose};
  Handle type{H5Tcopy(H5T_C_S1), H5Tclose};
  if (type.id < 0 || H5Tset_size(type.id, H5T_VARIABLE) < 0 || H5Tset_cset(type.id, H5T_CSET_UTF8) < 0)
    throw std::runtime_error("cannot write " + path_ + ": string type for attribute " + name);
  Handle space{H5Screate(H5S_SCALAR), H5Sclose};
  Handle attr{H5Acreate2(obj.id, name.c_str(), type.id, space.id, H5P_DEFAULT, H5P_DEFAULT), H5Aclose};
  const char* c = value.c_str();
  if (attr.id < 0 || H5Awrite(attr.id, type.id, &c) < 0)
    throw std::runtime_error("cannot write " + path_ + ": attribute " + name + " failed");
}

namespace {
template <class T>
void scalar_attr(hid_t obj, const std::string& path, const std::string& name, hid_t mem, hid_t file, T value) {
  Handle space{H5Screate(H5S_SCALAR), H5Sclose};
  Handle attr{H5Acreate2(obj, name.c_str(), file, space.id, H5P_DEFAULT, H5P_DEFAULT), H5Aclose};
  if (attr.id < 0 || H5Awrite(attr.id, mem, &value) < 0)
    throw std::runtime_error("cannot write " + path + ": attribute " + name + " failed");
}
}  // namespace

void H5Writer::attr_i64(const std::string& object, const std::string& name, int64_t value) {
  Handle obj{hid_t(open_object(object)), H5Oclose};
  scalar_attr(obj.id, path_, name, H5T_NATIVE_INT64, H5T_STD_I64LE, value);
}
void H5Writer::attr_u64(const std::string& object, const std::string& name, uint64_t value) {
  Handle obj{hid_t(open_object(object)), H5Oclose};
  scalar_attr(obj.id, path_, name, H5T_NATIVE_UINT64, H5T_STD_U64LE, value);
}
void H5Writer::attr_f64(const std::string& object, const std::string& name, double value) {
  Handle obj{hid_t(open_object(object)), H5Oclose};
  scalar_attr(obj.id, path_, name, H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, value);
}

void H5Writer::commit() {
  if (committed_) return;
  std::string image;
  const bool flushed = H5Fflush(hid_t(file_), H5F_SCOPE_GLOBAL) >= 0;
  const ssize_t size = flushed ? H5Fget_file_image(hid_t(file_), nullptr, 0) : -1;
  if (size > 0) {
    image.resize(size_t(size));
    if (H5Fget_file_image(hid_t(file_), image.data(), size_t(size)) != size) image.clear();
  }
  abandon();
  if (image.empty()) throw std::runtime_error("cannot write " + path_ + ": building the HDF5 image in memory failed");
  lock_.unlock();
  write_file_atomic(path_, image);  // temporary file, fsync, rename; removes the temporary on error
  committed_ = true;
}

}  // namespace lm::data
