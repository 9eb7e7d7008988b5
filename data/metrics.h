// Evaluation metrics of the training protocol (SPEC "Training and evaluation protocol"), on
// class probabilities (n, C) row-major and integer labels in 0..C-1, matching scikit-learn:
//   accuracy  = mean(argmax_c p[i,c] == y[i])          (argmax: first maximum, like numpy)
//   roc_auc   C == 2: ROC-AUC of the class-1 score (roc_auc_score(y, p[:,1]));
//             C > 2 : macro one-vs-rest (roc_auc_score(y, p, multi_class='ovr', average='macro')).
//             Ties are handled by midranks (identical to sklearn's trapezoidal ROC area).
//             A class absent from the labels (or present alone) makes AUC undefined: NaN is
//             returned (sklearn raises instead).
//   f1        C == 2: binary F1 of class 1 (f1_score(y, pred)); C > 2: macro F1
//             (f1_score(y, pred, average='macro')), averaged like sklearn over the classes that
//             occur in the labels or the predictions. Precision or recall with a zero
//             denominator counts as 0 (sklearn's zero_division default, without the warning).
// Inputs are validated (sizes, labels in range, C >= 2): std::invalid_argument otherwise.
#pragma once
#include <vector>

#include "tensor/tensor.h"

namespace lm::data {

double accuracy(const std::vector<double>& probs, const std::vector<int>& labels, int num_classes);
double roc_auc(const std::vector<double>& probs, const std::vector<int>& labels, int num_classes);
double f1(const std::vector<double>& probs, const std::vector<int>& labels, int num_classes);

// Binary ROC-AUC of `scores` for the positive labels (label != 0); NaN when either class is absent.
double binary_roc_auc(const std::vector<double>& scores, const std::vector<int>& positive);

struct Metrics {
  double acc = 0, auc = 0, f1 = 0;
};
Metrics compute_metrics(const std::vector<double>& probs, const std::vector<int>& labels, int num_classes);
// probs: a (n, C) tensor of any float dtype, layout and device.
Metrics compute_metrics(const Tensor& probs, const std::vector<int>& labels);
double accuracy(const Tensor& probs, const std::vector<int>& labels);
double roc_auc(const Tensor& probs, const std::vector<int>& labels);
double f1(const Tensor& probs, const std::vector<int>& labels);

// Mean and sample standard deviation (ddof = 1; NaN for fewer than two values), as the
// protocol reports over folds.
struct MeanStd {
  double mean = 0, std = 0;
};
MeanStd mean_std(const std::vector<double>& values);

// Paired t-test of differences d_i = a_i - b_i (per fold, runs on the same splits): mean
// difference, t = mean / (sd / sqrt(n)), two-sided p from Student's t with n - 1 degrees of
// freedom (as scipy.stats.ttest_rel). n < 2, or all differences equal and nonzero, give p = NaN
// / 0 as defined there: n < 2 -> NaN t and p; sd = 0 -> t = +-inf and p = 0 unless the mean is
// also 0 (t and p NaN).
struct PairedTest {
  int n = 0;
  double mean_diff = 0, t = 0, p = 0;
};
PairedTest paired_t_test(const std::vector<double>& a, const std::vector<double>& b);
// P(T <= t) for Student's t with `df` degrees of freedom (df > 0).
double student_t_cdf(double t, double df);

}  // namespace lm::data
