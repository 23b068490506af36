#include "vigil/training.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <memory>
#include <thread>
#include <utility>

#include "core/version.h"
#include "vigil/forest.h"
#include "vigil/time.h"

namespace vigil {
namespace {

double SecondsSince(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

// The feature rows of `rows`, row-major, in that order.
std::vector<float> Gather(const FeatureMatrix& m, const std::vector<size_t>& rows) {
  std::vector<float> x(rows.size() * m.cols());
  for (size_t i = 0; i < rows.size(); ++i) {
    std::copy(m.row(rows[i]), m.row(rows[i]) + m.cols(), x.begin() + i * m.cols());
  }
  return x;
}

// Everything Train() can refuse before looking at the features. Returns the training start.
StatusOr<int64_t> CheckSpec(const Dataset& data, const TrainSpec& spec) {
  const SplitOptions& s = spec.split;
  if (s.train_days < 1 || s.delay_days < 0 || s.test_days < 0) {
    return InvalidArgument("train_days must be at least 1, delay_days and test_days at least 0");
  }
  if (!(spec.targets.review_rate >= 0 && spec.targets.review_rate <= 1) ||
      !(spec.targets.decline_precision > 0 && spec.targets.decline_precision <= 1)) {
    return InvalidArgument("review_rate must be in [0, 1] and decline_precision in (0, 1]");
  }
  if (!data.has_labels) return InvalidArgument("the data has no 'fraud' column to learn from");
  VIGIL_ASSIGN_OR_RETURN(int64_t start, ParseDate(s.train_start));
  return start;
}

// The training window's rows and, when the spec asks for one and the data covers it, the test
// window's. Sets *has_test accordingly.
StatusOr<Split> ChooseWindows(const Dataset& data, const TrainSpec& spec, int64_t start,
                              bool* has_test) {
  const SplitOptions& o = spec.split;
  Split split;
  *has_test = false;
  if (o.test_days > 0) {
    StatusOr<Split> s = HandbookSplit(data, o);
    if (s.ok()) {
      split = std::move(*s);
      *has_test = true;
    } else if (spec.notice) {
      spec.notice("no test metrics: " + s.status().message());
    }
  }
  if (!*has_test) {
    const size_t lo = data.LowerBound(start);
    const size_t hi = data.LowerBound(start + int64_t{o.train_days} * kSecondsPerDay);
    for (size_t i = lo; i < hi; ++i) split.train.push_back(i);
  }
  if (split.train.empty()) {
    return InvalidArgument("no transactions between " + o.train_start + " and " +
                           FormatDate(start + int64_t{o.train_days - 1} * kSecondsPerDay));
  }
  return split;
}

// AUC, AP and CP@100 of `scores` on `rows` as metrics `prefix`auc, ...; undefined ones (one
// class) are left out.
void AddMetrics(const Dataset& data, const std::string& prefix, const std::vector<size_t>& rows,
                std::vector<int64_t> days, const std::vector<double>& scores, ModelFile* model) {
  if (days.empty()) {
    const int64_t first_day = data.timestamp.front() - data.timestamp.front() % kSecondsPerDay;
    for (size_t r : rows) days.push_back((data.timestamp[r] - first_day) / kSecondsPerDay);
  }
  Split view;
  view.test = rows;
  view.test_day = std::move(days);
  const Scores sc = ScoreSplit(data, view, scores);
  for (auto [name, v] : {std::pair{"auc", sc.auc}, {"ap", sc.ap}, {"cp100", sc.cp100}}) {
    if (std::isfinite(v)) model->metrics[prefix + name] = v;
  }
}

}  // namespace

StatusOr<TrainResult> Train(const Dataset& data, const TrainSpec& spec) {
  // Refuse a bad spec before the features, the long step.
  VIGIL_RETURN_IF_ERROR(CheckSpec(data, spec).status());
  std::function<void(double)> progress;
  if (spec.progress) progress = [&spec](double f) { spec.progress(TrainStep::kFeatures, f); };
  const FeatureMatrix m =
      ComputeFeatures(data, spec.features, {.label_delay_days = spec.split.delay_days}, progress);
  return Train(data, m, spec);
}

StatusOr<TrainResult> Train(const Dataset& data, const FeatureMatrix& m, const TrainSpec& spec) {
  VIGIL_ASSIGN_OR_RETURN(const int64_t start, CheckSpec(data, spec));
  if (m.rows != data.size() || m.names != FeatureNames(spec.features)) {
    return InvalidArgument("the feature matrix is not the '" +
                           std::string(FeatureSetName(spec.features)) + "' features of the data");
  }
  TrainResult result;
  VIGIL_ASSIGN_OR_RETURN(result.split, ChooseWindows(data, spec, start, &result.has_test_window));
  const Split& split = result.split;
  const std::vector<float> x = Gather(m, split.train);
  std::vector<uint8_t> y;
  y.reserve(split.train.size());
  for (size_t r : split.train) y.push_back(data.fraud[r]);

  if (spec.progress) spec.progress(TrainStep::kTraining, 0);
  const auto t0 = std::chrono::steady_clock::now();
  TrainOptions to;
  to.algo = spec.algo;
  to.params = spec.params;
  to.threads = spec.threads;
  to.seed = spec.seed;
  VIGIL_ASSIGN_OR_RETURN(result.model, TrainModel(x, y, m.names, to));
  const double train_seconds = SecondsSince(t0);
  if (spec.progress) spec.progress(TrainStep::kTraining, 1);

  ModelFile& model = result.model;
  model.feature_set = FeatureSetName(spec.features);
  model.label_delay_days = spec.split.delay_days;
  model.training = {spec.split.train_start, spec.split.train_days, static_cast<int64_t>(y.size()),
                    0};
  for (uint8_t l : y) model.training.frauds += l;
  model.data_fingerprint = data.Fingerprint();
  model.code_version = VersionString();
  model.created_at = FormatRfc3339(spec.created_at != 0 ? spec.created_at
                                                        : static_cast<int64_t>(std::time(nullptr)));
  model.metrics["train_seconds"] = train_seconds;
  if (spec.anomaly_forest && spec.algo != Algorithm::kIsolationForest) {
    // The anomaly score beside the fraud probability: an isolation forest over the same inputs.
    TrainOptions io;
    io.algo = Algorithm::kIsolationForest;
    io.seed = spec.seed;
    io.threads = spec.threads;
    VIGIL_ASSIGN_OR_RETURN(ModelFile iforest, TrainModel(x, y, m.names, io));
    model.anomaly_json = std::move(iforest.xgboost_json);
  }

  // Measured with the scoring engine, so the metrics and thresholds are those of the scores
  // Vigil will serve.
  const int threads = spec.threads > 0
                          ? spec.threads
                          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  auto score = [&](const Forest& forest, const std::vector<size_t>& rows) {
    std::vector<double> p(rows.size(), 0.0);
    forest.PredictBatch(Gather(m, rows), p, threads);
    return p;
  };
  const auto t1 = std::chrono::steady_clock::now();
  VIGIL_ASSIGN_OR_RETURN(std::unique_ptr<Forest> forest, Forest::FromModel(model));
  if (result.has_test_window) result.test_scores = score(*forest, split.test);
  result.predict_seconds = SecondsSince(t1);
  result.train_scores = score(*forest, split.train);
  AddMetrics(data, "train_", split.train, {}, result.train_scores, &model);
  if (result.has_test_window) {
    AddMetrics(data, "test_", split.test, split.test_day, result.test_scores, &model);
  }

  // Thresholds on the validation window: the test window after the delay, else the training
  // window.
  const std::vector<size_t>& vrows = result.has_test_window ? split.test : split.train;
  std::vector<uint8_t> vlabels;
  vlabels.reserve(vrows.size());
  for (size_t r : vrows) vlabels.push_back(data.fraud[r]);
  model.thresholds = ChooseThresholds(
      result.has_test_window ? result.test_scores : result.train_scores, vlabels, spec.targets);
  model.has_thresholds = true;
  return result;
}

}  // namespace vigil
