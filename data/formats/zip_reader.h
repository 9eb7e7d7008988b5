// A reader for the zip archives torch.save writes: the central directory (zip64 included) and
// stored (uncompressed) entries, read with bounds checked against the file's size. Errors are
// one line, "file <path>: <problem>", as every feature reader's.
#pragma once
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <string>

namespace lm::data {

struct ZipEntry {
  uint64_t local_offset = 0, comp_size = 0, size = 0;
  uint16_t method = 0;
};

// Little-endian fields of zip headers (and of the pickle stream).
inline uint16_t rd16(const unsigned char* p) { return (uint16_t)(p[0] | (p[1] << 8)); }
inline uint32_t rd32(const unsigned char* p) { return (uint32_t)rd16(p) | ((uint32_t)rd16(p + 2) << 16); }
inline uint64_t rd64(const unsigned char* p) { return (uint64_t)rd32(p) | ((uint64_t)rd32(p + 4) << 32); }

class ZipReader {
 public:
  // Opens `path` and reads its central directory; refuses the legacy (pre-zip) torch.save format.
  explicit ZipReader(const std::string& path);

  const std::map<std::string, ZipEntry>& entries() const { return entries_; }
  // Byte offset of an entry's data (after its local header); refuses compressed entries and
  // entries that run past the end of the file.
  int64_t data_offset(const std::string& name, const ZipEntry& e);
  // The whole entry, refused when larger than `limit` bytes.
  std::string read_entry(const std::string& name, const ZipEntry& e, uint64_t limit);
  // The entry's first n bytes into dst.
  void read_into(const std::string& name, const ZipEntry& e, void* dst, uint64_t n);

 private:
  void parse_directory();
  void read_at(int64_t off, void* dst, int64_t n, const char* what);

  // Closes the file also when the constructor throws (a corrupt archive): a member, not a
  // destructor of ours, which would not run then (fuzz_pt ran out of descriptors that way).
  struct Closer {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };
  std::string path_;
  std::unique_ptr<std::FILE, Closer> f_;
  int64_t size_ = 0;
  std::map<std::string, ZipEntry> entries_;
};

}  // namespace lm::data
