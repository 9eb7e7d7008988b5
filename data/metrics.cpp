// Accuracy, ROC-AUC and F1 as scikit-learn computes them. See metrics.h.
#include "data/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>

namespace lm::data {

namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();

int64_t check(const std::vector<double>& probs, const std::vector<int>& labels, int C, const char* fn) {
  if (C < 2) throw std::invalid_argument(std::string(fn) + ": need at least 2 classes, got " + std::to_string(C));
  const int64_t n = (int64_t)labels.size();
  if (n == 0) throw std::invalid_argument(std::string(fn) + ": no samples");
  if ((int64_t)probs.size() != n * C)
    throw std::invalid_argument(std::string(fn) + ": " + std::to_string(probs.size()) + " probabilities for " +
                                std::to_string(n) + " samples x " + std::to_string(C) + " classes");
  for (int64_t i = 0; i < n; ++i)
    if (labels[i] < 0 || labels[i] >= C)
      throw std::invalid_argument(std::string(fn) + ": label " + std::to_string(labels[i]) + " of sample " +
                                  std::to_string(i) + " outside 0.." + std::to_string(C - 1));
  return n;
}

std::vector<int> argmax_rows(const std::vector<double>& probs, int64_t n, int C) {
  std::vector<int> pred(n);
  for (int64_t i = 0; i < n; ++i) {
    const double* r = &probs[i * C];
    int best = 0;
    for (int c = 1; c < C; ++c)
      if (r[c] > r[best]) best = c;
    pred[i] = best;
  }
  return pred;
}

// sklearn's precision/recall/F1 for one class with zero_division = 0.
double f1_of(int64_t tp, int64_t fp, int64_t fn) {
  double precision = (tp + fp) ? (double)tp / (double)(tp + fp) : 0.0;
  double recall = (tp + fn) ? (double)tp / (double)(tp + fn) : 0.0;
  double denom = precision + recall;
  return denom > 0 ? 2.0 * precision * recall / denom : 0.0;
}

}  // namespace

double binary_roc_auc(const std::vector<double>& scores, const std::vector<int>& positive) {
  const size_t n = scores.size();
  if (positive.size() != n) throw std::invalid_argument("binary_roc_auc: scores and labels differ in length");
  for (double s : scores)
    if (std::isnan(s)) return kNaN;  // no ordering exists (sklearn raises)
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  // Mann-Whitney U with midranks: AUC = (sum of positive ranks - P(P+1)/2) / (P N).
  double pos_rank_sum = 0;
  int64_t P = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && scores[order[j]] == scores[order[i]]) ++j;
    const double midrank = 0.5 * (double)(i + 1 + j);  // mean of ranks i+1 .. j
    for (size_t k = i; k < j; ++k)
      if (positive[order[k]]) {
        pos_rank_sum += midrank;
        ++P;
      }
    i = j;
  }
  const int64_t N = (int64_t)n - P;
  if (P == 0 || N == 0) return kNaN;
  return (pos_rank_sum - 0.5 * (double)P * (double)(P + 1)) / ((double)P * (double)N);
}

double accuracy(const std::vector<double>& probs, const std::vector<int>& labels, int C) {
  const int64_t n = check(probs, labels, C, "accuracy");
  std::vector<int> pred = argmax_rows(probs, n, C);
  int64_t hit = 0;
  for (int64_t i = 0; i < n; ++i) hit += pred[i] == labels[i];
  return (double)hit / (double)n;
}

double roc_auc(const std::vector<double>& probs, const std::vector<int>& labels, int C) {
  const int64_t n = check(probs, labels, C, "roc_auc");
  std::vector<double> score(n);
  std::vector<int> pos(n);
  if (C == 2) {
    for (int64_t i = 0; i < n; ++i) {
      score[i] = probs[i * 2 + 1];
      pos[i] = labels[i] == 1;
    }
    return binary_roc_auc(score, pos);
  }
  double sum = 0;
  for (int c = 0; c < C; ++c) {
    for (int64_t i = 0; i < n; ++i) {
      score[i] = probs[i * C + c];
      pos[i] = labels[i] == c;
    }
    double a = binary_roc_auc(score, pos);
    if (std::isnan(a)) return kNaN;
    sum += a;
  }
  return sum / C;
}

double f1(const std::vector<double>& probs, const std::vector<int>& labels, int C) {
  const int64_t n = check(probs, labels, C, "f1");
  std::vector<int> pred = argmax_rows(probs, n, C);
  std::vector<int64_t> tp(C, 0), fp(C, 0), fn(C, 0);
  std::vector<bool> present(C, false);
  for (int64_t i = 0; i < n; ++i) {
    present[labels[i]] = present[pred[i]] = true;
    if (pred[i] == labels[i]) ++tp[labels[i]];
    else {
      ++fp[pred[i]];
      ++fn[labels[i]];
    }
  }
  if (C == 2) return f1_of(tp[1], fp[1], fn[1]);
  double sum = 0;
  int used = 0;
  for (int c = 0; c < C; ++c)
    if (present[c]) {
      sum += f1_of(tp[c], fp[c], fn[c]);
      ++used;
    }
  return sum / used;
}

Metrics compute_metrics(const std::vector<double>& probs, const std::vector<int>& labels, int C) {
  return {accuracy(probs, labels, C), roc_auc(probs, labels, C), f1(probs, labels, C)};
}

namespace {
// (n, C) probabilities as a row-major double vector; validates the shape against the labels.
std::vector<double> host_probs(const Tensor& probs, const std::vector<int>& labels, const char* fn, int& C) {
  if (probs.dim() != 2)
    throw std::invalid_argument(std::string(fn) + ": probabilities must be (n, C), got " + probs.str());
  if (probs.size(0) != (int64_t)labels.size())
    throw std::invalid_argument(std::string(fn) + ": " + std::to_string(probs.size(0)) +
                                " rows of probabilities for " + std::to_string(labels.size()) + " labels");
  C = (int)probs.size(1);
  Tensor p = probs.device().is_cpu() ? probs : probs.to(Device::cpu());
  return p.to_double_vector();
}
}  // namespace

Metrics compute_metrics(const Tensor& probs, const std::vector<int>& labels) {
  int C = 0;
  std::vector<double> p = host_probs(probs, labels, "compute_metrics", C);
  return compute_metrics(p, labels, C);
}
double accuracy(const Tensor& probs, const std::vector<int>& labels) {
  int C = 0;
  std::vector<double> p = host_probs(probs, labels, "accuracy", C);
  return accuracy(p, labels, C);
}
double roc_auc(const Tensor& probs, const std::vector<int>& labels) {
  int C = 0;
  std::vector<double> p = host_probs(probs, labels, "roc_auc", C);
  return roc_auc(p, labels, C);
}
double f1(const Tensor& probs, const std::vector<int>& labels) {
  int C = 0;
  std::vector<double> p = host_probs(probs, labels, "f1", C);
  return f1(p, labels, C);
}

MeanStd mean_std(const std::vector<double>& v) {
  MeanStd r;
  if (v.empty()) return {kNaN, kNaN};
  double s = 0;
  for (double x : v) s += x;
  r.mean = s / (double)v.size();
  if (v.size() < 2) {
    r.std = kNaN;
    return r;
  }
  double ss = 0;
  for (double x : v) ss += (x - r.mean) * (x - r.mean);
  r.std = std::sqrt(ss / (double)(v.size() - 1));
  return r;
}

// ---- paired t-test -------------------------------------------------------------------------

namespace {

// The regularised incomplete beta function I_x(a, b), by its continued fraction evaluated with
// the modified Lentz method (converges fast for x < (a + 1) / (a + b + 2); the symmetry
// I_x(a, b) = 1 - I_{1-x}(b, a) covers the rest).
double incomplete_beta(double a, double b, double x) {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  if (x > (a + 1) / (a + b + 2)) return 1 - incomplete_beta(b, a, 1 - x);
  const double log_front = std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) + b * std::log1p(-x);
  const double tiny = 1e-300;
  double c = 1, d = 1 - (a + b) * x / (a + 1);
  if (std::fabs(d) < tiny) d = tiny;
  d = 1 / d;
  double f = d;
  for (int m = 1; m <= 300; ++m) {
    // Even step: d_{2m} = m (b - m) x / ((a + 2m - 1)(a + 2m)).
    double num = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m));
    d = 1 + num * d;
    c = 1 + num / c;
    if (std::fabs(d) < tiny) d = tiny;
    if (std::fabs(c) < tiny) c = tiny;
    d = 1 / d;
    f *= c * d;
    // Odd step: d_{2m+1} = -(a + m)(a + b + m) x / ((a + 2m)(a + 2m + 1)).
    num = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1));
    d = 1 + num * d;
    c = 1 + num / c;
    if (std::fabs(d) < tiny) d = tiny;
    if (std::fabs(c) < tiny) c = tiny;
    d = 1 / d;
    const double step = c * d;
    f *= step;
    if (std::fabs(step - 1) < 1e-15) break;
  }
  return std::exp(log_front) * f / a;
}

}  // namespace

double student_t_cdf(double t, double df) {
  if (std::isnan(t) || !(df > 0)) return NAN;
  if (std::isinf(t)) return t > 0 ? 1 : 0;
  // P(|T| > |t|) = I_{df / (df + t^2)}(df / 2, 1 / 2).
  const double tail = 0.5 * incomplete_beta(df / 2, 0.5, df / (df + t * t));
  return t > 0 ? 1 - tail : tail;
}

PairedTest paired_t_test(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) throw std::invalid_argument("paired_t_test: the two samples differ in length");
  PairedTest r;
  r.n = (int)a.size();
  std::vector<double> d(a.size());
  for (size_t i = 0; i < a.size(); ++i) d[i] = a[i] - b[i];
  const MeanStd ms = mean_std(d);
  r.mean_diff = d.empty() ? NAN : ms.mean;
  if (r.n < 2) {
    r.t = r.p = NAN;
    return r;
  }
  if (ms.std == 0) {
    r.t = ms.mean == 0 ? NAN : (ms.mean > 0 ? INFINITY : -INFINITY);
    r.p = ms.mean == 0 ? NAN : 0.0;
    return r;
  }
  r.t = ms.mean / (ms.std / std::sqrt((double)r.n));
  r.p = 2 * student_t_cdf(-std::fabs(r.t), r.n - 1);
  return r;
}

}  // namespace lm::data
