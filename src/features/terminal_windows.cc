#include "features/terminal_windows.h"

#include <algorithm>
#include <string>

#include "features/catalog.h"
#include "vigil/time.h"

namespace vigil {
namespace {

// The book's terminal windows: (count, fraud rate) over (t - (delay + n days), t - delay].
struct CountAndRisk {
  FeatureId count;
  FeatureId risk;
};
constexpr CountAndRisk kWindows[] = {
    {FeatureId::kTerminalNbTx1d, FeatureId::kTerminalRisk1d},
    {FeatureId::kTerminalNbTx7d, FeatureId::kTerminalRisk7d},
    {FeatureId::kTerminalNbTx30d, FeatureId::kTerminalRisk30d},
};
constexpr bool PairsShareTheirWindow() {
  for (const CountAndRisk& w : kWindows) {
    if (WindowDays(w.count) != WindowDays(w.risk)) return false;
  }
  return true;
}
static_assert(PairsShareTheirWindow());

// An event count in (lo, hi] of a sorted sequence.
template <typename Seq>
int64_t CountIn(const Seq& ts, int64_t lo, int64_t hi) {
  auto a = std::upper_bound(ts.begin(), ts.end(), lo);
  auto b = std::upper_bound(a, ts.end(), hi);
  return b - a;
}

// Takes one `t` out of a sorted sequence, if it holds one.
void EraseOne(std::deque<int64_t>& ts, int64_t t) {
  auto pos = std::lower_bound(ts.begin(), ts.end(), t);
  if (pos != ts.end() && *pos == t) ts.erase(pos);
}

}  // namespace

TerminalWindows::TerminalWindows(int label_delay_days)
    : delay_(int64_t{label_delay_days} * kSecondsPerDay),
      horizon_(delay_ + int64_t{MaxWindowDays(FeatureSource::kTerminal)} * kSecondsPerDay) {}

void TerminalWindows::Compute(const TransactionView& tx, std::span<float> out) const {
  static const Terminal kNoTerminal;  // a default-constructed deque allocates
  auto it = terminals_.find(tx.terminal_id);
  ComputeFrom(it == terminals_.end() ? kNoTerminal : it->second, tx.timestamp, out);
}

void TerminalWindows::Insert(const TransactionView& tx) {
  InsertInto(terminals_[tx.terminal_id], tx);
}

void TerminalWindows::Update(const TransactionView& tx, std::span<float> out) {
  Terminal& term = terminals_[tx.terminal_id];
  ComputeFrom(term, tx.timestamp, out);
  InsertInto(term, tx);
}

bool TerminalWindows::Remove(const TransactionView& tx) {
  auto known = known_.find(tx.transaction_id);
  if (known == known_.end() || known->second.terminal_id != tx.terminal_id ||
      known->second.ts != tx.timestamp) {
    return false;
  }
  const bool fraud = known->second.fraud;
  known_.erase(known);
  // A failed commit is noticed soon after its Insert: its entry is near the back.
  const std::pair<int64_t, int64_t> entry(tx.timestamp, tx.transaction_id);
  for (auto o = known_order_.end(); o != known_order_.begin();) {
    if (*--o == entry) {
      known_order_.erase(o);
      break;
    }
  }
  auto it = terminals_.find(tx.terminal_id);
  if (it != terminals_.end()) {
    Terminal& term = it->second;
    EraseOne(term.ts, tx.timestamp);
    if (fraud) EraseOne(term.fraud_ts, tx.timestamp);
    if (term.ts.empty() && term.fraud_ts.empty()) terminals_.erase(it);
  }
  return true;
}

Status TerminalWindows::AddLabel(int64_t transaction_id, bool fraud) {
  auto it = known_.find(transaction_id);
  if (it == known_.end()) {
    return NotFound("transaction " + std::to_string(transaction_id) +
                    " is unknown or older than the feature windows");
  }
  Known& k = it->second;
  if (k.fraud == fraud) return Status::Ok();
  k.fraud = fraud;
  auto& f = terminals_[k.terminal_id].fraud_ts;
  if (fraud) {
    f.insert(std::upper_bound(f.begin(), f.end(), k.ts), k.ts);
  } else {
    EraseOne(f, k.ts);
  }
  return Status::Ok();
}

void TerminalWindows::ComputeFrom(const Terminal& term, int64_t t, std::span<float> out) const {
  const int64_t hi = t - delay_;
  for (const CountAndRisk& w : kWindows) {
    const int64_t lo = hi - WindowDays(w.count) * kSecondsPerDay;
    const int64_t count = CountIn(term.ts, lo, hi);
    const int64_t frauds = CountIn(term.fraud_ts, lo, hi);
    out[Index(w.count)] = static_cast<float>(count);
    out[Index(w.risk)] =
        count == 0 ? 0.0f : static_cast<float>(static_cast<double>(frauds) / count);
  }
}

void TerminalWindows::InsertInto(Terminal& term, const TransactionView& tx) {
  const int64_t t = tx.timestamp;
  term.ts.insert(std::upper_bound(term.ts.begin(), term.ts.end(), t), t);
  const int64_t cutoff = term.ts.back() - horizon_;
  while (!term.ts.empty() && term.ts.front() <= cutoff) term.ts.pop_front();
  while (!term.fraud_ts.empty() && term.fraud_ts.front() <= cutoff) term.fraud_ts.pop_front();

  known_[tx.transaction_id] = {tx.terminal_id, t, false};
  known_order_.emplace_back(t, tx.transaction_id);
  newest_ts_ = std::max(newest_ts_, t);
  while (!known_order_.empty() && known_order_.front().first <= newest_ts_ - horizon_) {
    known_.erase(known_order_.front().second);
    known_order_.pop_front();
  }
}

}  // namespace vigil
