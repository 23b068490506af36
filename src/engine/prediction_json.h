// The one JSON codec for what the engine produces: the score reply every front end gives (HTTP
// replies, prediction queue records) and the stored transaction's detail.
#ifndef VIGIL_ENGINE_PREDICTION_JSON_H_
#define VIGIL_ENGINE_PREDICTION_JSON_H_

#include <string>

#include "vigil/engine.h"

namespace vigil {

// {"transaction_id", "score", "decision", "reasons": [{"code", "text", "feature", "value",
//  "contribution"}], "anomaly_score" (null when none), "model": {"name", "version",
//  "algorithm"}, "latency_us"} — DESIGN.md §3.
std::string RenderPrediction(const Prediction& p);

// {"transaction": <as received>, "prediction": <the reply given>, "features": {name: value,
//  ...} (the values the model scored; {} for records of older stores), "recorded_at"}.
std::string RenderTransactionDetail(const TransactionDetail& d);

}  // namespace vigil

#endif  // VIGIL_ENGINE_PREDICTION_JSON_H_
