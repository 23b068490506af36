#include "vigil/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace vigil {
namespace {

constexpr double kTol = 1e-12;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// ---------------------------------------------------------------------------------------------
// RocAuc and AveragePrecision: hand-computed cases.

TEST(RocAucTest, PerfectRankingIsOne) {
  std::vector<uint8_t> labels = {0, 0, 1, 1};
  std::vector<double> scores = {0.1, 0.2, 0.8, 0.9};
  EXPECT_DOUBLE_EQ(RocAuc(labels, scores), 1.0);
  EXPECT_DOUBLE_EQ(AveragePrecision(labels, scores), 1.0);
}

TEST(RocAucTest, ReversedRanking) {
  std::vector<uint8_t> labels = {1, 1, 0, 0};
  std::vector<double> scores = {0.1, 0.2, 0.8, 0.9};
  // Every positive is below every negative.
  EXPECT_DOUBLE_EQ(RocAuc(labels, scores), 0.0);
  // Thresholds 0.9, 0.8 add no recall; 0.2: tp=1 fp=2, P=1/3, dR=1/2; 0.1: tp=2 fp=2, P=1/2,
  // dR=1/2. AP = 1/6 + 1/4 = 5/12.
  EXPECT_NEAR(AveragePrecision(labels, scores), 5.0 / 12.0, kTol);
}

TEST(RocAucTest, AllTiedScores) {
  std::vector<uint8_t> labels = {1, 0, 0, 0, 1};
  std::vector<double> scores(5, 0.5);
  // Every (positive, negative) pair is tied: 1/2 each.
  EXPECT_DOUBLE_EQ(RocAuc(labels, scores), 0.5);
  // One threshold: R jumps 0 -> 1 at P = 2/5, the positive rate.
  EXPECT_NEAR(AveragePrecision(labels, scores), 0.4, kTol);
}

TEST(RocAucTest, PartialTiesAcrossClasses) {
  std::vector<uint8_t> labels = {1, 0, 1, 0};
  std::vector<double> scores = {0.8, 0.8, 0.5, 0.2};
  // Pairs (pos, neg): (0.8, 0.8) tie = 1/2, (0.8, 0.2) = 1, (0.5, 0.8) = 0, (0.5, 0.2) = 1.
  // AUC = 2.5 / 4.
  EXPECT_NEAR(RocAuc(labels, scores), 0.625, kTol);
  // 0.8: tp=1 fp=1, P=1/2, dR=1/2; 0.5: tp=2 fp=1, P=2/3, dR=1/2; 0.2: dR=0.
  // AP = 1/4 + 1/3 = 7/12. Were the tie split positive-first, AP would be 1/2 + 1/3.
  EXPECT_NEAR(AveragePrecision(labels, scores), 7.0 / 12.0, kTol);
}

TEST(RocAucTest, InputOrderDoesNotMatter) {
  std::vector<uint8_t> labels = {0, 1, 0, 1};
  std::vector<double> scores = {0.2, 0.5, 0.8, 0.8};
  EXPECT_NEAR(RocAuc(labels, scores), 0.625, kTol);
  EXPECT_NEAR(AveragePrecision(labels, scores), 7.0 / 12.0, kTol);
}

TEST(RocAucTest, SingleClassIsNaN) {
  std::vector<uint8_t> negatives = {0, 0, 0};
  std::vector<uint8_t> positives = {1, 1, 1};
  std::vector<double> scores = {0.3, 0.1, 0.7};
  EXPECT_TRUE(std::isnan(RocAuc(negatives, scores)));
  EXPECT_TRUE(std::isnan(RocAuc(positives, scores)));
  EXPECT_TRUE(std::isnan(AveragePrecision(negatives, scores)));
  // Only positives: precision is 1 at every threshold (sklearn gives 1.0 too).
  EXPECT_DOUBLE_EQ(AveragePrecision(positives, scores), 1.0);
}

TEST(RocAucTest, WrongInputsAreNaN) {
  std::vector<uint8_t> none;
  std::vector<double> no_scores;
  EXPECT_TRUE(std::isnan(RocAuc(none, no_scores)));
  EXPECT_TRUE(std::isnan(AveragePrecision(none, no_scores)));

  std::vector<uint8_t> labels = {0, 1, 1};
  std::vector<double> short_scores = {0.1, 0.2};
  EXPECT_TRUE(std::isnan(RocAuc(labels, short_scores)));
  EXPECT_TRUE(std::isnan(AveragePrecision(labels, short_scores)));

  // sklearn rejects NaN scores ("Input contains NaN").
  std::vector<double> nan_scores = {0.1, kNaN, 0.3};
  EXPECT_TRUE(std::isnan(RocAuc(labels, nan_scores)));
  EXPECT_TRUE(std::isnan(AveragePrecision(labels, nan_scores)));
}

// ---------------------------------------------------------------------------------------------
// RocAuc and AveragePrecision against scikit-learn 1.2.1: random cases with ties, produced by
// sklearn.metrics.roc_auc_score(labels, scores) and
// sklearn.metrics.average_precision_score(labels, scores) (numpy default_rng(20240601)).

struct SklearnCase {
  std::vector<uint8_t> labels;
  std::vector<double> scores;
  double auc;
  double ap;
};

TEST(RocAucTest, MatchesSklearnOnRandomTies) {
  const std::vector<SklearnCase> cases = {
      // n = 12, scores in quarters.
      {{0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1},
       {0.25, 0.5, 0.25, 0.75, 0.5, 0.75, 0.0, 0.75, 0.5, 0.0, 0.75, 0.0},
       0.37037037037037035,
       0.27380952380952384},
      // n = 25, scores in sixths.
      {{0, 1, 0, 0, 1, 1, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 1, 0, 0, 1, 0, 0, 0, 1, 1},
       {0.16666666666666666, 0.5, 0.6666666666666666, 0.3333333333333333, 0.3333333333333333,
        0.3333333333333333,  0.6666666666666666, 0.8333333333333334, 0.5, 0.0, 0.5,
        0.6666666666666666,  0.16666666666666666, 0.16666666666666666, 0.6666666666666666,
        0.16666666666666666, 0.8333333333333334, 0.6666666666666666, 0.5, 0.5, 0.5, 0.0,
        0.8333333333333334,  0.16666666666666666, 0.6666666666666666},
       0.66346153846153855,
       0.62712746191007052},
      // n = 40, scores in tenths.
      {{0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0,
        0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0},
       {0.1, 0.3, 0.5, 0.4, 0.6, 0.0, 0.1, 0.2, 0.3, 0.5, 0.8, 0.9, 0.7, 0.5,
        0.5, 0.2, 0.9, 0.7, 0.6, 0.3, 0.2, 0.2, 0.9, 0.7, 0.7, 0.1, 0.5, 0.9,
        0.7, 0.0, 0.3, 0.4, 0.0, 0.9, 0.8, 0.5, 0.7, 0.9, 0.7, 0.8},
       0.505859375,
       0.20483151420651421},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    EXPECT_NEAR(RocAuc(cases[i].labels, cases[i].scores), cases[i].auc, kTol) << "case " << i;
    EXPECT_NEAR(AveragePrecision(cases[i].labels, cases[i].scores), cases[i].ap, kTol)
        << "case " << i;
  }
}

// ---------------------------------------------------------------------------------------------
// CardPrecisionAtK: hand-computed cases.

TEST(CardPrecisionTest, DayWithoutFraudCountsZero) {
  std::vector<int64_t> day = {1, 1, 2, 2};
  std::vector<int64_t> card = {1, 2, 3, 4};
  std::vector<uint8_t> labels = {1, 0, 0, 0};
  std::vector<double> scores = {0.9, 0.5, 0.9, 0.1};
  // Day 1: top 2 = {1 (fraud), 2} -> 1/2. Day 2: no fraud -> 0. Mean 1/4.
  CardPrecisionResult r = CardPrecisionAtK(day, card, labels, scores, 2);
  EXPECT_EQ(r.per_day, (std::vector<double>{0.5, 0.0}));
  EXPECT_DOUBLE_EQ(r.mean, 0.25);
}

TEST(CardPrecisionTest, FewerCardsThanKStillDividesByK) {
  std::vector<int64_t> day = {5, 5, 5};
  std::vector<int64_t> card = {1, 2, 2};
  std::vector<uint8_t> labels = {1, 1, 0};
  std::vector<double> scores = {0.3, 0.2, 0.4};
  // Two cards, both compromised: 2 / 5, not 2 / 2.
  CardPrecisionResult r = CardPrecisionAtK(day, card, labels, scores, 5);
  EXPECT_EQ(r.per_day, (std::vector<double>{0.4}));
  EXPECT_DOUBLE_EQ(r.mean, 0.4);
}

TEST(CardPrecisionTest, DetectedCardsAreDroppedOnLaterDays) {
  std::vector<int64_t> day = {1, 1, 2, 2, 2, 3, 3};
  std::vector<int64_t> card = {7, 9, 7, 8, 9, 9, 8};
  std::vector<uint8_t> labels = {1, 1, 1, 0, 1, 1, 0};
  std::vector<double> scores = {0.9, 0.1, 0.99, 0.5, 0.3, 0.2, 0.1};
  // k = 1. Day 1: top = 7 (fraud) -> 1; 7 is detected, 9 (fraud but outside the top) is not.
  // Day 2: 7 is dropped despite its 0.99, so the top is 8 (legit) -> 0; without the drop it
  // would be 1. Day 3: 9 was never detected, so it stays and tops the day -> 1.
  // Mean (1 + 0 + 1) / 3.
  CardPrecisionResult r = CardPrecisionAtK(day, card, labels, scores, 1);
  EXPECT_EQ(r.per_day, (std::vector<double>{1.0, 0.0, 1.0}));
  EXPECT_NEAR(r.mean, 2.0 / 3.0, kTol);
}

TEST(CardPrecisionTest, DayWhoseCardsWereAllDroppedCountsZero) {
  std::vector<int64_t> day = {1, 2, 2};
  std::vector<int64_t> card = {5, 5, 5};
  std::vector<uint8_t> labels = {1, 1, 1};
  std::vector<double> scores = {0.5, 0.6, 0.7};
  // Day 1: card 5 detected -> 1/2. Day 2 has only card 5, dropped: still a day, value 0.
  CardPrecisionResult r = CardPrecisionAtK(day, card, labels, scores, 2);
  EXPECT_EQ(r.per_day, (std::vector<double>{0.5, 0.0}));
  EXPECT_DOUBLE_EQ(r.mean, 0.25);
}

TEST(CardPrecisionTest, TakesMaxScoreAndMaxLabelPerCard) {
  std::vector<int64_t> day = {1, 1, 1};
  std::vector<int64_t> card = {1, 2, 1};
  std::vector<uint8_t> labels = {1, 0, 0};
  std::vector<double> scores = {0.2, 0.8, 0.9};
  // Card 1: max score 0.9 (from its legit row), max label 1 (from its 0.2 row). Card 2: 0.8, 0.
  // k = 1: top card 1 -> compromised -> 1. Ranking transactions instead would give 0.
  CardPrecisionResult r = CardPrecisionAtK(day, card, labels, scores, 1);
  EXPECT_EQ(r.per_day, (std::vector<double>{1.0}));
}

TEST(CardPrecisionTest, TiedCardsRankByLowerCardId) {
  std::vector<int64_t> day = {1, 1};
  std::vector<int64_t> card = {5, 3};
  std::vector<double> scores = {0.7, 0.7};
  // k = 1, both cards at 0.7: card 3 ranks first whatever the input order.
  std::vector<uint8_t> fraud_on_5 = {1, 0};
  std::vector<uint8_t> fraud_on_3 = {0, 1};
  EXPECT_EQ(CardPrecisionAtK(day, card, fraud_on_5, scores, 1).per_day,
            (std::vector<double>{0.0}));
  EXPECT_EQ(CardPrecisionAtK(day, card, fraud_on_3, scores, 1).per_day,
            (std::vector<double>{1.0}));
}

TEST(CardPrecisionTest, DaysAreSortedAndNeedNotBeContiguous) {
  constexpr int64_t kLate = 1'000'000'000'000;
  // The later day comes first in the input.
  std::vector<int64_t> day = {kLate, kLate, kLate, -5};
  std::vector<int64_t> card = {1, 2, 3, 1};
  std::vector<uint8_t> labels = {1, 1, 0, 1};
  std::vector<double> scores = {0.9, 0.5, 0.1, 0.9};
  // k = 2. Day -5: only card 1 (fraud) -> 1/2, card 1 detected. Day 1e12: card 1 dropped,
  // top 2 = {2 (fraud), 3} -> 1/2. In input order it would be {1, 0}: day 1e12 would find
  // cards 1 and 2, then drop card 1 from day -5.
  CardPrecisionResult r = CardPrecisionAtK(day, card, labels, scores, 2);
  EXPECT_EQ(r.per_day, (std::vector<double>{0.5, 0.5}));
  EXPECT_DOUBLE_EQ(r.mean, 0.5);
}

TEST(CardPrecisionTest, NaNScoresRankLastAndAreSkippedInMax) {
  // As pandas: groupby().max() skips NaN, sort_values puts an all-NaN card last.
  std::vector<int64_t> day = {1, 1, 1, 1};
  std::vector<int64_t> card = {1, 1, 2, 3};
  std::vector<uint8_t> labels = {1, 0, 0, 1};
  std::vector<double> scores = {kNaN, 0.9, 0.5, kNaN};
  // Ranking: card 1 (0.9, fraud), card 2 (0.5), card 3 (NaN, fraud).
  EXPECT_EQ(CardPrecisionAtK(day, card, labels, scores, 1).per_day, (std::vector<double>{1.0}));
  EXPECT_EQ(CardPrecisionAtK(day, card, labels, scores, 2).per_day, (std::vector<double>{0.5}));
  EXPECT_EQ(CardPrecisionAtK(day, card, labels, scores, 3).per_day,
            (std::vector<double>{2.0 / 3.0}));
}

TEST(CardPrecisionTest, WrongInputs) {
  std::vector<int64_t> none;
  std::vector<uint8_t> no_labels;
  std::vector<double> no_scores;
  CardPrecisionResult empty = CardPrecisionAtK(none, none, no_labels, no_scores, 3);
  EXPECT_TRUE(std::isnan(empty.mean));
  EXPECT_TRUE(empty.per_day.empty());

  std::vector<int64_t> day = {1, 2};
  std::vector<int64_t> card = {1, 2};
  std::vector<uint8_t> labels = {1, 0};
  std::vector<double> scores = {0.5, 0.5};
  std::vector<double> short_scores = {0.5};
  EXPECT_TRUE(std::isnan(CardPrecisionAtK(day, card, labels, short_scores, 1).mean));
  // k <= 0 has no precision: every day, and the mean, are NaN.
  CardPrecisionResult zero = CardPrecisionAtK(day, card, labels, scores, 0);
  EXPECT_TRUE(std::isnan(zero.mean));
  ASSERT_EQ(zero.per_day.size(), 2u);
  EXPECT_TRUE(std::isnan(zero.per_day[0]));
}

// Against the handbook's card_precision_top_k run in pandas 1.5.3 on this frame (numpy
// default_rng(20240601), drawn after the sklearn cases above), with sort_values(...,
// kind="mergesort") so that tied cards keep groupby's ascending id order. The frame is sensitive
// to both rules: ranking tied cards higher id first gives per-day {1, 0, 1, 0.5} at k = 2, and not
// dropping detected cards gives {2/3, 1/3, 1, 1/3} at k = 3.
TEST(CardPrecisionTest, MatchesHandbookOnRandomFrame) {
  std::vector<int64_t> day = {10, 3, 3, 10, 7, 4, 4, 4, 3, 7, 4, 3, 4, 7, 3, 10, 4, 4, 3, 7,
                              3,  10, 7, 7, 7, 7, 7, 4, 3, 4, 7, 3, 7, 7, 4, 4, 10, 3, 7, 7};
  std::vector<int64_t> card = {11, 0, 10, 11, 4, 5, 10, 2, 7, 1, 1, 5, 4, 6, 9, 5, 0, 10, 9, 8,
                               1,  11, 8, 8, 8, 7, 5, 1, 11, 7, 0, 1, 3, 5, 3, 2, 1, 8, 5, 5};
  std::vector<uint8_t> labels = {0, 1, 0, 1, 1, 0, 0, 0, 1, 0, 0, 1, 0, 1, 0, 0, 1, 0, 1, 0,
                                 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1};
  std::vector<double> scores = {0.75, 0.25, 0.5,  0.5,  1.0,  0.25, 0.75, 1.0,  0.5, 0.5,
                                0.75, 0.75, 0.0,  1.0,  0.75, 0.25, 0.25, 0.25, 0.0, 0.25,
                                0.5,  1.0,  0.5,  0.25, 0.25, 0.0,  1.0,  0.5,  0.25, 0.5,
                                0.0,  0.25, 0.75, 0.0,  0.5,  1.0,  1.0,  0.25, 0.75, 0.75};
  CardPrecisionResult k2 = CardPrecisionAtK(day, card, labels, scores, 2);
  EXPECT_EQ(k2.per_day, (std::vector<double>{1.0, 0.5, 1.0, 0.5}));
  EXPECT_NEAR(k2.mean, 0.75, kTol);
  CardPrecisionResult k3 = CardPrecisionAtK(day, card, labels, scores, 3);
  ASSERT_EQ(k3.per_day.size(), 4u);
  EXPECT_NEAR(k3.per_day[0], 2.0 / 3.0, kTol);
  EXPECT_NEAR(k3.per_day[1], 1.0 / 3.0, kTol);
  EXPECT_NEAR(k3.per_day[2], 2.0 / 3.0, kTol);
  EXPECT_NEAR(k3.per_day[3], 1.0 / 3.0, kTol);
  EXPECT_NEAR(k3.mean, 0.49999999999999994, kTol);
}

}  // namespace
}  // namespace vigil
