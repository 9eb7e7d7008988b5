// libFuzzer target: the HDF5 feature-bag reader on GENERATED files. The fuzz input does not
// become the file's bytes (that would fuzz libhdf5 itself, which is not ours to fix); it
// drives a small generator that writes a structurally valid HDF5 file with the C API:
// dataset name (`features` or not), element type (float16/32/64, int32, uint8, string),
// rank 0..4 and dimensions (including 0 and a leading 1), values (taken from the input, so
// NaN/Inf/huge values occur), optional `coords` with its own type and shape, and chunked or
// contiguous layout. read_feature_bag (both keep dtypes) and probe_feature_bag must either
// succeed with a consistent result or throw std::exception.
#include <hdf5.h>

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "data/feature_bag.h"
#include "fuzz/fuzz_util.h"

namespace {

struct Reader {
  const uint8_t* d;
  size_t n, p = 0;
  uint8_t u8() { return p < n ? d[p++] : 0; }
  void bytes(void* dst, size_t k) {
    auto* o = static_cast<uint8_t*>(dst);
    for (size_t i = 0; i < k; ++i) o[i] = u8();
  }
};

hid_t half_type() {
  hid_t t = H5Tcopy(H5T_IEEE_F32LE);
  H5Tset_fields(t, 15, 10, 5, 0, 10);
  H5Tset_size(t, 2);
  H5Tset_ebias(t, 15);
  return t;
}

// Writes one dataset of `type` (element size esz) with dims; values from the input.
void write_dataset(hid_t file, const char* name, hid_t type, size_t esz, const std::vector<hsize_t>& dims, bool chunked,
                   Reader& r) {
  hid_t space = dims.empty() ? H5Screate(H5S_SCALAR) : H5Screate_simple((int)dims.size(), dims.data(), nullptr);
  size_t count = 1;
  for (hsize_t x : dims) count *= x;
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  if (chunked && !dims.empty() && count > 0) {
    std::vector<hsize_t> ch(dims.size());
    for (size_t i = 0; i < dims.size(); ++i) ch[i] = dims[i] > 0 ? (dims[i] + 1) / 2 : 1;
    H5Pset_chunk(dcpl, (int)ch.size(), ch.data());
  }
  hid_t ds = H5Dcreate2(file, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  if (ds >= 0) {
    std::vector<uint8_t> buf(count * esz);
    // Values: raw bytes from the input, or a pattern of special values.
    const uint8_t mode = r.u8() % 4;
    if (mode == 0 || esz == 1) {
      r.bytes(buf.data(), buf.size());
    } else if (H5Tget_class(type) == H5T_FLOAT && esz == 4) {
      for (size_t i = 0; i < count; ++i) {
        float v = mode == 1 ? (float)(int8_t)r.u8() * 0.25f : mode == 2 ? 1e38f * (float)(int8_t)r.u8() : (float)i;
        std::memcpy(&buf[i * 4], &v, 4);
      }
    } else if (H5Tget_class(type) == H5T_FLOAT && esz == 8) {
      for (size_t i = 0; i < count; ++i) {
        double v = mode == 1 ? (double)(int8_t)r.u8() : mode == 2 ? 1e300 * (double)(int8_t)r.u8() : 1e39 * (double)i;
        std::memcpy(&buf[i * 8], &v, 8);
      }
    } else {
      r.bytes(buf.data(), buf.size());
    }
    if (count > 0) H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data());
    H5Dclose(ds);
  }
  H5Pclose(dcpl);
  H5Sclose(space);
}

// Picks an element type; returns its size (or 0 for a variable-length string).
hid_t pick_type(uint8_t k, size_t& esz, hid_t& owned) {
  owned = -1;
  switch (k % 7) {
    case 0: esz = 4; return H5T_IEEE_F32LE;
    case 1: esz = 2; return owned = half_type();
    case 2: esz = 8; return H5T_IEEE_F64LE;
    case 3: esz = 4; return H5T_STD_I32LE;
    case 4: esz = 1; return H5T_STD_U8LE;
    case 5: esz = 8; return H5T_STD_I64LE;
    default: {
      owned = H5Tcopy(H5T_C_S1);
      H5Tset_size(owned, 4);
      esz = 4;
      return owned;
    }
  }
}

std::vector<hsize_t> pick_dims(Reader& r) {
  int rank = r.u8() % 5;
  std::vector<hsize_t> dims(rank);
  for (int i = 0; i < rank; ++i) dims[i] = r.u8() % 9;
  if (rank == 3 && (r.u8() & 1)) dims[0] = 1;
  return dims;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = lm::fuzz::temp_path("hdf5", ".h5");
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  Reader r{data, size};
  const uint8_t flags = r.u8();
  hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (file < 0) return 0;
  {
    size_t esz = 4;
    hid_t owned;
    hid_t t = pick_type(r.u8(), esz, owned);
    std::vector<hsize_t> dims = pick_dims(r);
    const char* name = (flags & 3) == 3 ? "feats" : "features";
    if (flags & 4) {  // `features` as a group, not a dataset
      hid_t g = H5Gcreate2(file, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      if (g >= 0) H5Gclose(g);
    } else {
      write_dataset(file, name, t, esz, dims, flags & 8, r);
    }
    if (owned >= 0) H5Tclose(owned);
  }
  if (flags & 16) {
    size_t esz = 8;
    hid_t owned;
    hid_t t = pick_type(r.u8(), esz, owned);
    std::vector<hsize_t> dims = pick_dims(r);
    write_dataset(file, "coords", t, esz, dims, flags & 32, r);
    if (owned >= 0) H5Tclose(owned);
  }
  H5Fclose(file);

  try {
    lm::data::BagInfo info = lm::data::probe_feature_bag(path);
    if (info.n <= 0 || info.d <= 0) __builtin_trap();
  } catch (const std::exception&) {
  }
  for (lm::DType keep : {lm::DType::F32, lm::DType::F16}) {
    try {
      lm::data::FeatureBag b = lm::data::read_feature_bag(path, keep);
      if (b.features.dim() != 2 || b.features.dtype() != keep) __builtin_trap();
      if (b.coords.defined() && (b.coords.dim() != 2 || b.coords.shape()[0] != b.features.shape()[0])) __builtin_trap();
      (void)lm::fuzz::touch(b.features);
      (void)lm::fuzz::touch(b.coords);
    } catch (const std::exception&) {
    }
  }
  return 0;
}
