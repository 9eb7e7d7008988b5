// TensorBoard event files: TFRecord framing and a hand-written protobuf encoder for the few
// fields an Event with scalars needs (tensorboard.h lists them).
#include "data/formats/tensorboard.h"

#include <array>
#include <cstring>

namespace lm::data {

namespace {

std::array<uint32_t, 256> make_crc_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    t[i] = c;
  }
  return t;
}

// TFRecord stores CRCs "masked" (rotated right by 15 and offset) so that a CRC of data that
// itself holds CRCs does not degenerate.
uint32_t masked_crc(const std::string& bytes) {
  uint32_t c = crc32c(bytes.data(), bytes.size());
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

void put_le(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back((char)((v >> (8 * i)) & 0xff));
}

// Protocol-buffer pieces: a key is (field << 3) | wire type; wire types 0 varint,
// 1 fixed 64-bit, 2 length-delimited, 5 fixed 32-bit.
void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back((char)((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back((char)v);
}
void put_key(std::string& out, int field, int wire) { put_varint(out, ((uint64_t)field << 3) | (uint64_t)wire); }
void put_bytes(std::string& out, int field, const std::string& bytes) {
  put_key(out, field, 2);
  put_varint(out, bytes.size());
  out += bytes;
}
void put_double(std::string& out, int field, double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, 8);
  put_key(out, field, 1);
  put_le(out, bits, 8);
}
void put_float(std::string& out, int field, float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  put_key(out, field, 5);
  put_le(out, bits, 4);
}

void put_record(std::string& out, const std::string& payload) {
  std::string len;
  put_le(len, payload.size(), 8);
  out += len;
  put_le(out, masked_crc(len), 4);
  out += payload;
  put_le(out, masked_crc(payload), 4);
}

}  // namespace

uint32_t crc32c(const void* data, size_t n) {
  static const std::array<uint32_t, 256> table = make_crc_table();
  const auto* p = static_cast<const unsigned char*>(data);
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; ++i) c = table[(c ^ p[i]) & 0xff] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

std::string tensorboard_event_file(double start_wall_time, const std::vector<ScalarEvent>& events) {
  std::string out;
  std::string version;
  put_double(version, 1, start_wall_time);
  put_bytes(version, 3, "brain.Event:2");
  put_record(out, version);
  for (const ScalarEvent& e : events) {
    std::string summary;
    for (const auto& [tag, value] : e.scalars) {
      std::string v;
      put_bytes(v, 1, tag);
      put_float(v, 2, (float)value);
      put_bytes(summary, 1, v);
    }
    std::string ev;
    put_double(ev, 1, e.wall_time);
    put_key(ev, 2, 0);
    put_varint(ev, (uint64_t)e.step);
    put_bytes(ev, 5, summary);
    put_record(out, ev);
  }
  return out;
}

}  // namespace lm::data
