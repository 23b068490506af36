#include <gtest/gtest.h>

#include <vector>

#include "vigil/decision.h"

namespace vigil {
namespace {

TEST(ThresholdsTest, DecideUsesBothThresholds) {
  Thresholds t;
  t.review = 0.3;
  t.decline = 0.8;
  EXPECT_EQ(Decide(0.1, t), Decision::kApprove);
  EXPECT_EQ(Decide(0.3, t), Decision::kReview);
  EXPECT_EQ(Decide(0.79, t), Decision::kReview);
  EXPECT_EQ(Decide(0.8, t), Decision::kDecline);
  EXPECT_EQ(DecisionName(Decision::kDecline), "decline");
  EXPECT_EQ(Decide(1.0, Thresholds{}), Decision::kApprove) << "default thresholds never fire";
}

TEST(ThresholdsTest, ReviewRateAndDeclinePrecisionOnAKnownRanking) {
  // 100 transactions scored 0.00 .. 0.99. The top 10 (0.90..0.99) are 9 frauds and one genuine
  // (0.95); 0.50 is a fraud as well; the rest are genuine.
  std::vector<double> scores;
  std::vector<uint8_t> labels;
  for (int i = 0; i < 100; ++i) {
    scores.push_back(i / 100.0);
    labels.push_back((i >= 90 && i != 95) || i == 50 ? 1 : 0);
  }
  Thresholds t = ChooseThresholds(scores, labels, {.review_rate = 0.2, .decline_precision = 0.9});
  // Review: the lowest score with at most 20 transactions at or above it: 0.80.
  EXPECT_DOUBLE_EQ(t.review, 0.80);
  // Decline: lowest threshold with precision >= 0.9 and >= 5 frauds: at 0.90, 9/10 = 0.9.
  EXPECT_DOUBLE_EQ(t.decline, 0.90);
  EXPECT_DOUBLE_EQ(t.validation["rows"], 100);
  EXPECT_DOUBLE_EQ(t.validation["frauds"], 10);
  EXPECT_DOUBLE_EQ(t.validation["decline_rate"], 0.10);
  EXPECT_DOUBLE_EQ(t.validation["decline_precision"], 0.9);
  EXPECT_DOUBLE_EQ(t.validation["decline_recall"], 0.9);
  EXPECT_DOUBLE_EQ(t.validation["review_rate"], 0.10);
  EXPECT_DOUBLE_EQ(t.validation["review_precision"], 0.0);
  EXPECT_DOUBLE_EQ(t.validation["flagged_rate"], 0.20);
  EXPECT_DOUBLE_EQ(t.validation["flagged_recall"], 0.9);
}

TEST(ThresholdsTest, NoDeclineWithoutEnoughPrecision) {
  std::vector<double> scores = {0.9, 0.8, 0.7, 0.6, 0.5, 0.4};
  std::vector<uint8_t> labels = {1, 0, 1, 0, 1, 0};
  Thresholds t = ChooseThresholds(scores, labels, {.review_rate = 0.5, .decline_precision = 0.9});
  EXPECT_GT(t.decline, 1.0) << "fewer than 5 frauds at 90% precision: never decline";
  EXPECT_DOUBLE_EQ(t.review, 0.7);
  EXPECT_DOUBLE_EQ(t.validation["decline_rate"], 0.0);
}

TEST(ThresholdsTest, TiesStayTogether) {
  std::vector<double> scores(50, 0.5);
  scores[0] = 0.9;
  std::vector<uint8_t> labels(50, 0);
  Thresholds t = ChooseThresholds(scores, labels, {.review_rate = 0.1, .decline_precision = 0.9});
  EXPECT_DOUBLE_EQ(t.review, 0.9) << "the tied block at 0.5 would flag all 50";
  Thresholds zero = ChooseThresholds(scores, labels, {.review_rate = 0, .decline_precision = 0.9});
  EXPECT_GT(zero.review, 1.0) << "a zero review rate reviews nothing";
}

}  // namespace
}  // namespace vigil
