// The simulator's seeded random helpers and its image space: the text-to-image map, entity
// prototypes, background and noise directions (see simulate_parts.h, docs/simulator.md).
#include "data/sim/simulate_parts.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace lm::data::sim {

// ---- hashing / random helpers ---------------------------------------------------------

uint64_t splitmix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}
uint64_t derive(uint64_t a, uint64_t b) { return splitmix(a ^ splitmix(b + 0x632BE59BD9B4E019ull)); }
uint64_t hash_str(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

double next_normal(Generator& g) { return philox_normal(g.seed(), g.advance(1)); }

// Marsaglia-Tsang gamma(a, 1); a < 1 via the U^(1/a) boost.
double next_gamma(Generator& g, double a) {
  if (a <= 0) return 0.0;
  if (a < 1.0) {
    double u = g.next_uniform();
    return next_gamma(g, a + 1.0) * std::pow(u, 1.0 / a);
  }
  double d = a - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
  for (;;) {
    double x = next_normal(g), v = 1.0 + c * x;
    if (v <= 0) continue;
    v = v * v * v;
    double u = g.next_uniform();
    if (u < 1.0 - 0.0331 * x * x * x * x) return d * v;
    if (u > 0 && std::log(u) < 0.5 * x * x + d * (1.0 - v + std::log(v))) return d * v;
  }
}

// Dirichlet(alpha); entries with alpha == 0 stay 0. Falls back to alpha/sum when every
// gamma draw underflows.
std::vector<double> next_dirichlet(Generator& g, const std::vector<double>& alpha) {
  std::vector<double> x(alpha.size(), 0.0);
  double s = 0;
  for (size_t i = 0; i < alpha.size(); ++i) s += (x[i] = next_gamma(g, alpha[i]));
  if (!(s > 0)) {
    s = 0;
    for (size_t i = 0; i < alpha.size(); ++i) s += (x[i] = alpha[i]);
  }
  for (double& v : x) v /= s;
  return x;
}

int next_categorical(Generator& g, const std::vector<double>& p) {
  double u = g.next_uniform(), acc = 0;
  int last = -1;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] <= 0) continue;
    last = (int)i;
    acc += p[i];
    if (u < acc) return (int)i;
  }
  return last;
}

std::vector<double> normalized(std::vector<double> v) {
  double s = 0;
  for (double x : v) s += x;
  if (s > 0)
    for (double& x : v) x /= s;
  return v;
}

// Fills `v` (n values) with standard normals of stream `key`, starting at counter `start`.
void fill_normal(double* v, int64_t n, uint64_t key, uint64_t start) {
  for (int64_t i = 0; i < n; ++i) v[i] = philox_normal(key, start + (uint64_t)i);
}

double norm2(const double* v, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += v[i] * v[i];
  return std::sqrt(s);
}
void scale_to_unit(double* v, int64_t n) {
  double s = norm2(v, n);
  if (s > 0)
    for (int64_t i = 0; i < n; ++i) v[i] /= s;
}

// Gram-Schmidt (twice, for stability) on `count` vectors of length `len` stored row by row.
void orthonormalize_rows(std::vector<double>& m, int64_t count, int64_t len) {
  for (int64_t i = 0; i < count; ++i) {
    double* r = m.data() + i * len;
    for (int pass = 0; pass < 2; ++pass)
      for (int64_t j = 0; j < i; ++j) {
        const double* q = m.data() + j * len;
        double d = 0;
        for (int64_t k = 0; k < len; ++k) d += r[k] * q[k];
        for (int64_t k = 0; k < len; ++k) r[k] -= d * q[k];
      }
    scale_to_unit(r, len);
  }
}

Tensor to_tensor(const std::vector<double>& v, int64_t rows, int64_t cols) {
  std::vector<float> f(v.begin(), v.end());
  return Tensor::from_vector(f, {rows, cols});
}


Space build_space(const SimulateOptions& o, const Tensor& emb_in) {
  if (emb_in.dim() != 2) throw std::runtime_error("simulate: text embeddings must be a (K, Dt) matrix, got " + emb_in.str());
  Tensor emb = emb_in.to(Device::cpu()).to(DType::F32).contiguous();
  Space s;
  s.D = o.dim;
  s.K = emb.shape()[0];
  s.Dt = emb.shape()[1];
  if (s.K < 1 || s.Dt < 1) throw std::runtime_error("simulate: empty text embeddings " + emb.str());
  const float* z = emb.data<float>();
  for (int64_t i = 0; i < s.K * s.Dt; ++i)
    if (!std::isfinite(z[i])) throw std::runtime_error("simulate: text embeddings contain NaN/Inf");
  const int64_t D = s.D, Dt = s.Dt, K = s.K;
  // Depends on the task and the widths only: like a frozen patch encoder, the image space is
  // the same for every seed, so datasets drawn with different seeds share it.
  const uint64_t base = derive(derive(hash_str(o.task), (uint64_t)D), (uint64_t)Dt);

  // A: orthonormal columns (D >= Dt) or rows (D < Dt).
  s.A.assign(D * Dt, 0.0);
  if (D >= Dt) {
    std::vector<double> cols(Dt * D);
    fill_normal(cols.data(), Dt * D, derive(base, 1), 0);
    orthonormalize_rows(cols, Dt, D);
    for (int64_t c = 0; c < Dt; ++c)
      for (int64_t r = 0; r < D; ++r) s.A[r * Dt + c] = cols[c * D + r];
  } else {
    fill_normal(s.A.data(), D * Dt, derive(base, 1), 0);
    orthonormalize_rows(s.A, D, Dt);
  }
  // Centred, renormalised text embeddings: the component every prior shares (the "this is a
  // pathology sentence" direction) carries no information about which entity is which.
  std::vector<double> mean(Dt, 0.0), zc(K * Dt);
  for (int64_t k = 0; k < K; ++k)
    for (int64_t j = 0; j < Dt; ++j) mean[j] += z[k * Dt + j] / (double)K;
  for (int64_t k = 0; k < K; ++k) {
    for (int64_t j = 0; j < Dt; ++j) zc[k * Dt + j] = K > 1 ? z[k * Dt + j] - mean[j] : z[k * Dt + j];
    scale_to_unit(zc.data() + k * Dt, Dt);
  }
  s.u.assign(K * D, 0.0);
  s.m.assign(K * D, 0.0);
  std::vector<double> r(K * D);
  fill_normal(r.data(), K * D, derive(base, 2), 0);
  const double a = std::clamp(o.alignment, 0.0, 1.0), sa = std::sqrt(a), sb = std::sqrt(1.0 - a);
  for (int64_t k = 0; k < K; ++k) {
    double* u = s.u.data() + k * D;
    for (int64_t i = 0; i < D; ++i) {
      double acc = 0;
      for (int64_t j = 0; j < Dt; ++j) acc += s.A[i * Dt + j] * zc[k * Dt + j];
      u[i] = acc;
    }
    scale_to_unit(u, D);
    double* rk = r.data() + k * D;
    scale_to_unit(rk, D);
    double* m = s.m.data() + k * D;
    for (int64_t i = 0; i < D; ++i) m[i] = sa * u[i] + sb * rk[i];
    if (norm2(m, D) < 1e-9) std::copy(rk, rk + D, m);  // a text that centred to zero
    scale_to_unit(m, D);
  }
  auto unit_rows = [&](std::vector<double>& v, int64_t rows, uint64_t stream) {
    v.assign(rows * D, 0.0);
    fill_normal(v.data(), rows * D, derive(base, stream), 0);
    for (int64_t i = 0; i < rows; ++i) scale_to_unit(v.data() + i * D, D);
  };
  unit_rows(s.bg, kBackground, 3);
  unit_rows(s.shared, kSharedDirs, 4);
  unit_rows(s.ent, K * kEntityDirs, 5);
  unit_rows(s.stain, kStainDirs, 6);
  return s;
}

void validate(const SimulateOptions& o, const TaskPriors& p) {
  auto bad = [](const std::string& m) { throw std::invalid_argument("simulate: " + m); };
  if (o.slides < p.num_classes())
    bad("--slides must be at least the number of classes (" + std::to_string(p.num_classes()) + "), got " + std::to_string(o.slides));
  if (!(o.alignment >= 0.0 && o.alignment <= 1.0)) bad("--alignment must lie in [0, 1]");
  if (!(o.size_scale > 0.0 && o.size_scale <= 100.0)) bad("--size-scale must lie in (0, 100]");
  if (o.dim < 8 || o.dim > 65536) bad("--dim must lie in [8, 65536]");
  if (!(o.background_fraction >= 0.0 && o.background_fraction <= 0.6)) bad("background fraction must lie in [0, 0.6]");
  if (!(o.isotropic_noise >= 0 && o.structured_noise >= 0 && o.slide_shift >= 0)) bad("noise levels must be >= 0");
  if (!(o.mixture_concentration > 0)) bad("mixture concentration must be > 0");
  if (!(o.tumour_content_min >= 0 && o.tumour_content_min <= o.tumour_content_max && o.tumour_content_max <= 1))
    bad("tumour content range must satisfy 0 <= min <= max <= 1");
  if (o.patch_size <= 0) bad("patch size must be > 0");
}

}  // namespace lm::data::sim
