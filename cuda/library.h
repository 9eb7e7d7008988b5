// Loading a CUDA library (cuBLAS, cuBLASLt, cuDNN) with dlopen on first use instead of linking
// it: linking maps the library into every process, hundreds of MB of resident memory before
// any work, GPU or not. A caller names the candidate paths (a soname first, then full paths)
// and resolves the handful of entry points it uses into a table of function pointers.
//
//   const MyApi& api = load_api<MyApi>({"libfoo.so.1", dir + "/libfoo.so.1"}, "hint",
//                                      [](const CudaLibrary& lib, MyApi& a) {
//                                        LM_RESOLVE(lib, a.create, "fooCreate");
//                                      });
#pragma once
#include <dlfcn.h>

#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace lm::cuda {

// An opened library; sym() resolves a symbol or throws naming it.
struct CudaLibrary {
  std::string name;
  void* handle = nullptr;
  void* sym(const char* n) const {
    void* p = dlsym(handle, n);
    if (!p) throw std::runtime_error(name + " has no symbol " + n);
    return p;
  }
};

// The first candidate that dlopen accepts (empty candidates are skipped). Failing all, throws
// "cannot load <first> (<dlerror of the first>); <hint>".
inline CudaLibrary open_cuda_library(const std::vector<std::string>& candidates, const std::string& hint) {
  std::string first, first_error;
  for (const std::string& c : candidates) {
    if (c.empty()) continue;
    if (void* lib = dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL)) return {c, lib};
    if (first.empty()) {
      first = c;
      const char* e = dlerror();
      first_error = e ? e : "not found";
    }
  }
  throw std::runtime_error("cannot load " + first + " (" + first_error + ")" + (hint.empty() ? "" : "; " + hint));
}

// Loads an API table once per process (thread-safe): opens the library and lets fill() resolve
// its entry points; a failure throws and the next call tries again.
template <class Api>
const Api& load_api(const std::vector<std::string>& candidates, const std::string& hint,
                    void (*fill)(const CudaLibrary&, Api&)) {
  static std::mutex mu;
  static Api api;
  static bool loaded = false;
  std::lock_guard<std::mutex> lock(mu);
  if (loaded) return api;
  Api a;
  fill(open_cuda_library(candidates, hint), a);
  api = a;
  loaded = true;
  return api;
}

#define LM_RESOLVE(lib, field, symbol) (field = reinterpret_cast<decltype(field)>((lib).sym(symbol)))

}  // namespace lm::cuda
