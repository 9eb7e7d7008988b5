// Parallel feature-bag cache with a byte budget. See feature_cache.h.
#include "data/feature_cache.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>

#include "data/feature_bag.h"

namespace lm::data {

std::string format_bytes(int64_t b) {
  char buf[64];
  const double v = (double)b;
  if (b >= (int64_t(1) << 30)) std::snprintf(buf, sizeof buf, "%.2f GiB", v / (double)(int64_t(1) << 30));
  else if (b >= (int64_t(1) << 20)) std::snprintf(buf, sizeof buf, "%.1f MiB", v / (double)(1 << 20));
  else if (b >= (int64_t(1) << 10)) std::snprintf(buf, sizeof buf, "%.1f KiB", v / 1024.0);
  else std::snprintf(buf, sizeof buf, "%lld B", (long long)b);
  return buf;
}

namespace {

// Runs job(i) for i in [0, n) on `workers` threads; returns the error messages by index.
std::vector<std::string> parallel_for(int64_t n, int workers, const std::function<void(int64_t)>& job) {
  std::vector<std::string> errors(n);
  std::atomic<int64_t> next{0};
  auto worker = [&] {
    for (int64_t i; (i = next++) < n;) {
      try {
        job(i);
      } catch (const std::exception& e) {
        errors[i] = e.what();
        if (errors[i].empty()) errors[i] = "unknown error";
      }
    }
  };
  const int t = (int)std::max<int64_t>(1, std::min<int64_t>(workers, n));
  std::vector<std::thread> pool;
  for (int k = 1; k < t; ++k) pool.emplace_back(worker);
  worker();
  for (auto& th : pool) th.join();
  return errors;
}

void throw_collected(const std::vector<std::string>& errors, const char* stage) {
  int64_t bad = 0;
  std::string list;
  std::string only;
  for (const auto& e : errors)
    if (!e.empty()) {
      if (++bad <= 20) list += (bad > 1 ? "; " : " ") + e;
      only = e;
    }
  if (!bad) return;
  if (bad > 20) list += "; ... and " + std::to_string(bad - 20) + " more";
  // One line (the CLI prints errors as one line): a single failure is reported as it is.
  if (bad == 1) throw std::runtime_error(only);
  throw std::runtime_error("feature cache: " + std::to_string(bad) + " of " + std::to_string(errors.size()) +
                           " slides failed to " + stage + ":" + list);
}

}  // namespace

FeatureCache::FeatureCache(FeatureCacheOptions options) : opts_(std::move(options)) {
  if (opts_.store != DType::F32 && opts_.store != DType::F16)
    throw std::invalid_argument(std::string("FeatureCache: store must be float32 or float16, got ") + dtype_name(opts_.store));
  if (opts_.workers <= 0) opts_.workers = (int)std::max(1u, std::thread::hardware_concurrency());
  if (opts_.byte_budget < 0) throw std::invalid_argument("FeatureCache: negative byte budget");
}

void FeatureCache::load(const std::vector<std::string>& paths) {
  std::vector<std::pair<std::string, std::string>> named;
  for (const auto& p : paths) named.emplace_back(slide_name_from_path(p), p);
  load_named(named);
}

void FeatureCache::load_named(const std::vector<std::pair<std::string, std::string>>& named_paths) {
  const int64_t n = (int64_t)named_paths.size();
  std::vector<std::string> names(n), paths(n);
  std::set<std::string> fresh;
  for (int64_t i = 0; i < n; ++i) {
    names[i] = named_paths[i].first;
    paths[i] = named_paths[i].second;
    if (bags_.count(names[i]) || !fresh.insert(names[i]).second)
      throw std::runtime_error("feature cache: slide name " + names[i] + " (from " + paths[i] +
                               ") occurs more than once");
  }
  if (n == 0) return;
  const size_t esz = dtype_size(opts_.store);

  // 1. Shapes only: check everything opens and the total fits the budget.
  std::vector<int64_t> need(n, 0);
  throw_collected(parallel_for(n, opts_.workers,
                               [&](int64_t i) {
                                 BagInfo b = probe_feature_bag(paths[i]);
                                 need[i] = b.n * b.d * (int64_t)esz;
                               }),
                  "open");
  int64_t total = 0;
  for (int64_t b : need) total += b;
  if (opts_.byte_budget > 0 && bytes_ + total > opts_.byte_budget)
    throw std::runtime_error("feature cache: the " + std::to_string(n) + " slides need " + format_bytes(total) + " (" +
                             std::to_string(total) + " bytes) as " + dtype_name(opts_.store) +
                             (bytes_ ? " on top of " + format_bytes(bytes_) + " already cached" : std::string()) +
                             ", but the budget is " + format_bytes(opts_.byte_budget) + " (" +
                             std::to_string(opts_.byte_budget) + " bytes)" +
                             (opts_.store == DType::F32 ? "; storing float16 would halve it" : ""));

  // 2. Read.
  std::vector<Tensor> loaded(n);
  std::mutex progress_mutex;
  int64_t done = 0;
  throw_collected(parallel_for(n, opts_.workers,
                               [&](int64_t i) {
                                 loaded[i] = read_feature_bag(paths[i], opts_.store).features;
                                 if (opts_.progress) {
                                   std::lock_guard<std::mutex> lock(progress_mutex);
                                   opts_.progress(++done, n);
                                 }
                               }),
                  "load");
  for (int64_t i = 0; i < n; ++i) {
    bytes_ += (int64_t)loaded[i].nbytes();
    bags_.emplace(names[i], std::move(loaded[i]));
  }
}

const Tensor& FeatureCache::stored(const std::string& name) const {
  auto it = bags_.find(name);
  if (it == bags_.end()) throw std::runtime_error("feature cache: no slide named " + name + " was loaded");
  return it->second;
}

Tensor FeatureCache::get(const std::string& name) const {
  const Tensor& t = stored(name);
  if (t.dtype() == DType::F32) return t;
  Tensor out = Tensor::empty(t.shape(), DType::F32);
  const uint16_t* src = static_cast<const uint16_t*>(t.raw_data());
  float* dst = out.data<float>();
  const int64_t n = t.numel();
  for (int64_t i = 0; i < n; ++i) dst[i] = half_to_float(src[i]);
  return out;
}

std::vector<std::string> FeatureCache::names() const {
  std::vector<std::string> r;
  for (auto& [k, v] : bags_) r.push_back(k);
  return r;
}

}  // namespace lm::data
