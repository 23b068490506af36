#include "store/record_codec.h"

#include <cstdint>
#include <cstring>

namespace vigil {
namespace {

constexpr uint8_t kVersion = 1;

void PutVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

template <typename T>
void PutFixed(T v, std::string* out) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));  // x86-64: little-endian
  out->append(b, sizeof(T));
}

void PutString(std::string_view s, std::string* out) {
  PutVarint(s.size(), out);
  out->append(s);
}

// Reads fields off the front of a payload; any read past its end sets ok() false.
class Cursor {
 public:
  explicit Cursor(std::string_view in) : in_(in) {}
  bool ok() const { return ok_; }
  bool done() const { return in_.empty(); }

  uint64_t Varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (in_.empty()) break;
      const auto b = static_cast<unsigned char>(in_.front());
      in_.remove_prefix(1);
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return v;
    }
    ok_ = false;
    return 0;
  }
  template <typename T>
  T Fixed() {
    T v{};
    if (in_.size() < sizeof(T)) {
      ok_ = false;
      return v;
    }
    std::memcpy(&v, in_.data(), sizeof(T));
    in_.remove_prefix(sizeof(T));
    return v;
  }
  void String(std::string* s) {
    const uint64_t n = Varint();
    if (!ok_ || n > in_.size()) {
      ok_ = false;
      return;
    }
    s->assign(in_.data(), n);
    in_.remove_prefix(n);
  }

 private:
  std::string_view in_;
  bool ok_ = true;
};

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
  Cursor c(payload.substr(1));
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
  const uint64_t n = c.Varint();
  if (!c.ok() || n > payload.size() / sizeof(float)) {
    return InvalidArgument("a journal record that ends early");
  }
  r->features.resize(n);
  for (float& f : r->features) f = c.Fixed<float>();
  if (!c.ok()) return InvalidArgument("a journal record that ends early");
  if (!c.done()) return InvalidArgument("a journal record with bytes after its last field");
  return Status::Ok();
}

}  // namespace vigil
