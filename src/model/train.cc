#include <cmath>
#include <string>

#include "model/iforest.h"
#include "model/tree.h"
#include "model/xgboost_util.h"
#include "vigil/model.h"

namespace vigil {

std::map<std::string, std::string> DefaultParams(Algorithm algo) {
  switch (algo) {
    case Algorithm::kGbdt:
      // The handbook's model selection picked 50 rounds, eta 0.3, depth 3 for AP and CP@100.
      // Exact splits: on a training week (~70k rows) they cost ~1 s and gain ~0.035 AP over
      // 256-bin histograms (docs/model-quality.md); pass tree_method=hist for large windows.
      return {{"booster", "gbtree"},   {"objective", "binary:logistic"}, {"tree_method", "exact"},
              {"n_estimators", "50"},  {"eta", "0.3"},                   {"max_depth", "3"},
              {"min_child_weight", "1"}, {"lambda", "1"}};
    case Algorithm::kRandomForest:
      // A random forest as XGBoost grows one: one round of parallel trees on row subsamples,
      // sqrt(features) candidates per split, as scikit-learn's default; depth 20 as the book's.
      return {{"booster", "gbtree"},         {"objective", "binary:logistic"},
              {"tree_method", "exact"},      {"n_estimators", "100"},
              {"eta", "1"},                  {"max_depth", "20"},
              {"subsample", "0.632"},        {"colsample_bynode", "0.26"},
              {"min_child_weight", "0.25"},  {"lambda", "1e-5"}};
    case Algorithm::kLogistic:
      // L2-regularised logistic regression on standardised inputs. gblinear multiplies lambda
      // by the number of rows, so 1e-5 on a ~70k-row week is about scikit-learn's C = 1.
      return {{"booster", "gblinear"},       {"objective", "binary:logistic"},
              {"updater", "coord_descent"},  {"feature_selector", "cyclic"},
              {"n_estimators", "100"},       {"eta", "1"},
              {"lambda", "1e-5"},            {"alpha", "0"}};
    case Algorithm::kIsolationForest:
      // Liu, Ting & Zhou (2008): 100 trees on subsamples of 256.
      return {{"n_estimators", "100"}, {"sample_size", "256"}};
  }
  return {};
}

namespace {

Status ApplyParams(XgbBooster& booster, const std::map<std::string, std::string>& params) {
  for (const auto& [key, value] : params) {
    if (key == "n_estimators") continue;
    VIGIL_RETURN_IF_ERROR(booster.SetParam(key, value));
  }
  return Status::Ok();
}

// Parses a positive integer parameter.
StatusOr<int> PositiveInt(const std::map<std::string, std::string>& params, const std::string& key) {
  try {
    size_t used = 0;
    const std::string& v = params.at(key);
    const int n = std::stoi(v, &used);
    if (used == v.size() && n > 0) return n;
  } catch (const std::exception&) {
  }
  return InvalidArgument(key + " must be a positive integer, got '" +
                         (params.count(key) ? params.at(key) : std::string()) + "'");
}

StatusOr<ModelFile> TrainIsolationModel(std::span<const float> x, size_t rows,
                                        const std::vector<std::string>& names,
                                        const TrainOptions& options) {
  ModelFile model;
  model.algo = Algorithm::kIsolationForest;
  model.feature_names = names;
  model.params = DefaultParams(Algorithm::kIsolationForest);
  for (const auto& [k, v] : options.params) {
    if (!model.params.count(k)) {
      return InvalidArgument("unknown iforest parameter '" + k + "' (n_estimators, sample_size)");
    }
    model.params[k] = v;
  }
  model.params["seed"] = std::to_string(options.seed);
  IsolationForestOptions io;
  VIGIL_ASSIGN_OR_RETURN(io.trees, PositiveInt(model.params, "n_estimators"));
  VIGIL_ASSIGN_OR_RETURN(io.sample_size, PositiveInt(model.params, "sample_size"));
  io.seed = options.seed;
  io.threads = options.threads;
  VIGIL_ASSIGN_OR_RETURN(Ensemble e, TrainIsolationForest(x, rows, names.size(), io));
  model.xgboost_json = IsolationForestToJson(e);
  return model;
}

}  // namespace

StatusOr<ModelFile> TrainModel(std::span<const float> x, std::span<const uint8_t> labels,
                               const std::vector<std::string>& names, const TrainOptions& options) {
  const size_t rows = labels.size();
  const size_t cols = names.size();
  if (rows == 0) return InvalidArgument("no training rows");
  if (x.size() != rows * cols) return Internal("feature matrix size does not match labels");
  if (options.algo == Algorithm::kIsolationForest) return TrainIsolationModel(x, rows, names, options);
  size_t positives = 0;
  for (uint8_t l : labels) positives += l;
  if (positives == 0 || positives == rows) {
    return InvalidArgument("the training window holds only one class (" +
                           std::to_string(positives) + " frauds in " + std::to_string(rows) +
                           " rows)");
  }

  ModelFile model;
  model.algo = options.algo;
  model.feature_names = names;
  model.params = DefaultParams(options.algo);
  for (const auto& [k, v] : options.params) model.params[k] = v;
  model.params["seed"] = std::to_string(options.seed);
  if (options.algo == Algorithm::kRandomForest) {
    model.params["num_parallel_tree"] = model.params["n_estimators"];
  }
  int rounds = 0;
  try {
    rounds = options.algo == Algorithm::kRandomForest ? 1 : std::stoi(model.params["n_estimators"]);
  } catch (const std::exception&) {
    rounds = -1;
  }
  if (rounds < 1) {
    return InvalidArgument("n_estimators must be a positive integer, got '" +
                           model.params["n_estimators"] + "'");
  }

  std::vector<float> scaled;
  std::span<const float> input = x;
  if (options.algo == Algorithm::kLogistic) {
    // Standardise as the handbook's StandardScaler: mean and population std of the training set,
    // over the values present (missing values stay missing).
    model.feature_mean.assign(cols, 0.0);
    model.feature_scale.assign(cols, 0.0);
    std::vector<size_t> present(cols, 0);
    for (size_t r = 0; r < rows; ++r) {
      for (size_t c = 0; c < cols; ++c) {
        if (!std::isnan(x[r * cols + c])) {
          model.feature_mean[c] += x[r * cols + c];
          ++present[c];
        }
      }
    }
    for (size_t c = 0; c < cols; ++c) model.feature_mean[c] /= std::max<size_t>(present[c], 1);
    for (size_t r = 0; r < rows; ++r) {
      for (size_t c = 0; c < cols; ++c) {
        if (!std::isnan(x[r * cols + c])) {
          const double d = x[r * cols + c] - model.feature_mean[c];
          model.feature_scale[c] += d * d;
        }
      }
    }
    for (size_t c = 0; c < cols; ++c) {
      double& s = model.feature_scale[c];
      s = std::sqrt(s / std::max<size_t>(present[c], 1));
      if (!(s > 0) || !std::isfinite(s)) s = 1;  // constant or infinite: leave it centred
      if (!std::isfinite(model.feature_mean[c])) model.feature_mean[c] = 0;
    }
    scaled.resize(x.size());
    Standardize(x, model.feature_mean, model.feature_scale, scaled);
    input = scaled;
  }

  XgbMatrix dtrain;
  VIGIL_RETURN_IF_ERROR(dtrain.FromDense(input, rows, cols));
  std::vector<float> y(labels.begin(), labels.end());
  VIGIL_RETURN_IF_ERROR(
      XgbCheck(XGDMatrixSetFloatInfo(dtrain.get(), "label", y.data(), rows), "set labels"));
  XgbBooster booster;
  DMatrixHandle cache[] = {dtrain.get()};
  VIGIL_RETURN_IF_ERROR(booster.Create(cache, 1));
  VIGIL_RETURN_IF_ERROR(ApplyParams(booster, model.params));
  if (options.threads > 0) {
    VIGIL_RETURN_IF_ERROR(booster.SetParam("nthread", std::to_string(options.threads)));
  }
  for (int i = 0; i < rounds; ++i) {
    VIGIL_RETURN_IF_ERROR(
        XgbCheck(XGBoosterUpdateOneIter(booster.get(), i, dtrain.get()), "training round"));
  }
  VIGIL_ASSIGN_OR_RETURN(model.xgboost_json, booster.SaveJson());
  return model;
}

namespace {

// Runs XGBoosterPredict with an option mask (0: probabilities, 4: SHAP contributions).
StatusOr<std::vector<double>> XGBoostPredict(const ModelFile& model, std::span<const float> x,
                                             int option_mask, int threads) {
  const size_t cols = model.feature_names.size();
  const size_t rows = x.size() / cols;
  std::vector<double> out;
  if (rows == 0) return out;
  std::vector<float> scaled;
  std::span<const float> input = x;
  if (!model.feature_mean.empty()) {
    scaled.resize(x.size());
    Standardize(x, model.feature_mean, model.feature_scale, scaled);
    input = scaled;
  }
  if (model.algo == Algorithm::kIsolationForest) {
    return InvalidArgument("XGBoost cannot score an isolation forest; use Vigil's Forest");
  }
  XgbBooster booster;
  VIGIL_RETURN_IF_ERROR(booster.LoadJson(model.xgboost_json));
  if (threads > 0) VIGIL_RETURN_IF_ERROR(booster.SetParam("nthread", std::to_string(threads)));
  XgbMatrix dm;
  VIGIL_RETURN_IF_ERROR(dm.FromDense(input, rows, cols));
  bst_ulong len = 0;
  const float* result = nullptr;
  VIGIL_RETURN_IF_ERROR(XgbCheck(
      XGBoosterPredict(booster.get(), dm.get(), option_mask, 0, 0, &len, &result), "predict"));
  out.assign(result, result + len);
  return out;
}

}  // namespace

StatusOr<std::vector<double>> PredictWithXGBoost(const ModelFile& model, std::span<const float> x,
                                                 int threads) {
  return XGBoostPredict(model, x, 0, threads);
}

StatusOr<std::vector<double>> ContributionsWithXGBoost(const ModelFile& model,
                                                       std::span<const float> x,
                                                       bool approximate) {
  // XGBoosterPredict's option mask: 4 pred_contribs, 8 approx_contribs.
  return XGBoostPredict(model, x, approximate ? 4 | 8 : 4, 1);
}

}  // namespace vigil
