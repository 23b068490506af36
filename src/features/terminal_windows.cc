#include "features/terminal_windows.h"

#include <algorithm>
#include <string>
#include <utility>

#include "core/coding.h"
#include "features/catalog.h"
#include "features/state_coding.h"
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

int64_t Itself(int64_t t) { return t; }

// `v - prev` and its inverse, wrapping: a delta of a sequence in no particular order.
int64_t Delta(int64_t v, int64_t prev) {
  return static_cast<int64_t>(static_cast<uint64_t>(v) - static_cast<uint64_t>(prev));
}
int64_t Undelta(int64_t delta, int64_t prev) {
  return static_cast<int64_t>(static_cast<uint64_t>(prev) + static_cast<uint64_t>(delta));
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

// Three sections, then newest_ts_ (a signed varint):
//   terminals, by increasing id: the id (KeyWriter), the count and times (PutSortedTimes) of
//     `ts`, then those of `fraud_ts`;
//   known_, by increasing transaction id: the id (KeyWriter), the terminal id, the time as a
//     signed delta to the previous entry's (transaction ids grow with time: small deltas), the
//     fraud flag as a byte 0 or 1;
//   known_order_, in its order: the time and the transaction id, each a signed delta to the
//     previous entry's.
// Each section starts with its count. known_ and known_order_ are written apart, as they are
// held: they name the same transactions only while transaction ids are unique, as Insert
// requires but cannot check.
void TerminalWindows::Save(std::string* out) const {
  PutVarint(terminals_.size(), out);
  KeyWriter terminal_keys;
  for (const auto& [id, term] : SortedByKey(terminals_)) {
    terminal_keys.Put(id, out);
    PutVarint(term->ts.size(), out);
    PutSortedTimes(term->ts, Itself, out);
    PutVarint(term->fraud_ts.size(), out);
    PutSortedTimes(term->fraud_ts, Itself, out);
  }

  PutVarint(known_.size(), out);
  KeyWriter known_keys;
  int64_t prev_ts = 0;
  for (const auto& [id, k] : SortedByKey(known_)) {
    known_keys.Put(id, out);
    PutSignedVarint(k->terminal_id, out);
    PutSignedVarint(Delta(k->ts, prev_ts), out);
    out->push_back(k->fraud ? 1 : 0);
    prev_ts = k->ts;
  }

  PutVarint(known_order_.size(), out);
  std::pair<int64_t, int64_t> prev(0, 0);
  for (const auto& o : known_order_) {
    PutSignedVarint(Delta(o.first, prev.first), out);
    PutSignedVarint(Delta(o.second, prev.second), out);
    prev = o;
  }
  PutSignedVarint(newest_ts_, out);
}

Status TerminalWindows::Load(ByteReader* in) {
  terminals_.clear();
  known_.clear();
  known_order_.clear();
  newest_ts_ = INT64_MIN;
  const auto fail = [in](const char* what) {
    in->Fail();
    return InvalidArgument(std::string("malformed ") + what);
  };

  // A terminal takes at least 3 bytes: its key and two counts (both sequences may be empty:
  // a late label can bring back a terminal whose transactions were all removed).
  const size_t n_terminals = in->Count(3);
  std::unordered_map<int64_t, Terminal> terminals;
  terminals.reserve(n_terminals);
  KeyReader terminal_keys;
  for (size_t i = 0; i < n_terminals && in->ok(); ++i) {
    Terminal& term = terminals[terminal_keys.Read(in)];
    ReadSortedTimes(in, in->Count(1), [&term](int64_t t) { term.ts.push_back(t); });
    ReadSortedTimes(in, in->Count(1), [&term](int64_t t) { term.fraud_ts.push_back(t); });
  }
  if (!in->ok() || terminals.size() != n_terminals) return fail("terminal windows");

  const size_t n_known = in->Count(4);  // key, terminal, time, flag
  std::unordered_map<int64_t, Known> known;
  known.reserve(n_known);
  KeyReader known_keys;
  int64_t prev_ts = 0;
  for (size_t i = 0; i < n_known && in->ok(); ++i) {
    Known& k = known[known_keys.Read(in)];
    k.terminal_id = in->SignedVarint();
    k.ts = Undelta(in->SignedVarint(), prev_ts);
    const uint8_t flag = in->Byte();
    if (!ValidStateTime(k.ts) || flag > 1) in->Fail();
    k.fraud = flag == 1;
    prev_ts = k.ts;
  }
  if (!in->ok() || known.size() != n_known) return fail("known transactions");

  const size_t n_order = in->Count(2);
  std::deque<std::pair<int64_t, int64_t>> order;
  std::pair<int64_t, int64_t> prev(0, 0);
  for (size_t i = 0; i < n_order && in->ok(); ++i) {
    prev.first = Undelta(in->SignedVarint(), prev.first);
    prev.second = Undelta(in->SignedVarint(), prev.second);
    if (!ValidStateTime(prev.first)) in->Fail();
    order.push_back(prev);
  }
  const int64_t newest = in->SignedVarint();
  if (newest != INT64_MIN && !ValidStateTime(newest)) in->Fail();
  if (!in->ok()) return fail("order of known transactions");

  terminals_ = std::move(terminals);
  known_ = std::move(known);
  known_order_ = std::move(order);
  newest_ts_ = newest;
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
