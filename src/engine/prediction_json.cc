#include "engine/prediction_json.h"

#include <algorithm>
#include <cstdlib>

#include <nlohmann/json.hpp>

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

namespace {

// The number after `key` in a reply RenderPrediction wrote; its first match is the field itself
// (a quote inside a string value is escaped, so `,"score":` cannot occur inside one).
double ReplyNumber(std::string_view reply, std::string_view key) {
  const size_t at = reply.find(key);
  if (at == std::string_view::npos) return 0;
  std::string number(reply.substr(at + key.size(), 32));
  return std::strtod(number.c_str(), nullptr);
}

void AppendSource(std::string* b, const PredictionRecordSource& source) {
  *b += ",\"timestamp\":\"" + FormatRfc3339Micros(source.processed_us) + "\"";
  *b += ",\"processor_rank\":" + std::to_string(source.processor_rank);
  *b += ",\"message_id\":";
  AppendJsonString(b, source.message_id);
  *b += ",\"queue\":";
  AppendJsonString(b, source.queue);
}

}  // namespace

ReplyVerdict ReadVerdict(std::string_view reply) {
  ReplyVerdict v;
  v.score = ReplyNumber(reply, ",\"score\":");
  constexpr std::string_view kDecision = ",\"decision\":\"";
  const size_t d = reply.find(kDecision);
  v.flagged = d != std::string_view::npos && reply.substr(d + kDecision.size(), 7) != "approve";
  return v;
}

std::string RenderPredictionRecord(std::string_view reply, const Transaction& tx,
                                   const PredictionRecordSource& source) {
  const ReplyVerdict verdict = ReadVerdict(reply);
  const double score = verdict.score;
  const bool flagged = verdict.flagged;
  std::string b;
  b.reserve(reply.size() + 320);
  b.append(reply.substr(0, reply.size() - 1));  // without its closing brace
  b += ",\"prediction\":";
  b += flagged ? "true" : "false";
  b += ",\"confidence\":";
  AppendJsonNumber(&b, std::max(score, 1 - score));
  b += ",\"customer_id\":";
  AppendJsonString(&b, tx.customer_id);
  b += ",\"amount\":";
  AppendJsonNumber(&b, tx.amount);
  b += ",\"vendor_id\":";
  AppendJsonString(&b, tx.terminal_id);
  b += ",\"status\":\"scored\",\"transaction_status\":";
  if (tx.status.empty()) {
    b += "null";
  } else {
    AppendJsonString(&b, tx.status);
  }
  AppendSource(&b, source);
  return b + "}";
}

std::string RenderPredictionError(std::string_view content, std::string_view error,
                                  const PredictionRecordSource& source) {
  // The ids, when the content is an object that has them as strings or numbers.
  std::string transaction_id(source.message_id), customer_id;
  auto j = nlohmann::json::parse(content, nullptr, /*allow_exceptions=*/false);
  auto id_text = [&](const char* key, std::string* out) {
    if (!j.is_object() || !j.contains(key)) return;
    const auto& v = j[key];
    if (v.is_string()) *out = v.get<std::string>();
    if (v.is_number_integer()) *out = v.dump();
  };
  id_text("transaction_id", &transaction_id);
  id_text("customer_id", &customer_id);
  std::string b = "{\"transaction_id\":";
  AppendJsonString(&b, transaction_id);
  b += ",\"customer_id\":";
  if (customer_id.empty()) {
    b += "null";
  } else {
    AppendJsonString(&b, customer_id);
  }
  b += ",\"prediction\":null,\"confidence\":null,\"status\":\"error\",\"error\":";
  AppendJsonString(&b, error);
  AppendSource(&b, source);
  return b + "}";
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
