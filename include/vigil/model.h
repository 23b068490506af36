// Models: training through XGBoost and the self-describing model file.
//
// A model file is one JSON document: the format and its version, the algorithm, the feature
// set and feature names in model order, the training parameters, the training window and the
// data fingerprint, the metrics measured at training time, the code version, an optional input
// standardisation (logistic), and XGBoost's own model JSON, kept whole for portability.
#ifndef VIGIL_MODEL_H_
#define VIGIL_MODEL_H_

#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vigil/decision.h"
#include "vigil/features.h"
#include "vigil/status.h"

namespace vigil {

// rf, gbdt and logistic learn from labels through XGBoost; iforest (an isolation forest) needs no
// labels and scores how unusual a transaction is.
enum class Algorithm { kRandomForest, kGbdt, kLogistic, kIsolationForest };

StatusOr<Algorithm> ParseAlgorithm(std::string_view name);  // "rf" | "gbdt" | "logistic" | "iforest"
std::string_view AlgorithmName(Algorithm algo);
// Parses a comma-separated list ("rf,gbdt").
StatusOr<std::vector<Algorithm>> ParseAlgorithmList(std::string_view names);

inline constexpr int kModelFormatVersion = 1;

struct TrainingWindow {
  std::string start;  // YYYY-MM-DD
  int days = 0;
  int64_t rows = 0;
  int64_t frauds = 0;
};

struct ModelFile {
  Algorithm algo = Algorithm::kGbdt;
  std::string feature_set;                // "book" | "all" | "custom" (imported)
  std::vector<std::string> feature_names;  // model order
  int label_delay_days = 7;                // the feature engine's delay the model was trained on
  std::map<std::string, std::string> params;  // the XGBoost parameters used
  // Inputs are standardised as (x - mean) / scale before the booster when non-empty.
  std::vector<double> feature_mean;
  std::vector<double> feature_scale;
  TrainingWindow training;
  std::string data_fingerprint;
  std::string code_version;
  std::string created_at;                 // RFC 3339
  std::map<std::string, double> metrics;  // e.g. "train_auc", "test_ap"
  // The trees in XGBoost's JSON schema: XGBoost's own model for rf/gbdt/logistic, Vigil's
  // isolation forest (objective "vigil:isolation") for iforest.
  std::string xgboost_json;
  // Decision thresholds chosen at training time, when present.
  bool has_thresholds = false;
  Thresholds thresholds;
  // An isolation forest over the same features, for the anomaly score; empty when absent.
  std::string anomaly_json;
};

Status SaveModel(const ModelFile& model, const std::string& path);
// Errors name the file and what is wrong: unreadable, not JSON, another format, an unknown
// format version, a missing field.
// The file must be a regular file of at most max_bytes (ReadFile's rules).
StatusOr<ModelFile> LoadModel(const std::string& path, size_t max_bytes = SIZE_MAX);
// The same from a file's bytes already read; `path` names it in errors.
StatusOr<ModelFile> ParseModel(std::string_view text, const std::string& path);

struct TrainOptions {
  Algorithm algo = Algorithm::kGbdt;
  // XGBoost parameters over Vigil's defaults for the algorithm, plus "n_estimators" (boosting
  // rounds; trees for rf). Unknown keys are passed to XGBoost, which rejects what it does not know.
  std::map<std::string, std::string> params;
  int threads = 0;  // 0: XGBoost's default
  uint64_t seed = 0;
};

// Vigil's default parameters for an algorithm (what `vigil train --help` shows).
std::map<std::string, std::string> DefaultParams(Algorithm algo);

// Trains on the rows of `x` (row-major, x.size() == labels.size() * names.size()): the learning
// step alone. Fills algo, params, feature names, standardisation and xgboost_json. To train a
// model file from a data set (windows, metrics, thresholds, anomaly forest, lineage), call Train()
// in vigil/training.h.
StatusOr<ModelFile> TrainModel(std::span<const float> x, std::span<const uint8_t> labels,
                               const std::vector<std::string>& names, const TrainOptions& options);

// Fraud probabilities from XGBoost's own predictor (the reference the scoring core is checked
// against). Not for iforest models. REQUIRES: x.size() is a multiple of model.feature_names.size().
StatusOr<std::vector<double>> PredictWithXGBoost(const ModelFile& model, std::span<const float> x,
                                                 int threads = 0);

// XGBoost's own SHAP contributions (`pred_contribs`): per row, one value per feature then the
// bias; each row's values sum to its margin. `approximate`: its path attributions instead
// (`approx_contribs`, Saabas).
StatusOr<std::vector<double>> ContributionsWithXGBoost(const ModelFile& model,
                                                       std::span<const float> x,
                                                       bool approximate = false);

}  // namespace vigil

#endif  // VIGIL_MODEL_H_
