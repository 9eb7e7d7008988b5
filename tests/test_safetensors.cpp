// data/formats/safetensors.h: round trips of every dtype, metadata, empty and scalar tensors;
// interchange with the Python safetensors library both ways (tools/safetensors_check.py);
// every kind of malformed file is refused with a message naming the file; atomic writes; the
// tensor-data checksum (written on request, verified on read).
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "data/checksum.h"
#include "data/formats/safetensors.h"
#include "tests/test_util.h"

namespace {

using namespace lm;
namespace fs = std::filesystem;

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "(no std::runtime_error)";
}

std::vector<uint8_t> bytes_of(const Tensor& t) {
  Tensor c = t.contiguous();
  const auto* p = static_cast<const uint8_t*>(c.raw_data());
  return std::vector<uint8_t>(p, p + c.nbytes());
}

Tensor seq(int64_t n, double scale, double shift, const Shape& shape) {
  std::vector<double> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = i * scale + shift;
  return Tensor::from_vector(v, shape);
}

// The tensors tools/safetensors_check.py expects (see its docstring).
std::vector<std::pair<std::string, Tensor>> expected_tensors(bool with_bf16) {
  std::vector<std::pair<std::string, Tensor>> t;
  t.emplace_back("f32", seq(12, 0.5, -2.75, {3, 4}).to(DType::F32));
  std::vector<double> thirds(6);
  for (int i = 0; i < 6; ++i) thirds[i] = i / 3.0;
  t.emplace_back("f64", Tensor::from_vector(thirds, {2, 3}));
  t.emplace_back("f16", seq(5, 0.25, -0.5, {5}).to(DType::F16));
  if (with_bf16) t.emplace_back("bf16", seq(4, 1.5, 0.5, {2, 2}).to(DType::BF16));
  t.emplace_back("i64", Tensor::from_vector(std::vector<int64_t>{-3, 1000000004, 2000000011, 3000000018}, {4}));
  t.emplace_back("empty", Tensor::zeros({0, 3}));
  t.emplace_back("scalar", Tensor::scalar(3.25, DType::F64));
  return t;
}

const std::map<std::string, std::string> kMeta{{"format", "pt"}, {"note", "h\xc3\xa9llo \xe2\x9c\x93"}};

void check_equal_files(const data::SafetensorsFile& f, const std::vector<std::pair<std::string, Tensor>>& want) {
  CHECK(f.tensors.size() == want.size());
  for (auto& [name, t] : want) {
    CAPTURE(name);
    REQUIRE(f.contains(name));
    const Tensor& g = f.at(name);
    CHECK(g.dtype() == t.dtype());
    CHECK(g.shape() == t.shape());
    CHECK(bytes_of(g) == bytes_of(t));
  }
}

// A raw file: 8-byte length (or `len_override`), header, data.
void write_raw(const fs::path& p, const std::string& header, size_t data_bytes, int64_t len_override = -1) {
  std::ofstream f(p, std::ios::binary);
  uint64_t n = len_override >= 0 ? (uint64_t)len_override : header.size();
  f.write(reinterpret_cast<const char*>(&n), 8);
  f.write(header.data(), (std::streamsize)header.size());
  std::string data(data_bytes, '\0');
  for (size_t i = 0; i < data_bytes; ++i) data[i] = (char)(i * 7);
  f.write(data.data(), (std::streamsize)data.size());
}

}  // namespace

TEST_CASE("safetensors round trip: all dtypes, metadata, empty and scalar tensors") {
  auto dir = test::scratch_dir("safetensors_roundtrip");
  auto want = expected_tensors(true);
  const std::string path = (dir / "all.safetensors").string();
  data::write_safetensors(path, want, kMeta);
  auto f = data::read_safetensors(path);
  check_equal_files(f, want);
  CHECK(f.metadata == kMeta);
  CHECK(f.at("scalar").item() == 3.25);
  CHECK(f.at("i64").to_int_vector()[3] == 3000000018LL);
  CHECK(f.at("f16").to_double_vector() == std::vector<double>{-0.5, -0.25, 0, 0.25, 0.5});
  CHECK(f.at("bf16").to_double_vector() == std::vector<double>{0.5, 2, 3.5, 5});
  CHECK(contains(error_of([&] { f.at("nope"); }), path));

  // The header is padded to a multiple of 8 and the data section is exactly the tensors.
  std::string raw = test::read_text(path);
  uint64_t hlen;
  std::memcpy(&hlen, raw.data(), 8);
  CHECK(hlen % 8 == 0);
  size_t data_bytes = 0;
  for (auto& [n, t] : want) data_bytes += t.nbytes();
  CHECK(raw.size() == 8 + hlen + data_bytes);
  // Every tensor is aligned to its element size within the file.
  for (auto& [n, t] : f.tensors)
    if (t.numel()) CHECK(reinterpret_cast<uintptr_t>(t.raw_data()) % dtype_size(t.dtype()) == 0);

  // The mapping outlives the file object; writes into a loaded tensor never reach the file.
  Tensor keep = f.at("f32");
  f = data::SafetensorsFile{};
  keep.fill(9.0);
  CHECK(keep.to_double_vector()[0] == 9.0);
  CHECK(data::read_safetensors(path).at("f32").to_double_vector()[0] == -2.75);

  // Non-contiguous input and the map overload; no metadata.
  Tensor m = seq(6, 1.0, 0.0, {2, 3}).to(DType::F32);
  Tensor mt = m.as_strided({3, 2}, {1, 3}, 0);  // transpose view
  const std::string p2 = (dir / "map.safetensors").string();
  data::write_safetensors(p2, std::map<std::string, Tensor>{{"t", mt}});
  auto f2 = data::read_safetensors(p2);
  CHECK(f2.metadata.empty());
  CHECK(f2.at("t").to_double_vector() == std::vector<double>{0, 3, 1, 4, 2, 5});
  // An empty file (no tensors at all).
  const std::string p3 = (dir / "none.safetensors").string();
  data::write_safetensors(p3, std::vector<std::pair<std::string, Tensor>>{});
  CHECK(data::read_safetensors(p3).tensors.empty());
  // No temporary files are left behind.
  for (auto& e : fs::directory_iterator(dir)) CHECK_FALSE(contains(e.path().filename().string(), ".tmp-"));
  // Bad names are refused.
  CHECK_THROWS(data::write_safetensors(p3, {{"a", m}, {"a", m}}));
  CHECK_THROWS(data::write_safetensors(p3, {{"__metadata__", m}}));
}

TEST_CASE("safetensors interchange with the Python library") {
  auto dir = test::scratch_dir("safetensors_python");
  data::write_safetensors((dir / "cpp_all.safetensors").string(), expected_tensors(true), kMeta);
  data::write_safetensors((dir / "cpp_nobf16.safetensors").string(), expected_tensors(false), kMeta);
  REQUIRE_NOTHROW(test::run_python_tool("safetensors_check.py", dir.string()));
  auto f = data::read_safetensors((dir / "py.safetensors").string());
  check_equal_files(f, expected_tensors(true));
  CHECK(f.metadata == kMeta);
}

TEST_CASE("malformed safetensors files are refused with the path in the message") {
  auto dir = test::scratch_dir("safetensors_bad");
  struct Bad {
    std::string name, header;
    size_t data;
    int64_t len_override;
    std::string expect;  // a part of the message besides the path
  };
  const std::string ok_entry = R"("a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]})";
  const std::vector<Bad> bad{
      {"header_len_beyond_file", "{" + ok_entry + "}", 16, 100000, "exceeds the file"},
      {"invalid_json", "{\"a\": {\"dtype\": ", 16, -1, "not valid JSON"},
      {"not_an_object", "[1, 2, 3]", 0, -1, "not a JSON object"},
      {"entry_not_object", R"({"a": 3})", 0, -1, "'a'"},
      {"offsets_out_of_range", R"({"a":{"dtype":"F32","shape":[100],"data_offsets":[0,400]}})", 16, -1, "outside the data section"},
      {"truncated_data", "{" + ok_entry + "}", 12, -1, "outside the data section"},
      {"overlap", R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})", 24, -1, "overlap"},
      {"unknown_dtype", R"({"a":{"dtype":"F33","shape":[4],"data_offsets":[0,16]}})", 16, -1, "unknown dtype 'F33'"},
      {"unsupported_dtype", R"({"w":{"dtype":"I32","shape":[4],"data_offsets":[0,16]}})", 16, -1, "tensor 'w' has dtype I32"},
      {"size_mismatch", R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})", 16, -1, "size mismatch"},
      {"negative_shape", R"({"a":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}})", 16, -1, "non-negative"},
      {"reversed_offsets", R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}})", 16, -1, "reversed"},
      {"bad_offsets", R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0]}})", 16, -1, "data_offsets"},
      {"missing_dtype", R"({"a":{"shape":[4],"data_offsets":[0,16]}})", 16, -1, "dtype"},
      {"metadata_not_strings", R"({"__metadata__":{"k":1}})", 0, -1, "__metadata__"},
      {"duplicate_name", "{" + ok_entry + "," + ok_entry + "}", 16, -1, "twice"},
      {"tiny_header", "{", 0, -1, "too small"},
  };
  for (auto& b : bad) {
    CAPTURE(b.name);
    const fs::path p = dir / (b.name + ".safetensors");
    write_raw(p, b.header, b.data, b.len_override);
    std::string e = error_of([&] { data::read_safetensors(p.string()); });
    CAPTURE(e);
    CHECK(contains(e, p.string()));
    CHECK(contains(e, b.expect));
  }
  // A file shorter than the 8-byte length.
  const fs::path shortf = dir / "short.safetensors";
  { std::ofstream(shortf, std::ios::binary) << "abcde"; }
  std::string e = error_of([&] { data::read_safetensors(shortf.string()); });
  CHECK(contains(e, shortf.string()));
  CHECK(contains(e, "truncated"));
  // A missing file.
  e = error_of([&] { data::read_safetensors((dir / "absent.safetensors").string()); });
  CHECK(contains(e, (dir / "absent.safetensors").string()));
  // A valid file cut short anywhere is refused (never a crash).
  const fs::path good = dir / "good.safetensors";
  data::write_safetensors(good.string(), expected_tensors(true), kMeta);
  std::string full = test::read_text(good);
  for (size_t cut : {size_t(0), size_t(7), size_t(8), size_t(20), full.size() / 2, full.size() - 1}) {
    CAPTURE(cut);
    const fs::path p = dir / "cut.safetensors";
    { std::ofstream(p, std::ios::binary).write(full.data(), (std::streamsize)cut); }
    CHECK(contains(error_of([&] { data::read_safetensors(p.string()); }), p.string()));
  }
  // Misaligned data (a float32 after a 2-byte float16) is still read correctly.
  const fs::path mis = dir / "misaligned.safetensors";
  {
    std::string h = R"({"h":{"dtype":"F16","shape":[1],"data_offsets":[0,2]},"f":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}})";
    h.append((8 - h.size() % 8) % 8, ' ');
    std::ofstream f(mis, std::ios::binary);
    uint64_t n = h.size();
    f.write(reinterpret_cast<const char*>(&n), 8);
    f.write(h.data(), (std::streamsize)h.size());
    uint16_t half = float_to_half(1.5f);
    float x = -2.25f;
    f.write(reinterpret_cast<const char*>(&half), 2);
    f.write(reinterpret_cast<const char*>(&x), 4);
  }
  auto mf = data::read_safetensors(mis.string());
  CHECK(mf.at("f").item() == -2.25);
  CHECK(mf.at("h").item() == 1.5);
  CHECK(mf.order == std::vector<std::string>{"h", "f"});
}

TEST_CASE("writing into a missing directory fails naming the path and leaves nothing behind") {
  auto dir = test::scratch_dir("safetensors_write_fail");
  const fs::path p = dir / "no_such_dir" / "model.safetensors";
  std::string e = error_of([&] { data::write_safetensors(p.string(), expected_tensors(true)); });
  CHECK(contains(e, p.string()));
  CHECK_FALSE(fs::exists(dir / "no_such_dir"));
  CHECK(fs::is_empty(dir));
  // Overwriting an existing file replaces it atomically.
  const fs::path q = dir / "model.safetensors";
  data::write_safetensors(q.string(), {{"a", Tensor::ones({2})}});
  data::write_safetensors(q.string(), {{"b", Tensor::zeros({3})}});
  auto f = data::read_safetensors(q.string());
  CHECK(f.contains("b"));
  CHECK_FALSE(f.contains("a"));
  for (auto& entry : fs::directory_iterator(dir)) CHECK(entry.path().filename() == "model.safetensors");
}

TEST_CASE("a checksum of the tensor data, written on request, is verified on every read") {
  // FNV-1a 64 reference values (the algorithm's published test vectors).
  CHECK(data::fnv1a64("", 0) == 0xcbf29ce484222325ULL);
  CHECK(data::fnv1a64("a", 1) == 0xaf63dc4c8601ec8cULL);
  CHECK(data::fnv1a64("foobar", 6) == 0x85944171f73967e8ULL);
  CHECK(data::fnv1a64("bar", 3, data::fnv1a64("foo", 3)) == data::fnv1a64("foobar", 6));
  CHECK(data::fnv1a64_text(0xaf63dc4c8601ec8cULL) == "fnv1a64:af63dc4c8601ec8c");

  auto dir = test::scratch_dir("safetensors_checksum");
  const fs::path p = dir / "checked.safetensors";
  data::write_safetensors_checked(p.string(), expected_tensors(true), kMeta);
  data::SafetensorsFile f = data::read_safetensors(p.string());
  check_equal_files(f, expected_tensors(true));
  REQUIRE(f.metadata.count(data::kChecksumKey) == 1);
  CHECK(f.metadata.at("format") == "pt");
  // The documented rule, computed independently: FNV-1a 64 of the tensors' bytes in name order.
  const fs::path py = dir / "fnv.py";
  std::ofstream(py) << "import json, struct, sys\n"
                       "b = open(sys.argv[1], 'rb').read()\n"
                       "n = struct.unpack('<Q', b[:8])[0]\n"
                       "h = json.loads(b[8:8 + n]); meta = h.pop('__metadata__')\n"
                       "x = 0xcbf29ce484222325\n"
                       "for k in sorted(h):\n"
                       "    s, e = h[k]['data_offsets']\n"
                       "    for c in b[8 + n + s:8 + n + e]: x = ((x ^ c) * 0x100000001b3) % (1 << 64)\n"
                       "sys.exit(0 if meta['libramil.checksum'] == 'fnv1a64:%016x' % x else 1)\n";
  test::run_or_throw(test::python() + " " + py.string() + " " + p.string());

  // One byte of one tensor changed: the read fails naming the file.
  std::string bytes = test::read_text(p);
  uint64_t hlen = 0;
  std::memcpy(&hlen, bytes.data(), 8);
  const fs::path bad = dir / "flipped.safetensors";
  std::string flipped = bytes;
  flipped[8 + hlen + 3] ^= 0x10;
  std::ofstream(bad, std::ios::binary) << flipped;
  std::string e = error_of([&] { data::read_safetensors(bad.string()); });
  CHECK(contains(e, bad.string()));
  CHECK(contains(e, "does not match its checksum"));
  // A malformed checksum value is refused too; without the key nothing is checked.
  const fs::path odd = dir / "odd.safetensors";
  auto meta = kMeta;
  meta[data::kChecksumKey] = "crc32:1234";
  data::write_safetensors(odd.string(), expected_tensors(true), meta);
  CHECK(contains(error_of([&] { data::read_safetensors(odd.string()); }), "expected fnv1a64:<16 hex digits>"));
  const fs::path plain = dir / "plain.safetensors";
  data::write_safetensors(plain.string(), expected_tensors(true), kMeta);
  CHECK(data::read_safetensors(plain.string()).metadata.count(data::kChecksumKey) == 0);
  // Rewriting a checked file with its metadata but other tensors: the key is recomputed.
  data::write_safetensors_checked(p.string(), {{"a", Tensor::ones({2})}}, f.metadata);
  CHECK(data::read_safetensors(p.string()).at("a").shape() == Shape{2});
}
