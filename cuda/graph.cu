// CUDA graphs: StreamScope and Graph (cuda/graph.h). The capture uses
// cudaStreamCaptureModeRelaxed so that a cache miss of the allocator may still cudaMalloc
// (allocation is not stream work); every operation that would wait for the device fails the
// capture instead of being silently left out of it.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "cuda/common.cuh"
#include "cuda/device.h"
#include "cuda/graph.h"

namespace lm::cuda {

StreamScope::StreamScope(int device) : device_(device), previous_(current_stream_handle(device)), stream_(nullptr) {
  ensure_registered();
  DeviceGuard guard(device);
  check(cudaStreamSynchronize(static_cast<cudaStream_t>(previous_)), "cudaStreamSynchronize (StreamScope)");
  cudaStream_t s = nullptr;
  check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
  stream_ = s;
  set_current_stream_handle(stream_, device);
}

StreamScope::~StreamScope() {
  DeviceGuard guard(device_);
  cudaStreamSynchronize(static_cast<cudaStream_t>(stream_));  // no throwing from a destructor
  set_current_stream_handle(previous_, device_);
  cudaStreamDestroy(static_cast<cudaStream_t>(stream_));
}

struct Graph::Impl {
  int device = 0, pool = 0;
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
};

Graph::Graph(int device, const std::function<void()>& work) : impl_(std::make_unique<Impl>()) {
  ensure_registered();
  DeviceGuard guard(device);
  impl_->device = device;
  cudaStream_t s = current_stream(device);
  if (!s) throw std::runtime_error("cuda::Graph: the current stream is the legacy default stream, which cannot be "
                                   "captured (make a StreamScope first)");
  check(cudaStreamSynchronize(s), "cudaStreamSynchronize (before capture)");
  impl_->pool = begin_graph_pool(device);
  auto abandon = [&](const std::string& why) {
    cudaGraph_t partial = nullptr;
    cudaStreamEndCapture(s, &partial);  // ends an invalidated capture too
    if (partial) cudaGraphDestroy(partial);
    cudaGetLastError();
    end_graph_pool(device);
    release_graph_pool(device, impl_->pool);
    throw std::runtime_error("CUDA graph capture failed: " + why);
  };
  cudaError_t err = cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed);
  if (err != cudaSuccess) abandon(std::string("cudaStreamBeginCapture: ") + cudaGetErrorString(err));
  try {
    work();
  } catch (const std::exception& e) {
    abandon(e.what());
  } catch (...) {
    abandon("unknown exception");
  }
  err = cudaStreamEndCapture(s, &impl_->graph);
  end_graph_pool(device);
  if (err != cudaSuccess) {
    cudaGetLastError();
    release_graph_pool(device, impl_->pool);
    throw std::runtime_error(std::string("CUDA graph capture failed: cudaStreamEndCapture: ") + cudaGetErrorString(err));
  }
  err = cudaGraphInstantiate(&impl_->exec, impl_->graph, 0);
  if (err != cudaSuccess) {
    cudaGetLastError();
    cudaGraphDestroy(impl_->graph);
    release_graph_pool(device, impl_->pool);
    throw std::runtime_error(std::string("CUDA graph instantiation failed: ") + cudaGetErrorString(err));
  }
}

Graph::~Graph() {
  if (!impl_) return;
  DeviceGuard guard(impl_->device);
  cudaStreamSynchronize(current_stream(impl_->device));  // no replay may still be running
  if (impl_->exec) cudaGraphExecDestroy(impl_->exec);
  if (impl_->graph) cudaGraphDestroy(impl_->graph);
  release_graph_pool(impl_->device, impl_->pool);
}

void Graph::replay() {
  DeviceGuard guard(impl_->device);
  check(cudaGraphLaunch(impl_->exec, current_stream(impl_->device)), "cudaGraphLaunch");
}

size_t Graph::num_nodes() const {
  size_t n = 0;
  check(cudaGraphGetNodes(impl_->graph, nullptr, &n), "cudaGraphGetNodes");
  return n;
}

}  // namespace lm::cuda
