// Feature-bag readers: HDF5 via the C API, PyTorch .pt via a minimal zip reader
// (formats/zip_reader.h) and a restricted pickle interpreter (formats/torch_pickle.h, never
// executes anything). See feature_bag.h.
#include "data/feature_bag.h"

#include <hdf5.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <tuple>
#include <vector>
#include "data/formats/hdf5_writer.h"
#include "data/formats/torch_pickle.h"
#include "data/formats/zip_reader.h"
#include "data/text_util.h"

static_assert(std::endian::native == std::endian::little, "feature readers assume a little-endian host");

namespace lm::data {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error("file " + path + ": " + what);
}

std::string shape_text(const std::vector<int64_t>& s) {
  std::string r = "(";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + (s.size() == 1 ? ",)" : ")");
}

enum class Kind { HDF5, PT };

Kind kind_of(const std::string& path) {
  std::string ext = lower(fs::path(path).extension().string());
  if (ext == ".h5" || ext == ".hdf5") return Kind::HDF5;
  if (ext == ".pt" || ext == ".pth") return Kind::PT;
  fail(path, "unsupported feature file extension '" + ext + "' (expected .h5, .hdf5 or .pt)");
}

void check_exists(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) fail(path, "no such file");
  if (fs::is_directory(path, ec)) fail(path, "is a directory, not a feature file");
}

// Validates the (N, D) / (1, N, D) shape; returns (N, D).
std::pair<int64_t, int64_t> bag_dims(const std::string& path, const std::vector<int64_t>& shape) {
  std::vector<int64_t> s = shape;
  if (s.size() == 3 && s[0] == 1) s.erase(s.begin());
  if (s.size() != 2)
    fail(path, "features have rank " + std::to_string(shape.size()) + " (shape " + shape_text(shape) +
                   "); expected (N, D) or (1, N, D)");
  if (s[0] == 0) fail(path, "features have zero instances (shape " + shape_text(shape) + ")");
  if (s[1] == 0) fail(path, "features have zero feature dimension (shape " + shape_text(shape) + ")");
  return {s[0], s[1]};
}

// ---- value post-processing ----------------------------------------------------------------

float elem_f32(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::F32: return static_cast<const float*>(p)[i];
    case DType::F64: return (float)static_cast<const double*>(p)[i];
    case DType::F16: return half_to_float(static_cast<const uint16_t*>(p)[i]);
    case DType::BF16: return bf16_to_float(static_cast<const uint16_t*>(p)[i]);
    default: return 0.f;
  }
}

int64_t count_nonfinite(const Tensor& t) {
  const void* p = t.raw_data();
  int64_t n = t.numel(), bad = 0;
  switch (t.dtype()) {
    case DType::F32: {
      const float* f = static_cast<const float*>(p);
      for (int64_t i = 0; i < n; ++i) bad += !std::isfinite(f[i]);
      break;
    }
    case DType::F64: {
      const double* f = static_cast<const double*>(p);
      for (int64_t i = 0; i < n; ++i) bad += !std::isfinite(f[i]);
      break;
    }
    case DType::F16: {
      const uint16_t* h = static_cast<const uint16_t*>(p);
      for (int64_t i = 0; i < n; ++i) bad += (h[i] & 0x7c00) == 0x7c00;
      break;
    }
    case DType::BF16: {
      const uint16_t* h = static_cast<const uint16_t*>(p);
      for (int64_t i = 0; i < n; ++i) bad += (h[i] & 0x7f80) == 0x7f80;
      break;
    }
    default: break;
  }
  return bad;
}

// `raw` is a contiguous (N, D) tensor in its stored dtype: checks values, converts to `keep`.
Tensor finish_features(const std::string& path, Tensor raw, DType keep) {
  const std::string slide = slide_name_from_path(path);
  if (int64_t bad = count_nonfinite(raw))
    fail(path, "slide " + slide + ": " + std::to_string(bad) + " NaN/Inf values in features");
  if (raw.dtype() == keep) return raw;
  Tensor out = Tensor::empty(raw.shape(), keep);
  const void* src = raw.raw_data();
  const int64_t n = raw.numel();
  if (keep == DType::F32) {
    float* d = out.data<float>();
    for (int64_t i = 0; i < n; ++i) d[i] = elem_f32(src, raw.dtype(), i);
  } else {
    uint16_t* d = static_cast<uint16_t*>(out.raw_data());
    for (int64_t i = 0; i < n; ++i) d[i] = float_to_half(elem_f32(src, raw.dtype(), i));
  }
  if (int64_t bad = count_nonfinite(out))
    fail(path, "slide " + slide + ": " + std::to_string(bad) + " feature values overflow " + dtype_name(keep) +
                   " (stored as " + dtype_name(raw.dtype()) + ")");
  return out;
}

void check_keep(DType keep) {
  if (keep != DType::F32 && keep != DType::F16)
    throw std::invalid_argument(std::string("read_feature_bag: keep must be float32 or float16, got ") + dtype_name(keep));
}

// ================================ HDF5 ========================================================

#ifndef H5_HAVE_THREADSAFE
#endif

struct H5Handle {
  hid_t id = H5I_INVALID_HID;
  herr_t (*closer)(hid_t) = nullptr;
  H5Handle() = default;
  H5Handle(hid_t i, herr_t (*c)(hid_t)) : id(i), closer(c) {}
  H5Handle(const H5Handle&) = delete;
  H5Handle& operator=(const H5Handle&) = delete;
  H5Handle& operator=(H5Handle&& o) noexcept {
    if (this != &o) {
      reset();
      id = o.id;
      closer = o.closer;
      o.id = H5I_INVALID_HID;
    }
    return *this;
  }
  ~H5Handle() { reset(); }
  void reset() {
    if (id >= 0 && closer) closer(id);
    id = H5I_INVALID_HID;
  }
  bool ok() const { return id >= 0; }
};

herr_t collect_name(hid_t, const char* name, const H5L_info_t*, void* op) {
  static_cast<std::vector<std::string>*>(op)->push_back(name);
  return 0;
}

std::string h5_type_name(hid_t t) {
  H5T_class_t c = H5Tget_class(t);
  size_t sz = H5Tget_size(t);
  std::string bits = std::to_string(sz * 8);
  if (c == H5T_INTEGER) return (H5Tget_sign(t) == H5T_SGN_NONE ? "uint" : "int") + bits;
  if (c == H5T_FLOAT) return "float" + bits;
  if (c == H5T_STRING) return "string";
  if (c == H5T_COMPOUND) return "compound";
  if (c == H5T_ENUM) return "enum";
  return "type class " + std::to_string((int)c);
}

// An open HDF5 bag: file, `features` dataset, its type and shape.
struct H5Bag {
  H5Handle file, feats, ftype;
  std::vector<int64_t> shape;
  int64_t n = 0, d = 0;
  DType stored = DType::F32;
};

std::vector<int64_t> h5_shape(const std::string& path, hid_t ds, const char* what) {
  H5Handle space(H5Dget_space(ds), H5Sclose);
  if (!space.ok()) fail(path, std::string("cannot read the shape of '") + what + "'");
  int nd = H5Sget_simple_extent_ndims(space.id);
  if (nd < 0) fail(path, std::string("cannot read the shape of '") + what + "'");
  std::vector<hsize_t> dims(nd);
  if (nd > 0) H5Sget_simple_extent_dims(space.id, dims.data(), nullptr);
  return std::vector<int64_t>(dims.begin(), dims.end());
}

void h5_open(const std::string& path, H5Bag& b) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  htri_t is = H5Fis_hdf5(path.c_str());
  if (is <= 0) fail(path, "not an HDF5 file (wrong format, truncated or corrupt)");
  b.file = H5Handle(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (!b.file.ok()) fail(path, "cannot open as HDF5 (truncated or corrupt file?)");
  if (H5Lexists(b.file.id, "features", H5P_DEFAULT) <= 0) {
    std::vector<std::string> names;
    H5Literate(b.file.id, H5_INDEX_NAME, H5_ITER_INC, nullptr, collect_name, &names);
    std::string list;
    for (auto& n : names) list += (list.empty() ? "" : ", ") + n;
    fail(path, "no dataset 'features' (top-level entries: " + (list.empty() ? std::string("none") : list) + ")");
  }
  b.feats = H5Handle(H5Dopen2(b.file.id, "features", H5P_DEFAULT), H5Dclose);
  if (!b.feats.ok()) fail(path, "'features' exists but is not a readable dataset");
  b.ftype = H5Handle(H5Dget_type(b.feats.id), H5Tclose);
  if (!b.ftype.ok()) fail(path, "cannot read the type of 'features'");
  H5T_class_t cls = H5Tget_class(b.ftype.id);
  size_t sz = H5Tget_size(b.ftype.id);
  if (cls == H5T_INTEGER)
    fail(path, "features are integer-typed (" + h5_type_name(b.ftype.id) + "); expected float32 or float16");
  if (cls != H5T_FLOAT)
    fail(path, "features have unsupported type " + h5_type_name(b.ftype.id) + "; expected float32 or float16");
  if (sz == 4) b.stored = DType::F32;
  else if (sz == 8) b.stored = DType::F64;
  else if (sz == 2) b.stored = DType::F16;
  else fail(path, "features have unsupported float size " + std::to_string(sz * 8) + " bits");
  b.shape = h5_shape(path, b.feats.id, "features");
  std::tie(b.n, b.d) = bag_dims(path, b.shape);
}

// IEEE binary16 little-endian, as h5py defines it.
hid_t make_half_type() {
  hid_t t = H5Tcopy(H5T_IEEE_F32LE);
  H5Tset_fields(t, 15, 10, 5, 0, 10);
  H5Tset_size(t, 2);
  H5Tset_ebias(t, 15);
  return t;
}

FeatureBag read_h5(const std::string& path, DType keep) {
  FeatureBag bag;
  bag.name = slide_name_from_path(path);
  Tensor raw;
  {
#ifndef H5_HAVE_THREADSAFE
    std::lock_guard<std::mutex> lock(hdf5_mutex());  // data/formats/hdf5_writer.h
#endif
    H5Bag b;
    h5_open(path, b);
    raw = Tensor::empty({b.n, b.d}, b.stored);
    H5Handle half;
    hid_t mem = H5T_NATIVE_FLOAT;
    if (b.stored == DType::F64) mem = H5T_NATIVE_DOUBLE;
    if (b.stored == DType::F16) {
      half = H5Handle(make_half_type(), H5Tclose);
      mem = half.id;
    }
    if (H5Dread(b.feats.id, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw.raw_data()) < 0)
      fail(path, "failed to read 'features' " + shape_text(b.shape) + " (truncated or corrupt file?)");

    if (H5Lexists(b.file.id, "coords", H5P_DEFAULT) > 0) {
      H5Handle cds(H5Dopen2(b.file.id, "coords", H5P_DEFAULT), H5Dclose);
      if (!cds.ok()) fail(path, "'coords' exists but is not a readable dataset");
      H5Handle ct(H5Dget_type(cds.id), H5Tclose);
      if (H5Tget_class(ct.id) != H5T_INTEGER)
        fail(path, "coords have type " + h5_type_name(ct.id) + "; expected an integer type");
      std::vector<int64_t> cs = h5_shape(path, cds.id, "coords");
      std::vector<int64_t> c2 = cs;
      if (c2.size() == 3 && c2[0] == 1) c2.erase(c2.begin());
      if (c2.size() != 2 || c2[1] != 2) fail(path, "coords have shape " + shape_text(cs) + "; expected (N, 2)");
      if (c2[0] != b.n)
        fail(path, "coords have " + std::to_string(c2[0]) + " rows but features have " + std::to_string(b.n) +
                       " instances");
      bag.coords = Tensor::empty({b.n, 2}, DType::I64);
      if (H5Dread(cds.id, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, bag.coords.raw_data()) < 0)
        fail(path, "failed to read 'coords' (truncated or corrupt file?)");
    }
  }
  bag.features = finish_features(path, std::move(raw), keep);
  return bag;
}

BagInfo probe_h5(const std::string& path) {
#ifndef H5_HAVE_THREADSAFE
  std::lock_guard<std::mutex> lock(hdf5_mutex());  // data/formats/hdf5_writer.h
#endif
  H5Bag b;
  h5_open(path, b);
  return {b.n, b.d, b.stored};
}

// ================================ .pt ========================================================

// The archive prefix ("<archive>/") and the parsed tensor of a .pt file.
struct PtFile {
  std::unique_ptr<ZipReader> zip;
  std::string prefix;
  PtTensor t;
};

PtFile open_pt(const std::string& path) {
  PtFile pf;
  pf.zip = std::make_unique<ZipReader>(path);
  const ZipEntry* pkl = nullptr;
  for (auto& [name, e] : pf.zip->entries()) {
    if (name.size() >= 9 && name.compare(name.size() - 9, 9, "/data.pkl") == 0 &&
        name.find('/') == name.size() - 9) {
      if (pkl) fail(path, "zip holds more than one data.pkl; not a single torch.save archive");
      pkl = &e;
      pf.prefix = name.substr(0, name.size() - 8);
    }
  }
  if (!pkl) fail(path, "zip has no <archive>/data.pkl; not a torch.save file");
  auto bo = pf.zip->entries().find(pf.prefix + "byteorder");
  if (bo != pf.zip->entries().end()) {
    std::string order = pf.zip->read_entry(bo->first, bo->second, 64);
    if (order != "little") fail(path, "tensor data is stored with byte order '" + order + "'; only little-endian is supported");
  }
  std::string data = pf.zip->read_entry(pf.prefix + "data.pkl", *pkl, 16u << 20);
  pf.t = unpickle_tensor(path, data);
  // Sanity of the view into the storage.
  const PtTensor& t = pf.t;
  if (t.offset < 0) fail(path, "negative storage offset");
  int64_t extent = 1, numel = 1;
  bool empty = false, overflow = false;
  for (size_t k = 0; k < t.sizes.size(); ++k) {
    if (t.sizes[k] < 0 || t.strides[k] < 0) fail(path, "negative size or stride in the saved tensor");
    int64_t span = 0;
    overflow |= __builtin_mul_overflow(t.sizes[k], numel, &numel);
    if (t.sizes[k] == 0) empty = true;
    else overflow |= __builtin_mul_overflow(t.sizes[k] - 1, t.strides[k], &span) ||
                     __builtin_add_overflow(extent, span, &extent);
  }
  if (overflow || __builtin_add_overflow(extent, t.offset, &extent))
    fail(path, "saved tensor sizes/strides overflow (corrupt file?)");
  if (!empty && extent > t.storage_numel)
    fail(path, "saved tensor view " + shape_text(t.sizes) + " exceeds its storage of " +
                   std::to_string(t.storage_numel) + " elements");
  return pf;
}

FeatureBag read_pt(const std::string& path, DType keep) {
  PtFile pf = open_pt(path);
  const PtTensor& t = pf.t;
  auto [n, d] = bag_dims(path, t.sizes);
  const std::string key = pf.prefix + "data/" + t.key;
  auto it = pf.zip->entries().find(key);
  if (it == pf.zip->entries().end()) fail(path, "storage entry '" + key + "' missing from the archive");
  const size_t esz = dtype_size(t.dtype);
  if ((uint64_t)t.storage_numel > it->second.size / esz)
    fail(path, "storage entry '" + key + "' holds " + std::to_string(it->second.size) + " bytes, fewer than the " +
                   std::to_string(t.storage_numel) + " " + dtype_name(t.dtype) + " elements it should (corrupt file?)");
  // The entry must lie inside the file before its size is trusted for an allocation (a tiny
  // corrupt file could otherwise claim gigabytes; found by fuzz/fuzz_pt.cpp review).
  (void)pf.zip->data_offset(key, it->second);
  // Read the whole storage, then take the saved view and pack it.
  Tensor storage = Tensor::empty({t.storage_numel}, t.dtype);
  pf.zip->read_into(key, it->second, storage.raw_data(), (uint64_t)t.storage_numel * esz);
  Shape sizes(t.sizes.begin(), t.sizes.end()), strides(t.strides.begin(), t.strides.end());
  if (sizes.size() == 3) {  // (1, N, D): drop the leading 1
    sizes.erase(sizes.begin());
    strides.erase(strides.begin());
  }
  Tensor view = storage.as_strided(sizes, strides, t.offset);
  Tensor packed = (view.is_contiguous() && t.offset == 0 && n * d == t.storage_numel) ? view : view.clone();
  FeatureBag bag;
  bag.name = slide_name_from_path(path);
  bag.features = finish_features(path, packed, keep);
  return bag;
}

}  // namespace

std::string slide_name_from_path(const std::string& path) { return fs::path(path).stem().string(); }

FeatureBag read_feature_bag(const std::string& path, DType keep) {
  check_keep(keep);
  Kind k = kind_of(path);
  check_exists(path);
  return k == Kind::HDF5 ? read_h5(path, keep) : read_pt(path, keep);
}

BagInfo probe_feature_bag(const std::string& path) {
  Kind k = kind_of(path);
  check_exists(path);
  if (k == Kind::HDF5) return probe_h5(path);
  PtFile pf = open_pt(path);
  auto [n, d] = bag_dims(path, pf.t.sizes);
  return {n, d, pf.t.dtype};
}

}  // namespace lm::data
