// Kernel study: layer norm over the rows of an (N, C) float32 matrix, forward and backward
// (llm.c dev/cuda style): CPU references, kernel versions, validation against the reference,
// then timing. Standalone program, not part of the library build. Compile and run (on a GPU):
//   nvcc -O3 -std=c++17 -arch=sm_90 -o /tmp/layernorm_dev cuda/dev/layernorm.cu && /tmp/layernorm_dev
// (use -arch=sm_80 for A100). Forward version 2 and backward version 2 are what
// cuda/layer_norm.cu ships.
//
// Forward (out, mean, rstd):
//   1: one thread per row, two passes in float64 (naive; uncoalesced).
//   2: one block per row, float64 two-pass statistics, warp-shuffle block reductions (library).
//   3: one warp per row, float32 statistics with shuffles (fast; less accurate for large C).
// Backward (dinp, dweight, dbias):
//   1: dinp a thread per row; dweight / dbias a thread per column looping over all rows.
//   2: dinp a block per row; dweight / dbias through float64 partials of 32-row chunks summed
//      in chunk order (library; deterministic, the CPU's order of additions).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "common.h"

constexpr double kEps = 1e-5;

// ---- CPU references -----------------------------------------------------------------------------
void layernorm_forward_cpu(const float* x, const float* w, const float* b, int N, int C, float* out, float* mean,
                           float* rstd) {
  for (int i = 0; i < N; ++i) {
    const float* xr = x + (size_t)i * C;
    double s = 0;
    for (int j = 0; j < C; ++j) s += xr[j];
    const double mu = s / C;
    double v = 0;
    for (int j = 0; j < C; ++j) v += (xr[j] - mu) * (xr[j] - mu);
    const double rs = 1.0 / std::sqrt(v / C + kEps);
    mean[i] = (float)mu;
    rstd[i] = (float)rs;
    for (int j = 0; j < C; ++j) out[(size_t)i * C + j] = (float)(((xr[j] - mu) * rs) * w[j] + b[j]);
  }
}

void layernorm_backward_cpu(const float* g, const float* x, const float* w, const float* mean, const float* rstd,
                            int N, int C, float* dx, float* dw, float* db) {
  std::vector<double> sw(C, 0.0), sb(C, 0.0);
  for (int i = 0; i < N; ++i) {
    const float* gr = g + (size_t)i * C;
    const float* xr = x + (size_t)i * C;
    const double mu = mean[i], rs = rstd[i];
    double a = 0, bs = 0;
    for (int j = 0; j < C; ++j) {
      const double xh = (xr[j] - mu) * rs, gw = (double)gr[j] * w[j];
      sw[j] += gr[j] * xh;
      sb[j] += gr[j];
      a += gw;
      bs += gw * xh;
    }
    a /= C;
    bs /= C;
    for (int j = 0; j < C; ++j) {
      const double xh = (xr[j] - mu) * rs, gw = (double)gr[j] * w[j];
      dx[(size_t)i * C + j] = (float)(rs * (gw - a - xh * bs));
    }
  }
  for (int j = 0; j < C; ++j) {
    dw[j] = (float)sw[j];
    db[j] = (float)sb[j];
  }
}

// ---- reductions -----------------------------------------------------------------------------------
template <class T>
__device__ T warp_sum(T v) {
  for (int off = 16; off > 0; off /= 2) v += __shfl_down_sync(0xffffffffu, v, off);
  return v;
}
// blockDim.x a multiple of 32; shared >= 33 doubles; all threads get the sum.
__device__ double block_sum(double v, double* shared) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  if (warp == 0) {
    double r = lane < nwarps ? shared[lane] : 0.0;
    r = warp_sum(r);
    if (lane == 0) shared[32] = r;
  }
  __syncthreads();
  return shared[32];
}

// ---- forward kernels: x, out: (N, C); w, b: (C); mean, rstd: (N) -------------------------------
__global__ void layernorm_forward1(const float* x, const float* w, const float* b, int N, int C, float* out,
                                   float* mean, float* rstd) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= N) return;
  const float* xr = x + (size_t)i * C;
  double s = 0;
  for (int j = 0; j < C; ++j) s += xr[j];
  const double mu = s / C;
  double v = 0;
  for (int j = 0; j < C; ++j) v += (xr[j] - mu) * (xr[j] - mu);
  const double rs = 1.0 / sqrt(v / C + kEps);
  mean[i] = (float)mu;
  rstd[i] = (float)rs;
  for (int j = 0; j < C; ++j) out[(size_t)i * C + j] = (float)(((xr[j] - mu) * rs) * w[j] + b[j]);
}

__global__ void layernorm_forward2(const float* x, const float* w, const float* b, int N, int C, float* out,
                                   float* mean, float* rstd) {
  __shared__ double sd[33];
  const int i = blockIdx.x;
  const float* xr = x + (size_t)i * C;
  double s = 0;
  for (int j = threadIdx.x; j < C; j += blockDim.x) s += xr[j];
  const double mu = block_sum(s, sd) / C;
  double v = 0;
  for (int j = threadIdx.x; j < C; j += blockDim.x) v += (xr[j] - mu) * (xr[j] - mu);
  const double rs = 1.0 / sqrt(block_sum(v, sd) / C + kEps);
  if (threadIdx.x == 0) {
    mean[i] = (float)mu;
    rstd[i] = (float)rs;
  }
  for (int j = threadIdx.x; j < C; j += blockDim.x) out[(size_t)i * C + j] = (float)(((xr[j] - mu) * rs) * w[j] + b[j]);
}

__global__ void layernorm_forward3(const float* x, const float* w, const float* b, int N, int C, float* out,
                                   float* mean, float* rstd) {
  const int lane = threadIdx.x % 32;
  const int i = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  if (i >= N) return;
  const float* xr = x + (size_t)i * C;
  float s = 0;
  for (int j = lane; j < C; j += 32) s += xr[j];
  const float mu = __shfl_sync(0xffffffffu, warp_sum(s), 0) / C;
  float v = 0;
  for (int j = lane; j < C; j += 32) v += (xr[j] - mu) * (xr[j] - mu);
  const float rs = rsqrtf(__shfl_sync(0xffffffffu, warp_sum(v), 0) / C + (float)kEps);
  if (lane == 0) {
    mean[i] = mu;
    rstd[i] = rs;
  }
  for (int j = lane; j < C; j += 32) out[(size_t)i * C + j] = ((xr[j] - mu) * rs) * w[j] + b[j];
}

// ---- backward kernels: g, x, dx: (N, C); w, dw, db: (C); mean, rstd: (N) ---------------------------
__global__ void layernorm_backward_dx1(const float* g, const float* x, const float* w, const float* mean,
                                       const float* rstd, int N, int C, float* dx) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= N) return;
  const double mu = mean[i], rs = rstd[i];
  double a = 0, bs = 0;
  for (int j = 0; j < C; ++j) {
    const double gw = (double)g[(size_t)i * C + j] * w[j];
    a += gw;
    bs += gw * ((x[(size_t)i * C + j] - mu) * rs);
  }
  a /= C;
  bs /= C;
  for (int j = 0; j < C; ++j) {
    const double gw = (double)g[(size_t)i * C + j] * w[j], xh = (x[(size_t)i * C + j] - mu) * rs;
    dx[(size_t)i * C + j] = (float)(rs * (gw - a - xh * bs));
  }
}

__global__ void layernorm_backward_dwdb1(const float* g, const float* x, const float* mean, const float* rstd, int N,
                                         int C, float* dw, float* db) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= C) return;
  double sw = 0, sb = 0;
  for (int i = 0; i < N; ++i) {
    const double gv = g[(size_t)i * C + j];
    sw += gv * ((x[(size_t)i * C + j] - (double)mean[i]) * (double)rstd[i]);
    sb += gv;
  }
  dw[j] = (float)sw;
  db[j] = (float)sb;
}

__global__ void layernorm_backward_dx2(const float* g, const float* x, const float* w, const float* mean,
                                       const float* rstd, int N, int C, float* dx) {
  __shared__ double sd[33];
  const int i = blockIdx.x;
  const double mu = mean[i], rs = rstd[i];
  double a = 0, bs = 0;
  for (int j = threadIdx.x; j < C; j += blockDim.x) {
    const double gw = (double)g[(size_t)i * C + j] * w[j];
    a += gw;
    bs += gw * ((x[(size_t)i * C + j] - mu) * rs);
  }
  a = block_sum(a, sd) / C;
  bs = block_sum(bs, sd) / C;
  for (int j = threadIdx.x; j < C; j += blockDim.x) {
    const double gw = (double)g[(size_t)i * C + j] * w[j], xh = (x[(size_t)i * C + j] - mu) * rs;
    dx[(size_t)i * C + j] = (float)(rs * (gw - a - xh * bs));
  }
}

constexpr int kRowsPerChunk = 32;

// grid (ceil(C / blockDim.x), nchunks); pw, pb: (nchunks, C) float64.
__global__ void layernorm_backward_partials2(const float* g, const float* x, const float* mean, const float* rstd,
                                             int N, int C, double* pw, double* pb) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= C) return;
  const int c = blockIdx.y, r0 = c * kRowsPerChunk, r1 = min(N, r0 + kRowsPerChunk);
  double sw = 0, sb = 0;
  for (int i = r0; i < r1; ++i) {
    const double gv = g[(size_t)i * C + j];
    sw += gv * ((x[(size_t)i * C + j] - (double)mean[i]) * (double)rstd[i]);
    sb += gv;
  }
  pw[(size_t)c * C + j] = sw;
  pb[(size_t)c * C + j] = sb;
}

__global__ void layernorm_backward_sum2(const double* pw, const double* pb, int nchunks, int C, float* dw, float* db) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= C) return;
  double sw = 0, sb = 0;
  for (int c = 0; c < nchunks; ++c) {
    sw += pw[(size_t)c * C + j];
    sb += pb[(size_t)c * C + j];
  }
  dw[j] = (float)sw;
  db[j] = (float)sb;
}

int main(int argc, char** argv) {
  const int N = 8 * 1024, C = 768;
  std::printf("layernorm, N = %d rows, C = %d\n", N, C);
  std::vector<float> x = random_vector((size_t)N * C, -2.f, 2.f, 1), w = random_vector(C, 0.5f, 1.5f, 2),
                     b = random_vector(C, -0.5f, 0.5f, 3), g = random_vector((size_t)N * C, -1.f, 1.f, 4);
  std::vector<float> out((size_t)N * C), mean(N), rstd(N), dx((size_t)N * C), dw(C), db(C);
  layernorm_forward_cpu(x.data(), w.data(), b.data(), N, C, out.data(), mean.data(), rstd.data());
  layernorm_backward_cpu(g.data(), x.data(), w.data(), mean.data(), rstd.data(), N, C, dx.data(), dw.data(), db.data());
  float *d_x = to_device(x), *d_w = to_device(w), *d_b = to_device(b), *d_g = to_device(g);
  float *d_out, *d_mean, *d_rstd, *d_dx, *d_dw, *d_db;
  double *d_pw, *d_pb;
  const int nchunks = ceil_div(N, kRowsPerChunk);
  DEV_CHECK(cudaMalloc(&d_out, (size_t)N * C * 4));
  DEV_CHECK(cudaMalloc(&d_dx, (size_t)N * C * 4));
  DEV_CHECK(cudaMalloc(&d_mean, N * 4));
  DEV_CHECK(cudaMalloc(&d_rstd, N * 4));
  DEV_CHECK(cudaMalloc(&d_dw, C * 4));
  DEV_CHECK(cudaMalloc(&d_db, C * 4));
  DEV_CHECK(cudaMalloc(&d_pw, (size_t)nchunks * C * 8));
  DEV_CHECK(cudaMalloc(&d_pb, (size_t)nchunks * C * 8));
  bool ok = true;
  const double bytes_fwd = 2.0 * N * C * 4, bytes_bwd = 3.0 * N * C * 4;
  const double copy_gbs = copy_bandwidth_gbs((size_t)N * C * 4);

  auto fwd = [&](int v) {
    if (v == 1) layernorm_forward1<<<ceil_div(N, 128), 128>>>(d_x, d_w, d_b, N, C, d_out, d_mean, d_rstd);
    if (v == 2) layernorm_forward2<<<N, 256>>>(d_x, d_w, d_b, N, C, d_out, d_mean, d_rstd);
    if (v == 3) layernorm_forward3<<<ceil_div(N, 8), 256>>>(d_x, d_w, d_b, N, C, d_out, d_mean, d_rstd);
    DEV_CHECK(cudaGetLastError());
  };
  for (int v = 1; v <= 3; ++v) {
    std::printf("forward version %d\n", v);
    fwd(v);
    DEV_CHECK(cudaDeviceSynchronize());
    // version 3 uses float32 statistics: a looser tolerance
    const double atol = v == 3 ? 1e-4 : 1e-5;
    ok &= validate("out", d_out, out, atol, 1e-5);
    ok &= validate("mean", d_mean, mean, atol, 1e-5);
    ok &= validate("rstd", d_rstd, rstd, atol, 1e-5);
    const float ms = time_ms([&] { fwd(v); }, v == 1 ? 5 : 50);
    const double gbs = bytes_fwd / (ms * 1e-3) / 1e9;
    std::printf("  %.4f ms, %.1f GB/s (%.0f%% of copy)\n", ms, gbs, 100.0 * gbs / copy_gbs);
    std::printf("BENCH layernorm_fwd v%d ms=%.4f\n", v, ms);  // for tools/gpu_check.sh
    std::printf("BENCH layernorm_fwd_gbs v%d gbs=%.1f\n", v, gbs);
  }
  // the backward uses the library forward's statistics
  fwd(2);
  auto bwd = [&](int v) {
    if (v == 1) {
      layernorm_backward_dx1<<<ceil_div(N, 128), 128>>>(d_g, d_x, d_w, d_mean, d_rstd, N, C, d_dx);
      layernorm_backward_dwdb1<<<ceil_div(C, 128), 128>>>(d_g, d_x, d_mean, d_rstd, N, C, d_dw, d_db);
    } else {
      layernorm_backward_dx2<<<N, 256>>>(d_g, d_x, d_w, d_mean, d_rstd, N, C, d_dx);
      layernorm_backward_partials2<<<dim3(ceil_div(C, 128), nchunks), 128>>>(d_g, d_x, d_mean, d_rstd, N, C, d_pw, d_pb);
      layernorm_backward_sum2<<<ceil_div(C, 256), 256>>>(d_pw, d_pb, nchunks, C, d_dw, d_db);
    }
    DEV_CHECK(cudaGetLastError());
  };
  for (int v = 1; v <= 2; ++v) {
    std::printf("backward version %d\n", v);
    bwd(v);
    DEV_CHECK(cudaDeviceSynchronize());
    ok &= validate("dinp", d_dx, dx, 1e-5, 1e-5);
    ok &= validate("dweight", d_dw, dw, 1e-3, 1e-5);
    ok &= validate("dbias", d_db, db, 1e-3, 1e-5);
    const float ms = time_ms([&] { bwd(v); }, v == 1 ? 5 : 50);
    const double gbs = bytes_bwd / (ms * 1e-3) / 1e9;
    std::printf("  %.4f ms, %.1f GB/s (inputs g, x + output dinp; %.0f%% of copy)\n", ms, gbs, 100.0 * gbs / copy_gbs);
    std::printf("BENCH layernorm_bwd v%d ms=%.4f\n", v, ms);  // for tools/gpu_check.sh
    std::printf("BENCH layernorm_bwd_gbs v%d gbs=%.1f\n", v, gbs);
  }
  std::printf(ok ? "all versions match the CPU reference\n" : "SOME VERSIONS FAILED\n");
  return ok ? 0 : 1;
}
