// Feature-bag readers: HDF5 via the C API, PyTorch .pt via a minimal zip reader and a
// restricted pickle interpreter (never executes anything). See feature_bag.h.
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
#include <unordered_map>
#include <vector>
#include "data/formats/hdf5_writer.h"
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

// ================================ zip ========================================================

struct File {
  std::FILE* f = nullptr;
  int64_t size = 0;
  ~File() {
    if (f) std::fclose(f);
  }
};

struct ZipEntry {
  uint64_t local_offset = 0, comp_size = 0, size = 0;
  uint16_t method = 0;
};

uint16_t rd16(const unsigned char* p) { return (uint16_t)(p[0] | (p[1] << 8)); }
uint32_t rd32(const unsigned char* p) { return (uint32_t)rd16(p) | ((uint32_t)rd16(p + 2) << 16); }
uint64_t rd64(const unsigned char* p) { return (uint64_t)rd32(p) | ((uint64_t)rd32(p + 4) << 32); }

void read_at(const std::string& path, File& f, int64_t off, void* dst, int64_t n, const char* what) {
  if (off < 0 || n < 0 || off > f.size || n > f.size - off)  // (no signed overflow for huge offsets)
    fail(path, std::string("truncated or corrupt .pt file (") + what + " lies beyond the end of the file)");
  if (n == 0) return;
  if (fseeko(f.f, (off_t)off, SEEK_SET) != 0 || std::fread(dst, 1, (size_t)n, f.f) != (size_t)n)
    fail(path, std::string("I/O error reading ") + what);
}

class Zip {
 public:
  explicit Zip(const std::string& path) : path_(path) {
    f_.f = std::fopen(path.c_str(), "rb");
    if (!f_.f) fail(path, "cannot open for reading");
    std::error_code ec;
    f_.size = (int64_t)fs::file_size(path, ec);
    if (ec) fail(path, "cannot determine the file size");
    unsigned char head[4] = {0, 0, 0, 0};
    if (f_.size >= 4) read_at(path, f_, 0, head, 4, "header");
    if (f_.size >= 2 && head[0] == 0x80 && head[1] >= 2 && head[1] <= 5)
      fail(path, "legacy (pre-zip) torch.save format is not supported; re-save with torch >= 1.6 "
                 "(the default _use_new_zipfile_serialization=True)");
    if (f_.size < 22 || rd32(head) != 0x04034b50u) fail(path, "not a PyTorch .pt file (not a zip archive)");
    parse_directory();
  }

  const std::map<std::string, ZipEntry>& entries() const { return entries_; }

  // Byte offset of an entry's data (after its local header).
  int64_t data_offset(const std::string& name, const ZipEntry& e) {
    if (e.method != 0)
      fail(path_, "zip entry '" + name + "' is compressed (method " + std::to_string(e.method) +
                      "); only stored (uncompressed) entries are supported, as torch.save writes them");
    if (e.comp_size != e.size) fail(path_, "zip entry '" + name + "' has inconsistent sizes");
    unsigned char lh[30];
    read_at(path_, f_, (int64_t)e.local_offset, lh, 30, "a zip local header");
    if (rd32(lh) != 0x04034b50u) fail(path_, "corrupt zip: bad local header for '" + name + "'");
    int64_t off = (int64_t)e.local_offset + 30 + rd16(lh + 26) + rd16(lh + 28);
    if (e.size > (uint64_t)f_.size || off > f_.size - (int64_t)e.size)
      fail(path_, "truncated .pt file: entry '" + name + "' runs past the end");
    return off;
  }

  std::string read_entry(const std::string& name, const ZipEntry& e, uint64_t limit) {
    if (e.size > limit) fail(path_, "zip entry '" + name + "' is unexpectedly large (" + std::to_string(e.size) + " bytes)");
    int64_t off = data_offset(name, e);
    std::string s(e.size, '\0');
    read_at(path_, f_, off, s.data(), (int64_t)e.size, "a zip entry");
    return s;
  }

  void read_into(const std::string& name, const ZipEntry& e, void* dst, uint64_t n) {
    if (n > e.size) fail(path_, "zip entry '" + name + "' is shorter than the storage it should hold");
    read_at(path_, f_, data_offset(name, e), dst, (int64_t)n, "tensor storage");
  }

 private:
  void parse_directory() {
    const int64_t tail_len = std::min<int64_t>(f_.size, 22 + 65535);
    std::vector<unsigned char> tail(tail_len);
    read_at(path_, f_, f_.size - tail_len, tail.data(), tail_len, "the zip directory");
    int64_t eocd = -1;
    for (int64_t i = tail_len - 22; i >= 0; --i)
      if (rd32(&tail[i]) == 0x06054b50u) { eocd = i; break; }
    if (eocd < 0) fail(path_, "truncated or corrupt .pt file (no zip end-of-central-directory record)");
    const unsigned char* e = &tail[eocd];
    uint64_t count = rd16(e + 10), cd_size = rd32(e + 12), cd_off = rd32(e + 16);
    if (count == 0xFFFF || cd_size == 0xFFFFFFFFu || cd_off == 0xFFFFFFFFu) {  // zip64
      int64_t loc = f_.size - tail_len + eocd - 20;
      unsigned char l[20];
      read_at(path_, f_, loc, l, 20, "the zip64 locator");
      if (rd32(l) != 0x07064b50u) fail(path_, "corrupt zip: missing zip64 locator");
      unsigned char z[56];
      read_at(path_, f_, (int64_t)rd64(l + 8), z, 56, "the zip64 directory record");
      if (rd32(z) != 0x06064b50u) fail(path_, "corrupt zip: bad zip64 directory record");
      count = rd64(z + 32);
      cd_size = rd64(z + 40);
      cd_off = rd64(z + 48);
    }
    if (cd_size > (uint64_t)f_.size || count > cd_size / 46 + 1) fail(path_, "corrupt zip: bad central directory");
    std::vector<unsigned char> cd(cd_size);
    read_at(path_, f_, (int64_t)cd_off, cd.data(), (int64_t)cd_size, "the zip central directory");
    size_t p = 0;
    for (uint64_t k = 0; k < count; ++k) {
      if (p + 46 > cd.size() || rd32(&cd[p]) != 0x02014b50u) fail(path_, "corrupt zip central directory");
      const unsigned char* h = &cd[p];
      ZipEntry en;
      en.method = rd16(h + 10);
      en.comp_size = rd32(h + 20);
      en.size = rd32(h + 24);
      size_t nlen = rd16(h + 28), xlen = rd16(h + 30), clen = rd16(h + 32);
      en.local_offset = rd32(h + 42);
      if (p + 46 + nlen + xlen + clen > cd.size()) fail(path_, "corrupt zip central directory");
      std::string name(reinterpret_cast<const char*>(h + 46), nlen);
      // zip64 extended information: present fields replace those saturated at 0xFFFFFFFF.
      const unsigned char* x = h + 46 + nlen;
      for (size_t q = 0; q + 4 <= xlen;) {
        uint16_t id = rd16(x + q), len = rd16(x + q + 2);
        if (q + 4 + len > xlen) break;
        if (id == 0x0001) {
          const unsigned char* v = x + q + 4;
          size_t used = 0;
          auto take = [&](uint64_t& field) {
            if (field == 0xFFFFFFFFu && used + 8 <= len) { field = rd64(v + used); used += 8; }
          };
          take(en.size);
          take(en.comp_size);
          take(en.local_offset);
        }
        q += 4 + len;
      }
      entries_[name] = en;
      p += 46 + nlen + xlen + clen;
    }
  }

  std::string path_;
  File f_;
  std::map<std::string, ZipEntry> entries_;
};

// ================================ restricted pickle ============================================

struct PVal {
  enum class K { None, Bool, Int, Str, Tuple, Global, Storage, EmptyDict, Tensor, Mark } k = K::None;
  int64_t i = 0;
  std::string s, s2;  // Str: s; Global: module s, name s2; Storage: key s
  std::vector<PVal> items;  // Tuple
  DType dtype = DType::F32;  // Storage, Tensor (the storage's dtype)
  // Tensor
  std::string key;
  int64_t storage_numel = 0, offset = 0;
  std::vector<int64_t> sizes, strides;
  int64_t weight = 1;  // values nested in this one, itself included (bounds memo/tuple blow-up)
};

const char* kind_name(const PVal& v) {
  switch (v.k) {
    case PVal::K::None: return "NoneType";
    case PVal::K::Bool: return "bool";
    case PVal::K::Int: return "int";
    case PVal::K::Str: return "str";
    case PVal::K::Tuple: return "tuple";
    case PVal::K::Global: return "class/function";
    case PVal::K::Storage: return "torch storage";
    case PVal::K::EmptyDict: return "dict";
    case PVal::K::Tensor: return "torch.Tensor";
    case PVal::K::Mark: return "mark";
  }
  return "?";
}

std::optional<DType> storage_dtype(const std::string& module, const std::string& name) {
  if (module != "torch") return std::nullopt;
  if (name == "FloatStorage") return DType::F32;
  if (name == "HalfStorage") return DType::F16;
  if (name == "DoubleStorage") return DType::F64;
  if (name == "BFloat16Storage") return DType::BF16;
  return std::nullopt;
}

// The tensor description a torch.save pickle of one plain tensor encodes.
struct PtTensor {
  DType dtype = DType::F32;
  std::string key;
  int64_t storage_numel = 0, offset = 0;
  std::vector<int64_t> sizes, strides;
};

class Unpickler {
 public:
  Unpickler(const std::string& path, const std::string& data) : path_(path), d_(data) {}

  PtTensor run() {
    while (true) {
      if (p_ >= d_.size()) bad("pickle ends without STOP");
      const size_t at = p_;
      const unsigned char op = (unsigned char)d_[p_++];
      switch (op) {
        case 0x80: take(1); break;                      // PROTO
        case 0x95: take(8); break;                      // FRAME (protocol 4)
        case '(': push(mk(PVal::K::Mark)); break;       // MARK
        case 'N': push(mk(PVal::K::None)); break;       // NONE
        case 0x88: push(boolean(true)); break;          // NEWTRUE
        case 0x89: push(boolean(false)); break;         // NEWFALSE
        case 'K': push(integer(u8())); break;           // BININT1
        case 'M': push(integer(rd16(take(2)))); break;  // BININT2
        case 'J': push(integer((int32_t)rd32(take(4)))); break;  // BININT
        case 0x8a: {                                    // LONG1
          size_t n = u8();
          if (n > 8) bad("integer too large");
          const unsigned char* b = take(n);
          uint64_t v = 0;
          for (size_t k = 0; k < n; ++k) v |= (uint64_t)b[k] << (8 * k);
          if (n > 0 && n < 8 && (b[n - 1] & 0x80)) v |= ~0ull << (8 * n);  // sign-extend
          push(integer((int64_t)v));
          break;
        }
        case 'X': {  // BINUNICODE
          uint32_t n = rd32(take(4));
          push(str(take_str(n)));
          break;
        }
        case 0x8c: push(str(take_str(u8()))); break;  // SHORT_BINUNICODE (protocol 4)
        case 'c': {                                   // GLOBAL
          std::string module = line(), name = line();
          check_global(module, name);
          PVal g = mk(PVal::K::Global);
          g.s = module;
          g.s2 = name;
          push(g);
          break;
        }
        case ')': push(mk(PVal::K::Tuple)); break;  // EMPTY_TUPLE
        case 0x85: case 0x86: case 0x87: {          // TUPLE1..3
          size_t n = op - 0x84;
          if (stack_.size() < n) bad("stack underflow");
          PVal t = mk(PVal::K::Tuple);
          t.items.assign(stack_.end() - n, stack_.end());
          stack_.resize(stack_.size() - n);
          for (auto& v : t.items) if (v.k == PVal::K::Mark) bad("misplaced MARK");
          weigh(t);
          push(t);
          break;
        }
        case 't': {  // TUPLE
          PVal t = mk(PVal::K::Tuple);
          t.items = pop_to_mark();
          weigh(t);
          push(t);
          break;
        }
        case '}': push(mk(PVal::K::EmptyDict)); break;  // EMPTY_DICT
        case 'q': memo_put(u8()); break;                // BINPUT
        case 'r': memo_put(rd32(take(4))); break;       // LONG_BINPUT
        case 0x94: memo_put((uint32_t)memo_.size()); break;  // MEMOIZE (protocol 4)
        case 'h': memo_get(u8()); break;                // BINGET
        case 'j': memo_get(rd32(take(4))); break;       // LONG_BINGET
        case 'Q': persistent_load(); break;             // BINPERSID
        case 'R': reduce(); break;                      // REDUCE
        case 'b': {                                     // BUILD: only a no-op state is accepted
          PVal state = pop();
          if (stack_.empty()) bad("stack underflow");
          if (state.k != PVal::K::None && state.k != PVal::K::EmptyDict)
            refuse("object with pickled state (" + std::string(kind_name(stack_.back())) + " + BUILD)");
          break;
        }
        case '.': {  // STOP
          PVal r = pop();
          if (r.k != PVal::K::Tensor) refuse(kind_name(r));
          PtTensor t;
          t.dtype = r.dtype;
          t.key = r.key;
          t.storage_numel = r.storage_numel;
          t.offset = r.offset;
          t.sizes = r.sizes;
          t.strides = r.strides;
          return t;
        }
        // Opcodes that build containers or objects: name what was found and refuse.
        case ']': case 'l': case 'a': case 'e': refuse("list");
        case 's': case 'u': case 'd': refuse("dict");
        case 0x8f: case 0x90: case 0x91: refuse("set");
        case 0x81: case 0x92: case 'i': case 'o': refuse("object (NEWOBJ/INST/OBJ)");
        case 0x93: refuse("object (STACK_GLOBAL)");
        case 'B': case 'C': case 0x8e: case 0x96: case 0x97: case 0x98: refuse("bytes");
        case 'G': refuse("float");
        default: {
          char buf[96];
          std::snprintf(buf, sizeof buf, "unsupported pickle opcode 0x%02x at byte %zu", op, at);
          fail(path_, std::string(buf) + "; only a plain tensor saved with torch.save is accepted");
        }
      }
    }
  }

 private:
  [[noreturn]] void bad(const std::string& what) { fail(path_, "corrupt .pt pickle: " + what); }
  [[noreturn]] void refuse(const std::string& type) {
    fail(path_, ".pt contains an object of type " + type + "; only a plain tensor is accepted");
  }

  static PVal mk(PVal::K k) {
    PVal v;
    v.k = k;
    return v;
  }
  static PVal boolean(bool b) {
    PVal v = mk(PVal::K::Bool);
    v.i = b;
    return v;
  }
  static PVal integer(int64_t i) {
    PVal v = mk(PVal::K::Int);
    v.i = i;
    return v;
  }
  static PVal str(std::string s) {
    PVal v = mk(PVal::K::Str);
    v.s = std::move(s);
    return v;
  }

  const unsigned char* take(size_t n) {
    if (n > d_.size() - p_) bad("truncated pickle");
    const unsigned char* r = reinterpret_cast<const unsigned char*>(d_.data() + p_);
    p_ += n;
    return r;
  }
  unsigned char u8() { return *take(1); }
  std::string take_str(size_t n) { return std::string(reinterpret_cast<const char*>(take(n)), n); }
  std::string line() {
    size_t e = d_.find('\n', p_);
    if (e == std::string::npos || e - p_ > 256) bad("bad GLOBAL operand");
    std::string s = d_.substr(p_, e - p_);
    p_ = e + 1;
    return s;
  }

  // A torch.save pickle of one tensor nests a few dozen values; copies through the memo
  // (BINGET of a tuple of memoized tuples, ...) could otherwise grow exponentially.
  void weigh(PVal& t) {
    t.weight = 1;
    for (const auto& v : t.items) t.weight += v.weight;
    if (t.weight > 4096) bad("tuples nested too deeply / too large");
  }

  void push(PVal v) {
    if (stack_.size() > 4096) bad("stack too deep");
    stack_.push_back(std::move(v));
  }
  PVal pop() {
    if (stack_.empty()) bad("stack underflow");
    PVal v = std::move(stack_.back());
    stack_.pop_back();
    if (v.k == PVal::K::Mark) bad("misplaced MARK");
    return v;
  }
  std::vector<PVal> pop_to_mark() {
    size_t m = stack_.size();
    while (m > 0 && stack_[m - 1].k != PVal::K::Mark) --m;
    if (m == 0) bad("TUPLE without MARK");
    std::vector<PVal> items(stack_.begin() + m, stack_.end());
    stack_.resize(m - 1);
    return items;
  }
  void memo_put(uint32_t idx) {
    if (stack_.empty()) bad("memo put on an empty stack");
    if (memo_.size() > 100000) bad("memo too large");
    memo_[idx] = stack_.back();
  }
  void memo_get(uint32_t idx) {
    auto it = memo_.find(idx);
    if (it == memo_.end()) bad("memo key " + std::to_string(idx) + " missing");
    push(it->second);
  }

  void check_global(const std::string& module, const std::string& name) {
    if (module == "torch._utils" && name == "_rebuild_tensor_v2") return;
    if (module == "collections" && name == "OrderedDict") return;
    if (storage_dtype(module, name)) return;
    if (module == "torch" && name.size() > 7 && name.compare(name.size() - 7, 7, "Storage") == 0)
      fail(path_, ".pt holds a tensor of storage type torch." + name +
                      "; features must be floating point (float32, float16, float64 or bfloat16)");
    if (module == "torch._utils" && name == "_rebuild_parameter") refuse("torch.nn.Parameter");
    if (module == "torch._tensor" && name == "_rebuild_from_type_v2") refuse("tensor subclass (torch._tensor._rebuild_from_type_v2)");
    refuse(module + "." + name);
  }

  void persistent_load() {
    PVal pid = pop();
    if (pid.k != PVal::K::Tuple || pid.items.size() != 5 || pid.items[0].k != PVal::K::Str ||
        pid.items[0].s != "storage")
      refuse("persistent object other than a storage");
    const PVal& type = pid.items[1];
    const PVal& key = pid.items[2];
    const PVal& numel = pid.items[4];
    if (type.k != PVal::K::Global || !storage_dtype(type.s, type.s2) || key.k != PVal::K::Str ||
        numel.k != PVal::K::Int || numel.i < 0)
      bad("malformed storage reference");
    PVal st = mk(PVal::K::Storage);
    st.dtype = *storage_dtype(type.s, type.s2);
    st.key = key.s;
    st.storage_numel = numel.i;
    push(st);
  }

  static std::vector<int64_t> int_tuple(const PVal& v, bool& ok) {
    std::vector<int64_t> r;
    if (v.k != PVal::K::Tuple) { ok = false; return r; }
    for (auto& e : v.items) {
      if (e.k != PVal::K::Int) { ok = false; return r; }
      r.push_back(e.i);
    }
    return r;
  }

  void reduce() {
    PVal args = pop();
    PVal fn = pop();
    if (fn.k != PVal::K::Global || args.k != PVal::K::Tuple) bad("REDUCE on a non-callable");
    if (fn.s == "collections" && fn.s2 == "OrderedDict") {
      if (!args.items.empty()) refuse("collections.OrderedDict with items");
      push(mk(PVal::K::EmptyDict));
      return;
    }
    if (fn.s == "torch._utils" && fn.s2 == "_rebuild_tensor_v2") {
      // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
      const auto& a = args.items;
      if (a.size() < 6 || a.size() > 7) bad("_rebuild_tensor_v2 with " + std::to_string(a.size()) + " arguments");
      bool ok = true;
      PVal t = mk(PVal::K::Tensor);
      if (a[0].k != PVal::K::Storage || a[1].k != PVal::K::Int) ok = false;
      t.sizes = int_tuple(a[2], ok);
      t.strides = int_tuple(a[3], ok);
      if (!ok || t.sizes.size() != t.strides.size()) bad("malformed _rebuild_tensor_v2 arguments");
      if (a[5].k != PVal::K::EmptyDict && a[5].k != PVal::K::None) refuse("tensor with backward hooks");
      if (a.size() == 7 && a[6].k != PVal::K::EmptyDict && a[6].k != PVal::K::None) refuse("tensor with metadata");
      t.dtype = a[0].dtype;
      t.key = a[0].key;
      t.storage_numel = a[0].storage_numel;
      t.offset = a[1].i;
      push(t);
      return;
    }
    refuse(fn.s + "." + fn.s2 + " (called)");
  }

  std::string path_;
  const std::string& d_;
  size_t p_ = 0;
  std::vector<PVal> stack_;
  std::unordered_map<uint32_t, PVal> memo_;
};

// The archive prefix ("<archive>/") and the parsed tensor of a .pt file.
struct PtFile {
  std::unique_ptr<Zip> zip;
  std::string prefix;
  PtTensor t;
};

PtFile open_pt(const std::string& path) {
  PtFile pf;
  pf.zip = std::make_unique<Zip>(path);
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
  pf.t = Unpickler(path, data).run();
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
