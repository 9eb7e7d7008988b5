// In-memory cache of slide feature bags, loaded in parallel worker threads.
//
// load(paths) / load_named(pairs) first refuse a slide name that repeats (within the call or
// with a bag already cached). They then probe every file (probe_feature_bag: shapes only, in
// parallel) and check the byte budget before reading anything: when the bags would not fit, they
// throw saying how many bytes are needed and how many the budget allows. Only then are the
// bags read (read_feature_bag), kept as float32 or float16 (`store`; float16 halves the
// memory, get() converts back). Coordinates are not kept.
//
// Errors: each stage (probe, read) runs every file and collects the per-file failures before
// throwing ONE std::runtime_error with a one-line message (the CLI prints errors as one line):
// a single failure is rethrown with the reader's own message (which names the file and the
// problem); several give "feature cache: K of N slides failed to open|load: <msg>; <msg>; ..."
// (the first 20 messages, then "... and M more"). A failed probe stops before any bag is read.
// Nothing from a failed load is kept (the cache is only changed once every bag is read).
//
// Threading: load() must not run concurrently with other calls on the same cache; get() and
// the other const members may be called from several threads at once. Loading uses
// `workers` threads (the calling thread is one of them). The progress callback is called from
// these threads, one call at a time (serialised), with loaded counts 1..total.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace lm::data {

struct FeatureCacheOptions {
  int workers = 0;             // loader threads; 0 = std::thread::hardware_concurrency()
  DType store = DType::F32;    // F32 or F16
  int64_t byte_budget = 0;     // total bytes of stored features allowed; 0 = unlimited
  std::function<void(int64_t loaded, int64_t total)> progress;  // optional
};

class FeatureCache {
 public:
  explicit FeatureCache(FeatureCacheOptions options = {});

  // Loads the bags at `paths` (.h5/.hdf5/.pt), named by slide_name_from_path(). A name that
  // repeats (within `paths` or with a bag already cached) is an error.
  void load(const std::vector<std::string>& paths);
  // The same with explicit (name, path) pairs.
  void load_named(const std::vector<std::pair<std::string, std::string>>& named_paths);

  bool contains(const std::string& name) const { return bags_.count(name) != 0; }
  // The features of `name` as a float32 (N, D) tensor. With store = F32 this shares the
  // cached memory (treat it as read-only); with F16 it is a fresh float32 copy.
  Tensor get(const std::string& name) const;
  // The tensor as stored (float32 or float16).
  const Tensor& stored(const std::string& name) const;
  std::vector<std::string> names() const;  // sorted
  size_t size() const { return bags_.size(); }
  int64_t bytes() const { return bytes_; }  // bytes of stored features
  const FeatureCacheOptions& options() const { return opts_; }

 private:
  FeatureCacheOptions opts_;
  std::map<std::string, Tensor> bags_;
  int64_t bytes_ = 0;
};

// "1.50 GiB", "12.0 MiB", "512 B".
std::string format_bytes(int64_t bytes);

}  // namespace lm::data
