// Storage: aligned CPU allocation with byte accounting, and the device-hook registry.
#include "tensor/storage.h"

#include <malloc.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <stdexcept>
#include <string>

namespace lm {

namespace {
std::atomic<int64_t> g_cpu_bytes{0};
std::atomic<int64_t> g_cpu_peak{0};
// Function-local statics: the CUDA backend registers from a static initialiser in another
// library, which may run before this file's globals would be constructed.
DeviceHooks& cuda_hooks() {
  static DeviceHooks hooks;
  return hooks;
}
bool& cuda_registered() {
  static bool registered = false;
  return registered;
}
}  // namespace

Device Device::parse(const std::string& s) {
  if (s == "cpu") return cpu();
  if (s == "cuda" || s == "gpu") return cuda(0);
  if (s.rfind("cuda:", 0) == 0) {
    try {
      return cuda(std::stoi(s.substr(5)));
    } catch (...) {
    }
  }
  throw std::invalid_argument("unknown device '" + s + "' (expected cpu, cuda or cuda:N)");
}

void register_device_hooks(DeviceType type, DeviceHooks hooks) {
  if (type == DeviceType::CUDA) {
    cuda_hooks() = std::move(hooks);
    cuda_registered() = true;
  }
}

const DeviceHooks* device_hooks(DeviceType type) {
  if (type == DeviceType::CUDA && cuda_registered()) return &cuda_hooks();
  return nullptr;
}

bool device_capturing(Device device) {
  if (device.is_cpu()) return false;
  const DeviceHooks* h = device_hooks(device.type);
  return h && h->capturing && h->capturing(device.index);
}

void check_device_available(Device device) {
  if (device.is_cpu()) return;
  const DeviceHooks* h = device_hooks(device.type);
  if (!h) throw std::runtime_error("device " + device.str() + " requested, but libramil was built without the CUDA backend");
  int n = h->device_count ? h->device_count() : 0;
  if (device.index < 0 || device.index >= n)
    throw std::runtime_error("device " + device.str() + " requested, but " + std::to_string(n) + " CUDA device(s) are visible");
}

// glibc serves blocks above its mmap threshold with a fresh mmap and unmaps them on free, so
// every new (N, D) activation or gradient would page-fault (and zero) all of its pages again:
// a few ms per step at N = 8000. Raising the thresholds keeps freed blocks in the heap for
// the next step's tensors of the same sizes; the process's peak RSS is unchanged (the blocks
// were live at the peak anyway). LIBRAMIL_MALLOC_TUNE=0 keeps glibc's defaults.
static void tune_malloc_once() {
  static const bool done = [] {
    const char* e = std::getenv("LIBRAMIL_MALLOC_TUNE");
    if (e && std::string(e) == "0") return true;
    mallopt(M_MMAP_THRESHOLD, 512 << 20);
    mallopt(M_TRIM_THRESHOLD, 1024 << 20);
    return true;
  }();
  (void)done;
}

Storage::Storage(size_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
  if (device.is_cpu()) {
    tune_malloc_once();
    size_t rounded = (nbytes + 63) / 64 * 64;
    if (rounded == 0) rounded = 64;
    data_ = std::aligned_alloc(64, rounded);
    if (!data_) throw std::bad_alloc();
    int64_t now = g_cpu_bytes.fetch_add((int64_t)nbytes) + (int64_t)nbytes;
    int64_t peak = g_cpu_peak.load();
    while (now > peak && !g_cpu_peak.compare_exchange_weak(peak, now)) {
    }
  } else {
    check_device_available(device);
    data_ = device_hooks(device.type)->allocate(nbytes, device.index);
  }
}

Storage::Storage(void* data, size_t nbytes, Device device, std::shared_ptr<void> keep_alive)
    : data_(data), nbytes_(nbytes), device_(device), owned_(false), keep_alive_(std::move(keep_alive)) {}

Storage::~Storage() {
  if (!owned_ || !data_) return;
  if (device_.is_cpu()) {
    std::free(data_);
    g_cpu_bytes.fetch_sub((int64_t)nbytes_);
  } else if (const DeviceHooks* h = device_hooks(device_.type)) {
    h->release(data_, device_.index);
  }
}

int64_t Storage::cpu_bytes_in_use() { return g_cpu_bytes.load(); }
int64_t Storage::cpu_peak_bytes() { return g_cpu_peak.load(); }
void Storage::reset_cpu_peak() { g_cpu_peak.store(g_cpu_bytes.load()); }

}  // namespace lm
