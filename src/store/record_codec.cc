#include "store/record_codec.h"

#include <cstdint>

#include "core/coding.h"

namespace vigil {
namespace {

constexpr uint8_t kVersion = 1;

}  // namespace

void EncodeRecord(const TransactionRecord& r, std::string* out) {
  out->reserve(out->size() + 96 + r.transaction_json.size() + r.reply_json.size() +
               r.features.size() * sizeof(float));
  out->push_back(static_cast<char>(kVersion));
  PutString(r.transaction_id, out);
  PutString(r.customer_id, out);
  PutString(r.terminal_id, out);
  PutFixed(r.amount, out);
  PutFixed(r.timestamp, out);
  PutString(r.transaction_json, out);
  PutFixed(r.score, out);
  PutString(r.decision, out);
  PutFixed(r.anomaly_score, out);
  PutString(r.model_name, out);
  PutString(r.model_version, out);
  PutString(r.reply_json, out);
  PutFixed(r.latency_us, out);
  PutFixed(r.recorded_at_us, out);
  PutString(r.idempotency_key, out);
  PutFixed(r.request_fingerprint, out);
  PutVarint(r.features.size(), out);
  for (float f : r.features) PutFixed(f, out);
}

Status DecodeRecord(std::string_view payload, TransactionRecord* r) {
  if (payload.empty() || static_cast<uint8_t>(payload[0]) != kVersion) {
    return InvalidArgument("a journal record of an unknown version");
  }
  ByteReader c(payload.substr(1));
  c.String(&r->transaction_id);
  c.String(&r->customer_id);
  c.String(&r->terminal_id);
  r->amount = c.Fixed<double>();
  r->timestamp = c.Fixed<int64_t>();
  c.String(&r->transaction_json);
  r->score = c.Fixed<double>();
  c.String(&r->decision);
  r->anomaly_score = c.Fixed<double>();
  c.String(&r->model_name);
  c.String(&r->model_version);
  c.String(&r->reply_json);
  r->latency_us = c.Fixed<int64_t>();
  r->recorded_at_us = c.Fixed<int64_t>();
  c.String(&r->idempotency_key);
  r->request_fingerprint = c.Fixed<uint64_t>();
  const size_t n = c.Count(sizeof(float));
  if (!c.ok()) return InvalidArgument("a journal record that ends early");
  r->features.resize(n);
  for (float& f : r->features) f = c.Fixed<float>();
  if (!c.ok()) return InvalidArgument("a journal record that ends early");
  if (c.remaining() != 0) {
    return InvalidArgument("a journal record with bytes after its last field");
  }
  return Status::Ok();
}

}  // namespace vigil
