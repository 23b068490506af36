// Ranking metrics for fraud detection, defined as the handbook (and scikit-learn) define them.
#ifndef VIGIL_METRICS_H_
#define VIGIL_METRICS_H_

#include <cstdint>
#include <span>
#include <vector>

namespace vigil {

// Area under the ROC curve, as sklearn.metrics.roc_auc_score: tied scores count one half.
// Returns NaN when the labels hold only one class.
// REQUIRES: labels.size() == scores.size(), labels are 0 or 1.
double RocAuc(std::span<const uint8_t> labels, std::span<const double> scores);

// Average precision, as sklearn.metrics.average_precision_score: sum over distinct score
// thresholds (descending) of (R_n - R_{n-1}) * P_n, tied scores forming one threshold.
// Returns NaN when there is no positive label.
double AveragePrecision(std::span<const uint8_t> labels, std::span<const double> scores);

// Card Precision@k over several days, as the handbook's card_precision_top_k:
// for each day in increasing order, drop the transactions of cards already detected on earlier
// days; per card take the max score and the max label; rank the cards by max score (ties: lower
// card id first) and keep the top k; the day's value is (fraudulent cards among them) / k, k being
// the denominator even when fewer cards exist. Detected fraudulent cards are removed from later
// days. Returns the mean of the daily values (NaN when there are no rows).
// REQUIRES: all spans have the same length.
struct CardPrecisionResult {
  double mean = 0;
  std::vector<double> per_day;  // in increasing day order
};
CardPrecisionResult CardPrecisionAtK(std::span<const int64_t> day, std::span<const int64_t> card,
                                     std::span<const uint8_t> labels,
                                     std::span<const double> scores, int k);

}  // namespace vigil

#endif  // VIGIL_METRICS_H_
