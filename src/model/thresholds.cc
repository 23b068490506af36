#include <algorithm>
#include <numeric>
#include <vector>

#include "vigil/decision.h"

namespace vigil {

std::string_view DecisionName(Decision d) {
  switch (d) {
    case Decision::kApprove: return "approve";
    case Decision::kReview: return "review";
    case Decision::kDecline: return "decline";
  }
  return "approve";
}

Thresholds ChooseThresholds(std::span<const double> scores, std::span<const uint8_t> labels,
                            const ThresholdTargets& targets) {
  constexpr int kMinDeclinedFrauds = 5;
  Thresholds t;
  t.targets = targets;
  const size_t n = scores.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });
  int64_t total_frauds = 0;
  for (uint8_t l : labels) total_frauds += l;

  // Walk distinct thresholds from the top; at each, `taken` rows score at or above it.
  const size_t review_count = static_cast<size_t>(targets.review_rate * static_cast<double>(n));
  int64_t taken = 0, frauds = 0;
  bool review_set = false;
  for (size_t i = 0; i < n;) {
    const double s = scores[order[i]];
    size_t j = i;
    for (; j < n && scores[order[j]] == s; ++j) frauds += labels[order[j]];
    taken = static_cast<int64_t>(j);
    if (frauds >= kMinDeclinedFrauds &&
        static_cast<double>(frauds) >= targets.decline_precision * static_cast<double>(taken)) {
      t.decline = s;
    }
    // The lowest score that keeps the flagged share within review_rate; the top score when even
    // its ties exceed it.
    if (review_count > 0 && (static_cast<size_t>(taken) <= review_count || !review_set)) {
      t.review = s;
      review_set = true;
    }
    i = j;
  }
  if (t.decline < t.review) t.review = t.decline;

  // What the thresholds give on this data.
  int64_t review_n = 0, review_f = 0, decline_n = 0, decline_f = 0;
  for (size_t i = 0; i < n; ++i) {
    const Decision d = Decide(scores[i], t);
    if (d == Decision::kReview) {
      ++review_n;
      review_f += labels[i];
    } else if (d == Decision::kDecline) {
      ++decline_n;
      decline_f += labels[i];
    }
  }
  auto put = [&](const std::string& name, int64_t count, int64_t f) {
    t.validation[name + "_rate"] = n ? static_cast<double>(count) / n : 0;
    t.validation[name + "_precision"] = count ? static_cast<double>(f) / count : 0;
    t.validation[name + "_recall"] = total_frauds ? static_cast<double>(f) / total_frauds : 0;
  };
  t.validation["rows"] = static_cast<double>(n);
  t.validation["frauds"] = static_cast<double>(total_frauds);
  put("review", review_n, review_f);
  put("decline", decline_n, decline_f);
  put("flagged", review_n + decline_n, review_f + decline_f);
  return t;
}

}  // namespace vigil
