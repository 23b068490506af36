// The terminal half of the feature state, with the fraud labels.
#ifndef VIGIL_FEATURES_TERMINAL_WINDOWS_H_
#define VIGIL_FEATURES_TERMINAL_WINDOWS_H_

#include <cstdint>
#include <deque>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>

#include "vigil/features.h"
#include "vigil/status.h"

namespace vigil {

class ByteReader;  // core/coding.h

// TerminalWindows holds, per terminal_id, the times of the terminal's transactions and of those
// labelled fraud over the last 30 + label_delay_days days, and the table of known transactions
// through which labels arrive; it computes the terminal features (FeatureSource::kTerminal in
// the catalog).
//
// A terminal's windows count the transactions of every customer who used it. Whoever splits
// the state across owners must route this class's state by terminal_id (labels with their
// transaction's terminal) or keep it whole, never split it by customer: the terminal features
// would then count only a share of the terminal's traffic, silently.
//
// Thread-safety: const methods may run concurrently with each other; the others need exclusive
// access.
class TerminalWindows {
 public:
  explicit TerminalWindows(int label_delay_days);
  TerminalWindows(const TerminalWindows&) = delete;
  TerminalWindows& operator=(const TerminalWindows&) = delete;

  // Writes the terminal features of `tx`, at their catalog indices, from the state.
  // REQUIRES: out.size() >= every terminal feature's index + 1.
  void Compute(const TransactionView& tx, std::span<float> out) const;
  // Adds `tx` to its terminal and to the known transactions, then forgets what no window of a
  // transaction at or after the newest can reach.
  void Insert(const TransactionView& tx);
  // Compute then Insert, with one lookup.
  void Update(const TransactionView& tx, std::span<float> out);
  // Undoes Insert(tx), its fraud label included, when the known transactions hold
  // tx.transaction_id at tx's terminal and time; false (and no change) otherwise.
  bool Remove(const TransactionView& tx);
  // See FeatureEngine::AddLabel.
  Status AddLabel(int64_t transaction_id, bool fraud);

  // Appends the state to `out`, map entries in increasing key order: equal states, equal bytes.
  // The label delay is not written: FeatureEngine::Save records its options.
  void Save(std::string* out) const;
  // Replaces the state with one Save wrote, read off the front of `in`. On an error (`in` fails
  // too) the state is left empty.
  Status Load(ByteReader* in);

 private:
  struct Terminal {
    std::deque<int64_t> ts;        // every transaction, sorted
    std::deque<int64_t> fraud_ts;  // transactions labelled fraud, sorted
  };
  struct Known {
    int64_t terminal_id;
    int64_t ts;
    bool fraud;
  };

  void ComputeFrom(const Terminal& term, int64_t t, std::span<float> out) const;
  void InsertInto(Terminal& term, const TransactionView& tx);

  int64_t delay_;    // seconds
  int64_t horizon_;  // seconds of history kept: the delay and the longest window
  std::unordered_map<int64_t, Terminal> terminals_;
  // Transactions that may still receive a label, in arrival order for pruning.
  std::unordered_map<int64_t, Known> known_;
  std::deque<std::pair<int64_t, int64_t>> known_order_;  // (ts, transaction_id)
  int64_t newest_ts_ = INT64_MIN;
};

}  // namespace vigil

#endif  // VIGIL_FEATURES_TERMINAL_WINDOWS_H_
