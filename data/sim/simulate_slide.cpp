// One simulated slide: its tissue layout, the entity mixture of its patches, and their features
// (see simulate_parts.h, docs/simulator.md).
#include "data/sim/simulate_parts.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace lm::data::sim {

// ---- one slide --------------------------------------------------------------------------


int64_t task_median_patches(const std::string& task) {
  if (task == "camelyon16") return 6000;
  if (task == "nsclc") return 4500;
  return 4000;
}

namespace {

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

}  // namespace

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

}  // namespace lm::data::sim
