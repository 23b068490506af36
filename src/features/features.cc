#include "vigil/features.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <deque>
#include <unordered_map>

#include "core/file_util.h"
#include "vigil/time.h"

namespace vigil {
namespace {

constexpr int kCustomerWindows[] = {1, 7, 30};
constexpr int kTerminalWindows[] = {1, 7, 30};
constexpr int kMaxCustomerWindowDays = 30;
constexpr int kMaxTerminalWindowDays = 30;

std::vector<FeatureInfo> MakeBookFeatures() {
  std::vector<FeatureInfo> f = {
      {"amount", "transaction amount"},
      {"weekend", "1 if the transaction is on a Saturday or Sunday (UTC), else 0"},
      {"night", "1 if the transaction is between 00:00 and 06:59 (UTC), else 0"},
  };
  for (int n : kCustomerWindows) {
    std::string d = std::to_string(n);
    f.push_back({"customer_nb_tx_" + d + "d",
                 "customer's transactions in the last " + d + " day(s), this one included"});
    f.push_back({"customer_avg_amount_" + d + "d",
                 "customer's average amount over the last " + d + " day(s), this one included"});
  }
  for (int n : kTerminalWindows) {
    std::string d = std::to_string(n);
    f.push_back({"terminal_nb_tx_" + d + "d",
                 "terminal's transactions in the " + d +
                     "-day window that ends label_delay days (7) before this one"});
    f.push_back({"terminal_risk_" + d + "d",
                 "fraud rate on the terminal over that same delayed " + d +
                     "-day window (0 when it is empty)"});
  }
  return f;
}

std::vector<FeatureInfo> MakeAllFeatures() {
  std::vector<FeatureInfo> f = MakeBookFeatures();
  f.push_back({"customer_amount_ratio_30d",
               "amount / customer's average amount over the previous 30 days (1 if none)"});
  f.push_back({"customer_amount_zscore_30d",
               "(amount - mean) / std of the customer's previous 30 days of amounts (0 if fewer "
               "than 2; std floored at 5% of the mean)"});
  f.push_back({"customer_amount_median_ratio_30d",
               "amount / median of the customer's previous 30 days of amounts (1 if none)"});
  f.push_back({"customer_seconds_since_prev",
               "seconds since the customer's previous transaction (capped at 30 days)"});
  return f;
}

// An event count in (lo, hi] of a sorted sequence.
template <typename Seq>
int64_t CountIn(const Seq& ts, int64_t lo, int64_t hi) {
  auto a = std::upper_bound(ts.begin(), ts.end(), lo);
  auto b = std::upper_bound(a, ts.end(), hi);
  return b - a;
}

}  // namespace

StatusOr<FeatureSet> ParseFeatureSet(std::string_view name) {
  if (name == "book") return FeatureSet::kBook;
  if (name == "all") return FeatureSet::kAll;
  return InvalidArgument("unknown feature set '" + std::string(name) +
                         "' (expected 'book' or 'all')");
}

std::string_view FeatureSetName(FeatureSet set) {
  return set == FeatureSet::kBook ? "book" : "all";
}

const std::vector<FeatureInfo>& Features(FeatureSet set) {
  static const std::vector<FeatureInfo> book = MakeBookFeatures();
  static const std::vector<FeatureInfo> all = MakeAllFeatures();
  return set == FeatureSet::kBook ? book : all;
}

std::vector<std::string> FeatureNames(FeatureSet set) {
  std::vector<std::string> names;
  for (const auto& f : Features(set)) names.push_back(f.name);
  return names;
}

struct FeatureEngine::State {
  struct CustomerEvent {
    int64_t ts;
    double amount;
  };
  struct Customer {
    std::deque<CustomerEvent> events;  // sorted by ts
  };
  struct Terminal {
    std::deque<int64_t> ts;        // every transaction, sorted
    std::deque<int64_t> fraud_ts;  // transactions labelled fraud, sorted
  };
  struct Known {
    int64_t terminal_id;
    int64_t ts;
    bool fraud;
  };

  int64_t delay = 0;             // seconds
  int64_t customer_horizon = 0;  // seconds of history kept per customer
  int64_t terminal_horizon = 0;  // seconds of history kept per terminal
  std::unordered_map<int64_t, Customer> customers;
  std::unordered_map<int64_t, Terminal> terminals;
  // Transactions that may still receive a label, in arrival order for pruning.
  std::unordered_map<int64_t, Known> known;
  std::deque<std::pair<int64_t, int64_t>> known_order;  // (ts, transaction_id)
  int64_t newest_ts = INT64_MIN;
  std::vector<double> scratch;
};

FeatureEngine::FeatureEngine(FeatureSet set, FeatureOptions options)
    : set_(set),
      num_features_(static_cast<int>(Features(set).size())),
      state_(std::make_unique<State>()) {
  state_->delay = int64_t{options.label_delay_days} * kSecondsPerDay;
  state_->customer_horizon = int64_t{kMaxCustomerWindowDays} * kSecondsPerDay;
  state_->terminal_horizon = state_->delay + int64_t{kMaxTerminalWindowDays} * kSecondsPerDay;
}

FeatureEngine::~FeatureEngine() = default;

void FeatureEngine::Update(const TransactionView& tx, std::span<float> out) {
  State& s = *state_;
  const int64_t t = tx.timestamp;
  int k = 0;
  out[k++] = static_cast<float>(tx.amount);
  out[k++] = Weekday(t) >= 5 ? 1.0f : 0.0f;
  out[k++] = HourOfDay(t) <= 6 ? 1.0f : 0.0f;

  // Customer windows (t - n days, t], this transaction included.
  State::Customer& c = s.customers[tx.customer_id];
  auto& ev = c.events;
  auto by_ts = [](int64_t v, const State::CustomerEvent& e) { return v < e.ts; };
  const size_t pos = std::upper_bound(ev.begin(), ev.end(), t, by_ts) - ev.begin();
  size_t lo30 = pos;
  for (int n : kCustomerWindows) {
    const size_t lo =
        std::upper_bound(ev.begin(), ev.begin() + pos, t - n * kSecondsPerDay, by_ts) -
        ev.begin();
    double sum = 0;
    for (size_t i = lo; i < pos; ++i) sum += ev[i].amount;
    sum += tx.amount;
    const double count = static_cast<double>(pos - lo + 1);
    out[k++] = static_cast<float>(count);
    out[k++] = static_cast<float>(sum / count);
    lo30 = lo;
  }

  // Terminal windows (t - (delay + n days), t - delay].
  State::Terminal& term = s.terminals[tx.terminal_id];
  for (int n : kTerminalWindows) {
    const int64_t hi = t - s.delay;
    const int64_t lo = hi - n * kSecondsPerDay;
    const int64_t count = CountIn(term.ts, lo, hi);
    const int64_t frauds = CountIn(term.fraud_ts, lo, hi);
    out[k++] = static_cast<float>(count);
    out[k++] = count == 0 ? 0.0f : static_cast<float>(static_cast<double>(frauds) / count);
  }

  if (set_ == FeatureSet::kAll) {
    // The customer's previous 30 days: events [lo30, pos).
    const size_t n_prev = pos - lo30;
    double ratio = 1, zscore = 0, median_ratio = 1;
    if (n_prev > 0) {
      double sum = 0;
      for (size_t i = lo30; i < pos; ++i) sum += ev[i].amount;
      const double mean = sum / n_prev;
      if (mean > 0) ratio = tx.amount / mean;
      if (n_prev >= 2) {
        double ss = 0;
        for (size_t i = lo30; i < pos; ++i) ss += (ev[i].amount - mean) * (ev[i].amount - mean);
        const double sd = std::max({std::sqrt(ss / (n_prev - 1)), 0.05 * mean, 1e-6});
        zscore = (tx.amount - mean) / sd;
      }
      auto& v = s.scratch;
      v.clear();
      for (size_t i = lo30; i < pos; ++i) v.push_back(ev[i].amount);
      const size_t mid = v.size() / 2;
      std::nth_element(v.begin(), v.begin() + mid, v.end());
      double median = v[mid];
      if (v.size() % 2 == 0) median = (median + *std::max_element(v.begin(), v.begin() + mid)) / 2;
      if (median > 0) median_ratio = tx.amount / median;
    }
    const double cap = static_cast<double>(kMaxCustomerWindowDays) * kSecondsPerDay;
    const double since = pos > 0 ? std::min(cap, static_cast<double>(t - ev[pos - 1].ts)) : cap;
    out[k++] = static_cast<float>(ratio);
    out[k++] = static_cast<float>(zscore);
    out[k++] = static_cast<float>(median_ratio);
    out[k++] = static_cast<float>(since);
  }

  // Add the transaction to the state, then forget what no window can reach any more.
  ev.insert(ev.begin() + pos, {t, tx.amount});
  while (!ev.empty() && ev.front().ts <= ev.back().ts - s.customer_horizon) ev.pop_front();
  term.ts.insert(std::upper_bound(term.ts.begin(), term.ts.end(), t), t);
  const int64_t term_cutoff = term.ts.back() - s.terminal_horizon;
  while (!term.ts.empty() && term.ts.front() <= term_cutoff) term.ts.pop_front();
  while (!term.fraud_ts.empty() && term.fraud_ts.front() <= term_cutoff) term.fraud_ts.pop_front();

  s.known[tx.transaction_id] = {tx.terminal_id, t, false};
  s.known_order.emplace_back(t, tx.transaction_id);
  s.newest_ts = std::max(s.newest_ts, t);
  while (!s.known_order.empty() && s.known_order.front().first <= s.newest_ts - s.terminal_horizon) {
    s.known.erase(s.known_order.front().second);
    s.known_order.pop_front();
  }
}

Status FeatureEngine::AddLabel(int64_t transaction_id, bool fraud) {
  State& s = *state_;
  auto it = s.known.find(transaction_id);
  if (it == s.known.end()) {
    return NotFound("transaction " + std::to_string(transaction_id) +
                    " is unknown or older than the feature windows");
  }
  State::Known& k = it->second;
  if (k.fraud == fraud) return Status::Ok();
  k.fraud = fraud;
  auto& f = s.terminals[k.terminal_id].fraud_ts;
  if (fraud) {
    f.insert(std::upper_bound(f.begin(), f.end(), k.ts), k.ts);
  } else {
    auto pos = std::lower_bound(f.begin(), f.end(), k.ts);
    if (pos != f.end() && *pos == k.ts) f.erase(pos);
  }
  return Status::Ok();
}

FeatureMatrix ComputeFeatures(const Dataset& data, FeatureSet set, const FeatureOptions& options,
                              const std::function<void(double)>& progress) {
  FeatureEngine engine(set, options);
  FeatureMatrix m;
  m.names = FeatureNames(set);
  m.rows = data.size();
  m.values.resize(m.rows * m.cols());
  const int64_t delay = int64_t{options.label_delay_days} * kSecondsPerDay;
  size_t next_label = 0;
  const size_t report_every = std::max<size_t>(1, data.size() / 50);
  for (size_t i = 0; i < data.size(); ++i) {
    const int64_t t = data.timestamp[i];
    if (data.has_labels) {
      for (; next_label < i && data.timestamp[next_label] + delay <= t; ++next_label) {
        if (data.fraud[next_label]) {
          (void)engine.AddLabel(data.transaction_id[next_label], true);
        }
      }
    }
    engine.Update({data.transaction_id[i], t, data.customer_id[i], data.terminal_id[i],
                   data.amount[i]},
                  std::span<float>(m.values.data() + i * m.cols(), m.cols()));
    if (progress && i % report_every == 0) progress(static_cast<double>(i) / data.size());
  }
  if (progress) progress(1.0);
  return m;
}

Status WriteFeaturesCsv(const Dataset& data, const FeatureMatrix& matrix,
                        const std::string& path) {
  VIGIL_ASSIGN_OR_RETURN(auto file, AtomicFile::Create(path));
  std::string line = "transaction_id";
  for (const auto& n : matrix.names) line += "," + n;
  if (data.has_labels) line += ",fraud";
  line += "\n";
  file->Write(line);
  char buf[64];
  for (size_t i = 0; i < matrix.rows; ++i) {
    line.clear();
    line += std::to_string(data.transaction_id[i]);
    const float* row = matrix.row(i);
    for (size_t j = 0; j < matrix.cols(); ++j) {
      auto [end, ec] = std::to_chars(buf, buf + sizeof buf, row[j]);
      line += ',';
      line.append(buf, end);
    }
    if (data.has_labels) {
      line += data.fraud[i] ? ",1" : ",0";
    }
    line += '\n';
    file->Write(line);
  }
  return file->Commit();
}

}  // namespace vigil
