// A Dataset is a table of transactions, held as columns, in time order.
//
// It is the offline unit of work: the simulator writes one, `vigil features`, `vigil train` and
// `vigil evaluate` read one. The CSV form has the columns
//   transaction_id,timestamp,customer_id,terminal_id,amount[,fraud[,fraud_scenario]]
// with the timestamp in RFC 3339 UTC. `vendor_id` is accepted for `terminal_id` (the reference
// design's name). Not thread-safe for writing; concurrent reads are fine.
#ifndef VIGIL_DATASET_H_
#define VIGIL_DATASET_H_

#include <cstdint>
#include <string>
#include <vector>

#include "vigil/status.h"

namespace vigil {

struct Dataset {
  std::vector<int64_t> transaction_id;
  std::vector<int64_t> timestamp;  // epoch seconds, UTC
  std::vector<int64_t> customer_id;
  std::vector<int64_t> terminal_id;
  std::vector<double> amount;
  // Labels: present when has_labels. fraud is 0 or 1; fraud_scenario is 0 for genuine
  // transactions, else the simulator's scenario (1..3), or 0 when the file has no such column.
  bool has_labels = false;
  std::vector<uint8_t> fraud;
  std::vector<uint8_t> fraud_scenario;

  size_t size() const { return transaction_id.size(); }
  void Reserve(size_t n);
  // Appends one row; fraud/scenario are ignored unless has_labels.
  void Append(int64_t id, int64_t ts, int64_t customer, int64_t terminal, double amt,
              uint8_t is_fraud = 0, uint8_t scenario = 0);
  // The rows [begin, end) as a new Dataset.
  Dataset Slice(size_t begin, size_t end) const;
  // The rows whose indices are listed, in that order.
  Dataset Select(const std::vector<size_t>& rows) const;
  // Index of the first row with timestamp >= t (rows are in time order).
  size_t LowerBound(int64_t t) const;
  // A stable fingerprint of the content (FNV-1a over the columns), as 16 hex digits.
  std::string Fingerprint() const;
};

// Reads a transactions CSV. Errors name the file, line and column ("tx.csv:12:5: amount: 'abc'
// is not a number"). Rows must be in non-decreasing time order.
StatusOr<Dataset> ReadTransactionsCsv(const std::string& path);

// Writes a transactions CSV atomically: the file appears whole or not at all.
Status WriteTransactionsCsv(const Dataset& data, const std::string& path);

// Formats an amount the way the CSV stores it: the shortest text that reads back bit-exact.
std::string FormatDouble(double v);

}  // namespace vigil

#endif  // VIGIL_DATASET_H_
