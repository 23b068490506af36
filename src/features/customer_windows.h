// The customer half of the feature state.
#ifndef VIGIL_FEATURES_CUSTOMER_WINDOWS_H_
#define VIGIL_FEATURES_CUSTOMER_WINDOWS_H_

#include <cstdint>
#include <deque>
#include <span>
#include <string>
#include <unordered_map>

#include "vigil/features.h"
#include "vigil/status.h"

namespace vigil {

class ByteReader;  // core/coding.h

// CustomerWindows holds, per customer_id, the customer's events (time, amount) of the last 30
// days, and computes the customer features of a set (FeatureSource::kCustomer in the catalog).
// It reads nothing of another customer: customers may be split across owners freely.
// Thread-safety: const methods may run concurrently with each other; the others need exclusive
// access.
class CustomerWindows {
 public:
  explicit CustomerWindows(FeatureSet set);
  CustomerWindows(const CustomerWindows&) = delete;
  CustomerWindows& operator=(const CustomerWindows&) = delete;

  // Writes the customer features of `tx`, at their catalog indices, from the state.
  // REQUIRES: out.size() == NumFeatures(set); tx.amount finite.
  void Compute(const TransactionView& tx, std::span<float> out) const;
  // Adds the event of `tx`, in time order, and forgets the customer's events more than 30 days
  // older than its newest.
  void Insert(const TransactionView& tx);
  // Compute then Insert, with one lookup.
  void Update(const TransactionView& tx, std::span<float> out);
  // Takes out one event of the customer with the time and amount of `tx` (the latest inserted
  // of those); false when there is none.
  bool Remove(const TransactionView& tx);

  // Appends the state to `out`, customers in increasing id order: equal states, equal bytes.
  void Save(std::string* out) const;
  // Replaces the state with one Save wrote, read off the front of `in`. On an error (`in` fails
  // too) the state is left empty.
  Status Load(ByteReader* in);

 private:
  struct Event {
    int64_t ts;
    double amount;
  };
  using Events = std::deque<Event>;  // sorted by ts; equal times in arrival order

  void ComputeAt(const Events& ev, size_t pos, const TransactionView& tx,
                 std::span<float> out) const;
  void InsertAt(Events& ev, size_t pos, const TransactionView& tx);

  bool analyst_;  // computes the "all" set's customer features too
  std::unordered_map<int64_t, Events> customers_;
};

}  // namespace vigil

#endif  // VIGIL_FEATURES_CUSTOMER_WINDOWS_H_
