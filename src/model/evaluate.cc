#include "vigil/evaluate.h"

#include <cmath>
#include <unordered_set>

#include "vigil/metrics.h"
#include "vigil/time.h"
#include "vigil/training.h"

namespace vigil {
namespace {

int64_t DayIndex(const Dataset& data, size_t row, int64_t first_midnight) {
  return (data.timestamp[row] - first_midnight) / kSecondsPerDay;
}

}  // namespace

StatusOr<Split> HandbookSplit(const Dataset& data, const SplitOptions& o) {
  if (!data.has_labels) return InvalidArgument("the data has no fraud labels to evaluate against");
  if (data.size() == 0) return InvalidArgument("the data is empty");
  if (o.train_days < 1 || o.test_days < 1 || o.delay_days < 0) {
    return InvalidArgument("train and test windows need at least 1 day; the delay cannot be negative");
  }
  VIGIL_ASSIGN_OR_RETURN(int64_t start, ParseDate(o.train_start));
  const int64_t first_midnight = data.timestamp.front() - data.timestamp.front() % kSecondsPerDay;
  const int64_t train_end = start + int64_t{o.train_days} * kSecondsPerDay;
  const int64_t test_end = train_end + int64_t{o.delay_days + o.test_days} * kSecondsPerDay;
  if (start < data.timestamp.front() - data.timestamp.front() % kSecondsPerDay ||
      test_end > data.timestamp.back() + kSecondsPerDay - data.timestamp.back() % kSecondsPerDay) {
    return InvalidArgument("the data covers " + FormatDate(data.timestamp.front()) + " to " +
                           FormatDate(data.timestamp.back()) + "; training from " + o.train_start +
                           " needs data up to " + FormatDate(test_end - kSecondsPerDay));
  }

  Split split;
  std::unordered_set<int64_t> known;
  const size_t train_lo = data.LowerBound(start), train_hi = data.LowerBound(train_end);
  for (size_t i = train_lo; i < train_hi; ++i) {
    split.train.push_back(i);
    if (data.fraud[i]) known.insert(data.customer_id[i]);
  }
  if (split.train.empty()) return InvalidArgument("no transactions in the training window");
  const int64_t start_day = DayIndex(data, train_lo, first_midnight);
  auto rows_of_day = [&](int64_t day, size_t* lo, size_t* hi) {
    *lo = data.LowerBound(first_midnight + day * kSecondsPerDay);
    *hi = data.LowerBound(first_midnight + (day + 1) * kSecondsPerDay);
  };
  for (int d = 0; d < o.test_days; ++d) {
    size_t lo, hi;
    // Frauds of the day before this one, delay days back, become known (the handbook's rule).
    rows_of_day(start_day + o.train_days + d - 1, &lo, &hi);
    for (size_t i = lo; i < hi; ++i) {
      if (data.fraud[i]) known.insert(data.customer_id[i]);
    }
    const int64_t test_day = start_day + o.train_days + o.delay_days + d;
    rows_of_day(test_day, &lo, &hi);
    for (size_t i = lo; i < hi; ++i) {
      if (known.count(data.customer_id[i]) == 0) {
        split.test.push_back(i);
        split.test_day.push_back(test_day);
      }
    }
  }
  return split;
}

Scores ScoreSplit(const Dataset& data, const Split& split, const std::vector<double>& predictions,
                  int k) {
  std::vector<uint8_t> labels;
  std::vector<int64_t> cards;
  labels.reserve(split.test.size());
  for (size_t r : split.test) {
    labels.push_back(data.fraud[r]);
    cards.push_back(data.customer_id[r]);
  }
  Scores s;
  s.auc = RocAuc(labels, predictions);
  s.ap = AveragePrecision(labels, predictions);
  s.cp100 = CardPrecisionAtK(split.test_day, cards, labels, predictions, k).mean;
  return s;
}

StatusOr<std::vector<EvaluationRow>> EvaluateHandbook(const Dataset& data,
                                                      const EvaluateOptions& options) {
  if (options.folds < 1) return InvalidArgument("--folds must be at least 1");
  // Every fold's windows are checked before the features, the long step.
  std::vector<SplitOptions> folds;
  VIGIL_ASSIGN_OR_RETURN(int64_t first_start, ParseDate(options.split.train_start));
  for (int f = 0; f < options.folds; ++f) {
    SplitOptions so = options.split;
    so.train_start = FormatDate(first_start + int64_t{f} * options.split.test_days * kSecondsPerDay);
    VIGIL_RETURN_IF_ERROR(HandbookSplit(data, so).status());
    folds.push_back(std::move(so));
  }
  if (options.progress) options.progress("computing features");
  FeatureOptions fo;
  fo.label_delay_days = options.split.delay_days;
  const FeatureMatrix m = ComputeFeatures(data, options.features, fo);

  std::vector<EvaluationRow> rows;
  for (Algorithm algo : options.algos) {
    EvaluationRow row;
    row.algo = AlgorithmName(algo);
    row.features = FeatureSetName(options.features);
    for (size_t f = 0; f < folds.size(); ++f) {
      if (options.progress) {
        options.progress(row.algo + " fold " + std::to_string(f + 1) + "/" +
                         std::to_string(folds.size()));
      }
      // Trained as `vigil train` trains, minus the anomaly forest: the evaluation measures the
      // model on its test window and keeps nothing.
      TrainSpec spec;
      spec.algo = algo;
      spec.features = options.features;
      spec.split = folds[f];
      spec.params = options.train.params;
      spec.threads = options.train.threads;
      spec.seed = options.train.seed;
      spec.anomaly_forest = false;
      if (algo == Algorithm::kIsolationForest) {
        // Shared --param options are XGBoost's; the isolation forest takes only its own.
        const auto own = DefaultParams(algo);
        std::erase_if(spec.params, [&](const auto& kv) { return own.count(kv.first) == 0; });
      }
      VIGIL_ASSIGN_OR_RETURN(TrainResult trained, Train(data, m, spec));
      if (!trained.has_test_window) {
        return Internal("fold " + std::to_string(f + 1) + " lost its test window");
      }
      row.train_seconds += trained.model.metrics.at("train_seconds");
      row.predict_seconds += trained.predict_seconds;
      row.folds.push_back(ScoreSplit(data, trained.split, trained.test_scores, options.k));
    }
    const double n = static_cast<double>(row.folds.size());
    for (const Scores& s : row.folds) {
      row.mean.auc += s.auc / n;
      row.mean.ap += s.ap / n;
      row.mean.cp100 += s.cp100 / n;
    }
    for (const Scores& s : row.folds) {
      // Population std over the folds, as scikit-learn's GridSearchCV reports it.
      row.std.auc += (s.auc - row.mean.auc) * (s.auc - row.mean.auc) / n;
      row.std.ap += (s.ap - row.mean.ap) * (s.ap - row.mean.ap) / n;
      row.std.cp100 += (s.cp100 - row.mean.cp100) * (s.cp100 - row.mean.cp100) / n;
    }
    row.std.auc = std::sqrt(row.std.auc);
    row.std.ap = std::sqrt(row.std.ap);
    row.std.cp100 = std::sqrt(row.std.cp100);
    row.train_seconds /= n;
    row.predict_seconds /= n;
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace vigil
