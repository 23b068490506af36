// The one JSON codec for what the engine produces: the score reply every front end gives (HTTP
// replies, prediction queue records) and the stored transaction's detail.
#ifndef VIGIL_ENGINE_PREDICTION_JSON_H_
#define VIGIL_ENGINE_PREDICTION_JSON_H_

#include <string>

#include <string_view>

#include "vigil/engine.h"

namespace vigil {

// {"transaction_id", "score", "decision", "reasons": [{"code", "text", "feature", "value",
//  "contribution"}], "anomaly_score" (null when none), "model": {"name", "version",
//  "algorithm"}, "latency_us"} — DESIGN.md §3.
std::string RenderPrediction(const Prediction& p);

// What a reply RenderPrediction wrote concluded: its score, and whether its decision flags the
// transaction (review or decline).
struct ReplyVerdict {
  double score = 0;
  bool flagged = false;
};
ReplyVerdict ReadVerdict(std::string_view reply);

// Where a prediction record comes from, for the queue path.
struct PredictionRecordSource {
  std::string_view message_id;  // the queue message it was pulled as
  std::string_view queue;       // and its queue
  int processor_rank = 0;
  int64_t processed_us = 0;     // when it was processed (µs since the epoch)
};

// The prediction record the processor pushes to PQ1: the score reply (`reply`, as
// RenderPrediction wrote it) with the reference design's record fields added, so that its
// consumers keep working: "prediction" (true when the decision is review or decline),
// "confidence" (the probability of the predicted class: max(score, 1 - score)), "customer_id",
// "amount", "vendor_id" (the terminal), "timestamp" (when processed), "processor_rank",
// "status": "scored", and "transaction_status", "message_id", "queue".
std::string RenderPredictionRecord(std::string_view reply, const Transaction& tx,
                                   const PredictionRecordSource& source);
// The record of a message that could not be scored: "status": "error" and "error" (the
// message), with "prediction" and "confidence" null and the ids when the content had them.
std::string RenderPredictionError(std::string_view content, std::string_view error,
                                  const PredictionRecordSource& source);

// {"transaction": <as received>, "prediction": <the reply given>, "features": {name: value,
//  ...} (the values the model scored; {} for records of older stores), "recorded_at"}.
std::string RenderTransactionDetail(const TransactionDetail& d);

}  // namespace vigil

#endif  // VIGIL_ENGINE_PREDICTION_JSON_H_
