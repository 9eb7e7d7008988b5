// TensorBoard event files, written without TensorFlow: a file is a sequence of TFRecords
// (uint64 length, masked CRC-32C of the length, the payload, masked CRC-32C of the payload; all
// little-endian), each payload one `Event` protocol buffer encoded by hand here. The first event
// names the format version ("brain.Event:2"); every later one carries scalars (Summary.Value
// tag + simple_value) at a step. Field numbers from TensorFlow's event.proto / summary.proto:
//   Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
//   Summary { repeated Value value = 1; }   Value { string tag = 1; float simple_value = 2; }
// Checked against TensorBoard's own reader (tests/test_tensorboard.cpp).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace lm::data {

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as TFRecord frames use it.
uint32_t crc32c(const void* data, size_t n);

// One event: scalars (tag, value) recorded at `step`, at `wall_time` (Unix seconds).
struct ScalarEvent {
  double wall_time = 0;
  int64_t step = 0;
  std::vector<std::pair<std::string, double>> scalars;
};

// The bytes of a whole event file: the version event (at `start_wall_time`), then `events`.
std::string tensorboard_event_file(double start_wall_time, const std::vector<ScalarEvent>& events);

}  // namespace lm::data
