// safetensors reader (mmap + strict header validation) and atomic writer; format in
// safetensors.h. The validation rules follow the reference Rust implementation
// (safetensors/src/tensor.rs): header length within the file, a JSON object, known dtypes,
// data_offsets inside the data section and consistent with shape x element size, no
// overlapping ranges, __metadata__ a string -> string map.
#include "data/formats/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

#include "data/checksum.h"

namespace lm::data {

static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

namespace {

using ordered_json = nlohmann::ordered_json;

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error("safetensors file '" + path + "': " + what);
}

std::string errno_text() { return std::strerror(errno); }

// A read-only-file, copy-on-write mapping of a whole file.
struct Mapping {
  void* addr = MAP_FAILED;
  size_t size = 0;
  ~Mapping() {
    if (addr != MAP_FAILED && size > 0) munmap(addr, size);
  }
};

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

bool parse_dtype(const std::string& s, DType& out) {
  if (s == "F32") out = DType::F32;
  else if (s == "F64") out = DType::F64;
  else if (s == "F16") out = DType::F16;
  else if (s == "BF16") out = DType::BF16;
  else if (s == "I64") out = DType::I64;
  else return false;
  return true;
}

bool is_known_unsupported_dtype(const std::string& s) {
  static const std::set<std::string> other{"BOOL", "U8", "I8", "I16", "U16", "I32", "U32", "U64",
                                           "F8_E5M2", "F8_E4M3", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4", "C64"};
  return other.count(s) != 0;
}

uint64_t read_u64(const ordered_json& v, const std::string& path, const std::string& what) {
  if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0))
    fail(path, what + " must be a non-negative integer, got " + v.dump());
  return v.get<uint64_t>();
}

}  // namespace

const char* safetensors_dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F32: return "F32";
    case DType::F64: return "F64";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::I64: return "I64";
  }
  throw std::invalid_argument("safetensors: no safetensors name for this dtype");
}

const Tensor& SafetensorsFile::at(const std::string& name) const {
  auto it = tensors.find(name);
  if (it == tensors.end()) fail(path, "no tensor named '" + name + "'");
  return it->second;
}

// ---- reading ------------------------------------------------------------------------

SafetensorsFile read_safetensors(const std::string& path) {
  Fd f;
  f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (f.fd < 0) fail(path, "cannot open: " + errno_text());
  struct stat st {};
  if (fstat(f.fd, &st) != 0) fail(path, "cannot stat: " + errno_text());
  if (!S_ISREG(st.st_mode)) fail(path, "not a regular file");
  const uint64_t file_size = (uint64_t)st.st_size;
  if (file_size < 8) fail(path, "truncated: " + std::to_string(file_size) + " bytes, less than the 8-byte header length");

  auto map = std::make_shared<Mapping>();
  map->size = (size_t)file_size;
  map->addr = mmap(nullptr, map->size, PROT_READ | PROT_WRITE, MAP_PRIVATE, f.fd, 0);
  if (map->addr == MAP_FAILED) fail(path, "mmap failed: " + errno_text());
  const unsigned char* base = static_cast<const unsigned char*>(map->addr);

  uint64_t header_len = 0;
  std::memcpy(&header_len, base, 8);
  if (header_len > file_size - 8)
    fail(path, "header length " + std::to_string(header_len) + " exceeds the file (" + std::to_string(file_size) +
                   " bytes)");
  if (header_len < 2) fail(path, "header length " + std::to_string(header_len) + " is too small for a JSON object");
  const char* hbeg = reinterpret_cast<const char*>(base + 8);

  // Parse, rejecting duplicate keys at the top level.
  std::string dup;
  std::set<std::string> top_keys;
  ordered_json::parser_callback_t cb = [&](int depth, ordered_json::parse_event_t ev, ordered_json& parsed) {
    if (ev == ordered_json::parse_event_t::key && depth == 1 && dup.empty() && !top_keys.insert(parsed.get<std::string>()).second)
      dup = parsed.get<std::string>();
    return true;
  };
  ordered_json header;  // keeps the file's key order
  try {
    header = ordered_json::parse(hbeg, hbeg + header_len, cb);
  } catch (const ordered_json::exception& e) {
    fail(path, std::string("header is not valid JSON: ") + e.what());
  }
  if (!dup.empty()) fail(path, "header names '" + dup + "' twice");
  if (!header.is_object()) fail(path, "header is not a JSON object");

  const uint64_t data_start = 8 + header_len;
  const uint64_t data_size = file_size - data_start;

  SafetensorsFile out;
  out.path = path;
  struct Range {
    uint64_t begin, end;
    std::string name;
  };
  std::vector<Range> ranges;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const ordered_json& e = it.value();
    if (name == "__metadata__") {
      if (!e.is_object()) fail(path, "__metadata__ is not a JSON object");
      for (auto m = e.begin(); m != e.end(); ++m) {
        if (!m.value().is_string()) fail(path, "__metadata__ entry '" + m.key() + "' is not a string");
        out.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string tname = "tensor '" + name + "'";
    if (!e.is_object()) fail(path, tname + ": entry is not a JSON object");
    for (auto k = e.begin(); k != e.end(); ++k)
      if (k.key() != "dtype" && k.key() != "shape" && k.key() != "data_offsets")
        fail(path, tname + ": unexpected field '" + k.key() + "'");
    if (!e.contains("dtype") || !e["dtype"].is_string()) fail(path, tname + ": missing or non-string dtype");
    if (!e.contains("shape") || !e["shape"].is_array()) fail(path, tname + ": missing or non-array shape");
    if (!e.contains("data_offsets") || !e["data_offsets"].is_array() || e["data_offsets"].size() != 2)
      fail(path, tname + ": data_offsets must be an array [begin, end]");
    const std::string ds = e["dtype"].get<std::string>();
    DType dtype;
    if (!parse_dtype(ds, dtype)) {
      if (is_known_unsupported_dtype(ds))
        fail(path, tname + " has dtype " + ds + ", which libramil does not support (supported: F32, F64, F16, BF16, I64)");
      fail(path, tname + " has unknown dtype '" + ds + "'");
    }
    Shape shape;
    unsigned __int128 numel = 1;
    for (const ordered_json& d : e["shape"]) {
      uint64_t v = read_u64(d, path, tname + ": shape entry");
      if (v > (uint64_t)std::numeric_limits<int64_t>::max()) fail(path, tname + ": shape entry too large");
      shape.push_back((int64_t)v);
      numel *= v;
      if (numel > (unsigned __int128)std::numeric_limits<int64_t>::max()) fail(path, tname + ": shape " + e["shape"].dump() + " has too many elements");
    }
    const uint64_t begin = read_u64(e["data_offsets"][0], path, tname + ": data_offsets[0]");
    const uint64_t end = read_u64(e["data_offsets"][1], path, tname + ": data_offsets[1]");
    if (begin > end) fail(path, tname + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "] are reversed");
    if (end > data_size)
      fail(path, tname + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                     "] lie outside the data section (" + std::to_string(data_size) + " bytes)");
    const unsigned __int128 expect = numel * dtype_size(dtype);
    if ((unsigned __int128)(end - begin) != expect)
      fail(path, tname + ": size mismatch: shape " + shape_str(shape) + " of " + ds + " needs " +
                     std::to_string((uint64_t)expect) + " bytes, data_offsets span " + std::to_string(end - begin));
    ranges.push_back({begin, end, name});

    unsigned char* ptr = static_cast<unsigned char*>(map->addr) + data_start + begin;
    const size_t nbytes = (size_t)(end - begin);
    Tensor t;
    if (reinterpret_cast<uintptr_t>(ptr) % dtype_size(dtype) == 0) {
      auto storage = std::make_shared<Storage>(ptr, nbytes, Device::cpu(), std::shared_ptr<void>(map, map.get()));
      t = Tensor::from_storage(storage, shape, dtype);
    } else {  // misaligned for the element type: copy
      t = Tensor::empty(shape, dtype);
      if (nbytes) std::memcpy(t.raw_data(), ptr, nbytes);
    }
    out.tensors.emplace(name, t);
    out.order.push_back(name);
  }
  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  for (size_t i = 1; i < ranges.size(); ++i) {
    const Range &a = ranges[i - 1], &b = ranges[i];
    if (b.begin < a.end)
      fail(path, "tensors '" + a.name + "' [" + std::to_string(a.begin) + ", " + std::to_string(a.end) + ") and '" +
                     b.name + "' [" + std::to_string(b.begin) + ", " + std::to_string(b.end) + ") overlap");
  }
  if (auto it = out.metadata.find(kChecksumKey); it != out.metadata.end()) {
    static const size_t text_size = fnv1a64_text(0).size();
    if (it->second.rfind("fnv1a64:", 0) != 0 || it->second.size() != text_size)
      fail(path, std::string("metadata '") + kChecksumKey + "' is '" + it->second.substr(0, 40) +
                     "', expected fnv1a64:<16 hex digits>");
    uint64_t h = kFnv1a64Offset;
    for (const auto& [name, t] : out.tensors) h = fnv1a64(t.raw_data(), t.nbytes(), h);  // std::map: name order
    if (fnv1a64_text(h) != it->second)
      fail(path, "the tensor data does not match its checksum (" + it->second + " recorded, " + fnv1a64_text(h) +
                     " now): the file was changed or damaged after it was written");
  }
  return out;
}

// ---- writing ------------------------------------------------------------------------

namespace {

void write_all(int fd, const void* data, size_t n, const std::string& path, const std::string& tmp) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error("write_safetensors: cannot write '" + path + "' (temporary '" + tmp + "'): " + errno_text());
    }
    p += w;
    n -= (size_t)w;
  }
}

}  // namespace

// Both writers; `checksum` adds kChecksumKey to the metadata.
static void write_file(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       std::map<std::string, std::string> metadata, bool checksum) {
  struct Entry {
    std::string name;
    Tensor t;
    uint64_t begin = 0, end = 0;
  };
  std::vector<Entry> entries;
  std::set<std::string> seen;
  for (auto& [name, t] : tensors) {
    if (name.empty()) throw std::invalid_argument("write_safetensors '" + path + "': empty tensor name");
    if (name == "__metadata__") throw std::invalid_argument("write_safetensors '" + path + "': '__metadata__' is reserved");
    if (!seen.insert(name).second) throw std::invalid_argument("write_safetensors '" + path + "': duplicate tensor name '" + name + "'");
    if (!t.defined()) throw std::invalid_argument("write_safetensors '" + path + "': tensor '" + name + "' is undefined");
    Tensor c = t.detach();
    if (!c.device().is_cpu()) c = c.to(Device::cpu());
    entries.push_back({name, c.contiguous()});
  }
  // As the Python library: larger elements first (keeps every tensor aligned), then by name.
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    size_t sa = dtype_size(a.t.dtype()), sb = dtype_size(b.t.dtype());
    return sa != sb ? sa > sb : a.name < b.name;
  });
  if (checksum) {  // over the data in name order, as read_safetensors checks it
    std::vector<const Entry*> by_name;
    for (const Entry& e : entries) by_name.push_back(&e);
    std::sort(by_name.begin(), by_name.end(), [](const Entry* a, const Entry* b) { return a->name < b->name; });
    uint64_t h = kFnv1a64Offset;
    for (const Entry* e : by_name) h = fnv1a64(e->t.raw_data(), e->t.nbytes(), h);
    metadata[kChecksumKey] = fnv1a64_text(h);
  }
  ordered_json header = ordered_json::object();
  if (!metadata.empty()) {
    ordered_json m = ordered_json::object();
    for (auto& [k, v] : metadata) m[k] = v;
    header["__metadata__"] = m;
  }
  uint64_t offset = 0;
  for (auto& e : entries) {
    e.begin = offset;
    e.end = offset + e.t.nbytes();
    offset = e.end;
    ordered_json j = ordered_json::object();
    j["dtype"] = safetensors_dtype_name(e.t.dtype());
    j["shape"] = e.t.shape();
    j["data_offsets"] = {e.begin, e.end};
    header[e.name] = j;
  }
  std::string hs = header.dump();
  hs.append((8 - hs.size() % 8) % 8, ' ');
  const uint64_t hlen = hs.size();

  std::string tmp = path + ".tmp-XXXXXX";
  std::vector<char> tmpl(tmp.begin(), tmp.end());
  tmpl.push_back('\0');
  int fd = ::mkstemp(tmpl.data());
  if (fd < 0) throw std::runtime_error("write_safetensors: cannot create '" + path + "' (temporary '" + tmp + "'): " + errno_text());
  tmp = tmpl.data();
  try {
    ::fchmod(fd, 0644);
    write_all(fd, &hlen, 8, path, tmp);
    write_all(fd, hs.data(), hs.size(), path, tmp);
    for (auto& e : entries)
      if (e.t.nbytes()) write_all(fd, e.t.raw_data(), e.t.nbytes(), path, tmp);
    if (::fsync(fd) != 0) throw std::runtime_error("write_safetensors: cannot sync '" + path + "': " + errno_text());
    int rc = ::close(fd);
    fd = -1;
    if (rc != 0) throw std::runtime_error("write_safetensors: cannot close '" + path + "': " + errno_text());
    if (::rename(tmp.c_str(), path.c_str()) != 0)
      throw std::runtime_error("write_safetensors: cannot rename '" + tmp + "' to '" + path + "': " + errno_text());
  } catch (...) {
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  // Make the rename durable (best effort).
  std::string dir = path.find('/') == std::string::npos ? "." : path.substr(0, path.rfind('/'));
  if (dir.empty()) dir = "/";
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  write_file(path, tensors, metadata, false);
}

void write_safetensors_checked(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                               const std::map<std::string, std::string>& metadata) {
  write_file(path, tensors, metadata, true);
}

}  // namespace lm::data
