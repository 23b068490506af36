// RAII owners for XGBoost C API handles, and the one place XGBoost errors become a Status.
#ifndef VIGIL_MODEL_XGBOOST_UTIL_H_
#define VIGIL_MODEL_XGBOOST_UTIL_H_

#include <xgboost/c_api.h>

#include <limits>
#include <span>
#include <string>

#include "vigil/status.h"

namespace vigil {

// Turns an XGBoost return code into a Status carrying XGBGetLastError().
inline Status XgbCheck(int rc, const char* what) {
  if (rc == 0) return Status::Ok();
  return Internal(std::string("XGBoost ") + what + ": " + XGBGetLastError());
}

// Owns a DMatrixHandle. Not thread-safe.
class XgbMatrix {
 public:
  XgbMatrix() = default;
  XgbMatrix(const XgbMatrix&) = delete;
  XgbMatrix& operator=(const XgbMatrix&) = delete;
  ~XgbMatrix() {
    if (handle_ != nullptr) XGDMatrixFree(handle_);
  }
  // A dense matrix; NaN marks a missing value.
  Status FromDense(std::span<const float> x, size_t rows, size_t cols) {
    return XgbCheck(XGDMatrixCreateFromMat(x.data(), rows, cols, std::numeric_limits<float>::quiet_NaN(),
                                           &handle_),
                    "create matrix");
  }
  DMatrixHandle get() const { return handle_; }

 private:
  DMatrixHandle handle_ = nullptr;
};

// Owns a BoosterHandle. Not thread-safe.
class XgbBooster {
 public:
  XgbBooster() = default;
  XgbBooster(const XgbBooster&) = delete;
  XgbBooster& operator=(const XgbBooster&) = delete;
  ~XgbBooster() {
    if (handle_ != nullptr) XGBoosterFree(handle_);
  }
  Status Create(const DMatrixHandle* cache, size_t n) {
    return XgbCheck(XGBoosterCreate(cache, n, &handle_), "create booster");
  }
  Status SetParam(const std::string& key, const std::string& value) {
    return XgbCheck(XGBoosterSetParam(handle_, key.c_str(), value.c_str()),
                    ("set parameter '" + key + "'").c_str());
  }
  Status LoadJson(const std::string& json) {
    VIGIL_RETURN_IF_ERROR(Create(nullptr, 0));
    return XgbCheck(XGBoosterLoadModelFromBuffer(handle_, json.data(), json.size()), "load model");
  }
  StatusOr<std::string> SaveJson() const {
    bst_ulong len = 0;
    const char* buf = nullptr;
    VIGIL_RETURN_IF_ERROR(XgbCheck(
        XGBoosterSaveModelToBuffer(handle_, R"({"format": "json"})", &len, &buf), "save model"));
    return std::string(buf, len);
  }
  BoosterHandle get() const { return handle_; }

 private:
  BoosterHandle handle_ = nullptr;
};

}  // namespace vigil

#endif  // VIGIL_MODEL_XGBOOST_UTIL_H_
