// The canonical transaction: what every front end (HTTP, queues, MPI ranks, batch files) hands
// the scoring engine, and what it records. One type; the JSON codec that fills it from the wire
// (validation included) is src/core/transaction_json.h, the CSV reader vigil/dataset.h.
#ifndef VIGIL_TRANSACTION_H_
#define VIGIL_TRANSACTION_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace vigil {

struct Transaction {
  // Ids may arrive as JSON strings or integers; kept as their text (an integer as its decimal
  // digits, exactly as sent).
  std::string transaction_id, customer_id, terminal_id;
  // Keys for the feature engine, from IdKey() of customer_id and terminal_id.
  int64_t customer_key = 0, terminal_key = 0;
  double amount = 0;
  int64_t timestamp = 0;  // epoch seconds, UTC
  std::string currency;   // "" when absent
  std::string status;     // "" when absent
  // The object's own JSON text, byte for byte as sent (unknown fields kept), for the store.
  std::string json;
};

// The feature engine's integer key for an id's text. The canonical decimal form of a non-negative
// 64-bit integer ("0", "42", "9223372036854775807": no sign, no leading zero) maps to that integer,
// whether the id arrived as a JSON integer or a string, so 42 and "42" are one customer. Any other
// text maps to its 64-bit FNV-1a hash with the top bit cleared (non-negative). A hash can collide
// with another id's key: with n distinct ids the chance of any collision is about n^2 / 2^64
// (1e-7 for a million customers), and a collision only merges two customers' feature windows.
// "007" hashes rather than mapping to 7, because "007" and "7" are different ids.
int64_t IdKey(std::string_view id_text);

}  // namespace vigil

#endif  // VIGIL_TRANSACTION_H_
