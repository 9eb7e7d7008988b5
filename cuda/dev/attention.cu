// Kernel study: fused scaled dot-product attention, forward and backward, float32 (llm.c
// dev/cuda style): a CPU reference (float64 sums), kernel versions 1..2, validation of each
// against the reference, then timing at the Libra-MIL shape (56 prototype queries over 200000
// instance keys, d = dv = 512, one head).
// Standalone program, not part of the library build. Compile and run (on a GPU machine):
//   nvcc -O3 -std=c++17 -arch=sm_90 -o /tmp/attention_dev cuda/dev/attention.cu && /tmp/attention_dev [version]
// (use -arch=sm_80 for A100). Version 2 is what cuda/attention.cu ships.
//
//   1: naive, materialising: a thread per score (S = s q k^T + M, (Lq, Lk) in memory), a thread
//      per row for the softmax (P and lse in memory), a thread per output element for P v;
//      backward the same way (dP, dS = P (dP - rowsum(dP P)), then dq, dk, dv a thread per
//      element).
//   2: fused (cuda/attention.cu): online softmax over key tiles staged in shared memory, a warp
//      per query row, lane-per-key dot products, the output row in registers, keys split over
//      blocks and merged in order; backward with FlashAttention-2 algebra (delta = rowsum(dO O),
//      p recomputed from lse), a warp per query row for dq and a warp per key row for dk / dv.
//      Its kernels are the library's own, included from cuda/attention_kernels.cuh.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "common.h"

// ---- CPU reference (float64 sums) -----------------------------------------------------------
// q: (BH, Lq, d), k: (BH, Lk, d), v: (BH, Lk, dv); mask: (Lq, Lk) or empty; out: (BH, Lq, dv),
// lse: (BH, Lq).
void attention_forward_cpu(const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v,
                           const std::vector<float>& mask, int BH, int Lq, int Lk, int d, int dv, float scale,
                           std::vector<float>& out, std::vector<float>& lse) {
  out.assign((size_t)BH * Lq * dv, 0.f);
  lse.assign((size_t)BH * Lq, 0.f);
  std::vector<double> s(Lk), o(dv);
  for (int b = 0; b < BH; ++b)
    for (int i = 0; i < Lq; ++i) {
      const float* qi = &q[((size_t)b * Lq + i) * d];
      double m = -INFINITY;
      for (int j = 0; j < Lk; ++j) {
        const float* kj = &k[((size_t)b * Lk + j) * d];
        double a = 0;
        for (int c = 0; c < d; ++c) a += (double)qi[c] * kj[c];
        s[j] = a * scale + (mask.empty() ? 0.0 : (double)mask[(size_t)i * Lk + j]);
        m = s[j] > m ? s[j] : m;
      }
      double l = 0;
      for (int c = 0; c < dv; ++c) o[c] = 0;
      for (int j = 0; j < Lk; ++j) {
        const double p = std::exp(s[j] - m);
        l += p;
        const float* vj = &v[((size_t)b * Lk + j) * dv];
        for (int c = 0; c < dv; ++c) o[c] += p * vj[c];
      }
      for (int c = 0; c < dv; ++c) out[((size_t)b * Lq + i) * dv + c] = (float)(o[c] / l);
      lse[(size_t)b * Lq + i] = (float)(m + std::log(l));
    }
}

// dout: (BH, Lq, dv); dq, dk, dv_: shaped like q, k, v.
void attention_backward_cpu(const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v,
                            const std::vector<float>& mask, const std::vector<float>& out,
                            const std::vector<float>& lse, const std::vector<float>& dout, int BH, int Lq, int Lk, int d,
                            int dv, float scale, std::vector<float>& dq, std::vector<float>& dk,
                            std::vector<float>& dvv) {
  std::vector<double> gq((size_t)BH * Lq * d, 0), gk((size_t)BH * Lk * d, 0), gv((size_t)BH * Lk * dv, 0);
  for (int b = 0; b < BH; ++b)
    for (int i = 0; i < Lq; ++i) {
      const size_t r = (size_t)b * Lq + i;
      double D = 0;
      for (int c = 0; c < dv; ++c) D += (double)dout[r * dv + c] * out[r * dv + c];
      for (int j = 0; j < Lk; ++j) {
        const size_t kr = (size_t)b * Lk + j;
        double s = 0, dp = 0;
        for (int c = 0; c < d; ++c) s += (double)q[r * d + c] * k[kr * d + c];
        for (int c = 0; c < dv; ++c) dp += (double)dout[r * dv + c] * v[kr * dv + c];
        s = s * scale + (mask.empty() ? 0.0 : (double)mask[(size_t)i * Lk + j]);
        const double p = std::exp(s - (double)lse[r]);
        const double ds = p * (dp - D);
        for (int c = 0; c < d; ++c) {
          gq[r * d + c] += scale * ds * k[kr * d + c];
          gk[kr * d + c] += scale * ds * q[r * d + c];
        }
        for (int c = 0; c < dv; ++c) gv[kr * dv + c] += p * dout[r * dv + c];
      }
    }
  dq.assign(gq.begin(), gq.end());
  dk.assign(gk.begin(), gk.end());
  dvv.assign(gv.begin(), gv.end());
}

// ---- version 1: naive, materialising ----------------------------------------------------------
// q: (BH, Lq, d), k: (BH, Lk, d); mask: (Lq, Lk) or null; S: (BH, Lq, Lk). A thread per score.
__global__ void scores_kernel1(const float* q, const float* k, const float* mask, int BH, int Lq, int Lk, int d,
                               float scale, float* S) {
  const long long x = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (x >= (long long)BH * Lq * Lk) return;
  const int j = (int)(x % Lk), i = (int)((x / Lk) % Lq), b = (int)(x / ((long long)Lk * Lq));
  const float* qi = q + ((long long)b * Lq + i) * d;
  const float* kj = k + ((long long)b * Lk + j) * d;
  float a = 0;
  for (int c = 0; c < d; ++c) a += qi[c] * kj[c];
  S[x] = a * scale + (mask ? mask[(long long)i * Lk + j] : 0.f);
}
// S -> P in place, lse: (rows). A thread per row.
__global__ void softmax_kernel1(float* S, long long rows, int Lk, float* lse) {
  const long long r = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= rows) return;
  float* s = S + r * Lk;
  float m = -INFINITY;
  for (int j = 0; j < Lk; ++j) m = s[j] > m ? s[j] : m;
  const float mm = isinf(m) && m < 0 ? 0.f : m;
  float l = 0;
  for (int j = 0; j < Lk; ++j) l += expf(s[j] - mm);
  for (int j = 0; j < Lk; ++j) s[j] = expf(s[j] - mm) / l;
  lse[r] = mm + logf(l);
}
// P: (BH, Lq, Lk), v: (BH, Lk, dv), out: (BH, Lq, dv). A thread per output element.
__global__ void pv_kernel1(const float* P, const float* v, int BH, int Lq, int Lk, int dv, float* out) {
  const long long x = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (x >= (long long)BH * Lq * dv) return;
  const int c = (int)(x % dv);
  const long long r = x / dv, b = r / Lq;
  float a = 0;
  for (int j = 0; j < Lk; ++j) a += P[r * Lk + j] * v[(b * Lk + j) * dv + c];
  out[x] = a;
}
// dout: (BH, Lq, dv), v: (BH, Lk, dv), dP: (BH, Lq, Lk). A thread per element.
__global__ void dp_kernel1(const float* dout, const float* v, int BH, int Lq, int Lk, int dv, float* dP) {
  const long long x = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (x >= (long long)BH * Lq * Lk) return;
  const int j = (int)(x % Lk);
  const long long r = x / Lk, b = r / Lq;
  float a = 0;
  for (int c = 0; c < dv; ++c) a += dout[r * dv + c] * v[(b * Lk + j) * dv + c];
  dP[x] = a;
}
// P, dP -> dS in place of dP: dS = P (dP - sum_l dP_l P_l). A thread per row.
__global__ void ds_kernel1(const float* P, float* dP, long long rows, int Lk) {
  const long long r = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= rows) return;
  float D = 0;
  for (int j = 0; j < Lk; ++j) D += dP[r * Lk + j] * P[r * Lk + j];
  for (int j = 0; j < Lk; ++j) dP[r * Lk + j] = P[r * Lk + j] * (dP[r * Lk + j] - D);
}
// dS: (BH, Lq, Lk), k: (BH, Lk, d), dq: (BH, Lq, d) = scale dS k. A thread per element.
__global__ void dq_kernel1(const float* dS, const float* k, int BH, int Lq, int Lk, int d, float scale, float* dq) {
  const long long x = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (x >= (long long)BH * Lq * d) return;
  const int c = (int)(x % d);
  const long long r = x / d, b = r / Lq;
  float a = 0;
  for (int j = 0; j < Lk; ++j) a += dS[r * Lk + j] * k[(b * Lk + j) * d + c];
  dq[x] = scale * a;
}
// A: (BH, Lq, Lk) (dS or P), X: (BH, Lq, n) (q or dout), Y: (BH, Lk, n) = factor A^T X.
__global__ void at_x_kernel1(const float* A, const float* X, int BH, int Lq, int Lk, int n, float factor, float* Y) {
  const long long x = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (x >= (long long)BH * Lk * n) return;
  const int c = (int)(x % n);
  const long long kr = x / n, b = kr / Lk, j = kr % Lk;
  float a = 0;
  for (int i = 0; i < Lq; ++i) a += A[(b * Lq + i) * Lk + j] * X[(b * Lq + i) * n + c];
  Y[x] = factor * a;
}

// ---- version 2: the library's fused kernels (cuda/attention_kernels.cuh, shared with cuda/attention.cu)
#include "../attention_kernels.cuh"
namespace v2 = lm::cuda::attention_kernels;

// ---- drivers ----------------------------------------------------------------------------------

struct Problem {
  int BH, Lq, Lk, d, dv;
  bool mask;
  const char* name;
};

// Device buffers of one problem, plus the workspaces of both versions (sized for any split).
struct Buffers {
  float *q, *k, *v, *mask = nullptr, *out, *lse, *dout, *dq, *dk, *dv;
  float *S = nullptr, *dP = nullptr;               // version 1
  float *po, *pm, *pl, *delta, *pdq, *pdk, *pdv;    // version 2
};

int g_sms = 1;

// cuda/attention.cu's split choice (the library's items_per_split_for).
long long items_per_split(long long n, long long base_blocks) {
  return v2::items_per_split_for(n, base_blocks, g_sms);
}

float* dev_alloc(size_t n) {
  float* p = nullptr;
  DEV_CHECK(cudaMalloc(&p, std::max<size_t>(n, 1) * sizeof(float)));
  return p;
}

v2::Mask<float> mask_view(const Problem& P, const Buffers& b) {
  return v2::Mask<float>{P.mask ? b.mask : nullptr, 0, 0, P.mask ? (int64_t)P.Lk : 0, P.mask ? 1 : 0};
}

void forward(int version, const Problem& P, const Buffers& b, float scale) {
  const long long rows = (long long)P.BH * P.Lq;
  if (version == 1) {
    const long long ns = rows * P.Lk;
    scores_kernel1<<<ceil_div(ns, 256), 256>>>(b.q, b.k, P.mask ? b.mask : nullptr, P.BH, P.Lq, P.Lk, P.d, scale, b.S);
    softmax_kernel1<<<ceil_div(rows, 128), 128>>>(b.S, rows, P.Lk, b.lse);
    pv_kernel1<<<ceil_div(rows * P.dv, 256), 256>>>(b.S, b.v, P.BH, P.Lq, P.Lk, P.dv, b.out);
  } else {
    constexpr int CW = v2::Cfg<float>::CW;
    const long long row_blocks = (P.Lq + v2::kRows - 1) / v2::kRows;
    const int zc = (P.dv + CW - 1) / CW;
    const long long kps = items_per_split(P.Lk, P.BH * row_blocks * zc);
    const long long splits = (P.Lk + kps - 1) / kps;
    const dim3 grid((unsigned)(P.BH * row_blocks), (unsigned)splits, (unsigned)zc);
    v2::attention_forward_kernel<float><<<grid, v2::kBlock>>>(b.q, b.k, b.v, mask_view(P, b), 1, P.Lq, P.Lk, P.d, P.dv,
                                                              scale, kps, b.out, b.lse, b.po, b.pm, b.pl);
    if (splits > 1)
      v2::attention_combine_kernel<float><<<ceil_div(rows * 32, 256), 256>>>(b.po, b.pm, b.pl, (int)splits, rows, P.dv,
                                                                             b.out, b.lse);
  }
  DEV_CHECK(cudaGetLastError());
}

void backward(int version, const Problem& P, const Buffers& b, float scale) {
  const long long rows = (long long)P.BH * P.Lq, krows = (long long)P.BH * P.Lk;
  if (version == 1) {
    // Recomputes S and P (the composed op would have saved P; this version stores it anyway).
    const long long ns = rows * P.Lk;
    scores_kernel1<<<ceil_div(ns, 256), 256>>>(b.q, b.k, P.mask ? b.mask : nullptr, P.BH, P.Lq, P.Lk, P.d, scale, b.S);
    softmax_kernel1<<<ceil_div(rows, 128), 128>>>(b.S, rows, P.Lk, b.delta);
    dp_kernel1<<<ceil_div(ns, 256), 256>>>(b.dout, b.v, P.BH, P.Lq, P.Lk, P.dv, b.dP);
    ds_kernel1<<<ceil_div(rows, 128), 128>>>(b.S, b.dP, rows, P.Lk);
    dq_kernel1<<<ceil_div(rows * P.d, 256), 256>>>(b.dP, b.k, P.BH, P.Lq, P.Lk, P.d, scale, b.dq);
    at_x_kernel1<<<ceil_div(krows * P.d, 256), 256>>>(b.dP, b.q, P.BH, P.Lq, P.Lk, P.d, scale, b.dk);
    at_x_kernel1<<<ceil_div(krows * P.dv, 256), 256>>>(b.S, b.dout, P.BH, P.Lq, P.Lk, P.dv, 1.f, b.dv);
  } else {
    constexpr int CW = v2::Cfg<float>::CW;
    const v2::Mask<float> mv = mask_view(P, b);
    v2::attention_delta_kernel<float><<<ceil_div(rows * 32, 256), 256>>>(b.dout, b.out, rows, P.dv, b.delta);
    {
      const long long row_blocks = (P.Lq + v2::kRows - 1) / v2::kRows;
      const int zc = (P.d + CW - 1) / CW;
      const long long kps = items_per_split(P.Lk, P.BH * row_blocks * zc);
      const long long splits = (P.Lk + kps - 1) / kps;
      const dim3 grid((unsigned)(P.BH * row_blocks), (unsigned)splits, (unsigned)zc);
      v2::attention_backward_dq_kernel<float><<<grid, v2::kBlock>>>(b.q, b.k, b.v, mv, b.dout, b.lse, b.delta, 1, P.Lq,
                                                                    P.Lk, P.d, P.dv, scale, kps, b.dq, b.pdq);
      if (splits > 1)
        v2::attention_sum_splits_kernel<float><<<ceil_div(rows * P.d, 256), 256>>>(b.pdq, (int)splits, rows * P.d,
                                                                                   scale, b.dq);
    }
    {
      const long long key_blocks = (P.Lk + v2::kRows - 1) / v2::kRows;
      const int zc = (std::max(P.d, P.dv) + CW - 1) / CW;
      const long long qps = items_per_split(P.Lq, P.BH * key_blocks * zc);
      const long long splits = (P.Lq + qps - 1) / qps;
      const dim3 grid((unsigned)(P.BH * key_blocks), (unsigned)splits, (unsigned)zc);
      v2::attention_backward_dkdv_kernel<float><<<grid, v2::kBlock>>>(b.q, b.k, b.v, mv, b.dout, b.lse, b.delta, 1,
                                                                      P.Lq, P.Lk, P.d, P.dv, scale, qps, b.dk, b.dv,
                                                                      b.pdk, b.pdv);
      if (splits > 1) {
        v2::attention_sum_splits_kernel<float><<<ceil_div(krows * P.d, 256), 256>>>(b.pdk, (int)splits, krows * P.d,
                                                                                    scale, b.dk);
        v2::attention_sum_splits_kernel<float><<<ceil_div(krows * P.dv, 256), 256>>>(b.pdv, (int)splits,
                                                                                     krows * P.dv, 1.0, b.dv);
      }
    }
  }
  DEV_CHECK(cudaGetLastError());
}

Buffers make_buffers(const Problem& P, const std::vector<float>& q, const std::vector<float>& k,
                     const std::vector<float>& v, const std::vector<float>& mask, const std::vector<float>& dout,
                     bool with_v1) {
  Buffers b;
  const size_t rows = (size_t)P.BH * P.Lq, krows = (size_t)P.BH * P.Lk;
  b.q = to_device(q);
  b.k = to_device(k);
  b.v = to_device(v);
  if (P.mask) b.mask = to_device(mask);
  b.dout = to_device(dout);
  b.out = dev_alloc(rows * P.dv);
  b.lse = dev_alloc(rows);
  b.dq = dev_alloc(rows * P.d);
  b.dk = dev_alloc(krows * P.d);
  b.dv = dev_alloc(krows * P.dv);
  if (with_v1) {
    b.S = dev_alloc(rows * P.Lk);
    b.dP = dev_alloc(rows * P.Lk);
  }
  const size_t max_splits = 65535;  // generous upper bounds: splits never exceed items / 128 + 1
  const size_t ks = std::min<size_t>(max_splits, P.Lk / 128 + 1), qs = std::min<size_t>(max_splits, P.Lq / 128 + 1);
  b.po = dev_alloc(ks * rows * P.dv);
  b.pm = dev_alloc(ks * rows);
  b.pl = dev_alloc(ks * rows);
  b.delta = dev_alloc(rows);
  b.pdq = dev_alloc(ks * rows * P.d);
  b.pdk = dev_alloc(qs * krows * P.d);
  b.pdv = dev_alloc(qs * krows * P.dv);
  return b;
}

void free_buffers(Buffers& b) {
  for (float* p : {b.q, b.k, b.v, b.mask, b.out, b.lse, b.dout, b.dq, b.dk, b.dv, b.S, b.dP, b.po, b.pm, b.pl, b.delta,
                   b.pdq, b.pdk, b.pdv})
    if (p) DEV_CHECK(cudaFree(p));
}

double max_abs(const std::vector<float>& x) {
  double m = 0;
  for (float v : x) m = std::max(m, (double)std::fabs(v));
  return m;
}

// Per-element |err| <= 1e-5 max|ref| + 1e-4 |ref| (float32 sums of up to a few thousand terms).
bool check(const char* name, const float* d, const std::vector<float>& ref) {
  return validate(name, d, ref, 1e-5 * max_abs(ref) + 1e-7, 1e-4);
}

int main(int argc, char** argv) {
  const int only = argc > 1 ? std::atoi(argv[1]) : 0;
  DEV_CHECK(cudaDeviceGetAttribute(&g_sms, cudaDevAttrMultiProcessorCount, 0));
  bool all_ok = true;

  // Validation: a Libra-MIL-like shape with fewer keys (the CPU reference is O(Lq Lk d)) and an
  // odd one with a mask (Lq, Lk) of 0 / -inf (first key never masked).
  const Problem val[] = {{1, 56, 4096, 512, 512, false, "Lq 56, Lk 4096, d = dv = 512"},
                         {2, 5, 300, 37, 19, true, "BH 2, Lq 5, Lk 300, d 37, dv 19, mask"}};
  for (const Problem& P : val) {
    std::printf("validate: %s\n", P.name);
    const float scale = 1.f / std::sqrt((float)P.d);
    std::vector<float> q = random_vector((size_t)P.BH * P.Lq * P.d, -1.f, 1.f, 1);
    std::vector<float> k = random_vector((size_t)P.BH * P.Lk * P.d, -1.f, 1.f, 2);
    std::vector<float> v = random_vector((size_t)P.BH * P.Lk * P.dv, -1.f, 1.f, 3);
    std::vector<float> dout = random_vector((size_t)P.BH * P.Lq * P.dv, -1.f, 1.f, 4);
    std::vector<float> mask;
    if (P.mask) {
      mask = random_vector((size_t)P.Lq * P.Lk, 0.f, 1.f, 5);
      for (size_t x = 0; x < mask.size(); ++x) mask[x] = (x % P.Lk != 0 && mask[x] < 0.4f) ? -INFINITY : 0.f;
    }
    std::vector<float> out, lse, dq, dk, dvv;
    attention_forward_cpu(q, k, v, mask, P.BH, P.Lq, P.Lk, P.d, P.dv, scale, out, lse);
    attention_backward_cpu(q, k, v, mask, out, lse, dout, P.BH, P.Lq, P.Lk, P.d, P.dv, scale, dq, dk, dvv);
    Buffers b = make_buffers(P, q, k, v, mask, dout, true);
    for (int ver = 1; ver <= 2; ++ver) {
      if (only && ver != only) continue;
      std::printf("version %d\n", ver);
      forward(ver, P, b, scale);
      DEV_CHECK(cudaDeviceSynchronize());
      all_ok &= check("out", b.out, out);
      all_ok &= check("lse", b.lse, lse);
      backward(ver, P, b, scale);
      DEV_CHECK(cudaDeviceSynchronize());
      all_ok &= check("dq", b.dq, dq);
      all_ok &= check("dk", b.dk, dk);
      all_ok &= check("dv", b.dv, dvv);
    }
    free_buffers(b);
  }

  // Timing at the Libra-MIL shape (no CPU reference: too slow).
  const Problem T{1, 56, 200000, 512, 512, false, "Lq 56, Lk 200000, d = dv = 512"};
  std::printf("time: %s\n", T.name);
  {
    const float scale = 1.f / std::sqrt((float)T.d);
    std::vector<float> q = random_vector((size_t)T.Lq * T.d, -1.f, 1.f, 1);
    std::vector<float> k = random_vector((size_t)T.Lk * T.d, -1.f, 1.f, 2);
    std::vector<float> v = random_vector((size_t)T.Lk * T.dv, -1.f, 1.f, 3);
    std::vector<float> dout = random_vector((size_t)T.Lq * T.dv, -1.f, 1.f, 4);
    Buffers b = make_buffers(T, q, k, v, {}, dout, true);
    const double flop_fwd = 2.0 * T.Lq * (double)T.Lk * (T.d + T.dv);
    for (int ver = 1; ver <= 2; ++ver) {
      if (only && ver != only) continue;
      const int reps = ver == 1 ? 3 : 20;
      const float fms = time_ms([&] { forward(ver, T, b, scale); }, reps);
      const float bms = time_ms([&] { backward(ver, T, b, scale); }, reps);
      std::printf("  version %d: forward %.4f ms (%.1f GFLOP/s), backward %.4f ms\n", ver, fms, flop_fwd / fms / 1e6,
                  bms);
      // machine-readable lines for tools/gpu_check.sh
      std::printf("BENCH attention_fwd v%d ms=%.4f\n", ver, fms);
      std::printf("BENCH attention_bwd v%d ms=%.4f\n", ver, bms);
    }
    free_buffers(b);
  }
  std::printf(all_ok ? "all versions match the CPU reference\n" : "SOME VERSIONS FAILED\n");
  return all_ok ? 0 : 1;
}
