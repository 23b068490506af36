// Features: what Vigil computes from a transaction and the history before it.
//
// Every feature is defined once, here and in features.cc, and computed by one engine, the
// FeatureEngine, which keeps the sliding-window state of each customer and terminal. Serving
// updates it one transaction at a time; the offline path (ComputeFeatures) replays a data set
// through the same engine in time order, delivering each label `label_delay_days` after its
// transaction, the way analyst feedback would arrive. Training and serving cannot disagree.
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

struct FeatureInfo {
  std::string name;
  std::string description;
};

// The features of a set, in model order.
const std::vector<FeatureInfo>& Features(FeatureSet set);
std::vector<std::string> FeatureNames(FeatureSet set);

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

// A FeatureEngine holds the sliding-window state of every customer and terminal it has seen.
// Windows are exact to the second. Memory: the events of the last 30 + label_delay_days days.
// Not thread-safe: one owner per engine (route each customer and terminal to one owner).
class FeatureEngine {
 public:
  explicit FeatureEngine(FeatureSet set, FeatureOptions options = {});
  ~FeatureEngine();
  FeatureEngine(const FeatureEngine&) = delete;
  FeatureEngine& operator=(const FeatureEngine&) = delete;

  FeatureSet feature_set() const { return set_; }
  int num_features() const { return num_features_; }

  // Computes the features of `tx` from the state before it, writes them to `out`, then adds
  // `tx` to the state. A transaction older than an entity's latest one is placed in time order:
  // its windows hold the events at or before its own timestamp that arrived before it.
  // REQUIRES: out.size() == num_features(); amount finite.
  void Update(const TransactionView& tx, std::span<float> out);

  // Records the fraud label of an earlier transaction, as analyst feedback or a chargeback would.
  // Labels change the terminal fraud-rate windows from then on. An unlabelled transaction counts
  // as genuine. NotFound when the transaction is unknown or older than the state's horizon.
  Status AddLabel(int64_t transaction_id, bool fraud);

 private:
  struct State;
  FeatureSet set_;
  int num_features_;
  std::unique_ptr<State> state_;
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
