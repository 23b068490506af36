#include "vigil/scorer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <string>

#include "vigil/evaluate.h"
#include "vigil/simulator.h"

namespace vigil {
namespace {

class ScorerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    SimulatorOptions so;
    so.customers = 300;
    so.terminals = 600;
    so.days = 40;
    so.radius = 10;
    data_ = new Dataset(*Simulate(so));
    matrix_ = new FeatureMatrix(ComputeFeatures(*data_, FeatureSet::kAll, {}));
  }
  static void TearDownTestSuite() {
    delete data_;
    delete matrix_;
  }
  static ModelFile Train(Algorithm algo, FeatureSet set) {
    const size_t cols = Features(set).size();
    std::vector<float> x;
    std::vector<uint8_t> y;
    for (size_t i = 0; i < matrix_->rows; ++i) {
      x.insert(x.end(), matrix_->row(i), matrix_->row(i) + cols);  // book set is a prefix
      y.push_back(data_->fraud[i]);
    }
    TrainOptions o;
    o.algo = algo;
    o.params = {{"n_estimators", "20"}};
    o.threads = 1;
    auto m = TrainModel(x, y, FeatureNames(set), o);
    EXPECT_TRUE(m.ok()) << m.status().ToString();
    return *m;
  }
  static Dataset* data_;
  static FeatureMatrix* matrix_;
};
Dataset* ScorerTest::data_ = nullptr;
FeatureMatrix* ScorerTest::matrix_ = nullptr;

TEST_F(ScorerTest, ScoresEqualXGBoostAndDecisionsFollowThresholds) {
  ModelFile model = Train(Algorithm::kGbdt, FeatureSet::kBook);
  model.has_thresholds = true;
  model.thresholds.review = 0.2;
  model.thresholds.decline = 0.7;
  std::vector<float> x;
  for (size_t i = 0; i < 500; ++i) x.insert(x.end(), matrix_->row(i), matrix_->row(i) + 15);
  auto want = PredictWithXGBoost(model, x);
  ASSERT_TRUE(want.ok());
  auto scorer = Scorer::Create(model);
  ASSERT_TRUE(scorer.ok()) << scorer.status().ToString();
  for (size_t i = 0; i < 500; ++i) {
    ScoreResult r = (*scorer)->Score(std::span<const float>(matrix_->row(i), matrix_->cols()));
    ASSERT_NEAR(r.score, (*want)[i], 1e-6);
    EXPECT_EQ(r.decision, Decide(r.score, model.thresholds));
    EXPECT_TRUE(std::isnan(r.anomaly_score)) << "no anomaly forest in this model";
    EXPECT_TRUE(r.reasons.empty());
  }
}

TEST_F(ScorerTest, ReadsModelInputsByNameInAnyOrder) {
  // A model over three features in an order of its own.
  std::vector<std::string> names = {"customer_amount_ratio_30d", "amount", "terminal_risk_7d"};
  const auto all = FeatureNames(FeatureSet::kAll);
  std::vector<size_t> idx;
  idx.reserve(names.size());
  for (const auto& n : names) idx.push_back(std::find(all.begin(), all.end(), n) - all.begin());
  std::vector<float> x;
  std::vector<uint8_t> y;
  for (size_t i = 0; i < matrix_->rows; ++i) {
    for (size_t j : idx) x.push_back(matrix_->row(i)[j]);
    y.push_back(data_->fraud[i]);
  }
  TrainOptions o;
  o.params = {{"n_estimators", "10"}};
  o.threads = 1;
  auto model = TrainModel(x, y, names, o);
  ASSERT_TRUE(model.ok());
  auto scorer = Scorer::Create(*model);
  ASSERT_TRUE(scorer.ok()) << scorer.status().ToString();
  auto want = PredictWithXGBoost(*model, std::span<const float>(x.data(), 300 * 3));
  for (size_t i = 0; i < 300; ++i) {
    EXPECT_NEAR((*scorer)->Score(std::span<const float>(matrix_->row(i), matrix_->cols())).score,
                (*want)[i], 1e-6);
  }
}

TEST_F(ScorerTest, ReasonsAreTheStrongestPositiveContributions) {
  ModelFile model = Train(Algorithm::kGbdt, FeatureSet::kAll);
  auto scorer = Scorer::Create(model);
  ASSERT_TRUE(scorer.ok());
  size_t explained = 0;
  for (size_t i = 0; i < matrix_->rows && explained < 20; ++i) {
    if (!data_->fraud[i]) continue;
    ScoreResult r = (*scorer)->Score(std::span<const float>(matrix_->row(i), matrix_->cols()), 3);
    ASSERT_LE(r.reasons.size(), 3u);
    for (size_t k = 0; k < r.reasons.size(); ++k) {
      EXPECT_GT(r.reasons[k].contribution, 0);
      if (k > 0) {
        EXPECT_GE(r.reasons[k - 1].contribution, r.reasons[k].contribution);
      }
      EXPECT_FALSE(r.reasons[k].code.empty());
      EXPECT_FALSE(r.reasons[k].text.empty());
    }
    explained += !r.reasons.empty();
  }
  EXPECT_EQ(explained, 20u) << "frauds get reasons";
}

TEST_F(ScorerTest, RejectsFeaturesVigilDoesNotCompute) {
  ModelFile model = Train(Algorithm::kGbdt, FeatureSet::kBook);
  model.feature_names[3] = "shoe_size";
  auto scorer = Scorer::Create(model);
  ASSERT_FALSE(scorer.ok());
  EXPECT_NE(scorer.status().message().find("'shoe_size'"), std::string::npos);
}

TEST(ReasonTextTest, SaysWhatTheValueMeans) {
  EXPECT_EQ(DescribeFeature("customer_amount_ratio_30d", 5.1, 1.2, 7).text,
            "amount is 5.1x this customer's 30-day average");
  EXPECT_EQ(DescribeFeature("terminal_risk_7d", 0.25, 1, 7).text,
            "25% of this terminal's transactions in the 7 days ending 7 days ago were fraud");
  EXPECT_EQ(DescribeFeature("terminal_risk_1d", 0.25, 1, 7).code, "TERMINAL_FRAUD_RATE_1D");
  EXPECT_EQ(DescribeFeature("customer_nb_tx_1d", 6, 1, 7).text,
            "6 transaction(s) by this customer in the last day");
  EXPECT_EQ(DescribeFeature("customer_seconds_since_prev", 90, 1, 7).text,
            "90 s since this customer's previous transaction");
  EXPECT_EQ(DescribeFeature("night", 1, 1, 7).code, "NIGHT");
}

// Clients and analysts match these: every feature's code and sentence as Vigil gave them before
// the feature catalog existed (the "1 days ago" included).
TEST(ReasonTextTest, EveryFeatureKeepsItsCodeAndSentence) {
  struct Case {
    const char* feature;
    double value;
    int delay;
    const char* code;
    const char* text;
  };
  const Case cases[] = {
      {"amount", 1234.567, 7, "AMOUNT", "amount is 1234.57"},
      {"weekend", 1, 7, "WEEKEND", "made on a weekend"},
      {"weekend", 0, 7, "WEEKEND", "made on a weekday"},
      {"night", 1, 7, "NIGHT", "made at night (00:00-06:59 UTC)"},
      {"night", 0, 7, "NIGHT", "made during the day"},
      {"customer_nb_tx_1d", 6, 7, "CUSTOMER_VELOCITY_1D",
       "6 transaction(s) by this customer in the last day"},
      {"customer_avg_amount_1d", 5.1, 7, "CUSTOMER_AVERAGE_AMOUNT_1D",
       "this customer's average amount over the last day is 5.10"},
      {"customer_nb_tx_7d", 2, 7, "CUSTOMER_VELOCITY_7D",
       "2 transaction(s) by this customer in the last 7 days"},
      {"customer_avg_amount_7d", 1234.567, 7, "CUSTOMER_AVERAGE_AMOUNT_7D",
       "this customer's average amount over the last 7 days is 1234.57"},
      {"customer_nb_tx_30d", 90, 7, "CUSTOMER_VELOCITY_30D",
       "90 transaction(s) by this customer in the last 30 days"},
      {"customer_avg_amount_30d", 0.5, 7, "CUSTOMER_AVERAGE_AMOUNT_30D",
       "this customer's average amount over the last 30 days is 0.50"},
      {"terminal_nb_tx_1d", 6, 1, "TERMINAL_VOLUME_1D",
       "6 transaction(s) at this terminal in the day ending 1 days ago"},
      {"terminal_risk_1d", 0.25, 7, "TERMINAL_FRAUD_RATE_1D",
       "25% of this terminal's transactions in the day ending 7 days ago were fraud"},
      {"terminal_nb_tx_7d", 120, 7, "TERMINAL_VOLUME_7D",
       "120 transaction(s) at this terminal in the 7 days ending 7 days ago"},
      {"terminal_risk_7d", 0.25, 7, "TERMINAL_FRAUD_RATE_7D",
       "25% of this terminal's transactions in the 7 days ending 7 days ago were fraud"},
      {"terminal_nb_tx_30d", 2, 14, "TERMINAL_VOLUME_30D",
       "2 transaction(s) at this terminal in the 30 days ending 14 days ago"},
      {"terminal_risk_30d", 0.51, 14, "TERMINAL_FRAUD_RATE_30D",
       "51% of this terminal's transactions in the 30 days ending 14 days ago were fraud"},
      {"customer_amount_ratio_30d", 5.1, 7, "AMOUNT_VS_CUSTOMER_AVERAGE",
       "amount is 5.1x this customer's 30-day average"},
      {"customer_amount_zscore_30d", -3.2, 7, "AMOUNT_UNUSUAL_FOR_CUSTOMER",
       "amount is -3.2 standard deviations from this customer's 30-day mean"},
      {"customer_amount_median_ratio_30d", 1.5, 7, "AMOUNT_VS_CUSTOMER_MEDIAN",
       "amount is 1.5x this customer's 30-day median"},
      {"customer_seconds_since_prev", 90, 7, "CUSTOMER_TIME_SINCE_PREVIOUS",
       "90 s since this customer's previous transaction"},
      {"customer_seconds_since_prev", 7199, 7, "CUSTOMER_TIME_SINCE_PREVIOUS",
       "120 min since this customer's previous transaction"},
      {"customer_seconds_since_prev", 7200, 7, "CUSTOMER_TIME_SINCE_PREVIOUS",
       "2.0 h since this customer's previous transaction"},
      {"customer_seconds_since_prev", 172800, 7, "CUSTOMER_TIME_SINCE_PREVIOUS",
       "2.0 days since this customer's previous transaction"},
  };
  std::set<std::string> pinned;
  for (const Case& c : cases) {
    const Reason r = DescribeFeature(c.feature, c.value, 0.75, c.delay);
    EXPECT_EQ(r.code, c.code) << c.feature;
    EXPECT_EQ(r.text, c.text) << c.feature;
    EXPECT_EQ(r.feature, c.feature);
    EXPECT_EQ(r.value, c.value);
    EXPECT_EQ(r.contribution, 0.75);
    pinned.insert(c.feature);
  }
  for (const FeatureInfo& f : Features(FeatureSet::kAll)) {
    EXPECT_EQ(pinned.count(f.name), 1u) << f.name << " has no pinned reason";
  }
}

TEST(ReasonTextTest, ComesFromTheFeatureCatalog) {
  for (const FeatureInfo& f : Features(FeatureSet::kAll)) {
    for (double v : {0.0, 0.4, 3.0, 250.0}) {
      const Reason r = DescribeFeature(f.name, v, 1, 5);
      EXPECT_EQ(r.code, f.reason_code);
      EXPECT_EQ(r.text, f.ReasonText(v, 5));
    }
  }
}

TEST(ReasonTextTest, AFeatureVigilDoesNotComputeGetsItsBareValue) {
  const Reason r = DescribeFeature("shoe_size", 3.5, 1, 7);
  EXPECT_EQ(r.code, "FEATURE_shoe_size");
  EXPECT_EQ(r.text, "shoe_size is 3.5");
  EXPECT_EQ(DescribeFeature("foo_7d", 3.5, 1, 7).code, "FEATURE_foo_7d") << "no name parsing";
}

}  // namespace
}  // namespace vigil
