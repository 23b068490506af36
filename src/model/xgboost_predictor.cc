#include "model/xgboost_predictor.h"

#include <cstdio>
#include <string>

#include "model/xgboost_util.h"

namespace vigil {

XGBoostPredictor::~XGBoostPredictor() {
  if (proxy_ != nullptr) XGDMatrixFree(proxy_);
  if (booster_ != nullptr) XGBoosterFree(booster_);
}

StatusOr<std::unique_ptr<XGBoostPredictor>> XGBoostPredictor::Create(const ModelFile& model,
                                                                     int threads) {
  if (model.algo == Algorithm::kIsolationForest) {
    return InvalidArgument("XGBoost cannot score an isolation forest");
  }
  std::unique_ptr<XGBoostPredictor> p(new XGBoostPredictor());
  p->cols_ = model.feature_names.size();
  VIGIL_RETURN_IF_ERROR(XgbCheck(XGBoosterCreate(nullptr, 0, &p->booster_), "create booster"));
  VIGIL_RETURN_IF_ERROR(XgbCheck(
      XGBoosterLoadModelFromBuffer(p->booster_, model.xgboost_json.data(), model.xgboost_json.size()),
      "load model"));
  VIGIL_RETURN_IF_ERROR(XgbCheck(
      XGBoosterSetParam(p->booster_, "nthread", std::to_string(threads).c_str()), "set nthread"));
  VIGIL_RETURN_IF_ERROR(XgbCheck(XGProxyDMatrixCreate(&p->proxy_), "create proxy matrix"));
  return p;
}

StatusOr<std::span<const float>> XGBoostPredictor::Predict(std::span<const float> x, size_t rows) {
  static constexpr const char* kConfig =
      R"({"type":0,"training":false,"iteration_begin":0,"iteration_end":0,)"
      R"("strict_shape":false,"missing":NaN,"cache_id":0})";
  char array[192];
  std::snprintf(array, sizeof array,
                R"({"data":[%zu,true],"shape":[%zu,%zu],"typestr":"<f4","version":3})",
                reinterpret_cast<size_t>(x.data()), rows, cols_);
  const bst_ulong* shape = nullptr;
  bst_ulong dim = 0;
  const float* out = nullptr;
  VIGIL_RETURN_IF_ERROR(XgbCheck(
      XGBoosterPredictFromDense(booster_, array, kConfig, proxy_, &shape, &dim, &out), "predict"));
  return std::span<const float>(out, rows);
}

}  // namespace vigil
