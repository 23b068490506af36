// XGBoost's own in-place predictor on a Vigil model, for side-by-side measurement
// (`vigil bench`, bench/) and as the reference the scoring engine is checked against.
#ifndef VIGIL_MODEL_XGBOOST_PREDICTOR_H_
#define VIGIL_MODEL_XGBOOST_PREDICTOR_H_

#include <memory>
#include <span>

#include "vigil/model.h"
#include "vigil/status.h"

namespace vigil {

// Wraps XGBoosterPredictFromDense with a reused proxy matrix (its fastest single-row path).
// Inputs must already be standardised for logistic models. Not thread-safe.
class XGBoostPredictor {
 public:
  ~XGBoostPredictor();
  XGBoostPredictor(const XGBoostPredictor&) = delete;
  XGBoostPredictor& operator=(const XGBoostPredictor&) = delete;

  static StatusOr<std::unique_ptr<XGBoostPredictor>> Create(const ModelFile& model, int threads);

  // Probabilities of `rows` rows; returns XGBoost's output buffer (valid until the next call).
  StatusOr<std::span<const float>> Predict(std::span<const float> x, size_t rows);

 private:
  XGBoostPredictor() = default;
  void* booster_ = nullptr;
  void* proxy_ = nullptr;
  size_t cols_ = 0;
};

}  // namespace vigil

#endif  // VIGIL_MODEL_XGBOOST_PREDICTOR_H_
