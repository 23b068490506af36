#include "vigil/features.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <bit>
#include <cstring>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <cmath>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "vigil/simulator.h"
#include "vigil/time.h"

namespace vigil {
namespace {

// A small data set with what breaks naive window code: ties in time, bursts, long gaps, busy
// terminals and frauds.
Dataset RandomDataset(uint32_t seed, int rows) {
  std::mt19937_64 rng(seed);
  Dataset d;
  d.has_labels = true;
  int64_t t = *ParseDate("2018-04-01");
  for (int i = 0; i < rows; ++i) {
    int gap_kind = static_cast<int>(rng() % 10);
    t += gap_kind == 0 ? 0 : gap_kind < 8 ? static_cast<int64_t>(rng() % 3000)
                                         : static_cast<int64_t>(rng() % (5 * kSecondsPerDay));
    d.Append(i, t, static_cast<int64_t>(rng() % 7), static_cast<int64_t>(rng() % 5),
             std::round(std::uniform_real_distribution<double>(0, 300)(rng) * 100) / 100,
             rng() % 6 == 0 ? 1 : 0, 0);
  }
  return d;
}

// The handbook's definitions, computed the slow, obvious way over the whole data set.
std::vector<double> NaiveBookFeatures(const Dataset& d, size_t i, int delay_days) {
  const int64_t t = d.timestamp[i];
  std::vector<double> f = {d.amount[i], Weekday(t) >= 5 ? 1.0 : 0.0,
                           HourOfDay(t) <= 6 ? 1.0 : 0.0};
  for (int n : {1, 7, 30}) {
    double count = 0, sum = 0;
    for (size_t j = 0; j <= i; ++j) {
      if (d.customer_id[j] == d.customer_id[i] && d.timestamp[j] > t - n * kSecondsPerDay) {
        ++count;
        sum += d.amount[j];
      }
    }
    f.push_back(count);
    f.push_back(sum / count);
  }
  const int64_t delay = int64_t{delay_days} * kSecondsPerDay;
  for (int n : {1, 7, 30}) {
    double count = 0, frauds = 0;
    for (size_t j = 0; j < i; ++j) {
      if (d.terminal_id[j] == d.terminal_id[i] && d.timestamp[j] > t - delay - n * kSecondsPerDay &&
          d.timestamp[j] <= t - delay) {
        ++count;
        frauds += d.fraud[j];
      }
    }
    f.push_back(count);
    f.push_back(count == 0 ? 0 : frauds / count);
  }
  return f;
}

TEST(FeaturesTest, ListsBookAndAllSets) {
  EXPECT_EQ(Features(FeatureSet::kBook).size(), 15u);
  EXPECT_GT(Features(FeatureSet::kAll).size(), 15u);
  auto book = FeatureNames(FeatureSet::kBook);
  auto all = FeatureNames(FeatureSet::kAll);
  EXPECT_TRUE(std::equal(book.begin(), book.end(), all.begin())) << "book set is a prefix of all";
  EXPECT_EQ(book[0], "amount");
  EXPECT_EQ(book[14], "terminal_risk_30d");
  EXPECT_EQ(*ParseFeatureSet("all"), FeatureSet::kAll);
  EXPECT_FALSE(ParseFeatureSet("everything").ok());
}

TEST(FeaturesTest, MatchesTheBookDefinitions) {
  Dataset d = RandomDataset(7, 1500);
  FeatureMatrix m = ComputeFeatures(d, FeatureSet::kBook, {});
  ASSERT_EQ(m.rows, d.size());
  for (size_t i = 0; i < d.size(); ++i) {
    std::vector<double> want = NaiveBookFeatures(d, i, 7);
    for (size_t j = 0; j < want.size(); ++j) {
      ASSERT_EQ(m.row(i)[j], static_cast<float>(want[j]))
          << "row " << i << " feature " << m.names[j];
    }
  }
}

TEST(FeaturesTest, HonoursTheLabelDelayOption) {
  Dataset d = RandomDataset(11, 800);
  FeatureMatrix m = ComputeFeatures(d, FeatureSet::kBook, {.label_delay_days = 2});
  for (size_t i = 0; i < d.size(); ++i) {
    std::vector<double> want = NaiveBookFeatures(d, i, 2);
    for (size_t j = 9; j < want.size(); ++j) {
      ASSERT_EQ(m.row(i)[j], static_cast<float>(want[j])) << "row " << i << " " << m.names[j];
    }
  }
}

// The online path: one transaction at a time, labels arriving as feedback at any moment
// between the transaction and the delay. It must equal the offline matrix bit for bit.
void ExpectOnlineEqualsOffline(const Dataset& d, FeatureSet set, uint32_t seed) {
  FeatureMatrix offline = ComputeFeatures(d, set, {});
  FeatureEngine engine(set);
  std::mt19937_64 rng(seed);
  std::multimap<int64_t, int64_t> pending;  // delivery time -> transaction id
  std::vector<float> row(engine.num_features());
  for (size_t i = 0; i < d.size(); ++i) {
    const int64_t t = d.timestamp[i];
    while (!pending.empty() && pending.begin()->first <= t) {
      ASSERT_TRUE(engine.AddLabel(pending.begin()->second, true).ok());
      pending.erase(pending.begin());
    }
    engine.Update({d.transaction_id[i], t, d.customer_id[i], d.terminal_id[i], d.amount[i]}, row);
    for (int j = 0; j < engine.num_features(); ++j) {
      ASSERT_EQ(row[j], offline.row(i)[j]) << "row " << i << " " << offline.names[j];
    }
    if (d.fraud[i]) {
      // Feedback may come at once or up to the full delay later.
      pending.emplace(t + static_cast<int64_t>(rng() % (7 * kSecondsPerDay + 1)),
                      d.transaction_id[i]);
    }
  }
}

TEST(FeaturesTest, OnlineEqualsOfflineOnRandomData) {
  ExpectOnlineEqualsOffline(RandomDataset(3, 3000), FeatureSet::kAll, 1);
}

TEST(FeaturesTest, OnlineEqualsOfflineOnSimulatedData) {
  SimulatorOptions o;
  o.customers = 300;
  o.terminals = 600;
  o.days = 90;
  o.radius = 20;
  auto d = Simulate(o);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  ASSERT_GT(d->size(), 10000u);
  ExpectOnlineEqualsOffline(*d, FeatureSet::kAll, 2);
}

TEST(FeaturesTest, LabelsChangeTerminalRiskOnlyAfterTheDelay) {
  FeatureEngine engine(FeatureSet::kBook);
  std::vector<float> row(engine.num_features());
  const int64_t t0 = *ParseDate("2018-04-02");
  engine.Update({1, t0, 10, 5, 50.0}, row);
  ASSERT_TRUE(engine.AddLabel(1, true).ok());
  engine.Update({2, t0 + 7 * kSecondsPerDay - 1, 11, 5, 20.0}, row);
  EXPECT_EQ(row[9], 0.0f) << "the fraud is not yet 7 days old";
  engine.Update({3, t0 + 7 * kSecondsPerDay, 12, 5, 20.0}, row);
  EXPECT_EQ(row[9], 1.0f) << "terminal_nb_tx_1d";
  EXPECT_EQ(row[10], 1.0f) << "terminal_risk_1d";
  ASSERT_TRUE(engine.AddLabel(1, false).ok()) << "a label can be corrected";
  engine.Update({4, t0 + 7 * kSecondsPerDay + 1, 13, 5, 20.0}, row);
  EXPECT_EQ(row[10], 0.0f);
  EXPECT_EQ(engine.AddLabel(99, true).code(), StatusCode::kNotFound);
}

TEST(FeaturesTest, LateTransactionSeesOnlyItsPast) {
  FeatureEngine engine(FeatureSet::kAll);
  std::vector<float> row(engine.num_features());
  const int64_t t0 = *ParseDate("2018-04-02");
  engine.Update({1, t0, 10, 5, 10.0}, row);
  engine.Update({2, t0 + 7200, 10, 5, 30.0}, row);
  engine.Update({3, t0 + 3600, 10, 5, 20.0}, row);  // arrives late
  EXPECT_EQ(row[3], 2.0f) << "customer_nb_tx_1d counts tx 1 and itself, not the later tx 2";
  EXPECT_EQ(row[4], 15.0f);
  EXPECT_EQ(row[18], 3600.0f) << "seconds since the previous transaction in time";
}

TEST(FeaturesTest, AnalystFeaturesOnAKnownHistory) {
  FeatureEngine engine(FeatureSet::kAll);
  std::vector<float> row(engine.num_features());
  const int64_t t0 = *ParseDate("2018-04-02");
  engine.Update({1, t0, 10, 5, 10.0}, row);
  EXPECT_EQ(row[15], 1.0f) << "no history: ratio 1";
  EXPECT_EQ(row[16], 0.0f);
  EXPECT_EQ(row[18], 30.0f * kSecondsPerDay);
  engine.Update({2, t0 + 60, 10, 5, 20.0}, row);
  engine.Update({3, t0 + 120, 10, 5, 90.0}, row);
  EXPECT_FLOAT_EQ(row[15], 6.0f) << "90 / mean(10, 20)";
  EXPECT_FLOAT_EQ(row[16], static_cast<float>((90.0 - 15.0) / std::sqrt(50.0)));
  EXPECT_FLOAT_EQ(row[17], 6.0f) << "90 / median(10, 20)";
  EXPECT_EQ(row[18], 60.0f);
}

TEST(FeatureCatalogTest, EveryEntryHasAUniqueNameAndReasonCodeAndADescription) {
  std::set<std::string> names, codes;
  for (const FeatureInfo& f : Features(FeatureSet::kAll)) {
    EXPECT_TRUE(names.insert(f.name).second) << "duplicate name " << f.name;
    EXPECT_TRUE(codes.insert(f.reason_code).second) << "duplicate reason code " << f.reason_code;
    EXPECT_FALSE(f.name.empty());
    EXPECT_FALSE(f.description.empty()) << f.name;
    EXPECT_FALSE(f.reason_code.empty()) << f.name;
    ASSERT_NE(f.reason_formatter, nullptr) << f.name;
    EXPECT_FALSE(f.ReasonText(1, 7).empty()) << f.name;
    EXPECT_EQ(FindFeature(f.name), &f) << f.name;
  }
  EXPECT_EQ(names.size(), 19u);
  EXPECT_EQ(FindFeature("shoe_size"), nullptr);
  EXPECT_EQ(FindFeature("customer_nb_tx_14d"), nullptr) << "only the windows Vigil computes";
  // The book set is the catalog's first 15 entries, the same objects' values.
  const auto& book = Features(FeatureSet::kBook);
  for (size_t i = 0; i < book.size(); ++i) {
    EXPECT_EQ(book[i].reason_code, Features(FeatureSet::kAll)[i].reason_code);
  }
}

// The catalog's window and source agree with what the names promise.
TEST(FeatureCatalogTest, WindowsAndSourcesMatchTheNames) {
  for (const FeatureInfo& f : Features(FeatureSet::kAll)) {
    const size_t us = f.name.rfind('_');
    const std::string last = f.name.substr(us + 1);
    if (last.size() > 1 && last.back() == 'd' &&
        std::isdigit(static_cast<unsigned char>(last[0]))) {
      EXPECT_EQ(std::to_string(f.window_days) + "d", last) << f.name;
    }
    const FeatureSource want = f.name.rfind("customer_", 0) == 0   ? FeatureSource::kCustomer
                               : f.name.rfind("terminal_", 0) == 0 ? FeatureSource::kTerminal
                                                                   : FeatureSource::kTransaction;
    EXPECT_EQ(f.source, want) << f.name;
    EXPECT_EQ(f.window_days > 0, f.source != FeatureSource::kTransaction) << f.name;
  }
}

TransactionView View(const Dataset& d, size_t i) {
  return {d.transaction_id[i], d.timestamp[i], d.customer_id[i], d.terminal_id[i], d.amount[i]};
}

// Rows for transactions at every customer and terminal of RandomDataset, at a few moments after
// `t`: what a state shows of itself through Compute.
std::vector<float> ProbeRows(const FeatureEngine& engine, int64_t t) {
  std::vector<float> rows;
  std::vector<float> row(engine.num_features());
  int64_t id = 1'000'000'000;
  for (int64_t dt : {int64_t{0}, kSecondsPerDay / 2, 3 * kSecondsPerDay, 8 * kSecondsPerDay,
                     20 * kSecondsPerDay}) {
    for (int64_t c = 0; c < 8; ++c) {
      for (int64_t k = 0; k < 6; ++k) {
        engine.Compute({id++, t + dt, c, k, 42.5}, row);
        rows.insert(rows.end(), row.begin(), row.end());
      }
    }
  }
  return rows;
}

// Bit for bit, NaN included.
void ExpectSameRows(const std::vector<float>& a, const std::vector<float>& b, const char* what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(std::bit_cast<uint32_t>(a[i]), std::bit_cast<uint32_t>(b[i]))
        << what << ": value " << i << " " << a[i] << " vs " << b[i];
  }
}

TEST(FeatureEngineTest, ComputeWritesEveryFeature) {
  for (FeatureSet set : {FeatureSet::kBook, FeatureSet::kAll}) {
    FeatureEngine engine(set);
    std::vector<float> row(engine.num_features(), std::nanf(""));
    engine.Compute({1, *ParseDate("2018-04-02"), 3, 4, 10.0}, row);  // nothing known yet
    for (float v : row) EXPECT_FALSE(std::isnan(v));
    Dataset d = RandomDataset(17, 300);
    for (size_t i = 0; i < d.size(); ++i) engine.Insert(View(d, i));
    std::fill(row.begin(), row.end(), std::nanf(""));
    engine.Compute({1'000'000, d.timestamp.back() + 8 * kSecondsPerDay, 3, 4, 10.0}, row);
    for (int j = 0; j < engine.num_features(); ++j) {
      EXPECT_FALSE(std::isnan(row[j])) << Features(set)[j].name;
    }
  }
}

// Update(tx, out) is Compute(tx, out) then Insert(tx): the same rows, then the same state.
TEST(FeatureEngineTest, ComputeThenInsertIsUpdate) {
  Dataset d = RandomDataset(21, 3000);
  FeatureEngine updated(FeatureSet::kAll), split(FeatureSet::kAll);
  std::vector<float> a(updated.num_features()), b(split.num_features()), again(b.size());
  for (size_t i = 0; i < d.size(); ++i) {
    if (i >= 10 && d.fraud[i - 10]) {  // feedback, unless past the horizon in both
      ASSERT_EQ(updated.AddLabel(d.transaction_id[i - 10], true).code(),
                split.AddLabel(d.transaction_id[i - 10], true).code());
    }
    updated.Update(View(d, i), a);
    split.Compute(View(d, i), b);
    split.Compute(View(d, i), again);
    ExpectSameRows(b, again, "Compute changed the state");
    split.Insert(View(d, i));
    ExpectSameRows(a, b, "Update vs Compute");
  }
  ExpectSameRows(ProbeRows(updated, d.timestamp.back()), ProbeRows(split, d.timestamp.back()),
                 "state after Update vs Compute + Insert");
}

// Transactions inserted, sometimes labelled, then removed (their records could not be
// committed) must count nowhere: customer windows, terminal windows and fraud rates read the
// same as in an engine that never saw them.
TEST(FeatureEngineTest, InsertThenRemoveLeavesNoTrace) {
  Dataset d = RandomDataset(23, 3000);
  FeatureEngine clean(FeatureSet::kAll), dirty(FeatureSet::kAll);
  std::mt19937_64 rng(5);
  std::vector<float> a(clean.num_features()), b(dirty.num_features());
  std::vector<TransactionView> inserted;  // not removed yet
  std::vector<int64_t> removed_ids;
  int64_t next_id = 100'000;
  size_t labelled_then_removed = 0;
  size_t compared = 0;
  for (size_t i = 0; i < d.size(); ++i) {
    if (i >= 10 && d.fraud[i - 10]) {  // feedback, unless past the horizon in both
      ASSERT_EQ(clean.AddLabel(d.transaction_id[i - 10], true).code(),
                dirty.AddLabel(d.transaction_id[i - 10], true).code());
    }
    clean.Update(View(d, i), a);
    dirty.Update(View(d, i), b);
    if (inserted.empty()) {  // else the pending ones count, as they should
      ExpectSameRows(a, b, "a removed transaction still counts");
      if (::testing::Test::HasFatalFailure()) return;
      ++compared;
    }

    // Now and then a doomed transaction: at a random customer and terminal, or a twin of this
    // one (same customer, terminal, second and amount), a little before now.
    if (rng() % 3 == 0) {
      TransactionView x = View(d, i);
      x.transaction_id = next_id++;
      if (rng() % 2 == 0) {
        x.customer_id = static_cast<int64_t>(rng() % 7);
        x.terminal_id = static_cast<int64_t>(rng() % 5);
        x.timestamp -= static_cast<int64_t>(rng() % 3600);
        x.amount = static_cast<double>(rng() % 30000) / 100;
      }
      dirty.Insert(x);
      if (rng() % 4 == 0) {
        ASSERT_TRUE(dirty.AddLabel(x.transaction_id, true).ok());
        ++labelled_then_removed;
      }
      inserted.push_back(x);
    }
    // Remove a few steps later, in any order, while other transactions go on arriving.
    while (!inserted.empty() && rng() % 2 == 0) {
      const size_t k = rng() % inserted.size();
      dirty.Remove(inserted[k]);
      removed_ids.push_back(inserted[k].transaction_id);
      inserted.erase(inserted.begin() + static_cast<std::ptrdiff_t>(k));
    }
  }
  for (const TransactionView& x : inserted) {
    dirty.Remove(x);
    removed_ids.push_back(x.transaction_id);
  }
  EXPECT_GT(compared, 1000u);
  EXPECT_GT(removed_ids.size(), 800u);
  EXPECT_GT(labelled_then_removed, 100u);
  ExpectSameRows(ProbeRows(clean, d.timestamp.back()), ProbeRows(dirty, d.timestamp.back()),
                 "state after the removals");
  for (int64_t id : removed_ids) {
    EXPECT_EQ(dirty.AddLabel(id, true).code(), StatusCode::kNotFound) << id;
  }
  // Labels still reach the transactions that stayed, the same way in both.
  size_t labelled = 0;
  for (size_t i = d.size() - 50; i < d.size(); ++i) {
    const Status s = clean.AddLabel(d.transaction_id[i], true);
    ASSERT_EQ(s.code(), dirty.AddLabel(d.transaction_id[i], true).code());
    labelled += s.ok();
  }
  EXPECT_GT(labelled, 5u);
  ExpectSameRows(ProbeRows(clean, d.timestamp.back()), ProbeRows(dirty, d.timestamp.back()),
                 "state after late labels");
}

TEST(FeatureEngineTest, RemoveTakesTheFraudLabelOut) {
  FeatureEngine engine(FeatureSet::kBook);
  std::vector<float> row(engine.num_features());
  const int64_t t0 = *ParseDate("2018-04-02");
  engine.Update({1, t0, 10, 5, 50.0}, row);
  engine.Update({2, t0 + 60, 11, 5, 70.0}, row);
  ASSERT_TRUE(engine.AddLabel(2, true).ok());
  engine.Remove({2, t0 + 60, 11, 5, 70.0});
  engine.Compute({3, t0 + 7 * kSecondsPerDay + 60, 12, 5, 20.0}, row);
  EXPECT_EQ(row[9], 1.0f) << "terminal_nb_tx_1d: transaction 1 only";
  EXPECT_EQ(row[10], 0.0f) << "terminal_risk_1d: the removed fraud is gone";
  engine.Compute({3, t0 + 120, 11, 5, 20.0}, row);
  EXPECT_EQ(row[3], 1.0f) << "customer 11 has no transaction left";
  EXPECT_EQ(engine.AddLabel(2, false).code(), StatusCode::kNotFound);
  EXPECT_TRUE(engine.AddLabel(1, true).ok());
}

TEST(FeatureEngineTest, RemoveOfAViewNotInTheStateIsANoOp) {
  Dataset d = RandomDataset(29, 600);
  FeatureEngine engine(FeatureSet::kAll);
  FeatureEngine empty(FeatureSet::kAll);
  empty.Remove(View(d, 0));
  ExpectSameRows(ProbeRows(empty, d.timestamp[0]),
                 ProbeRows(FeatureEngine(FeatureSet::kAll), d.timestamp[0]),
                 "Remove on an empty engine");
  for (size_t i = 0; i < d.size(); ++i) engine.Insert(View(d, i));
  const std::vector<float> before = ProbeRows(engine, d.timestamp.back());
  const TransactionView last = View(d, d.size() - 1);
  TransactionView v = last;
  v.transaction_id = 999'999;  // another transaction's customer, terminal, second and amount
  engine.Remove(v);
  v = last;
  v.terminal_id += 1;  // a known id at another terminal
  engine.Remove(v);
  v = last;
  v.timestamp -= 1;  // or another second
  engine.Remove(v);
  ExpectSameRows(before, ProbeRows(engine, d.timestamp.back()), "Remove of an unknown view");

  engine.Remove(last);
  const std::vector<float> removed = ProbeRows(engine, d.timestamp.back());
  EXPECT_NE(std::memcmp(before.data(), removed.data(), before.size() * sizeof(float)), 0)
      << "the real one is removed";
  engine.Remove(last);
  ExpectSameRows(removed, ProbeRows(engine, d.timestamp.back()), "a second Remove");
}

// Compute keeps nothing in the engine: threads may share a const engine.
TEST(FeatureEngineTest, ComputeRunsConcurrently) {
  Dataset d = RandomDataset(31, 2000);
  FeatureEngine engine(FeatureSet::kAll);
  for (size_t i = 0; i < d.size(); ++i) engine.Insert(View(d, i));
  const FeatureEngine& shared = engine;
  const std::vector<float> want = ProbeRows(shared, d.timestamp.back());
  std::vector<std::vector<float>> got(4);
  std::vector<std::thread> threads;
  threads.reserve(got.size());
  for (auto& g : got) {
    threads.emplace_back([&shared, &g, &d] {
      for (int r = 0; r < 20; ++r) g = ProbeRows(shared, d.timestamp.back());
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& g : got) ExpectSameRows(want, g, "concurrent Compute");
}

}  // namespace
}  // namespace vigil

namespace vigil {
namespace {

TEST(FeaturesCsvTest, ValuesReadBackBitExact) {
  Dataset d = RandomDataset(5, 400);
  FeatureMatrix m = ComputeFeatures(d, FeatureSet::kAll, {});
  const std::string path = ::testing::TempDir() + "/features_roundtrip.csv";
  ASSERT_TRUE(WriteFeaturesCsv(d, m, path).ok());
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line.rfind("transaction_id,amount,weekend,night,", 0), 0u);
  size_t row = 0;
  while (std::getline(in, line)) {
    std::stringstream ss(line);
    std::string cell;
    std::getline(ss, cell, ',');
    ASSERT_EQ(std::stoll(cell), d.transaction_id[row]);
    for (size_t j = 0; j < m.cols(); ++j) {
      ASSERT_TRUE(std::getline(ss, cell, ','));
      float v = 0;
      auto [p, ec] = std::from_chars(cell.data(), cell.data() + cell.size(), v);
      ASSERT_EQ(ec, std::errc());
      ASSERT_EQ(v, m.row(row)[j]) << "row " << row << " column " << m.names[j];
      // Read as a double (what pandas does), the value is still the float the model sees.
      ASSERT_EQ(static_cast<float>(std::stod(cell)), m.row(row)[j]);
    }
    ASSERT_TRUE(std::getline(ss, cell, ','));
    EXPECT_EQ(cell, d.fraud[row] ? "1" : "0");
    ++row;
  }
  EXPECT_EQ(row, d.size());
  std::remove(path.c_str());
}

TEST(FeaturesCsvTest, UnwritablePathIsAClearError) {
  Dataset d = RandomDataset(5, 10);
  FeatureMatrix m = ComputeFeatures(d, FeatureSet::kBook, {});
  Status s = WriteFeaturesCsv(d, m, "/nonexistent-dir/f.csv");
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("/nonexistent-dir/f.csv"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace vigil
