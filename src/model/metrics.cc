#include "vigil/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <numeric>
#include <unordered_set>
#include <utility>

namespace vigil {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Cumulative counts at one distinct score threshold, scanning the scores in decreasing order.
struct ThresholdPoint {
  int64_t tp = 0;  // positives with score >= threshold
  int64_t fp = 0;  // negatives with score >= threshold
};

// The (tp, fp) points of scikit-learn's _binary_clf_curve: one per distinct score, in decreasing
// score order, tied scores forming one point. Returns false (and no points) on mismatched sizes
// or a NaN score; scikit-learn rejects NaN input, and a NaN would break the sort's ordering.
bool ThresholdCurve(std::span<const uint8_t> labels, std::span<const double> scores,
                    std::vector<ThresholdPoint>* curve) {
  curve->clear();
  if (labels.size() != scores.size()) return false;
  std::vector<std::pair<double, uint8_t>> rows(scores.size());
  for (size_t i = 0; i < scores.size(); ++i) {
    if (std::isnan(scores[i])) return false;
    rows[i] = {scores[i], labels[i]};
  }
  std::sort(rows.begin(), rows.end(),
            [](const auto& a, const auto& b) { return a.first > b.first; });
  ThresholdPoint point;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i].second != 0) {
      ++point.tp;
    } else {
      ++point.fp;
    }
    // Equality as numpy's np.diff(y_score) != 0, so -0.0 and 0.0 are one threshold.
    if (i + 1 == rows.size() || rows[i + 1].first != rows[i].first) curve->push_back(point);
  }
  return true;
}

// A card's aggregate over one day, as groupby('CUSTOMER_ID').max().
struct CardDay {
  int64_t card = 0;
  double score = kNaN;  // max over the card's non-NaN scores; NaN if all are NaN
  bool fraud = false;   // max label
};

// The ranking of sort_values(by="predictions", ascending=False) with the tie rule of the header:
// higher score first, NaN last (pandas' na_position="last"), then lower card id first.
bool RanksBefore(const CardDay& a, const CardDay& b) {
  const bool a_nan = std::isnan(a.score);
  const bool b_nan = std::isnan(b.score);
  if (a_nan != b_nan) return b_nan;
  if (!a_nan && a.score != b.score) return a.score > b.score;
  return a.card < b.card;
}

}  // namespace

double RocAuc(std::span<const uint8_t> labels, std::span<const double> scores) {
  std::vector<ThresholdPoint> curve;
  if (!ThresholdCurve(labels, scores, &curve) || curve.empty()) return kNaN;
  const int64_t positives = curve.back().tp;
  const int64_t negatives = curve.back().fp;
  if (positives == 0 || negatives == 0) return kNaN;
  // Trapezoids of the ROC curve in integer units of (1 / negatives) x (1 / (2 * positives)):
  // exact, so the one division below is the only rounding. A tie group spanning both classes
  // is a diagonal segment, which is where "tied scores count one half" comes from.
  int64_t twice_area = 0;
  ThresholdPoint previous;
  for (const ThresholdPoint& point : curve) {
    twice_area += (point.fp - previous.fp) * (point.tp + previous.tp);
    previous = point;
  }
  return static_cast<double>(twice_area) /
         (2.0 * static_cast<double>(positives) * static_cast<double>(negatives));
}

double AveragePrecision(std::span<const uint8_t> labels, std::span<const double> scores) {
  std::vector<ThresholdPoint> curve;
  if (!ThresholdCurve(labels, scores, &curve) || curve.empty()) return kNaN;
  const int64_t positives = curve.back().tp;
  if (positives == 0) return kNaN;
  double sum = 0;
  int64_t previous_tp = 0;
  for (const ThresholdPoint& point : curve) {
    if (point.tp != previous_tp) {
      sum += static_cast<double>(point.tp - previous_tp) * static_cast<double>(point.tp) /
             static_cast<double>(point.tp + point.fp);
      previous_tp = point.tp;
    }
  }
  return sum / static_cast<double>(positives);
}

CardPrecisionResult CardPrecisionAtK(std::span<const int64_t> day, std::span<const int64_t> card,
                                     std::span<const uint8_t> labels,
                                     std::span<const double> scores, int k) {
  CardPrecisionResult result;
  const size_t n = day.size();
  if (n == 0 || card.size() != n || labels.size() != n || scores.size() != n) {
    result.mean = kNaN;
    return result;
  }

  // One sort groups the rows by day, then by card within a day.
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return day[a] != day[b] ? day[a] < day[b] : card[a] < card[b];
  });

  std::unordered_set<int64_t> detected;  // fraudulent cards found on earlier days
  std::vector<CardDay> cards;
  size_t i = 0;
  while (i < n) {
    const int64_t current_day = day[order[i]];
    cards.clear();
    // Cards arrive in ascending id order within the day, as after pandas' groupby.
    while (i < n && day[order[i]] == current_day) {
      CardDay agg;
      agg.card = card[order[i]];
      const bool skip = detected.count(agg.card) != 0;
      for (; i < n && day[order[i]] == current_day && card[order[i]] == agg.card; ++i) {
        const double s = scores[order[i]];
        // pandas' max skips NaN.
        if (std::isnan(agg.score) || s > agg.score) agg.score = s;
        agg.fraud = agg.fraud || labels[order[i]] != 0;
      }
      if (!skip) cards.push_back(agg);
    }

    if (k <= 0) {
      // The handbook divides by k; there is no meaningful precision at k <= 0.
      result.per_day.push_back(kNaN);
      continue;
    }
    // A day whose cards were all removed still counts, with value 0, as in the handbook.
    const size_t top = std::min(cards.size(), static_cast<size_t>(k));
    std::partial_sort(cards.begin(), cards.begin() + top, cards.end(), RanksBefore);
    int found = 0;
    for (size_t j = 0; j < top; ++j) {
      if (!cards[j].fraud) continue;
      ++found;
      detected.insert(cards[j].card);  // cards are unique within a day: affects later days only
    }
    result.per_day.push_back(static_cast<double>(found) / k);
  }

  double sum = 0;
  for (double value : result.per_day) sum += value;
  result.mean = sum / static_cast<double>(result.per_day.size());
  return result;
}

}  // namespace vigil
