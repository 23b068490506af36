// Transaction JSON for the scoring API: parsing and validation of the contract in DESIGN.md §3.
//
// The request path parses with simdjson On-Demand and validates every byte it is given (On-Demand
// is lazy: values the code does not ask for would otherwise go unchecked), so a body that passes is
// well-formed JSON that nlohmann::json also accepts, and the `json` text kept for the store can be
// read back by any JSON library. When the JSON is malformed, a cold path re-reads the body with
// nlohmann::json to say where (line, column) and why; simdjson reports no position.
//
// Rules (one FieldProblem each; `problem` is a sentence that names the field):
//   transaction_id  required; a non-empty string or an integer, at most 128 characters
//   customer_id     required; same rule
//   terminal_id     required; same rule. `vendor_id` (the reference design's name) is accepted
//                   instead; when both are sent they must be equal
//   amount          required; a JSON number (a string such as "12.5" is a type problem), finite,
//                   0 <= amount <= 1e9
//   timestamp       required; an RFC 3339 string with a zone ('Z' or +HH:MM), e.g.
//                   "2024-05-01T12:00:00Z", from 2000-01-01 to 2099-12-31 (UTC): a payment
//                   dated year 1 or 9999 is a client's bug, not a transaction
//   currency        optional; 3 upper-case letters (ISO 4217 style), e.g. "EUR"
//   status          optional; "submitted", "accepted" or "rejected"
//   metadata        optional; an object, anything inside
//   anything else   kept in `json`, never a problem
// A JSON null for an optional field means absent; for a required one it is a type problem.
// Duplicate keys: the last occurrence wins, as with nlohmann::json and JavaScript's JSON.parse
// (the `json` text keeps both).
// A UTF-8 byte order mark before the body is ignored (RFC 8259 §8.1 allows it).
// Numbers beyond a double's range (1e400) are refused as malformed JSON wherever they are, as
// nlohmann::json refuses them; in `amount` the problem says "amount must be at most 1000000000".
// An amount too small for a double (1e-400, which would read as 0) is a problem on `amount`.
// Nesting deeper than kMaxJsonDepth levels is refused (a problem on the body), which bounds the
// work and stack of the validator whatever arrives.
#ifndef VIGIL_CORE_TRANSACTION_JSON_H_
#define VIGIL_CORE_TRANSACTION_JSON_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "vigil/status.h"
#include "vigil/transaction.h"

namespace vigil {

inline constexpr size_t kMaxIdLength = 128;  // characters (UTF-8 code points)
inline constexpr double kMaxAmount = 1e9;
inline constexpr int64_t kMinTimestamp = 946684800;   // 2000-01-01T00:00:00Z
inline constexpr int64_t kMaxTimestamp = 4102444800;  // 2100-01-01T00:00:00Z (excluded)
inline constexpr int kMaxJsonDepth = 64;          // the body object is depth 1
inline constexpr size_t kMaxFieldProblems = 100;  // a batch lists at most this many, then a count

// One reason a request was refused, as it goes into the error reply's `details`.
struct FieldProblem {
  std::string field;    // "amount", "transactions[3].timestamp", or "" for the body as a whole
  std::string problem;  // "amount must be at most 1000000000"
};



// How a transaction that arrived by a queue is read (the reference's producers write Python's
// datetime.utcnow().isoformat(), "2024-05-01T12:00:00.123456", and may leave the id out).
struct TransactionParseOptions {
  // A timestamp without a zone is taken as UTC instead of being refused.
  bool zoneless_timestamps_are_utc = false;
  // The transaction_id of a transaction that has none (e.g. its queue message's id); empty:
  // transaction_id is required.
  std::string_view default_transaction_id;
};

// One message of a queue push body, its content as JSON text.
struct MessageText {
  std::string content;       // the value's JSON text, byte for byte as sent
  std::string message_type;  // "" when absent
};

// A TransactionParser parses and validates transaction bodies. It owns the padded copy of the
// input that simdjson needs and its parser state, both reused across calls, so a warm parser does
// not allocate for bodies no bigger than those it has seen (beyond the strings of `out` growing).
// Not thread-safe: hold one per thread (thread_local).
class TransactionParser {
 public:
  TransactionParser();
  ~TransactionParser();
  TransactionParser(const TransactionParser&) = delete;
  TransactionParser& operator=(const TransactionParser&) = delete;

  // Parses one transaction object. OK: *out is filled and *problems is empty. InvalidArgument:
  // *problems lists every problem found (malformed JSON is a single problem on field "" whose
  // text gives line and column), the message summarises them, and *out is unspecified.
  // REQUIRES: out != nullptr, problems != nullptr
  Status Parse(std::string_view body, Transaction* out, std::vector<FieldProblem>* problems,
               const TransactionParseOptions& options = {});

  // Parses {"transactions": [obj, ...]} (other top-level keys ignored) or a bare array [obj, ...]:
  // one to max_items transactions. Problems of item i are on fields "transactions[i].<field>"
  // (or "transactions[i]" when the item is not an object);
  // more than max_items items is one problem on "transactions" (items past the limit are checked
  // only for well-formed JSON). At most kMaxFieldProblems problems are listed, then one more on
  // field "" counts the rest. OK: *out holds the transactions in order.
  // REQUIRES: out != nullptr, problems != nullptr
  Status ParseBatch(std::string_view body, size_t max_items, std::vector<Transaction>* out,
                    std::vector<FieldProblem>* problems);

  // Parses a queue push body (the reference queue service's): {"content": <any JSON>,
  // "message_type": "..."} for one message, or {"messages": [{"content": ..., "message_type":
  // ...}, ...]} for one to max_items. `content` is required (null is a value: it is kept);
  // `message_type` is optional, a string of at most 64 bytes; other keys are ignored. Problems
  // are on "content", "message_type", "messages", "messages[i].content", ... OK: *out holds the
  // messages in order, and *batch (when given) says whether it was the "messages" form. The
  // whole body is checked to be well-formed JSON, so every content is.
  // REQUIRES: out != nullptr, problems != nullptr
  Status ParseMessages(std::string_view body, size_t max_items, std::vector<MessageText>* out,
                       std::vector<FieldProblem>* problems, bool* batch = nullptr);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vigil

#endif  // VIGIL_CORE_TRANSACTION_JSON_H_
