// Decisions: how a score becomes approve / review / decline, and how a model's thresholds are
// chosen on a validation window for a stated target.
#ifndef VIGIL_DECISION_H_
#define VIGIL_DECISION_H_

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>

namespace vigil {

enum class Decision { kApprove, kReview, kDecline };
std::string_view DecisionName(Decision d);  // "approve" | "review" | "decline"

// What the thresholds aim for on validation data.
struct ThresholdTargets {
  // Share of transactions sent to an analyst or declined (their capacity).
  double review_rate = 0.01;
  // Decline automatically only where at least this share of the declined is fraud.
  double decline_precision = 0.9;
};

// A score at or above `decline` is declined; at or above `review`, reviewed; else approved.
// A threshold above 1 never fires (scores are at most 1).
struct Thresholds {
  double review = 2;
  double decline = 2;
  ThresholdTargets targets;
  // What they gave on the validation data: rows, frauds, and for "review", "decline" and
  // "flagged" (both): _rate, _precision, _recall.
  std::map<std::string, double> validation;
};

inline Decision Decide(double score, const Thresholds& t) {
  if (score >= t.decline) return Decision::kDecline;
  if (score >= t.review) return Decision::kReview;
  return Decision::kApprove;
}

// Chooses thresholds on validation scores and labels: `review` so that about review_rate of the
// transactions score at or above it; `decline` the lowest score whose declined set (at least 5
// frauds) has precision >= decline_precision, never below `review`'s. Fills `validation`.
// REQUIRES: scores.size() == labels.size()
Thresholds ChooseThresholds(std::span<const double> scores, std::span<const uint8_t> labels,
                            const ThresholdTargets& targets);

}  // namespace vigil

#endif  // VIGIL_DECISION_H_
