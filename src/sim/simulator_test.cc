#include "vigil/simulator.h"

#include <gtest/gtest.h>

#include <cmath>
#include <thread>
#include <vector>

#include "vigil/time.h"

namespace vigil {
namespace {

SimulatorOptions Small() {
  SimulatorOptions o;
  o.customers = 50;
  o.terminals = 100;
  o.days = 30;
  o.radius = 5.0;
  o.threads = 2;
  return o;
}

Dataset MustSimulate(const SimulatorOptions& options) {
  StatusOr<Dataset> data = Simulate(options);
  EXPECT_TRUE(data.ok()) << data.status().ToString();
  return data.ok() ? std::move(data).value() : Dataset();
}

void ExpectSameData(const Dataset& a, const Dataset& b) {
  EXPECT_EQ(a.transaction_id, b.transaction_id);
  EXPECT_EQ(a.timestamp, b.timestamp);
  EXPECT_EQ(a.customer_id, b.customer_id);
  EXPECT_EQ(a.terminal_id, b.terminal_id);
  EXPECT_EQ(a.amount, b.amount);
  EXPECT_EQ(a.fraud, b.fraud);
  EXPECT_EQ(a.fraud_scenario, b.fraud_scenario);
}

struct Totals {
  int customers, terminals, days;
  double radius;
  int64_t transactions, frauds, s1, s2, s3;
};

// Totals printed by the book's generator and add_frauds (a transcription of
// SimulatedDataset.ipynb run with /usr/bin/python3, NumPy 1.24.2, pandas 1.5.3) for small
// configurations. Its output matched this simulator's row by row (transaction IDs, times,
// customers, terminals, amounts, labels).
TEST(SimulatorTest, MatchesTheBooksGeneratorOnSmallConfigs) {
  const Totals cases[] = {
      {50, 100, 30, 5.0, 1649, 615, 0, 320, 295},
      {50, 100, 30, 20.0, 2707, 1136, 0, 608, 528},
      {500, 1000, 60, 5.0, 56884, 3772, 23, 2336, 1413},
  };
  for (const Totals& t : cases) {
    SimulatorOptions o = Small();
    o.customers = t.customers;
    o.terminals = t.terminals;
    o.days = t.days;
    o.radius = t.radius;
    SimulationSummary s = Summarize(MustSimulate(o));
    EXPECT_EQ(s.transactions, t.transactions) << t.customers << " customers, r=" << t.radius;
    EXPECT_EQ(s.frauds, t.frauds) << t.customers << " customers, r=" << t.radius;
    EXPECT_EQ(s.scenario_frauds[1], t.s1);
    EXPECT_EQ(s.scenario_frauds[2], t.s2);
    EXPECT_EQ(s.scenario_frauds[3], t.s3);
  }
}

TEST(SimulatorTest, RowsMatchTheBooksGenerator) {
  // TRANSACTION_ID, epoch second, CUSTOMER_ID, TERMINAL_ID, TX_AMOUNT, TX_FRAUD,
  // TX_FRAUD_SCENARIO of rows of the Python output for Small().
  struct Row {
    int64_t id, ts, customer, terminal;
    double amount;
    int fraud, scenario;
  };
  const Row rows[] = {
      {0, 1522545060, 8, 8, 2.08, 0, 0},
      {1, 1522555212, 38, 93, 11.13, 0, 0},
      {35, 1522597302, 49, 26, 20.09, 1, 2},
      {42, 1522610919, 28, 17, 310.75, 1, 3},
      {54, 1522650059, 40, 31, 343.40000000000003, 1, 3},  // 68.68 * 5
      {999, 1524061073, 5, 79, 42.66, 0, 0},
      {1648, 1525123464, 25, 17, 63.82, 1, 2},
  };
  Dataset data = MustSimulate(Small());
  ASSERT_EQ(data.size(), 1649u);
  for (const Row& r : rows) {
    SCOPED_TRACE(r.id);
    EXPECT_EQ(data.transaction_id[r.id], r.id);
    EXPECT_EQ(data.timestamp[r.id], r.ts);
    EXPECT_EQ(data.customer_id[r.id], r.customer);
    EXPECT_EQ(data.terminal_id[r.id], r.terminal);
    EXPECT_EQ(data.amount[r.id], r.amount);
    EXPECT_EQ(data.fraud[r.id], r.fraud);
    EXPECT_EQ(data.fraud_scenario[r.id], r.scenario);
  }
}

TEST(SimulatorTest, OrdersTiesAsTheBooksSort) {
  // The book sorts with pandas' default sort_values, NumPy's unstable quicksort, so rows with
  // equal timestamps do not stay in customer order. Produced with
  //   /usr/bin/python3 book.py 500 1000 60 5 quicksort out.csv
  // (the transcription of SimulatedDataset.ipynb; NumPy 1.24.2, pandas 1.5.3), then over its
  // rows (TRANSACTION_ID, epoch second, CUSTOMER_ID, ...), with Python integers:
  //   checksum = sum((id + 1) * (ts * 5003 + customer)) % 2**64
  //   out_of_order = rows whose timestamp equals the previous row's and whose customer is smaller
  SimulatorOptions o = Small();
  o.customers = 500;
  o.terminals = 1000;
  o.days = 60;
  Dataset data = MustSimulate(o);
  ASSERT_EQ(data.size(), 56884u);
  uint64_t checksum = 0;
  int out_of_order = 0;
  for (size_t i = 0; i < data.size(); ++i) {
    uint64_t id = static_cast<uint64_t>(data.transaction_id[i]);
    checksum += (id + 1) * (static_cast<uint64_t>(data.timestamp[i]) * 5003 +
                            static_cast<uint64_t>(data.customer_id[i]));
    if (i > 0 && data.timestamp[i - 1] == data.timestamp[i] &&
        data.customer_id[i - 1] > data.customer_id[i]) {
      ++out_of_order;
    }
  }
  EXPECT_EQ(checksum, 11284114338902488352u);
  EXPECT_EQ(out_of_order, 213);
}

TEST(SimulatorTest, OutputIsSortedLabelledAndInRange) {
  SimulatorOptions o = Small();
  Dataset data = MustSimulate(o);
  ASSERT_GT(data.size(), 0u);
  ASSERT_TRUE(data.has_labels);
  ASSERT_EQ(data.fraud.size(), data.size());
  ASSERT_EQ(data.fraud_scenario.size(), data.size());
  int64_t start = *ParseDate(o.start_date);
  for (size_t i = 0; i < data.size(); ++i) {
    ASSERT_EQ(data.transaction_id[i], static_cast<int64_t>(i));
    if (i > 0) {
      ASSERT_LE(data.timestamp[i - 1], data.timestamp[i]);
    }
    int64_t offset = data.timestamp[i] - start;
    ASSERT_GE(offset, 0);
    ASSERT_LT(offset, o.days * kSecondsPerDay);
    ASSERT_NE(offset % kSecondsPerDay, 0);  // 0 < time_tx < 86400
    ASSERT_GE(data.customer_id[i], 0);
    ASSERT_LT(data.customer_id[i], o.customers);
    ASSERT_GE(data.terminal_id[i], 0);
    ASSERT_LT(data.terminal_id[i], o.terminals);
    ASSERT_GE(data.amount[i], 0);
    ASSERT_EQ(data.fraud[i] != 0, data.fraud_scenario[i] != 0);
    if (data.fraud_scenario[i] != 3) {  // scenario 3 multiplies the rounded amount by 5
      ASSERT_EQ(data.amount[i], std::nearbyint(data.amount[i] * 100) / 100);
    }
    if (data.fraud_scenario[i] == 0) {
      ASSERT_LE(data.amount[i], 220);
    }
  }
}

TEST(SimulatorTest, IsDeterministicAndIndependentOfThreads) {
  SimulatorOptions o = Small();
  o.customers = 200;
  o.terminals = 500;
  o.threads = 1;
  Dataset one = MustSimulate(o);
  o.threads = 3;
  Dataset three = MustSimulate(o);
  Dataset again = MustSimulate(o);
  ExpectSameData(one, three);
  ExpectSameData(three, again);
  EXPECT_EQ(one.Fingerprint(), three.Fingerprint());
}

TEST(SimulatorTest, SeedAndStartDateChangeTheData) {
  SimulatorOptions o = Small();
  Dataset base = MustSimulate(o);
  o.seed = 1;
  EXPECT_NE(MustSimulate(o).Fingerprint(), base.Fingerprint());
  o.seed = 0;
  o.start_date = "2020-01-01";
  Dataset shifted = MustSimulate(o);
  ASSERT_EQ(shifted.size(), base.size());
  EXPECT_EQ(shifted.timestamp[0] - base.timestamp[0],
            *ParseDate("2020-01-01") - *ParseDate("2018-04-01"));
  EXPECT_EQ(shifted.amount, base.amount);
}

TEST(SimulatorTest, CustomersWithoutTerminalsMakeNoTransactions) {
  SimulatorOptions o = Small();
  o.radius = 1e-9;
  Dataset data = MustSimulate(o);
  EXPECT_EQ(data.size(), 0u);
  EXPECT_TRUE(data.has_labels);
  SimulationSummary s = Summarize(data);
  EXPECT_EQ(s.transactions, 0);
  EXPECT_EQ(s.fraud_rate(), 0.0);
}

TEST(SimulatorTest, ReportsProgressFromTheCallingThread) {
  SimulatorOptions o = Small();
  o.customers = 300;
  o.threads = 3;
  std::vector<double> seen;
  std::thread::id caller = std::this_thread::get_id();
  bool other_thread = false;
  o.progress = [&](double f) {
    seen.push_back(f);
    if (std::this_thread::get_id() != caller) other_thread = true;
  };
  MustSimulate(o);
  EXPECT_FALSE(other_thread);
  ASSERT_GE(seen.size(), 2u);
  EXPECT_LE(seen.size(), 40u);
  for (size_t i = 1; i < seen.size(); ++i) EXPECT_LE(seen[i - 1], seen[i]);
  EXPECT_GE(seen.front(), 0.0);
  EXPECT_EQ(seen.back(), 1.0);
}

TEST(SimulatorTest, RejectsInvalidOptions) {
  struct Case {
    void (*edit)(SimulatorOptions*);
    const char* message;
  };
  const Case cases[] = {
      {[](SimulatorOptions* o) { o->days = 0; }, "--days must be at least 1, got 0"},
      {[](SimulatorOptions* o) { o->customers = -3; }, "--customers must be at least 1, got -3"},
      {[](SimulatorOptions* o) { o->terminals = 0; }, "--terminals must be at least 1, got 0"},
      {[](SimulatorOptions* o) { o->radius = 0; }, "--radius must be positive"},
      {[](SimulatorOptions* o) { o->radius = std::nan(""); }, "--radius must be positive"},
      {[](SimulatorOptions* o) { o->threads = -1; }, "--threads"},
      {[](SimulatorOptions* o) { o->start_date = "2018-02-30"; }, "--start-date"},
      {[](SimulatorOptions* o) { o->start_date = "April 1st"; }, "--start-date"},
  };
  EXPECT_TRUE(ValidateSimulatorOptions(SimulatorOptions()).ok());
  for (const Case& c : cases) {
    SimulatorOptions o = Small();
    c.edit(&o);
    Status status = ValidateSimulatorOptions(o);
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << c.message;
    EXPECT_NE(status.message().find(c.message), std::string::npos) << status.message();
    StatusOr<Dataset> data = Simulate(o);
    EXPECT_FALSE(data.ok()) << c.message;
  }
}

TEST(SimulatorTest, SummarizeCountsFinalLabels) {
  Dataset data;
  data.has_labels = true;
  data.Append(0, 10, 1, 1, 5.0, 0, 0);
  data.Append(1, 11, 1, 1, 500.0, 1, 1);
  data.Append(2, 12, 2, 1, 5.0, 1, 2);
  data.Append(3, 13, 2, 1, 25.0, 1, 3);
  data.Append(4, 14, 2, 1, 25.0, 1, 3);
  SimulationSummary s = Summarize(data);
  EXPECT_EQ(s.transactions, 5);
  EXPECT_EQ(s.frauds, 4);
  EXPECT_EQ(s.scenario_frauds[1], 1);
  EXPECT_EQ(s.scenario_frauds[2], 1);
  EXPECT_EQ(s.scenario_frauds[3], 2);
  EXPECT_DOUBLE_EQ(s.fraud_rate(), 0.8);

  Dataset unlabelled;
  unlabelled.Append(0, 10, 1, 1, 5.0);
  SimulationSummary u = Summarize(unlabelled);
  EXPECT_EQ(u.transactions, 1);
  EXPECT_EQ(u.frauds, 0);
}

}  // namespace
}  // namespace vigil
