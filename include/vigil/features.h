// Features: what Vigil computes from a transaction and the history before it.
//
// Every feature is defined once, in the feature catalog (src/features/catalog.h): one entry per
// feature with its name, description, reason code and reason sentence, the state it reads and
// its window. Features(set) is that catalog as seen from outside. One engine, the
// FeatureEngine, computes them from the sliding-window state of each customer and terminal.
// Serving updates it one transaction at a time; the offline path (ComputeFeatures) replays a
// data set through the same engine in time order, delivering each label `label_delay_days` after
// its transaction, the way analyst feedback would arrive. Training and serving cannot disagree.
//
// The "book" set is the handbook's 15 features (amount; weekend; night; customer windows of
// 1/7/30 days: count and average amount, current transaction included; terminal windows of
// 1/7/30 days ending `label_delay_days` before the transaction: count and fraud rate). The "all"
// set adds what an analyst asks next: the amount against the customer's usual amounts and the
// time since the customer's previous transaction.
#ifndef VIGIL_FEATURES_H_
#define VIGIL_FEATURES_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vigil/dataset.h"
#include "vigil/status.h"

namespace vigil {

enum class FeatureSet { kBook, kAll };

StatusOr<FeatureSet> ParseFeatureSet(std::string_view name);  // "book" | "all"
std::string_view FeatureSetName(FeatureSet set);

// The part of the state a feature reads.
enum class FeatureSource {
  kTransaction,  // the transaction alone (amount, time of day)
  kCustomer,     // the customer's windows
  kTerminal,     // the terminal's delayed windows and the fraud labels
};

// One feature, as the catalog defines it.
struct FeatureInfo {
  using ReasonFormatter = std::string (*)(double value, int window_days, int label_delay_days);

  std::string name;         // the column name models are trained on
  std::string description;  // one line, what `vigil features --list` prints
  std::string reason_code;  // stable code of the reason it gives, e.g. "TERMINAL_FRAUD_RATE_7D"
  FeatureSource source = FeatureSource::kTransaction;
  int window_days = 0;  // the window's length in days; 0 for a feature without one
  ReasonFormatter reason_formatter = nullptr;

  // The reason's sentence for a value, e.g. "6 transaction(s) by this customer in the last day".
  std::string ReasonText(double value, int label_delay_days) const {
    return reason_formatter(value, window_days, label_delay_days);
  }
};

// The features of a set, in model order. The book set is a prefix of "all": a feature has the
// same index in both.
const std::vector<FeatureInfo>& Features(FeatureSet set);
std::vector<std::string> FeatureNames(FeatureSet set);

// The feature called `name` (its entry in Features(kAll)), or null when Vigil computes none.
const FeatureInfo* FindFeature(std::string_view name);

struct FeatureOptions {
  // Terminal windows end this many days before the transaction: fraud labels are known only
  // after this delay (the handbook's 7 days).
  int label_delay_days = 7;
};

// The fields of a transaction that features read.
struct TransactionView {
  int64_t transaction_id = 0;
  int64_t timestamp = 0;  // epoch seconds, UTC
  int64_t customer_id = 0;
  int64_t terminal_id = 0;
  double amount = 0;
};

class CustomerWindows;  // src/features/customer_windows.h
class TerminalWindows;  // src/features/terminal_windows.h

// A FeatureEngine computes feature rows from the sliding-window state of every customer and
// terminal it has seen. Windows are exact to the second. Memory: the events of the last 30 +
// label_delay_days days.
//
// The state is two independent parts, each keyed by its own entity: CustomerWindows, keyed by
// customer_id, and TerminalWindows, keyed by terminal_id, which also holds the table of known
// transactions that fraud labels find by transaction_id. Terminal windows span customers: every
// customer's transactions at a terminal count in its windows. A future partition of customers
// across owners must therefore route terminal state (and labels) by terminal, or keep it whole
// in one place, never split it by customer: a terminal split by customer would count only its
// owner's share of the terminal's transactions, and the terminal features would silently drop
// to a fraction of their trained values without any error.
//
// Thread-safety: Compute and Save are const and may run concurrently with other const calls
// (they keep no scratch in the engine); Insert, Remove, Update, AddLabel and Load need
// exclusive access.
class FeatureEngine {
 public:
  explicit FeatureEngine(FeatureSet set, FeatureOptions options = {});
  ~FeatureEngine();
  FeatureEngine(const FeatureEngine&) = delete;
  FeatureEngine& operator=(const FeatureEngine&) = delete;

  FeatureSet feature_set() const { return set_; }
  int num_features() const { return num_features_; }

  // Computes the features of `tx` from the state, without changing it (what Update writes).
  // A transaction older than an entity's latest one is placed in time order: its windows hold
  // the events at or before its own timestamp, never later ones. Allocation-free once its
  // thread has seen a customer with as many events in 30 days.
  // REQUIRES: out.size() == num_features(); amount finite.
  void Compute(const TransactionView& tx, std::span<float> out) const;

  // Adds `tx` to the state (the second half of Update), then forgets what no window of a
  // transaction at or after the newest one seen can reach any more.
  // REQUIRES: amount finite; transaction ids unique within the last 30 + label_delay_days days
  // (AddLabel and Remove find a transaction by its id).
  void Insert(const TransactionView& tx);

  // Undoes Insert(tx) of this very view (same transaction_id, timestamp, customer, terminal,
  // amount): the transaction's record could not be committed, so it must count nowhere, fraud
  // label included. No-op when it is not in the state: Remove recognises the transaction by its
  // id, terminal and timestamp in the known-transactions table, like AddLabel, so a view never
  // inserted takes nothing away even when it looks like one that was. Costs a scan of the
  // transactions inserted after it (meant for the rare failed commit, soon after the Insert).
  //
  // Limits: (1) What Insert(tx) pruned stays pruned. If tx was the newest of its customer, its
  // terminal or the whole state, the Insert dropped that customer's events more than 30 days
  // older than tx, that terminal's more than 30 + label_delay_days days older, and known
  // transactions more than 30 + label_delay_days days older. No window of a transaction at or
  // after tx reaches those, so this matters only to a transaction dated before tx arriving after
  // the Remove (it may miss them), and to a late AddLabel for one of those old transactions.
  // (2) Remove finds what AddLabel finds: a transaction the known-transactions table has let go
  // (more than 30 + label_delay_days days older than the newest seen) stays.
  // (3) Among the customer's events in one second with one amount, the latest inserted is taken
  // out; should another transaction of that customer in that second lie between them, window
  // sums then add the same amounts in another order (a last-bit difference at most).
  void Remove(const TransactionView& tx);

  // Computes the features of `tx` from the state before it, writes them to `out`, then adds
  // `tx` to the state: Compute(tx, out) then Insert(tx), with one lookup per entity.
  // REQUIRES: as Compute and Insert.
  void Update(const TransactionView& tx, std::span<float> out);

  // Records the fraud label of an earlier transaction, as analyst feedback or a chargeback would.
  // Labels change the terminal fraud-rate windows from then on. An unlabelled transaction counts
  // as genuine. NotFound when the transaction is unknown or older than the state's horizon.
  Status AddLabel(int64_t transaction_id, bool fraud);

  // Appends the whole state (both halves, labels, the set and options) to `out`: the bytes of a
  // snapshot, from which Load rebuilds an engine that computes, labels and removes exactly as
  // this one. Canonical: engines in equal states write equal bytes, whatever their history. The
  // format is versioned by its first byte and little-endian (src/features/features.cc).
  void Save(std::string* out) const;

  // Replaces this engine's state with one Save wrote. InvalidArgument (and the state left
  // empty, as after construction) when the bytes are not a state Save wrote, or were written
  // for another feature set or label delay than this engine's. Reads only within `bytes` and
  // allocates in proportion to their size, whatever they hold.
  Status Load(std::string_view bytes);

 private:
  void Clear();

  FeatureSet set_;
  FeatureOptions options_;
  int num_features_;
  std::unique_ptr<CustomerWindows> customers_;
  std::unique_ptr<TerminalWindows> terminals_;
};

// A feature matrix: one row per transaction, row-major float32 (what the models read).
struct FeatureMatrix {
  std::vector<std::string> names;
  size_t rows = 0;
  std::vector<float> values;
  const float* row(size_t i) const { return values.data() + i * names.size(); }
  size_t cols() const { return names.size(); }
};

// Replays `data` through a FeatureEngine in row order; each label (when data.has_labels) reaches
// the engine via AddLabel exactly label_delay_days after its transaction, before any transaction
// at or after that moment. `progress` is called now and then with the fraction done.
FeatureMatrix ComputeFeatures(const Dataset& data, FeatureSet set, const FeatureOptions& options,
                              const std::function<void(double)>& progress = {});

// Writes `transaction_id,<features in model order>,fraud` (fraud omitted without labels) with
// values in the shortest text that reads back bit-exact. Atomic: whole file or none.
Status WriteFeaturesCsv(const Dataset& data, const FeatureMatrix& matrix, const std::string& path);

}  // namespace vigil

#endif  // VIGIL_FEATURES_H_
