// CUDA graphs (cuda/graph.cu): capture a piece of work once, replay it with one launch.
// Includes no CUDA headers (usable from g++ code, e.g. bench/drivers/benchmark.cpp).
//
// Use, for a step whose shapes never change (bench train-step --cuda-graph):
//   StreamScope scope(device);          // a non-blocking stream becomes the current one
//   ... eager warm-up steps ...          // cuBLAS handles, allocator cache, optimizer state
//   Graph g(device, [&] { step(); });   // captured, not run
//   for (...) { g.replay(); ... }        // runs the captured kernels on the same stream
// What a capture refuses, with the CUDA error in the exception: anything that synchronises
// with the host (a host <-> device copy, Tensor::item, cuda::synchronize) or runs on the legacy
// default stream. The library's training step does neither: device tensors are filled on the
// device, and cross_entropy skips its host-side target check while capturing
// (DeviceHooks::capturing). A refused copy's error names its direction and size. Host-side code
// in the captured work runs once, at capture: values it passes to kernels (scalars, sizes,
// pointers) are frozen into the graph, so the work must be the same on every replay (same
// shapes, same tensors). Memory the capture allocates lives in the
// graph's own allocator pool (cuda/device.h) until the Graph is destroyed.
#pragma once
#include <functional>
#include <memory>

namespace lm::cuda {

// Makes a fresh non-blocking stream the current stream of `device` (after synchronising the
// previous one) and restores the previous stream at scope exit (after synchronising this one).
class StreamScope {
 public:
  explicit StreamScope(int device = 0);
  ~StreamScope();
  StreamScope(const StreamScope&) = delete;
  StreamScope& operator=(const StreamScope&) = delete;

 private:
  int device_;
  void* previous_;
  void* stream_;
};

class Graph {
 public:
  // Captures work() from the current stream of `device`, which must not be the legacy default
  // stream (use a StreamScope). Throws std::runtime_error naming the failing call if the
  // capture or the instantiation fails; nothing is left captured then.
  Graph(int device, const std::function<void()>& work);
  ~Graph();
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  // Enqueues the captured work on the current stream of the device (asynchronous).
  void replay();
  // Number of nodes (kernels, copies, memsets) in the captured graph.
  size_t num_nodes() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lm::cuda
