#include "vigil/simulator.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <new>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "sim/argsort.h"
#include "sim/profiles.h"
#include "sim/random.h"
#include "vigil/time.h"

namespace vigil {
namespace {

// The book's fixed parameters (SimulatedDataset.ipynb).
constexpr double kMeanTimeOfDay = 86400.0 / 2;
constexpr double kStdTimeOfDay = 20000;
constexpr double kScenario1Threshold = 220;
constexpr int kScenario2Terminals = 2;
constexpr int kScenario2Days = 28;
constexpr int kScenario3Customers = 3;
constexpr int kScenario3Days = 14;
constexpr double kScenario3Factor = 5;

// Customers per unit of work handed to a thread.
constexpr int kCustomersPerChunk = 16;
// Share of the progress bar the per-customer generation takes; sorting and frauds take the rest.
constexpr double kGenerationShare = 0.9;
constexpr int kProgressSteps = 20;

// Seeds of the per-customer and per-day streams: seed * 1000003 + i, mod 2^32.
uint32_t StreamSeed(uint32_t seed, int64_t i) { return seed * 1000003u + static_cast<uint32_t>(i); }

// A transaction before the sort: seconds since the start date.
struct RawTransaction {
  int64_t seconds;
  int32_t customer;
  int32_t terminal;
  double amount;
};

// The book's generate_transactions_table for one customer: appends its transactions in the
// order they are drawn.
void GenerateCustomer(int customer, const CustomerProfile& profile, const TerminalGrid& grid,
                      const SimulatorOptions& options, std::vector<int32_t>* terminals,
                      std::vector<RawTransaction>* out) {
  grid.Within(profile.x, profile.y, terminals);
  uint32_t seed = StreamSeed(options.seed, customer);
  PyRandom py(seed);
  NumpyRandomState np(seed);
  for (int day = 0; day < options.days; ++day) {
    int64_t nb_tx = np.Poisson(profile.mean_nb_tx_per_day);
    for (int64_t tx = 0; tx < nb_tx; ++tx) {
      // int() truncates toward zero.
      int64_t time_tx = static_cast<int64_t>(np.Normal(kMeanTimeOfDay, kStdTimeOfDay));
      if (time_tx <= 0 || time_tx >= kSecondsPerDay) continue;
      double amount = np.Normal(profile.mean_amount, profile.std_amount);
      if (amount < 0) amount = np.Uniform(0, profile.mean_amount * 2);
      // np.round(amount, 2): scale, round half to even, unscale.
      amount = std::nearbyint(amount * 100.0) / 100.0;
      if (terminals->empty()) continue;
      int32_t terminal = (*terminals)[py.Choice(terminals->size())];
      out->push_back({day * kSecondsPerDay + time_tx, customer, terminal, amount});
    }
  }
}

// Runs `work(chunk)` for chunks 0..num_chunks-1 on `threads` threads, the calling thread among
// them, and reports the fraction done, scaled by `progress_share`, through `progress` from the
// calling thread. Throws std::bad_alloc, from the calling thread, if a chunk ran out of memory.
template <typename Work>
void RunChunks(int num_chunks, int threads, const std::function<void(double)>& progress,
               double progress_share, Work work) {
  std::atomic<int> next{0};
  std::atomic<int> done{0};
  std::atomic<bool> out_of_memory{false};
  auto loop = [&](bool report) {
    int next_report = 1;
    while (true) {
      int chunk = next.fetch_add(1);
      if (chunk >= num_chunks) return;
      try {
        work(chunk);
      } catch (const std::bad_alloc&) {
        out_of_memory.store(true);
        next.store(num_chunks);  // stop handing out chunks
        return;
      }
      int finished = done.fetch_add(1) + 1;
      if (report && progress) {
        int step = static_cast<int>(static_cast<int64_t>(finished) * kProgressSteps / num_chunks);
        if (step >= next_report) {
          progress(progress_share * step / kProgressSteps);
          next_report = step + 1;
        }
      }
    }
  };
  std::vector<std::thread> workers;
  for (int t = 1; t < std::min(threads, num_chunks); ++t) {
    try {
      workers.emplace_back(loop, false);
    } catch (const std::system_error&) {
      break;  // Fewer threads: the output does not depend on their number.
    }
  }
  try {
    loop(true);
  } catch (...) {
    // A throwing progress callback: stop handing out chunks, and join before rethrowing so that
    // no thread outlives this frame.
    next.store(num_chunks);
    for (std::thread& w : workers) w.join();
    throw;
  }
  for (std::thread& w : workers) w.join();
  if (out_of_memory.load()) throw std::bad_alloc();
}

// The rows of a data set grouped by a key column (terminal or customer), each group in row order,
// which is time order. Immutable once built.
class RowIndex {
 public:
  RowIndex(const std::vector<int64_t>& keys, int64_t num_keys) : start_(num_keys + 1, 0) {
    for (int64_t k : keys) ++start_[k + 1];
    for (size_t i = 1; i < start_.size(); ++i) start_[i] += start_[i - 1];
    rows_.resize(keys.size());
    std::vector<int64_t> pos(start_.begin(), start_.end() - 1);
    for (size_t r = 0; r < keys.size(); ++r) rows_[pos[keys[r]]++] = static_cast<int64_t>(r);
  }

  // Appends the rows of `key` whose timestamp is in [from, to).
  void AppendRows(int64_t key, const std::vector<int64_t>& timestamp, int64_t from, int64_t to,
                  std::vector<int64_t>* out) const {
    auto begin = rows_.begin() + start_[key];
    auto end = rows_.begin() + start_[key + 1];
    auto lo = std::partition_point(begin, end, [&](int64_t r) { return timestamp[r] < from; });
    auto hi = std::partition_point(lo, end, [&](int64_t r) { return timestamp[r] < to; });
    out->insert(out->end(), lo, hi);
  }

 private:
  std::vector<int64_t> start_;
  std::vector<int64_t> rows_;
};

// The book's add_frauds, scenarios 1, 2 and 3 in that order.
void AddFrauds(const SimulatorOptions& options, int64_t start, Dataset* data) {
  size_t n = data->size();
  for (size_t r = 0; r < n; ++r) {
    if (data->amount[r] > kScenario1Threshold) {
      data->fraud[r] = 1;
      data->fraud_scenario[r] = 1;
    }
  }
  if (n == 0) return;
  // range(TX_TIME_DAYS.max()): the last day with transactions starts no compromise.
  int64_t max_day = (data->timestamp.back() - start) / kSecondsPerDay;
  auto day_start = [&](int64_t day) { return start + day * kSecondsPerDay; };
  std::vector<int64_t> rows;

  {
    RowIndex by_terminal(data->terminal_id, options.terminals);
    NumpyRandomState rs;
    for (int64_t day = 0; day < max_day; ++day) {
      // pandas Series.sample(n=2, random_state=day) = RandomState(day).permutation(len)[:2].
      // With fewer than 2 terminals (where pandas would raise) all are compromised.
      rs.Seed(StreamSeed(options.seed, day));
      std::vector<int64_t> perm = rs.Permutation(options.terminals);
      rows.clear();
      for (int i = 0; i < kScenario2Terminals && i < options.terminals; ++i) {
        by_terminal.AppendRows(perm[i], data->timestamp, day_start(day),
                               day_start(day + kScenario2Days), &rows);
      }
      for (int64_t r : rows) {
        data->fraud[r] = 1;
        data->fraud_scenario[r] = 2;
      }
    }
  }

  RowIndex by_customer(data->customer_id, options.customers);
  NumpyRandomState rs;
  PyRandom py;
  for (int64_t day = 0; day < max_day; ++day) {
    uint32_t seed = StreamSeed(options.seed, day);
    rs.Seed(seed);
    std::vector<int64_t> perm = rs.Permutation(options.customers);
    rows.clear();
    for (int i = 0; i < kScenario3Customers && i < options.customers; ++i) {
      by_customer.AppendRows(perm[i], data->timestamp, day_start(day),
                             day_start(day + kScenario3Days), &rows);
    }
    // The population random.sample draws from is in row order.
    std::sort(rows.begin(), rows.end());
    int64_t count = static_cast<int64_t>(rows.size());
    py.Seed(seed);
    for (int64_t j : py.Sample(count, count / 3)) {
      int64_t r = rows[j];
      data->amount[r] *= kScenario3Factor;
      data->fraud[r] = 1;
      data->fraud_scenario[r] = 3;
    }
  }
}

StatusOr<Dataset> SimulateImpl(const SimulatorOptions& options, int64_t start) {
  const auto& progress = options.progress;
  if (progress) progress(0.0);

  std::vector<CustomerProfile> customers =
      GenerateCustomerProfiles(options.customers, options.seed);
  TerminalGrid grid(options.terminals, options.seed + 1, options.radius);

  // Customers are independent: generate them in chunks on several threads, then concatenate the
  // chunks in customer order.
  int num_chunks = (options.customers + kCustomersPerChunk - 1) / kCustomersPerChunk;
  int threads = options.threads;
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::vector<RawTransaction>> chunks(num_chunks);
  RunChunks(num_chunks, threads, progress, kGenerationShare, [&](int chunk) {
    std::vector<int32_t> terminals;
    int end = std::min(options.customers, (chunk + 1) * kCustomersPerChunk);
    for (int c = chunk * kCustomersPerChunk; c < end; ++c) {
      GenerateCustomer(c, customers[c], grid, options, &terminals, &chunks[chunk]);
    }
  });

  size_t total = 0;
  for (const auto& chunk : chunks) total += chunk.size();
  std::vector<RawTransaction> raw;
  raw.reserve(total);
  for (auto& chunk : chunks) {
    raw.insert(raw.end(), chunk.begin(), chunk.end());
    std::vector<RawTransaction>().swap(chunk);
  }

  // Sort by time as the book does: pandas' sort_values('TX_DATETIME'), i.e. NumPy's unstable
  // argsort, on the customer-order concatenation. The book sorts datetime64[ns] values; the
  // argsort's permutation depends only on how keys compare, so epoch seconds give the same one.
  std::vector<int64_t> order;
  {
    std::vector<int64_t> keys(total);
    for (size_t i = 0; i < total; ++i) keys[i] = start + raw[i].seconds;
    order = NumpyArgsort(keys);
  }

  Dataset data;
  data.has_labels = true;
  data.transaction_id.resize(total);
  data.timestamp.resize(total);
  data.customer_id.resize(total);
  data.terminal_id.resize(total);
  data.amount.resize(total);
  data.fraud.assign(total, 0);
  data.fraud_scenario.assign(total, 0);
  for (size_t r = 0; r < total; ++r) {
    const RawTransaction& t = raw[order[r]];
    data.transaction_id[r] = static_cast<int64_t>(r);
    data.timestamp[r] = start + t.seconds;
    data.customer_id[r] = t.customer;
    data.terminal_id[r] = t.terminal;
    data.amount[r] = t.amount;
  }
  std::vector<RawTransaction>().swap(raw);
  std::vector<int64_t>().swap(order);
  if (progress) progress(kGenerationShare + (1 - kGenerationShare) / 2);

  AddFrauds(options, start, &data);
  if (progress) progress(1.0);
  return data;
}

}  // namespace

Status ValidateSimulatorOptions(const SimulatorOptions& options) {
  auto at_least_one = [](const char* flag, int value) {
    return InvalidArgument(std::string(flag) + " must be at least 1, got " + std::to_string(value));
  };
  if (options.customers < 1) return at_least_one("--customers", options.customers);
  if (options.terminals < 1) return at_least_one("--terminals", options.terminals);
  if (options.days < 1) return at_least_one("--days", options.days);
  if (!(options.radius > 0)) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%g", options.radius);
    return InvalidArgument(std::string("--radius must be positive, got ") + buf);
  }
  if (options.threads < 0) {
    return InvalidArgument("--threads must be 0 (one per core) or more, got " +
                           std::to_string(options.threads));
  }
  StatusOr<int64_t> start = ParseDate(options.start_date);
  if (!start.ok()) return start.status().WithContext("--start-date");
  return Status::Ok();
}

StatusOr<Dataset> Simulate(const SimulatorOptions& options) {
  VIGIL_RETURN_IF_ERROR(ValidateSimulatorOptions(options));
  VIGIL_ASSIGN_OR_RETURN(int64_t start, ParseDate(options.start_date));
  try {
    return SimulateImpl(options, start);
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kResourceExhausted,
                  "not enough memory to simulate " + std::to_string(options.customers) +
                      " customers over " + std::to_string(options.days) + " days");
  }
}

SimulationSummary Summarize(const Dataset& data) {
  SimulationSummary s;
  s.transactions = static_cast<int64_t>(data.size());
  if (!data.has_labels) return s;
  for (size_t r = 0; r < data.size(); ++r) {
    if (data.fraud[r] == 0) continue;
    ++s.frauds;
    uint8_t scenario = data.fraud_scenario[r];
    // Index 0 counts frauds whose scenario is unknown (a CSV without the column).
    if (scenario <= 3) ++s.scenario_frauds[scenario];
  }
  return s;
}

}  // namespace vigil
