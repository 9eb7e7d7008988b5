// ZipReader (see zip_reader.h).
#include "data/formats/zip_reader.h"

#include <algorithm>
#include <filesystem>
#include <stdexcept>
#include <vector>

namespace lm::data {

namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error("file " + path + ": " + what);
}

}  // namespace

ZipReader::ZipReader(const std::string& path) : path_(path) {
  f_.reset(std::fopen(path.c_str(), "rb"));
  if (!f_) fail(path, "cannot open for reading");
  std::error_code ec;
  size_ = (int64_t)std::filesystem::file_size(path, ec);
  if (ec) fail(path, "cannot determine the file size");
  unsigned char head[4] = {0, 0, 0, 0};
  if (size_ >= 4) read_at(0, head, 4, "header");
  if (size_ >= 2 && head[0] == 0x80 && head[1] >= 2 && head[1] <= 5)
    fail(path, "legacy (pre-zip) torch.save format is not supported; re-save with torch >= 1.6 "
               "(the default _use_new_zipfile_serialization=True)");
  if (size_ < 22 || rd32(head) != 0x04034b50u) fail(path, "not a PyTorch .pt file (not a zip archive)");
  parse_directory();
}

void ZipReader::read_at(int64_t off, void* dst, int64_t n, const char* what) {
  if (off < 0 || n < 0 || off > size_ || n > size_ - off)  // (no signed overflow for huge offsets)
    fail(path_, std::string("truncated or corrupt .pt file (") + what + " lies beyond the end of the file)");
  if (n == 0) return;
  if (fseeko(f_.get(), (off_t)off, SEEK_SET) != 0 || std::fread(dst, 1, (size_t)n, f_.get()) != (size_t)n)
    fail(path_, std::string("I/O error reading ") + what);
}

int64_t ZipReader::data_offset(const std::string& name, const ZipEntry& e) {
  if (e.method != 0)
    fail(path_, "zip entry '" + name + "' is compressed (method " + std::to_string(e.method) +
                    "); only stored (uncompressed) entries are supported, as torch.save writes them");
  if (e.comp_size != e.size) fail(path_, "zip entry '" + name + "' has inconsistent sizes");
  unsigned char lh[30];
  read_at((int64_t)e.local_offset, lh, 30, "a zip local header");
  if (rd32(lh) != 0x04034b50u) fail(path_, "corrupt zip: bad local header for '" + name + "'");
  int64_t off = (int64_t)e.local_offset + 30 + rd16(lh + 26) + rd16(lh + 28);
  if (e.size > (uint64_t)size_ || off > size_ - (int64_t)e.size)
    fail(path_, "truncated .pt file: entry '" + name + "' runs past the end");
  return off;
}

std::string ZipReader::read_entry(const std::string& name, const ZipEntry& e, uint64_t limit) {
  if (e.size > limit) fail(path_, "zip entry '" + name + "' is unexpectedly large (" + std::to_string(e.size) + " bytes)");
  int64_t off = data_offset(name, e);
  std::string s(e.size, '\0');
  read_at(off, s.data(), (int64_t)e.size, "a zip entry");
  return s;
}

void ZipReader::read_into(const std::string& name, const ZipEntry& e, void* dst, uint64_t n) {
  if (n > e.size) fail(path_, "zip entry '" + name + "' is shorter than the storage it should hold");
  read_at(data_offset(name, e), dst, (int64_t)n, "tensor storage");
}

void ZipReader::parse_directory() {
  const int64_t tail_len = std::min<int64_t>(size_, 22 + 65535);
  std::vector<unsigned char> tail(tail_len);
  read_at(size_ - tail_len, tail.data(), tail_len, "the zip directory");
  int64_t eocd = -1;
  for (int64_t i = tail_len - 22; i >= 0; --i)
    if (rd32(&tail[i]) == 0x06054b50u) { eocd = i; break; }
  if (eocd < 0) fail(path_, "truncated or corrupt .pt file (no zip end-of-central-directory record)");
  const unsigned char* e = &tail[eocd];
  uint64_t count = rd16(e + 10), cd_size = rd32(e + 12), cd_off = rd32(e + 16);
  if (count == 0xFFFF || cd_size == 0xFFFFFFFFu || cd_off == 0xFFFFFFFFu) {  // zip64
    int64_t loc = size_ - tail_len + eocd - 20;
    unsigned char l[20];
    read_at(loc, l, 20, "the zip64 locator");
    if (rd32(l) != 0x07064b50u) fail(path_, "corrupt zip: missing zip64 locator");
    unsigned char z[56];
    read_at((int64_t)rd64(l + 8), z, 56, "the zip64 directory record");
    if (rd32(z) != 0x06064b50u) fail(path_, "corrupt zip: bad zip64 directory record");
    count = rd64(z + 32);
    cd_size = rd64(z + 40);
    cd_off = rd64(z + 48);
  }
  if (cd_size > (uint64_t)size_ || count > cd_size / 46 + 1) fail(path_, "corrupt zip: bad central directory");
  std::vector<unsigned char> cd(cd_size);
  read_at((int64_t)cd_off, cd.data(), (int64_t)cd_size, "the zip central directory");
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

}  // namespace lm::data
