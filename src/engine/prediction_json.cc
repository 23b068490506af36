#include "engine/prediction_json.h"

#include "core/json_text.h"
#include "vigil/time.h"

namespace vigil {

std::string RenderPrediction(const Prediction& p) {
  std::string body;
  body.reserve(256 + 160 * p.reasons.size());
  body += "{\"transaction_id\":";
  AppendJsonString(&body, p.transaction_id);
  body += ",\"score\":";
  AppendJsonNumber(&body, p.score);
  body += ",\"decision\":\"";
  body += DecisionName(p.decision);
  body += "\",\"reasons\":[";
  for (size_t i = 0; i < p.reasons.size(); ++i) {
    const Reason& r = p.reasons[i];
    if (i > 0) body += ',';
    body += "{\"code\":";
    AppendJsonString(&body, r.code);
    body += ",\"text\":";
    AppendJsonString(&body, r.text);
    body += ",\"feature\":";
    AppendJsonString(&body, r.feature);
    body += ",\"value\":";
    AppendJsonNumber(&body, r.value);
    body += ",\"contribution\":";
    AppendJsonNumber(&body, r.contribution);
    body += '}';
  }
  body += "],\"anomaly_score\":";
  AppendJsonNumber(&body, p.anomaly_score);
  body += ",\"model\":{\"name\":";
  AppendJsonString(&body, p.model_name);
  body += ",\"version\":";
  AppendJsonString(&body, p.model_version);
  body += ",\"algorithm\":\"";
  body += AlgorithmName(p.algorithm);
  body += "\"},\"latency_us\":" + std::to_string(p.latency_us) + "}";
  return body;
}

std::string RenderTransactionDetail(const TransactionDetail& d) {
  const TransactionRecord& t = d.record;
  std::string body = "{\"transaction\":" + t.transaction_json + ",\"prediction\":" + t.reply_json +
                     ",\"features\":{";
  for (size_t i = 0; i < d.feature_names.size() && i < t.features.size(); ++i) {
    if (i > 0) body += ',';
    AppendJsonString(&body, d.feature_names[i]);
    body += ':';
    AppendJsonNumber(&body, t.features[i]);
  }
  body += "},\"recorded_at\":\"" + FormatRfc3339(t.recorded_at_us / 1000000) + "\"}";
  return body;
}

}  // namespace vigil
