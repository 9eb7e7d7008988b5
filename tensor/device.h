// Where a tensor's memory lives. The CPU is always available; CUDA devices exist when the
// library was built with the CUDA backend (cuda/) and a GPU is present at run time.
#pragma once
#include <cstdint>  // uint8_t (g++ 13's <string> no longer brings it)
#include <string>

namespace lm {

enum class DeviceType : uint8_t { CPU, CUDA };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;
  static Device cpu() { return {DeviceType::CPU, 0}; }
  static Device cuda(int i = 0) { return {DeviceType::CUDA, i}; }
  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  bool operator==(const Device& o) const { return type == o.type && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
  std::string str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }
  // Parses "cpu", "cuda", "cuda:1"; throws std::invalid_argument otherwise.
  static Device parse(const std::string& s);
};

}  // namespace lm
