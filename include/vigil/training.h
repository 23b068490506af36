// Training: from a labelled data set to a model file ready to score and serve, in one call.
//
// `vigil train`, the handbook evaluation (evaluate.h) and retraining all call Train(), so a model
// is trained, measured and given thresholds the same way whoever asks. Train() computes the
// features of the whole data set, trains on the training window, scores the training window and
// the test window after the label delay with Vigil's own Forest (train_* and test_* metrics),
// chooses the decision thresholds on the test window (on the training window when there is no
// test window), trains the anomaly forest and records the lineage. It writes nothing: SaveModel()
// the result.
#ifndef VIGIL_TRAINING_H_
#define VIGIL_TRAINING_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "vigil/dataset.h"
#include "vigil/decision.h"
#include "vigil/evaluate.h"
#include "vigil/features.h"
#include "vigil/model.h"
#include "vigil/status.h"

namespace vigil {

// The long steps of Train(), for a front end's progress display.
enum class TrainStep {
  kFeatures,  // computing the feature matrix: fractions from 0 up to 1 (reached once, at the end)
  kTraining,  // training the model: 0 when it starts, 1 when it ends
};

struct TrainSpec {
  Algorithm algo = Algorithm::kGbdt;
  FeatureSet features = FeatureSet::kAll;
  // The training window: train_days (>= 1) days from train_start. The test window: test_days
  // (>= 0) days, delay_days (>= 0) after the training window; delay_days is also the feature
  // engine's label delay, recorded in the model and used when serving it. When test_days is 0, or
  // the data does not cover the test window, the model has no test metrics and its thresholds
  // come from the training window.
  SplitOptions split;
  // XGBoost parameters over DefaultParams(algo), plus "n_estimators" (see TrainOptions).
  std::map<std::string, std::string> params;
  int threads = 0;  // training and scoring threads; 0: XGBoost's default, all cores for scoring
  uint64_t seed = 0;
  // What the thresholds aim for on the validation window.
  ThresholdTargets targets;
  // Supervised models carry an isolation forest (default parameters, `seed`) over the same
  // inputs for the anomaly score. The evaluation, which only measures models, turns it off.
  bool anomaly_forest = true;
  // The model's created_at, epoch seconds; 0: the current time.
  int64_t created_at = 0;
  // Called as each long step advances; may be empty. Runs on the calling thread.
  std::function<void(TrainStep step, double fraction)> progress;
  // Called with remarks that do not stop training ("no test metrics: the data covers ..."); may be
  // empty. Runs on the calling thread.
  std::function<void(const std::string& note)> notice;
};

struct TrainResult {
  // Everything filled: algorithm, features, parameters, trees, standardisation, training window,
  // data fingerprint, code version, created_at, metrics (train_seconds, train_auc/ap/cp100 and,
  // with a test window, test_*), thresholds, and the anomaly forest when asked for.
  ModelFile model;
  // The rows trained on (split.train) and, when has_test_window, tested on (split.test, with the
  // handbook's known-compromised cards removed, and split.test_day).
  Split split;
  bool has_test_window = false;
  // Vigil's scores (Forest) of split.train and split.test, in the same order.
  std::vector<double> train_scores;
  std::vector<double> test_scores;
  // Seconds spent compiling the model into a Forest and scoring the test window. The training
  // time is model.metrics["train_seconds"].
  double predict_seconds = 0;
};

// Trains a model on `data` as `spec` says. Errors: a spec out of range, data without labels, no
// transaction in the training window, a training window of one class, parameters XGBoost rejects.
StatusOr<TrainResult> Train(const Dataset& data, const TrainSpec& spec);

// The same with the features already computed over the whole of `data` (once for many trainings,
// as the evaluation's folds).
// REQUIRES: `features` is ComputeFeatures(data, spec.features, {.label_delay_days =
// spec.split.delay_days}); its size and names are checked.
StatusOr<TrainResult> Train(const Dataset& data, const FeatureMatrix& features,
                            const TrainSpec& spec);

}  // namespace vigil

#endif  // VIGIL_TRAINING_H_
