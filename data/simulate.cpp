// The whole-slide simulator (see simulate.h and docs/simulator.md for the generative model).
//
// Randomness: every draw comes from Philox (tensor/rng.h) under keys derived by hashing
// (seed, task, purpose, slide index), and per-patch noise is indexed by the patch number, so
// the output does not depend on the thread count and the same options give the same bytes.
#include "data/simulate.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <numeric>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>

#include "data/atomic_file.h"
#include "data/formats/hdf5_writer.h"
#include "data/priors_files.h"
#include "data/tables.h"
#include "tensor/rng.h"

namespace lm::data {

namespace fs = std::filesystem;

// ---- priors -------------------------------------------------------------------------------

std::vector<std::string> TaskPriors::bag_priors() const {
  std::vector<std::string> out = bag_low;
  out.insert(out.end(), bag_high.begin(), bag_high.end());
  return out;
}

std::string TaskPriors::entity_name(size_t k) const {
  const std::string& t = entities.at(k);
  size_t p = t.find(':');
  return p == std::string::npos ? t : t.substr(0, p);
}

std::vector<std::string> simulate_task_names() { return {"rcc", "nsclc", "camelyon16"}; }

const TaskPriors& task_priors(const std::string& task) {
  if (task == "rcc") return detail::rcc_priors();
  if (task == "nsclc") return detail::nsclc_priors();
  if (task == "camelyon16") return detail::camelyon16_priors();
  throw std::invalid_argument("unknown simulation task '" + task + "' (expected rcc, nsclc or camelyon16)");
}

namespace {

constexpr const char* kVersion = "libramil simulator v1";
constexpr int kSharedDirs = 8;     // low-rank structured noise shared by every patch
constexpr int kEntityDirs = 3;     // low-rank structured noise specific to each entity
constexpr int kStainDirs = 4;      // low-dimensional part of the per-slide stain/scanner shift
constexpr int kBackground = 6;     // background prototypes (glass, blur, fat-like voids, pen, ...)
constexpr uint64_t kNoiseStride = 16;  // extra normals per patch beyond D (>= shared+entity dirs)

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

// The image space in double precision (rows of length D).
struct Space {
  int64_t D = 0, Dt = 0, K = 0;
  std::vector<double> A;       // (D, Dt)
  std::vector<double> u, m;    // (K, D)
  std::vector<double> bg;      // (kBackground, D)
  std::vector<double> shared;  // (kSharedDirs, D)
  std::vector<double> ent;     // (K * kEntityDirs, D)
  std::vector<double> stain;   // (kStainDirs, D)
};

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

// ---- one slide --------------------------------------------------------------------------

struct Slide {
  std::string name;
  int label = 0;
  int64_t n = 0;
  std::vector<int64_t> coords;   // (n, 2): x, y
  std::vector<int32_t> entity;   // (n), -1 background
  std::vector<int32_t> bg_type;  // (n), background prototype or -1
  std::vector<float> features;   // (n, D)
  double focal_fraction = 0;
  int64_t background = 0;
};

int64_t task_median_patches(const std::string& task) {
  if (task == "camelyon16") return 6000;
  if (task == "nsclc") return 4500;
  return 4000;
}

// Tissue layout: the n cells of a grid with the highest value of a smooth blob field
// (1-3 ellipses with wavy outlines, plus a little per-cell roughness), in scan order.
struct Layout {
  std::vector<int64_t> gx, gy;
  std::vector<double> v;  // field value (high = deep inside tissue)
};

Layout make_layout(Generator& g, int64_t n) {
  struct Blob {
    double cx, cy, rx, ry, th, amp[3], ph[3];
  };
  int nb = 1;
  double u = g.next_uniform();
  if (u > 0.5) nb = 2;
  if (u > 0.8) nb = 3;
  std::vector<Blob> blobs;
  for (int b = 0; b < nb; ++b) {
    Blob bl{};
    bl.rx = 0.6 + 0.4 * g.next_uniform();
    bl.ry = 0.35 + 0.45 * g.next_uniform();
    bl.th = 3.141592653589793 * g.next_uniform();
    if (b == 0) {
      bl.cx = bl.cy = 0;
    } else {
      double ang = 6.283185307179586 * g.next_uniform(), dist = 1.0 + 0.7 * g.next_uniform();
      bl.cx = blobs[0].cx + dist * std::cos(ang);
      bl.cy = blobs[0].cy + dist * std::sin(ang);
      bl.rx *= 0.7;
      bl.ry *= 0.7;
    }
    for (int k = 0; k < 3; ++k) {
      bl.amp[k] = (0.12 / (k + 1)) * g.next_uniform();
      bl.ph[k] = 6.283185307179586 * g.next_uniform();
    }
    blobs.push_back(bl);
  }
  auto field = [&](double x, double y) {
    double best = -1e9;
    for (const Blob& b : blobs) {
      double dx = x - b.cx, dy = y - b.cy, c = std::cos(b.th), s = std::sin(b.th);
      double px = (c * dx + s * dy) / b.rx, py = (-s * dx + c * dy) / b.ry;
      double rho = std::sqrt(px * px + py * py), phi = std::atan2(py, px);
      double R = 1.0;
      for (int k = 0; k < 3; ++k) R += b.amp[k] * std::cos((k + 2) * phi + b.ph[k]);
      best = std::max(best, 1.0 - rho / R);
    }
    return best;
  };
  double x0 = 1e9, x1 = -1e9, y0 = 1e9, y1 = -1e9;
  for (const Blob& b : blobs) {
    double r = 1.3 * std::max(b.rx, b.ry);
    x0 = std::min(x0, b.cx - r); x1 = std::max(x1, b.cx + r);
    y0 = std::min(y0, b.cy - r); y1 = std::max(y1, b.cy + r);
  }
  // Tissue area from a coarse raster, then the grid step that puts ~1.1 n cells inside.
  const int R = 120;
  int inside = 0;
  for (int i = 0; i < R; ++i)
    for (int j = 0; j < R; ++j)
      if (field(x0 + (x1 - x0) * (j + 0.5) / R, y0 + (y1 - y0) * (i + 0.5) / R) > 0) ++inside;
  double area = std::max(1, inside) * (x1 - x0) * (y1 - y0) / (R * R);
  double h = std::sqrt(area / (1.1 * (double)n));
  int64_t W = (int64_t)std::ceil((x1 - x0) / h) + 1, H = (int64_t)std::ceil((y1 - y0) / h) + 1;
  const uint64_t rough_key = g.seed() ^ 0x5EEDull;
  const uint64_t rough_off = g.advance((uint64_t)(W * H));
  std::vector<double> val(W * H);
  for (int64_t i = 0; i < H; ++i)
    for (int64_t j = 0; j < W; ++j)
      val[i * W + j] = field(x0 + h * (j + 0.5), y0 + h * (i + 0.5)) +
                       0.04 * philox_uniform(rough_key, rough_off + (uint64_t)(i * W + j));
  std::vector<int64_t> idx(W * H);
  std::iota(idx.begin(), idx.end(), 0);
  int64_t take = std::min<int64_t>(n, W * H);
  std::partial_sort(idx.begin(), idx.begin() + take, idx.end(),
                    [&](int64_t a, int64_t b) { return val[a] != val[b] ? val[a] > val[b] : a < b; });
  idx.resize(take);
  std::sort(idx.begin(), idx.end());  // scan order: row by row
  Layout L;
  for (int64_t c : idx) {
    L.gx.push_back(c % W);
    L.gy.push_back(c / W);
    L.v.push_back(val[c]);
  }
  return L;
}

Slide make_slide(const SimulateOptions& o, const TaskPriors& p, const Space& sp, int index, int label,
                 const std::vector<std::vector<bool>>& characteristic) {
  const uint64_t skey = derive(derive(derive(o.seed, hash_str(o.task)), 0x51DEull), (uint64_t)index);
  Generator g(skey);
  Slide s;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s_sim_%04d", o.task.c_str(), index + 1);
  s.name = buf;
  s.label = label;
  const int64_t K = sp.K, D = sp.D;

  // Bag size: log-normal around the task's median, scaled.
  double ln = std::log((double)task_median_patches(o.task)) + 0.8 * next_normal(g);
  double base_n = std::clamp(std::exp(ln), 250.0, 40000.0);
  int64_t n = std::max<int64_t>(16, (int64_t)std::llround(base_n * o.size_scale));
  s.n = n;
  Layout L = make_layout(g, n);
  n = s.n = (int64_t)L.gx.size();
  const int64_t ox = 2 + (int64_t)g.next_below(30), oy = 2 + (int64_t)g.next_below(30);
  s.coords.resize(2 * n);
  for (int64_t j = 0; j < n; ++j) {
    s.coords[2 * j] = (ox + L.gx[j]) * o.patch_size;
    s.coords[2 * j + 1] = (oy + L.gy[j]) * o.patch_size;
  }

  // Background: 70% at the tissue edge (lowest field), 30% scattered.
  double bfrac = std::min(0.9, o.background_fraction * (0.5 + g.next_uniform()));
  int64_t nbg = std::min<int64_t>(n - 1, (int64_t)std::llround(bfrac * (double)n));
  s.entity.assign(n, 0);
  s.bg_type.assign(n, -1);
  std::vector<bool> is_bg(n, false);
  {
    std::vector<int64_t> ord(n);
    std::iota(ord.begin(), ord.end(), 0);
    std::sort(ord.begin(), ord.end(), [&](int64_t a, int64_t b) { return L.v[a] != L.v[b] ? L.v[a] < L.v[b] : a < b; });
    int64_t edge = (int64_t)std::llround(0.7 * (double)nbg);
    for (int64_t i = 0; i < edge; ++i) is_bg[ord[i]] = true;
    // scattered: partial Fisher-Yates over the remaining cells
    std::vector<int64_t> rest(ord.begin() + edge, ord.end());
    for (int64_t i = 0; i < nbg - edge; ++i) {
      int64_t j = i + (int64_t)g.next_below((uint64_t)(rest.size() - i));
      std::swap(rest[i], rest[j]);
      is_bg[rest[i]] = true;
    }
    for (int64_t j = 0; j < n; ++j)
      if (is_bg[j]) {
        s.entity[j] = -1;
        s.bg_type[j] = (int32_t)g.next_below(kBackground);
      }
    s.background = nbg;
  }
  std::vector<int64_t> tissue;
  for (int64_t j = 0; j < n; ++j)
    if (!is_bg[j]) tissue.push_back(j);
  const int64_t nt = (int64_t)tissue.size();

  // Entity mixture of this slide.
  const bool focal = p.focal_class >= 0 && label == p.focal_class;
  const int mix_class = focal ? p.focal_base_class : label;
  std::vector<double> w(K), spec(K, 0.0), rest(K, 0.0);
  for (int64_t k = 0; k < K; ++k) w[k] = p.class_weight[k][mix_class];
  w = normalized(w);
  const double kappa = o.mixture_concentration;
  std::vector<double> mix(K, 0.0);
  if (p.focal_class >= 0) {
    std::vector<double> alpha(K);
    for (int64_t k = 0; k < K; ++k) alpha[k] = kappa * w[k];
    mix = next_dirichlet(g, alpha);
  } else {
    // tumour content t: share of tissue from the class's characteristic entities; the rest
    // from shared entities and other classes' look-alikes, each part Dirichlet-jittered.
    double t = o.tumour_content_min + (o.tumour_content_max - o.tumour_content_min) * g.next_uniform();
    for (int64_t k = 0; k < K; ++k) (characteristic[mix_class][k] ? spec : rest)[k] = w[k];
    spec = normalized(spec);
    rest = normalized(rest);
    for (double& a : spec) a *= kappa;
    for (double& a : rest) a *= kappa;
    std::vector<double> ds = next_dirichlet(g, spec), dr = next_dirichlet(g, rest);
    for (int64_t k = 0; k < K; ++k) mix[k] = t * ds[k] + (1.0 - t) * dr[k];
  }

  // Focal (metastatic) cells: those nearest to 1-3 foci.
  std::vector<bool> is_focal(n, false);
  if (focal && nt > 0) {
    double f = p.focal_min + (p.focal_max - p.focal_min) * g.next_uniform();
    int64_t nf = std::clamp<int64_t>((int64_t)std::llround(f * (double)n), 1, nt);
    int nfoci = 1 + (g.next_uniform() < 0.4) + (g.next_uniform() < 0.15);
    std::vector<int64_t> foci;
    for (int i = 0; i < nfoci; ++i) foci.push_back(tissue[g.next_below((uint64_t)nt)]);
    std::vector<double> d(nt);
    const uint64_t off = g.advance((uint64_t)nt);
    for (int64_t i = 0; i < nt; ++i) {
      int64_t j = tissue[i];
      double best = 1e300;
      for (int64_t c : foci) {
        double dx = (double)(L.gx[j] - L.gx[c]), dy = (double)(L.gy[j] - L.gy[c]);
        best = std::min(best, std::sqrt(dx * dx + dy * dy));
      }
      d[i] = best + 1.5 * philox_uniform(g.seed(), off + (uint64_t)i);  // ragged border
    }
    std::vector<int64_t> ord(nt);
    std::iota(ord.begin(), ord.end(), 0);
    std::partial_sort(ord.begin(), ord.begin() + nf, ord.end(),
                      [&](int64_t a, int64_t b) { return d[a] != d[b] ? d[a] < d[b] : a < b; });
    std::vector<double> fw(K);
    for (int64_t k = 0; k < K; ++k) fw[k] = p.class_weight[k][p.focal_class];
    fw = normalized(fw);
    for (int64_t i = 0; i < nf; ++i) {
      int64_t j = tissue[ord[i]];
      is_focal[j] = true;
      s.entity[j] = next_categorical(g, fw);
    }
    s.focal_fraction = (double)nf / (double)n;
  }

  // Spatially clustered entities: weighted Voronoi regions (~60 patches each) whose entity is
  // drawn from the slide mixture; 10% of cells draw their own entity (scattered elements).
  if (nt > 0) {
    int64_t M = std::clamp<int64_t>(nt / 60, 3, 600);
    std::vector<int64_t> centre(M);
    std::vector<double> wscale(M);
    std::vector<int32_t> cent(M);
    for (int64_t r = 0; r < M; ++r) {
      centre[r] = tissue[g.next_below((uint64_t)nt)];
      wscale[r] = std::exp(0.7 * next_normal(g));
      cent[r] = (int32_t)next_categorical(g, mix);
    }
    const uint64_t off = g.advance(2 * (uint64_t)nt);
    std::vector<double> cdf(K);
    double acc = 0;
    for (int64_t k = 0; k < K; ++k) cdf[k] = (acc += mix[k]);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < nt; ++i) {
      int64_t j = tissue[i];
      if (is_focal[j]) continue;
      int32_t e;
      if (philox_uniform(g.seed(), off + 2 * (uint64_t)i) < 0.1) {
        double u = philox_uniform(g.seed(), off + 2 * (uint64_t)i + 1) * acc;
        e = (int32_t)(std::upper_bound(cdf.begin(), cdf.end(), u) - cdf.begin());
        e = std::min<int32_t>(e, (int32_t)K - 1);
        while (e > 0 && mix[e] <= 0) --e;
      } else {
        double best = 1e300;
        int64_t br = 0;
        for (int64_t r = 0; r < M; ++r) {
          int64_t c = centre[r];
          double dx = (double)(L.gx[j] - L.gx[c]), dy = (double)(L.gy[j] - L.gy[c]);
          double dd = (dx * dx + dy * dy) / wscale[r];
          if (dd < best) best = dd, br = r;
        }
        e = cent[br];
      }
      s.entity[j] = e;
    }
  }

  // Per-slide stain/scanner shift and intensity.
  std::vector<double> shift(D);
  {
    uint64_t off = g.advance((uint64_t)D);
    fill_normal(shift.data(), D, g.seed(), off);
    std::vector<double> c(kStainDirs);
    for (double& x : c) x = next_normal(g);
    for (int64_t i = 0; i < D; ++i) {
      double st = 0;
      for (int l = 0; l < kStainDirs; ++l) st += c[l] * sp.stain[l * D + i];
      shift[i] = o.slide_shift * (std::sqrt(0.5) * shift[i] / std::sqrt((double)D) + std::sqrt(0.5) * st / std::sqrt((double)kStainDirs));
    }
  }
  const double intensity = 0.85 + 0.3 * g.next_uniform();

  // Patch features.
  const uint64_t nkey = derive(skey, 0xFEA7ull);
  const uint64_t stride = (uint64_t)D + kNoiseStride;
  s.features.resize(n * D);
#pragma omp parallel
  {
    std::vector<double> z(stride), x(D);
#pragma omp for schedule(static)
    for (int64_t j = 0; j < n; ++j) {
      fill_normal(z.data(), (int64_t)stride, nkey, (uint64_t)j * stride);
      const int32_t e = s.entity[j];
      const double* proto = e >= 0 ? sp.m.data() + e * D : sp.bg.data() + s.bg_type[j] * D;
      for (int64_t i = 0; i < D; ++i) x[i] = intensity * proto[i] + o.isotropic_noise * z[i] + shift[i];
      for (int l = 0; l < kSharedDirs; ++l) {
        double c = o.structured_noise * z[D + l];
        const double* dir = sp.shared.data() + l * D;
        for (int64_t i = 0; i < D; ++i) x[i] += c * dir[i];
      }
      if (e >= 0)
        for (int l = 0; l < kEntityDirs; ++l) {
          double c = o.structured_noise * z[D + kSharedDirs + l];
          const double* dir = sp.ent.data() + (e * kEntityDirs + l) * D;
          for (int64_t i = 0; i < D; ++i) x[i] += c * dir[i];
        }
      float* out = s.features.data() + j * D;
      for (int64_t i = 0; i < D; ++i) out[i] = (float)x[i];
    }
  }
  return s;
}

// ---- HDF5 output ------------------------------------------------------------------------

std::string simulated_statement(const SimulateOptions& o) {
  return std::string(kVersion) + ": SIMULATED DATA, not real whole-slide images. Features were drawn from a " +
         "synthetic generative model (docs/simulator.md), task " + o.task + ", seed " + std::to_string(o.seed) +
         "; do not use for clinical or biological conclusions.";
}

std::string fmt_double(double v) {
  std::ostringstream ss;
  ss.precision(6);
  ss << v;
  return ss.str();
}

// Through data/formats/hdf5_writer: built in memory, written with write_file_atomic, so a full
// disk is a plain write error (temporary removed, one line) and no HDF5 file is left half-closed
// for HDF5's exit handler to crash on (it did: "HDF5 failed to flush", then SIGSEGV).
void write_slide_h5(const std::string& path, const Slide& s, const SimulateOptions& o, const TaskPriors& p) {
  H5Writer w(path);
  const uint64_t n = (uint64_t)s.n, D = (uint64_t)o.dim;
  w.dataset_f32("features", {n, D}, s.features.data());
  w.dataset_i64("coords", {n, 2}, s.coords.data());
  w.dataset_i32("entity", {n}, s.entity.data());
  w.attr_string("/", "simulated", simulated_statement(o));
  w.attr_string("/", "task", o.task);
  w.attr_string("/", "class_name", p.class_names[s.label]);
  w.attr_i64("/", "label", s.label);
  w.attr_u64("/", "seed", o.seed);
  w.attr_f64("/", "alignment", o.alignment);
  w.attr_f64("/", "tumour_fraction", s.focal_fraction);
  w.attr_i64("/", "patch_size", o.patch_size);
  w.commit();
}

std::string readme_text(const SimulateOptions& o, const TaskPriors& p, const SimulateSummary& sum) {
  std::ostringstream r;
  r << "SIMULATED DATA - NOT REAL WHOLE-SLIDE IMAGES\n"
    << "============================================\n\n"
    << "Every file in this directory was produced by `libramil simulate` (" << kVersion << ").\n"
    << "No tissue was scanned and no patient is behind any of it: patch features are drawn from a\n"
    << "synthetic generative model in which each patch belongs to a pathological entity described by\n"
    << "the instance priors, and its feature is that entity's text embedding mapped into the image\n"
    << "space plus structured noise, a per-slide stain/scanner shift and uninformative background\n"
    << "patches. The data exist to test and benchmark the software and to measure the value of\n"
    << "language priors (--alignment); they support no clinical or biological conclusion.\n"
    << "The generative model is documented in docs/simulator.md of the libramil repository.\n\n"
    << "task:        " << o.task << "\n"
    << "classes:     ";
  for (int c = 0; c < p.num_classes(); ++c) r << (c ? ", " : "") << c << " = " << p.class_names[c];
  int64_t total = 0;
  for (auto& s : sum.slides) total += s.patches;
  r << "\nslides:      " << o.slides << " (" << total << " patches)\n"
    << "seed:        " << o.seed << "\n"
    << "alignment:   " << fmt_double(o.alignment) << "  (1 = image prototypes follow the text embeddings, 0 = text uninformative)\n"
    << "size scale:  " << fmt_double(o.size_scale) << "\n"
    << "feature dim: " << o.dim << " (text embedding dim " << sum.text_dim << ")\n"
    << "background:  " << fmt_double(o.background_fraction) << " mean share of background patches\n\n"
    << "Files\n"
    << "  features/<slide>.h5     CLAM-style bags: `features` float32 (N, D), `coords` int64 (N, 2)\n"
    << "                          (level-0 pixels, multiples of " << o.patch_size << "), `entity` int32 (N)\n"
    << "                          (ground-truth instance-prior index, -1 = background); attribute\n"
    << "                          `simulated` says these are simulated data\n"
    << "  labels.csv              name,label\n"
    << "  instance_priors.json    " << p.entities.size() << " entity descriptions (JSON list)\n"
    << "  bag_priors.csv          " << p.num_classes() << " low-resolution rows, then " << p.num_classes()
    << " high-resolution rows\n"
    << "  entities.csv            per slide and entity: ground-truth patch counts\n";
  return r.str();
}

// Writes the bags and tables of simulate_dataset into `root`, adding each file to `made`.
SimulateSummary write_dataset(const SimulateOptions& o, const TaskPriors& p, const Space& sp, const fs::path& root,
                              std::vector<fs::path>& made);

}  // namespace

SimulatedSpace simulated_space(const SimulateOptions& opts, const Tensor& text_emb) {
  Space s = build_space(opts, text_emb);
  SimulatedSpace out;
  out.text_map = to_tensor(s.A, s.D, s.Dt);
  out.text_dirs = to_tensor(s.u, s.K, s.D);
  out.prototypes = to_tensor(s.m, s.K, s.D);
  out.background = to_tensor(s.bg, kBackground, s.D);
  return out;
}

SimulateSummary simulate_dataset(const SimulateOptions& o, const EmbedTextsFn& embed_texts, const std::string& out_dir) {
  const TaskPriors& p = task_priors(o.task);
  validate(o, p);
  if (!embed_texts) throw std::invalid_argument("simulate: no text embedding function");
  Tensor emb = embed_texts(p.entities);
  if (!emb.defined() || emb.dim() != 2 || emb.shape()[0] != (int64_t)p.entities.size())
    throw std::runtime_error("simulate: the text encoder returned " + (emb.defined() ? emb.str() : std::string("nothing")) +
                             " for " + std::to_string(p.entities.size()) + " texts");
  Space sp = build_space(o, emb);

  const fs::path root(out_dir), fdir = root / "features";
  std::error_code ec;
  const bool made_root = !fs::exists(root, ec), made_fdir = !fs::exists(fdir, ec);
  prepare_output_dir(out_dir, o.overwrite);
  if (o.overwrite) {  // temporaries of this command's own files that a killed run left
    static const std::regex own("labels\\.csv|entities\\.csv|instance_priors\\.json|bag_priors\\.csv|README\\.txt|"
                                "(rcc|nsclc|camelyon16)_sim_[0-9]+\\.h5");
    for (const fs::path& d : {root, fdir})
      for (auto& e : fs::directory_iterator(d, ec))
        if (std::regex_match(atomic_target(e.path().filename().string()), own)) fs::remove(e.path(), ec);
  }
  fs::create_directories(fdir, ec);
  if (ec) throw std::runtime_error("cannot create directory " + fdir.string() + ": " + ec.message());
  // A failure from here on (a full disk, say) removes every file this call wrote and the
  // folders it made, so no partial dataset is left (files replaced under --overwrite are gone
  // either way).
  std::vector<fs::path> made;
  try {
    return write_dataset(o, p, sp, root, made);
  } catch (...) {
    for (const fs::path& f : made) fs::remove(f, ec);
    if (made_fdir) fs::remove(fdir, ec);  // only if empty
    if (made_root) fs::remove(root, ec);
    throw;
  }
}

namespace {

SimulateSummary write_dataset(const SimulateOptions& o, const TaskPriors& p, const Space& sp, const fs::path& root,
                              std::vector<fs::path>& made) {
  const fs::path fdir = root / "features";
  std::error_code ec;

  // Characteristic entities of each class: the class's weight dominates every other class's.
  const int C = p.num_classes();
  const int64_t K = (int64_t)p.entities.size();
  std::vector<std::vector<bool>> characteristic(C, std::vector<bool>(K, false));
  for (int c = 0; c < C; ++c)
    for (int64_t k = 0; k < K; ++k) {
      double other = 0;
      for (int d = 0; d < C; ++d)
        if (d != c) other = std::max(other, p.class_weight[k][d]);
      characteristic[c][k] = p.class_weight[k][c] > 0 && p.class_weight[k][c] >= 2.0 * other;
    }

  // Balanced labels in a seeded order.
  std::vector<int> labels(o.slides);
  for (int i = 0; i < o.slides; ++i) labels[i] = i % C;
  Generator lg(derive(derive(o.seed, hash_str(o.task)), 0x1ABE1ull));
  for (int i = o.slides - 1; i > 0; --i) std::swap(labels[i], labels[lg.next_below((uint64_t)i + 1)]);

  SimulateSummary sum;
  sum.text_dim = sp.Dt;
  std::set<std::string> written;
  std::ostringstream lab, ents;
  lab << "name,label\n";
  ents << "slide,label,entity,name,patches,fraction\n";
  for (int i = 0; i < o.slides; ++i) {
    Slide s = make_slide(o, p, sp, i, labels[i], characteristic);
    const std::string path = (fdir / (s.name + ".h5")).string();
    write_slide_h5(path, s, o, p);
    made.push_back(path);
    written.insert(s.name + ".h5");
    lab << s.name << "," << s.label << "\n";
    std::vector<int64_t> count(K + 1, 0);
    for (int32_t e : s.entity) ++count[e < 0 ? K : e];
    for (int64_t k = 0; k <= K; ++k) {
      if (count[k] == 0) continue;
      ents << s.name << "," << s.label << "," << (k == K ? -1 : k) << ","
           << csv_quoted(k == K ? std::string("background") : p.entity_name((size_t)k)) << "," << count[k] << ","
           << fmt_double((double)count[k] / (double)s.n) << "\n";
    }
    sum.slides.push_back({s.name, s.label, s.n, s.background, s.focal_fraction});
  }
  // With --overwrite: drop simulated bags of an earlier run that this run did not write, so
  // the features folder matches labels.csv.
  static const std::regex sim_name("(rcc|nsclc|camelyon16)_sim_[0-9]+\\.h5");
  for (auto& e : fs::directory_iterator(fdir, ec)) {
    std::string f = e.path().filename().string();
    if (std::regex_match(f, sim_name) && !written.count(f)) fs::remove(e.path(), ec);
  }

  for (const auto& [name, text] : std::vector<std::pair<const char*, std::string>>{
           {"labels.csv", lab.str()},
           {"entities.csv", ents.str()},
           {"instance_priors.json", instance_priors_json(p)},
           {"bag_priors.csv", bag_priors_csv(p)},
           {"README.txt", readme_text(o, p, sum)}}) {
    write_file_atomic((root / name).string(), text);
    made.push_back(root / name);
  }
  return sum;
}

}  // namespace

}  // namespace lm::data
