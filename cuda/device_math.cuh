// Device-side basics shared by every CUDA file, including the self-contained kernel headers
// that the standalone studies in cuda/dev/ compile without the library (so: CUDA headers only,
// no tensor/): the warp size and float/double overloads of the math functions.
#pragma once
#ifndef LM_CUDA_EMULATION  // tests/cuda_emulator.h provides the CUDA names on the CPU
#include <cuda_runtime.h>
#endif

#include <cmath>

// The namespace of the device code in the kernel headers: lm::cuda in the library (and the
// cuda/dev studies); tests/cuda_emulator.h sets lm::cuda_emulated, so that the CPU-compiled
// kernels of the emulated test never share a symbol with the library's CUDA host stubs (same
// names would let the linker keep one definition for both).
#ifndef LM_CUDA_NS
#define LM_CUDA_NS lm::cuda
#endif

// A kernel's dynamic shared memory (the launch's third argument), as raw bytes.
#ifndef LM_DYNAMIC_SHARED
#define LM_DYNAMIC_SHARED(name) extern __shared__ unsigned char name[]
#endif

namespace LM_CUDA_NS {

constexpr int kWarp = 32;

// ---- math overloads: float calls the float intrinsic, double the double one ------------
#ifndef LM_CUDA_EMULATION
__device__ __forceinline__ float d_exp(float x) { return expf(x); }
__device__ __forceinline__ double d_exp(double x) { return exp(x); }
__device__ __forceinline__ float d_log(float x) { return logf(x); }
__device__ __forceinline__ double d_log(double x) { return log(x); }
__device__ __forceinline__ float d_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double d_sqrt(double x) { return sqrt(x); }
__device__ __forceinline__ float d_pow(float x, float y) { return powf(x, y); }
__device__ __forceinline__ double d_pow(double x, double y) { return pow(x, y); }
__device__ __forceinline__ float d_abs(float x) { return fabsf(x); }
__device__ __forceinline__ double d_abs(double x) { return fabs(x); }
__device__ __forceinline__ float d_tanh(float x) { return tanhf(x); }
__device__ __forceinline__ double d_tanh(double x) { return tanh(x); }
__device__ __forceinline__ float d_erf(float x) { return erff(x); }
__device__ __forceinline__ double d_erf(double x) { return erf(x); }
__device__ __forceinline__ bool d_isinf(float x) { return isinf(x); }
__device__ __forceinline__ bool d_isinf(double x) { return isinf(x); }
__device__ __forceinline__ bool d_isnan(float x) { return isnan(x); }
__device__ __forceinline__ bool d_isnan(double x) { return isnan(x); }
#else  // tests/cuda_emulator.h: the C++ library's overloads (qualified: lm:: has Tensor exp, ...)
template <class T> inline T d_exp(T x) { return std::exp(x); }
template <class T> inline T d_log(T x) { return std::log(x); }
template <class T> inline T d_sqrt(T x) { return std::sqrt(x); }
template <class T> inline T d_pow(T x, T y) { return std::pow(x, y); }
template <class T> inline T d_abs(T x) { return std::fabs(x); }
template <class T> inline T d_tanh(T x) { return std::tanh(x); }
template <class T> inline T d_erf(T x) { return std::erf(x); }
template <class T> inline bool d_isinf(T x) { return std::isinf(x); }
template <class T> inline bool d_isnan(T x) { return std::isnan(x); }
#endif

template <class T> __device__ __forceinline__ T neg_inf();
template <> __device__ __forceinline__ float neg_inf<float>() { return -INFINITY; }
template <> __device__ __forceinline__ double neg_inf<double>() { return -(double)INFINITY; }

}  // namespace LM_CUDA_NS
