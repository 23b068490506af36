// The handbook's evaluation protocol (Le Borgne et al., ch. 3 and 5).
//
// One fold: train on `train_days` days from a start date, skip `delay_days`, test on the next
// `test_days` days. From each test day, the cards already known to be compromised are removed:
// cards with a fraud in the training window, plus cards with a fraud on any day from the last
// training day up to (test day - delay - 1), cumulatively. Prequential evaluation runs `folds`
// such folds whose training windows start `test_days` apart, and reports mean and std of AUC ROC,
// Average Precision and Card Precision@k over the folds.
#ifndef VIGIL_EVALUATE_H_
#define VIGIL_EVALUATE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "vigil/dataset.h"
#include "vigil/features.h"
#include "vigil/model.h"
#include "vigil/status.h"

namespace vigil {

struct SplitOptions {
  std::string train_start = "2018-07-25";  // YYYY-MM-DD
  int train_days = 7;
  int delay_days = 7;
  int test_days = 7;
};

struct Split {
  std::vector<size_t> train;  // row indices, in time order
  std::vector<size_t> test;   // row indices, in time order, known-compromised cards removed
  std::vector<int64_t> test_day;  // day index (days since the data's first day) of each test row
};

// REQUIRES: data.has_labels. Fails when the data does not cover the windows.
StatusOr<Split> HandbookSplit(const Dataset& data, const SplitOptions& options);

struct Scores {
  double auc = 0, ap = 0, cp100 = 0;
};

// AUC, AP and CP@k of `predictions` on the split's test rows.
Scores ScoreSplit(const Dataset& data, const Split& split, const std::vector<double>& predictions,
                  int k = 100);

struct EvaluateOptions {
  std::vector<Algorithm> algos = {Algorithm::kRandomForest, Algorithm::kGbdt,
                                  Algorithm::kLogistic, Algorithm::kIsolationForest};
  FeatureSet features = FeatureSet::kBook;
  // The first (earliest) fold's training start; later folds start test_days later each.
  SplitOptions split;
  int folds = 4;
  int k = 100;
  TrainOptions train;  // algo is set per row of the result
  std::function<void(const std::string&)> progress;
};

struct EvaluationRow {
  std::string algo;
  std::string features;
  Scores mean, std;
  std::vector<Scores> folds;
  double train_seconds = 0;  // mean per fold
  double predict_seconds = 0;
};

// Computes the features once over the whole data set, then runs the prequential folds for each
// algorithm, each fold trained by Train() (vigil/training.h) as `vigil train` trains, without the
// anomaly forest. Predictions come from Vigil's scoring engine (Forest); for iforest the score is
// the anomaly score, trained without labels.
StatusOr<std::vector<EvaluationRow>> EvaluateHandbook(const Dataset& data,
                                                      const EvaluateOptions& options);

}  // namespace vigil

#endif  // VIGIL_EVALUATE_H_
