// The journal's payload for a TransactionRecord: a compact binary encoding, versioned by its
// first byte.
//
//   u8 version (1) | transaction_id | customer_id | terminal_id | f64 amount | i64 timestamp |
//   transaction_json | f64 score | decision | f64 anomaly_score | model_name | model_version |
//   reply_json | i64 latency_us | i64 recorded_at_us | idempotency_key | u64 request_fingerprint |
//   varint n | n x f32 features
//
// A string is a varint length and its bytes; fixed-width numbers are little-endian. `sequence`
// is not encoded: it is the record's journal offset.
#ifndef VIGIL_STORE_RECORD_CODEC_H_
#define VIGIL_STORE_RECORD_CODEC_H_

#include <string>
#include <string_view>

#include "vigil/status.h"
#include "vigil/store.h"

namespace vigil {

// Appends the encoding of `record` to `out`.
void EncodeRecord(const TransactionRecord& record, std::string* out);

// Decodes a payload EncodeRecord wrote. InvalidArgument when it is not one (a version this
// build does not read, or bytes that end early or run on).
Status DecodeRecord(std::string_view payload, TransactionRecord* record);

}  // namespace vigil

#endif  // VIGIL_STORE_RECORD_CODEC_H_
