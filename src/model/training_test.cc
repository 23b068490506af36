#include "vigil/training.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "vigil/evaluate.h"
#include "vigil/forest.h"
#include "vigil/simulator.h"
#include "vigil/time.h"

namespace vigil {
namespace {

// 50 days from 2018-04-01: room for 7 days of training from 2018-04-25, 7 of delay, 7 of test.
class TrainTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    SimulatorOptions so;
    so.customers = 300;
    so.terminals = 600;
    so.days = 50;
    so.radius = 10;
    so.threads = 1;
    data_ = new Dataset(*Simulate(so));
  }
  static void TearDownTestSuite() { delete data_; }

  static TrainSpec Spec() {
    TrainSpec spec;
    spec.split.train_start = "2018-04-25";
    spec.params = {{"n_estimators", "10"}};
    spec.threads = 1;
    spec.created_at = 1700000000;
    return spec;
  }
  static StatusOr<TrainResult> MustTrain(const TrainSpec& spec) {
    StatusOr<TrainResult> r = Train(*data_, spec);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r;
  }
  static std::vector<float> Rows(const FeatureMatrix& m, const std::vector<size_t>& rows) {
    std::vector<float> x;
    for (size_t r : rows) x.insert(x.end(), m.row(r), m.row(r) + m.cols());
    return x;
  }

  static Dataset* data_;
};
Dataset* TrainTest::data_ = nullptr;

TEST_F(TrainTest, FillsTheWholeModelFile) {
  auto r = MustTrain(Spec());
  ASSERT_TRUE(r.ok());
  const ModelFile& m = r->model;
  EXPECT_EQ(m.algo, Algorithm::kGbdt);
  EXPECT_EQ(m.feature_set, "all");
  EXPECT_EQ(m.feature_names, FeatureNames(FeatureSet::kAll));
  EXPECT_EQ(m.params.at("n_estimators"), "10");
  EXPECT_EQ(m.label_delay_days, 7);
  EXPECT_EQ(m.training.start, "2018-04-25");
  EXPECT_EQ(m.training.days, 7);
  ASSERT_TRUE(r->has_test_window);
  EXPECT_EQ(m.training.rows, static_cast<int64_t>(r->split.train.size()));
  int64_t frauds = 0;
  for (size_t i : r->split.train) frauds += data_->fraud[i];
  EXPECT_EQ(m.training.frauds, frauds);
  EXPECT_GT(frauds, 0);
  EXPECT_EQ(m.data_fingerprint, data_->Fingerprint());
  EXPECT_FALSE(m.code_version.empty());
  EXPECT_EQ(m.created_at, FormatRfc3339(1700000000));
  for (const char* k : {"train_seconds", "train_auc", "train_ap", "train_cp100", "test_auc",
                        "test_ap", "test_cp100"}) {
    EXPECT_EQ(m.metrics.count(k), 1u) << k;
  }
  EXPECT_GT(m.metrics.at("test_auc"), 0.5);
  EXPECT_FALSE(m.anomaly_json.empty()) << "a supervised model carries an anomaly forest";
  EXPECT_TRUE(m.has_thresholds);
  EXPECT_EQ(m.thresholds.validation.at("rows"), static_cast<double>(r->split.test.size()));
  EXPECT_EQ(m.thresholds.targets.review_rate, ThresholdTargets{}.review_rate);
  EXPECT_EQ(r->train_scores.size(), r->split.train.size());
  EXPECT_EQ(r->test_scores.size(), r->split.test.size());
}

// The training is TrainModel on the training window's rows, and the scores are the Forest's.
TEST_F(TrainTest, IsTrainModelOnTheTrainingWindowScoredByTheForest) {
  const TrainSpec spec = Spec();
  auto r = MustTrain(spec);
  ASSERT_TRUE(r.ok());
  const FeatureMatrix fm = ComputeFeatures(*data_, FeatureSet::kAll, {.label_delay_days = 7});
  auto split = HandbookSplit(*data_, spec.split);
  ASSERT_TRUE(split.ok());
  EXPECT_EQ(r->split.train, split->train);
  EXPECT_EQ(r->split.test, split->test);
  EXPECT_EQ(r->split.test_day, split->test_day);
  std::vector<uint8_t> y;
  for (size_t i : split->train) y.push_back(data_->fraud[i]);
  TrainOptions to;
  to.params = spec.params;
  to.threads = 1;
  auto direct = TrainModel(Rows(fm, split->train), y, fm.names, to);
  ASSERT_TRUE(direct.ok());
  EXPECT_EQ(r->model.xgboost_json, direct->xgboost_json);
  EXPECT_EQ(r->model.params, direct->params);

  auto forest = Forest::FromModel(r->model);
  ASSERT_TRUE(forest.ok());
  std::vector<double> p(split->test.size());
  (*forest)->PredictBatch(Rows(fm, split->test), p);
  EXPECT_EQ(r->test_scores, p);
  const Scores s = ScoreSplit(*data_, *split, p);
  EXPECT_EQ(r->model.metrics.at("test_auc"), s.auc);
  EXPECT_EQ(r->model.metrics.at("test_ap"), s.ap);
  EXPECT_EQ(r->model.metrics.at("test_cp100"), s.cp100);
  std::vector<uint8_t> labels;
  for (size_t i : split->test) labels.push_back(data_->fraud[i]);
  const Thresholds t = ChooseThresholds(p, labels, spec.targets);
  EXPECT_EQ(r->model.thresholds.review, t.review);
  EXPECT_EQ(r->model.thresholds.decline, t.decline);
}

TEST_F(TrainTest, PrecomputedFeaturesTrainTheSameModel) {
  const TrainSpec spec = Spec();
  auto a = MustTrain(spec);
  const FeatureMatrix fm = ComputeFeatures(*data_, FeatureSet::kAll, {.label_delay_days = 7});
  auto b = Train(*data_, fm, spec);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(a->model.xgboost_json, b->model.xgboost_json);
  EXPECT_EQ(a->model.anomaly_json, b->model.anomaly_json);
  EXPECT_EQ(a->test_scores, b->test_scores);
  EXPECT_EQ(a->model.thresholds.review, b->model.thresholds.review);

  // A matrix of another feature set is refused, not misread.
  const FeatureMatrix book = ComputeFeatures(*data_, FeatureSet::kBook, {.label_delay_days = 7});
  auto c = Train(*data_, book, spec);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find("'all' features"), std::string::npos) << c.status().message();
}

// The evaluation trains through Train(): a one-fold evaluation reports the test metrics that
// `vigil train` records for the same window.
TEST_F(TrainTest, EvaluationFoldEqualsTheTrainedModelsTestMetrics) {
  TrainSpec spec = Spec();
  auto r = MustTrain(spec);
  ASSERT_TRUE(r.ok());
  EvaluateOptions eo;
  eo.algos = {Algorithm::kGbdt};
  eo.features = FeatureSet::kAll;
  eo.split = spec.split;
  eo.folds = 1;
  eo.train.params = spec.params;
  eo.train.threads = 1;
  auto rows = EvaluateHandbook(*data_, eo);
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  ASSERT_EQ(rows->size(), 1u);
  ASSERT_EQ((*rows)[0].folds.size(), 1u);
  EXPECT_EQ((*rows)[0].folds[0].auc, r->model.metrics.at("test_auc"));
  EXPECT_EQ((*rows)[0].folds[0].ap, r->model.metrics.at("test_ap"));
  EXPECT_EQ((*rows)[0].folds[0].cp100, r->model.metrics.at("test_cp100"));
}

TEST_F(TrainTest, WithoutATestWindowThresholdsComeFromTheTrainingWindow) {
  TrainSpec spec = Spec();
  spec.split.test_days = 0;
  std::vector<std::string> notices;
  spec.notice = [&](const std::string& n) { notices.push_back(n); };
  auto r = MustTrain(spec);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->has_test_window);
  EXPECT_TRUE(notices.empty()) << "no test window was asked for";
  EXPECT_TRUE(r->split.test.empty());
  EXPECT_TRUE(r->test_scores.empty());
  EXPECT_EQ(r->model.metrics.count("test_auc"), 0u);
  EXPECT_EQ(r->model.metrics.count("train_auc"), 1u);
  EXPECT_EQ(r->model.thresholds.validation.at("rows"), static_cast<double>(r->split.train.size()));

  // A test window past the end of the data: trained all the same, with a notice saying why.
  spec.split.train_start = "2018-05-10";
  spec.split.test_days = 7;
  auto late = MustTrain(spec);
  ASSERT_TRUE(late.ok());
  EXPECT_FALSE(late->has_test_window);
  ASSERT_EQ(notices.size(), 1u);
  EXPECT_EQ(notices[0].rfind("no test metrics: the data covers", 0), 0u) << notices[0];
  EXPECT_GT(late->model.training.rows, 0);
}

TEST_F(TrainTest, ReportsProgressInOrder) {
  TrainSpec spec = Spec();
  std::vector<std::pair<TrainStep, double>> steps;
  spec.progress = [&](TrainStep s, double f) { steps.emplace_back(s, f); };
  ASSERT_TRUE(MustTrain(spec).ok());
  ASSERT_GE(steps.size(), 3u);
  const size_t n = steps.size();
  EXPECT_EQ(steps[n - 2], std::pair(TrainStep::kTraining, 0.0));
  EXPECT_EQ(steps[n - 1], std::pair(TrainStep::kTraining, 1.0));
  EXPECT_EQ(steps[n - 3], std::pair(TrainStep::kFeatures, 1.0));
  for (size_t i = 0; i + 3 < n; ++i) {
    EXPECT_EQ(steps[i].first, TrainStep::kFeatures);
    EXPECT_LT(steps[i].second, 1.0);
    if (i > 0) {
      EXPECT_GE(steps[i].second, steps[i - 1].second);
    }
  }
}

TEST_F(TrainTest, AnomalyForestOnlyWhenAskedAndSupervised) {
  TrainSpec spec = Spec();
  spec.anomaly_forest = false;
  auto plain = MustTrain(spec);
  ASSERT_TRUE(plain.ok());
  EXPECT_TRUE(plain->model.anomaly_json.empty());

  spec = Spec();
  spec.algo = Algorithm::kIsolationForest;
  spec.params = {{"n_estimators", "20"}};
  auto iforest = MustTrain(spec);
  ASSERT_TRUE(iforest.ok());
  EXPECT_EQ(iforest->model.algo, Algorithm::kIsolationForest);
  EXPECT_TRUE(iforest->model.anomaly_json.empty())
      << "an isolation forest is its own anomaly score";
  EXPECT_GT(iforest->model.metrics.at("test_auc"), 0.5);
}

TEST_F(TrainTest, RefusesWhatItCannotTrain) {
  auto expect_error = [](const TrainSpec& spec, const Dataset& data, const std::string& fragment) {
    auto r = Train(data, spec);
    ASSERT_FALSE(r.ok()) << fragment;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().ToString();
    EXPECT_NE(r.status().message().find(fragment), std::string::npos) << r.status().message();
  };
  TrainSpec spec = Spec();
  spec.split.train_days = 0;
  expect_error(spec, *data_, "train_days must be at least 1");
  spec = Spec();
  spec.split.test_days = -1;
  expect_error(spec, *data_, "test_days at least 0");
  spec = Spec();
  spec.targets.review_rate = 1.5;
  expect_error(spec, *data_, "review_rate must be in [0, 1]");
  spec = Spec();
  spec.targets.decline_precision = 0;
  expect_error(spec, *data_, "decline_precision in (0, 1]");
  spec = Spec();
  spec.split.train_start = "2018-02-30";
  expect_error(spec, *data_, "2018-02-30");
  spec = Spec();
  spec.split.train_start = "2030-01-01";
  expect_error(spec, *data_, "no transactions between 2030-01-01 and 2030-01-07");
  spec = Spec();
  spec.params = {{"n_estimators", "zero"}};
  expect_error(spec, *data_, "n_estimators must be a positive integer");
  Dataset unlabelled = *data_;
  unlabelled.has_labels = false;
  expect_error(Spec(), unlabelled, "no 'fraud' column");
  Dataset genuine = *data_;
  std::fill(genuine.fraud.begin(), genuine.fraud.end(), 0);
  spec = Spec();
  spec.split.test_days = 0;
  expect_error(spec, genuine, "only one class");
}

}  // namespace
}  // namespace vigil
