#include "features/customer_windows.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <utility>
#include <vector>

#include "core/coding.h"
#include "features/catalog.h"
#include "features/state_coding.h"
#include "vigil/time.h"

namespace vigil {
namespace {

// The book's customer windows: (count, average amount) over (t - n days, t], tx included.
struct CountAndAverage {
  FeatureId count;
  FeatureId average;
};
constexpr CountAndAverage kWindows[] = {
    {FeatureId::kCustomerNbTx1d, FeatureId::kCustomerAvgAmount1d},
    {FeatureId::kCustomerNbTx7d, FeatureId::kCustomerAvgAmount7d},
    {FeatureId::kCustomerNbTx30d, FeatureId::kCustomerAvgAmount30d},
};
constexpr bool PairsShareTheirWindow() {
  for (const CountAndAverage& w : kWindows) {
    if (WindowDays(w.count) != WindowDays(w.average)) return false;
  }
  return true;
}
static_assert(PairsShareTheirWindow());

// The analyst features read the customer's previous days (tx excluded) over one window, which
// is one of the book's: its bounds and sum come from that window's pass.
constexpr int kPreviousDays = WindowDays(FeatureId::kCustomerAmountRatio30d);
static_assert(WindowDays(FeatureId::kCustomerAmountZscore30d) == kPreviousDays &&
              WindowDays(FeatureId::kCustomerAmountMedianRatio30d) == kPreviousDays);
static_assert(std::any_of(std::begin(kWindows), std::end(kWindows), [](const CountAndAverage& w) {
  return WindowDays(w.count) == kPreviousDays;
}));

constexpr int64_t kHorizon = int64_t{MaxWindowDays(FeatureSource::kCustomer)} * kSecondsPerDay;

template <typename It>
It AfterTime(It begin, It end, int64_t t) {
  return std::upper_bound(begin, end, t, [](int64_t v, const auto& e) { return v < e.ts; });
}

}  // namespace

CustomerWindows::CustomerWindows(FeatureSet set) : analyst_(set == FeatureSet::kAll) {}

void CustomerWindows::Compute(const TransactionView& tx, std::span<float> out) const {
  // A static empty history: a default-constructed deque allocates.
  static const Events kNoEvents;
  auto it = customers_.find(tx.customer_id);
  const Events& ev = it == customers_.end() ? kNoEvents : it->second;
  ComputeAt(ev, AfterTime(ev.begin(), ev.end(), tx.timestamp) - ev.begin(), tx, out);
}

void CustomerWindows::Insert(const TransactionView& tx) {
  Events& ev = customers_[tx.customer_id];
  InsertAt(ev, AfterTime(ev.begin(), ev.end(), tx.timestamp) - ev.begin(), tx);
}

void CustomerWindows::Update(const TransactionView& tx, std::span<float> out) {
  Events& ev = customers_[tx.customer_id];
  const size_t pos = AfterTime(ev.begin(), ev.end(), tx.timestamp) - ev.begin();
  ComputeAt(ev, pos, tx, out);
  InsertAt(ev, pos, tx);
}

bool CustomerWindows::Remove(const TransactionView& tx) {
  auto it = customers_.find(tx.customer_id);
  if (it == customers_.end()) return false;
  Events& ev = it->second;
  // Insert put tx after the events of its second that came before it: look from the end of
  // that second back.
  auto first = std::lower_bound(ev.begin(), ev.end(), tx.timestamp,
                                [](const Event& e, int64_t v) { return e.ts < v; });
  for (auto e = AfterTime(first, ev.end(), tx.timestamp); e != first;) {
    --e;
    if (e->amount == tx.amount) {
      ev.erase(e);
      if (ev.empty()) customers_.erase(it);
      return true;
    }
  }
  return false;
}

// Per customer, in increasing id order: the id (KeyWriter), the event count, the times
// (PutSortedTimes), then the amounts as fixed64 doubles, bit for bit.
void CustomerWindows::Save(std::string* out) const {
  PutVarint(customers_.size(), out);
  KeyWriter keys;
  const auto time = [](const Event& e) { return e.ts; };
  for (const auto& [id, events] : SortedByKey(customers_)) {
    const Events& ev = *events;
    keys.Put(id, out);
    PutVarint(ev.size(), out);
    PutSortedTimes(ev, time, out);
    for (const Event& e : ev) PutFixed(e.amount, out);
  }
}

Status CustomerWindows::Load(ByteReader* in) {
  customers_.clear();
  // The least a customer takes: a key byte, a count byte and one event (a time byte, 8 bytes
  // of amount). Insert never leaves a customer without events, nor Remove.
  constexpr size_t kMinEventBytes = 1 + sizeof(double);
  const size_t n = in->Count(2 + kMinEventBytes);
  std::unordered_map<int64_t, Events> customers;
  customers.reserve(n);
  KeyReader keys;
  for (size_t i = 0; i < n && in->ok(); ++i) {
    const int64_t id = keys.Read(in);
    const size_t count = in->Count(kMinEventBytes);
    if (!in->ok() || count == 0) break;
    Events& ev = customers[id];
    if (!ReadSortedTimes(in, count, [&ev](int64_t t) { ev.push_back({t, 0}); })) break;
    for (Event& e : ev) {
      e.amount = in->Fixed<double>();
      if (!std::isfinite(e.amount)) in->Fail();  // Insert requires a finite amount
    }
  }
  if (!in->ok() || customers.size() != n) {
    in->Fail();
    return InvalidArgument("malformed customer windows");
  }
  customers_ = std::move(customers);
  return Status::Ok();
}

// `ev[0, pos)` are the customer's events at or before tx.timestamp.
void CustomerWindows::ComputeAt(const Events& ev, size_t pos, const TransactionView& tx,
                                std::span<float> out) const {
  const int64_t t = tx.timestamp;
  size_t prev_lo = pos;  // the previous kPreviousDays: events [prev_lo, pos)
  double prev_sum = 0;
  for (const CountAndAverage& w : kWindows) {
    const int64_t days = WindowDays(w.count);
    const size_t lo =
        AfterTime(ev.begin(), ev.begin() + pos, t - days * kSecondsPerDay) - ev.begin();
    double sum = 0;
    for (size_t i = lo; i < pos; ++i) sum += ev[i].amount;
    if (days == kPreviousDays) {
      prev_lo = lo;
      prev_sum = sum;
    }
    sum += tx.amount;
    const double count = static_cast<double>(pos - lo + 1);
    out[Index(w.count)] = static_cast<float>(count);
    out[Index(w.average)] = static_cast<float>(sum / count);
  }
  if (!analyst_) return;

  const size_t n_prev = pos - prev_lo;
  double ratio = 1, zscore = 0, median_ratio = 1;
  if (n_prev > 0) {
    const double mean = prev_sum / n_prev;
    if (mean > 0) ratio = tx.amount / mean;
    if (n_prev >= 2) {
      double ss = 0;
      for (size_t i = prev_lo; i < pos; ++i) ss += (ev[i].amount - mean) * (ev[i].amount - mean);
      const double sd = std::max({std::sqrt(ss / (n_prev - 1)), 0.05 * mean, 1e-6});
      zscore = (tx.amount - mean) / sd;
    }
    // Per thread, so that Compute stays const and concurrent; it stops growing once it has
    // held the busiest customer's month.
    thread_local std::vector<double> v;
    v.clear();
    for (size_t i = prev_lo; i < pos; ++i) v.push_back(ev[i].amount);
    const size_t mid = v.size() / 2;
    std::nth_element(v.begin(), v.begin() + mid, v.end());
    double median = v[mid];
    if (v.size() % 2 == 0) median = (median + *std::max_element(v.begin(), v.begin() + mid)) / 2;
    if (median > 0) median_ratio = tx.amount / median;
  }
  const double cap =
      static_cast<double>(WindowDays(FeatureId::kCustomerSecondsSincePrev)) * kSecondsPerDay;
  const double since = pos > 0 ? std::min(cap, static_cast<double>(t - ev[pos - 1].ts)) : cap;
  out[Index(FeatureId::kCustomerAmountRatio30d)] = static_cast<float>(ratio);
  out[Index(FeatureId::kCustomerAmountZscore30d)] = static_cast<float>(zscore);
  out[Index(FeatureId::kCustomerAmountMedianRatio30d)] = static_cast<float>(median_ratio);
  out[Index(FeatureId::kCustomerSecondsSincePrev)] = static_cast<float>(since);
}

void CustomerWindows::InsertAt(Events& ev, size_t pos, const TransactionView& tx) {
  ev.insert(ev.begin() + pos, {tx.timestamp, tx.amount});
  while (!ev.empty() && ev.front().ts <= ev.back().ts - kHorizon) ev.pop_front();
}

}  // namespace vigil
