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
#include <utility>

#include "vigil/simulator.h"
#include "vigil/time.h"
#include "core/hex_for_test.h"

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

// Snapshots: an engine loaded from another's Save goes on exactly as that one.

std::string Saved(const FeatureEngine& engine) {
  std::string bytes;
  engine.Save(&bytes);
  return bytes;
}

// A stream of operations, as serving makes them, applied the same way to every engine given:
// each transaction's Update (rows compared bit for bit across the engines), fraud labels
// arriving up to the delay later, corrections and labels of unknown ids (results compared), late
// transactions, and doomed ones inserted, sometimes labelled, then removed a few steps later.
// What is pending (labels, doomed transactions) carries over from one Run to the next.
class OperationStream {
 public:
  OperationStream(const Dataset& d, uint32_t seed) : d_(d), rng_(seed) {}

  void Run(size_t begin, size_t end, const std::vector<FeatureEngine*>& engines) {
    std::vector<std::vector<float>> rows(engines.size(),
                                         std::vector<float>(engines.front()->num_features()));
    for (size_t i = begin; i < end; ++i) {
      const int64_t t = d_.timestamp[i];
      while (!pending_.empty() && pending_.begin()->first <= t) {
        Label(engines, pending_.begin()->second, true);
        pending_.erase(pending_.begin());
      }
      UpdateAll(engines, View(d_, i), rows);
      if (d_.fraud[i]) {
        pending_.emplace(t + static_cast<int64_t>(rng_() % (7 * kSecondsPerDay + 1)),
                         d_.transaction_id[i]);
      }
      const uint64_t r = rng_() % 100;
      if (r < 2 && i > 0) {  // a correction of an earlier label, or a label nobody can find
        const int64_t id =
            rng_() % 4 == 0 ? 900'000'000 + static_cast<int64_t>(i) : d_.transaction_id[rng_() % i];
        Label(engines, id, rng_() % 2 == 0);
      } else if (r < 4) {  // a transaction arriving late, which stays
        TransactionView x = Twin(i);
        x.timestamp -= static_cast<int64_t>(rng_() % (3 * kSecondsPerDay));
        UpdateAll(engines, x, rows);
        ++late;
      } else if (r < 7) {  // a transaction whose record will not commit
        TransactionView x = Twin(i);
        x.timestamp -= static_cast<int64_t>(rng_() % 3600);
        for (FeatureEngine* e : engines) e->Insert(x);
        if (rng_() % 3 == 0) Label(engines, x.transaction_id, true);
        doomed_.push_back(x);
      }
      while (!doomed_.empty() && rng_() % 3 == 0) {
        const size_t k = rng_() % doomed_.size();
        for (FeatureEngine* e : engines) e->Remove(doomed_[k]);
        doomed_.erase(doomed_.begin() + static_cast<std::ptrdiff_t>(k));
        ++removed;
      }
    }
  }

  size_t updates = 0, labels = 0, labels_not_found = 0, late = 0, removed = 0;

 private:
  // Another transaction of this one's customer at another terminal of the data set.
  TransactionView Twin(size_t i) {
    TransactionView x = View(d_, i);
    x.transaction_id = next_id_++;
    x.terminal_id = d_.terminal_id[rng_() % d_.size()];
    x.amount = static_cast<double>(rng_() % 30000) / 100;
    return x;
  }

  void UpdateAll(const std::vector<FeatureEngine*>& engines, const TransactionView& tx,
                 std::vector<std::vector<float>>& rows) {
    for (size_t e = 0; e < engines.size(); ++e) engines[e]->Update(tx, rows[e]);
    for (size_t e = 1; e < engines.size(); ++e) {
      ASSERT_EQ(std::memcmp(rows[0].data(), rows[e].data(), rows[0].size() * sizeof(float)), 0)
          << "transaction " << tx.transaction_id << ", engine " << e;
    }
    ++updates;
  }

  void Label(const std::vector<FeatureEngine*>& engines, int64_t id, bool fraud) {
    const StatusCode code = engines.front()->AddLabel(id, fraud).code();
    for (size_t e = 1; e < engines.size(); ++e) {
      ASSERT_EQ(engines[e]->AddLabel(id, fraud).code(), code) << id;
    }
    ++labels;
    labels_not_found += code == StatusCode::kNotFound;
  }

  const Dataset& d_;
  std::mt19937_64 rng_;
  std::multimap<int64_t, int64_t> pending_;  // delivery time -> transaction id
  std::vector<TransactionView> doomed_;
  int64_t next_id_ = 500'000'000;
};

TEST(FeatureSnapshotTest, LoadedEngineGoesOnExactlyAsTheSavedOne) {
  SimulatorOptions o;
  o.customers = 500;
  o.terminals = 800;
  o.days = 100;
  o.radius = 20;
  auto d = Simulate(o);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  ASSERT_GT(d->size(), 30000u);
  for (auto [set, delay] : {std::pair(FeatureSet::kAll, 7), std::pair(FeatureSet::kBook, 3)}) {
    SCOPED_TRACE(std::string(FeatureSetName(set)));
    const FeatureOptions options{.label_delay_days = delay};
    FeatureEngine a(set, options);
    OperationStream stream(*d, 41);
    const size_t half = d->size() / 2;
    stream.Run(0, half, {&a});
    ASSERT_FALSE(::testing::Test::HasFatalFailure());
    const std::string bytes = Saved(a);

    FeatureEngine b(set, options);
    std::vector<float> row(b.num_features());
    b.Update(View(*d, 0), row);  // Load replaces this
    ASSERT_TRUE(b.Load(bytes).ok());
    EXPECT_EQ(Saved(b), bytes) << "equal states, equal bytes";
    ExpectSameRows(ProbeRows(a, d->timestamp[half]), ProbeRows(b, d->timestamp[half]),
                   "the loaded state");

    const OperationStream before = stream;
    stream.Run(half, d->size(), {&a, &b});
    ASSERT_FALSE(::testing::Test::HasFatalFailure());
    EXPECT_GT(stream.updates - before.updates, 15000u);
    EXPECT_GT(stream.labels - before.labels, 500u);
    EXPECT_GT(stream.labels_not_found - before.labels_not_found, 20u);
    EXPECT_GT(stream.late - before.late, 200u);
    EXPECT_GT(stream.removed - before.removed, 300u);
    EXPECT_EQ(Saved(a), Saved(b));
    ExpectSameRows(ProbeRows(a, d->timestamp.back()), ProbeRows(b, d->timestamp.back()),
                   "the states at the end");
  }
}

// Two engines that reach one state by different roads (one also saw transactions, labelled or
// not, of other customers at other terminals, inserted then removed: its hash maps have grown
// other layouts) write the same bytes.
TEST(FeatureSnapshotTest, EqualStatesWriteEqualBytes) {
  std::mt19937_64 rng(43);
  const int64_t t0 = *ParseDate("2018-04-02");
  FeatureEngine plain(FeatureSet::kAll), detour(FeatureSet::kAll);
  std::vector<TransactionView> doomed;
  for (int64_t i = 0; i < 400; ++i) {  // 14 days: nothing is pruned
    const TransactionView tx{i, t0 + i * 3000 - static_cast<int64_t>(rng() % 2) * 3000,
                             static_cast<int64_t>(rng() % 7), static_cast<int64_t>(rng() % 5),
                             static_cast<double>(rng() % 30000) / 100};
    plain.Insert(tx);
    detour.Insert(tx);
    const TransactionView x{10'000 + i, tx.timestamp, 100 + i, 100 + i % 50, 1.25};
    detour.Insert(x);
    if (i % 3 == 0) {
      ASSERT_TRUE(detour.AddLabel(x.transaction_id, true).ok());
    }
    doomed.push_back(x);
    if (i % 10 == 9) {
      ASSERT_TRUE(plain.AddLabel(i, true).ok());
      ASSERT_TRUE(detour.AddLabel(i, true).ok());
    }
  }
  for (const TransactionView& x : doomed) detour.Remove(x);
  const std::string bytes = Saved(plain);
  EXPECT_EQ(Saved(detour), bytes);
  ASSERT_TRUE(plain.AddLabel(3, true).ok());
  EXPECT_NE(Saved(plain), bytes) << "a label is part of the state";
}

TEST(FeatureSnapshotTest, EmptyEngineRoundTrips) {
  FeatureEngine empty(FeatureSet::kBook);
  const std::string bytes = Saved(empty);
  EXPECT_LT(bytes.size(), 20u);
  FeatureEngine loaded(FeatureSet::kBook);
  Dataset d = RandomDataset(47, 50);
  for (size_t i = 0; i < d.size(); ++i) loaded.Insert(View(d, i));
  ASSERT_TRUE(loaded.Load(bytes).ok());
  EXPECT_EQ(Saved(loaded), bytes);
  ExpectSameRows(ProbeRows(loaded, d.timestamp.back()), ProbeRows(empty, d.timestamp.back()),
                 "an empty state");
  EXPECT_EQ(loaded.AddLabel(d.transaction_id[0], true).code(), StatusCode::kNotFound);
}

TEST(FeatureSnapshotTest, RefusesAStateOfAnotherSetOrLabelDelay) {
  Dataset d = RandomDataset(53, 200);
  FeatureEngine all(FeatureSet::kAll);
  for (size_t i = 0; i < d.size(); ++i) all.Insert(View(d, i));
  const std::string bytes = Saved(all);
  FeatureEngine book(FeatureSet::kBook), delay3(FeatureSet::kAll, {.label_delay_days = 3});
  for (FeatureEngine* e : {&book, &delay3}) {
    for (size_t i = 0; i < 20; ++i) e->Insert(View(d, i));
    const Status s = e->Load(bytes);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
    EXPECT_EQ(Saved(*e), Saved(FeatureEngine(e->feature_set(), {e == &book ? 7 : 3})))
        << "a refused Load leaves the state empty";
  }
  EXPECT_NE(book.Load(bytes).message().find("feature set 'all'"), std::string::npos);
  EXPECT_NE(delay3.Load(bytes).message().find("label delay of 7 days"), std::string::npos);
  FeatureEngine same(FeatureSet::kAll, {.label_delay_days = 7});
  EXPECT_TRUE(same.Load(bytes).ok());
}

// A small state with a bit of everything: customers, terminals, a fraud label, a removal,
// a transaction arriving late.
FeatureEngine& SmallState(FeatureEngine& engine) {
  Dataset d = RandomDataset(59, 24);
  for (size_t i = 0; i < d.size(); ++i) engine.Insert(View(d, i));
  engine.Insert({1000, d.timestamp[5] - 100, 3, 2, 17.25});
  (void)engine.AddLabel(d.transaction_id[3], true);
  (void)engine.AddLabel(d.transaction_id[20], true);
  engine.Remove(View(d, 10));
  return engine;
}

// Uses a loaded engine every way, so that a state Load accepted but no history could build
// would show (under the sanitizers) if it broke the engine.
void Exercise(FeatureEngine& engine) {
  std::vector<float> row(engine.num_features());
  const int64_t t0 = *ParseDate("2018-04-10");
  (void)ProbeRows(engine, t0);
  for (int64_t i = 0; i < 8; ++i) {
    const TransactionView tx{2000 + i, t0 + i * 40'000, i % 7, i % 5, 10.0 + i};
    engine.Update(tx, row);
    (void)engine.AddLabel(i, i % 2 == 0);
    (void)engine.AddLabel(1000, true);
    if (i % 3 == 0) engine.Remove(tx);
  }
}

TEST(FeatureSnapshotTest, EveryTruncationIsRefused) {
  FeatureEngine saved(FeatureSet::kAll);
  const std::string bytes = Saved(SmallState(saved));
  ASSERT_GT(bytes.size(), 200u);
  ASSERT_LT(bytes.size(), 1000u);
  const std::string empty = Saved(FeatureEngine(FeatureSet::kAll));
  FeatureEngine engine(FeatureSet::kAll);
  for (size_t n = 0; n < bytes.size(); ++n) {
    ASSERT_TRUE(engine.Load(bytes).ok());
    const Status s = engine.Load(std::string_view(bytes).substr(0, n));
    ASSERT_EQ(s.code(), StatusCode::kInvalidArgument) << n << " bytes: " << s.ToString();
    ASSERT_EQ(Saved(engine), empty) << n;
  }
  EXPECT_EQ(engine.Load(bytes + '\0').code(), StatusCode::kInvalidArgument) << "trailing bytes";
}

// A changed byte is refused or read as another state; a state it reads is one the format can
// say (saving it gives these very bytes back: one state, one encoding) and the engine runs on.
TEST(FeatureSnapshotTest, EveryChangedByteIsRefusedOrReadSafely) {
  FeatureEngine saved(FeatureSet::kAll);
  const std::string bytes = Saved(SmallState(saved));
  size_t accepted = 0, refused = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (unsigned mask : {0x01u, 0x02u, 0x10u, 0x40u, 0x80u, 0xffu}) {
      std::string changed = bytes;
      changed[i] = static_cast<char>(changed[i] ^ mask);
      FeatureEngine engine(FeatureSet::kAll);
      const Status s = engine.Load(changed);
      if (s.ok()) {
        ++accepted;
        ASSERT_EQ(Saved(engine), changed) << "byte " << i << " ^ " << mask;
        Exercise(engine);
      } else {
        ++refused;
        ASSERT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
        ASSERT_EQ(Saved(engine), Saved(FeatureEngine(FeatureSet::kAll)));
      }
    }
  }
  EXPECT_GT(accepted, 100u);
  EXPECT_GT(refused, 100u);
}

// Counts are checked against the bytes left before anything is allocated: a count of 2^62
// customers or events in a buffer of a few bytes is refused at once.
TEST(FeatureSnapshotTest, AbsurdCountsAreRefusedWithoutAllocating) {
  std::string header = Saved(FeatureEngine(FeatureSet::kBook)).substr(0, 3);
  auto varint = [](uint64_t v) {
    std::string s;
    for (; v >= 0x80; v >>= 7) s.push_back(static_cast<char>(v | 0x80));
    s.push_back(static_cast<char>(v));
    return s;
  };
  const uint64_t huge = uint64_t{1} << 62;
  FeatureEngine engine(FeatureSet::kBook);
  for (const std::string& body : {
           varint(huge),                                      // customers
           varint(1) + varint(0) + varint(huge),              // one customer's events
           varint(0) + varint(huge),                          // terminals
           varint(0) + varint(1) + varint(0) + varint(huge),  // one terminal's times
           varint(0) + varint(0) + varint(huge),              // known transactions
           varint(0) + varint(0) + varint(0) + varint(huge),  // their order
           std::string(64, '\xff'),                           // an endless varint
       }) {
    EXPECT_EQ(engine.Load(header + body + std::string(16, '\x01')).code(),
              StatusCode::kInvalidArgument);
  }
  std::mt19937_64 rng(61);
  for (int k = 0; k < 2000; ++k) {  // and random bodies
    std::string body(rng() % 64, '\0');
    for (char& c : body) c = static_cast<char>(rng());
    const Status s = engine.Load(header + body);
    if (s.ok()) Exercise(engine);
  }
}

// The format, pinned: a change to these bytes is a change of format, which takes a new format
// byte (kStateFormat) so that an older build refuses the new snapshots.
TEST(FeatureSnapshotTest, FormatIsStable) {
  FeatureEngine engine(FeatureSet::kBook);
  const int64_t t0 = *ParseDate("2018-04-02");
  engine.Insert({5, t0, 10, 3, 1.5});
  engine.Insert({6, t0 + 60, 10, 4, 2.0});
  ASSERT_TRUE(engine.AddLabel(6, true).ok());
  const std::string hex = HexOf(Saved(engine));
  EXPECT_EQ(hex,
            // format, set "book", label delay 7 (zigzag)
            "f1000e"
            // 1 customer: id 10 (zigzag), 2 events at t0 (zigzag) and +60 s, amounts 1.5 and 2
            "01140280ca8bac0b3c000000000000f83f0000000000000040"
            // 2 terminals: id 3 with 1 time (t0), no fraud time; id 4 (gap 0), 1 time, 1 fraud
            "02060180ca8bac0b000001f8ca8bac0b01f8ca8bac0b"
            // 2 known: tx 5 at terminal 3 at t0 (delta), genuine; tx 6 at 4, +60 s, fraud
            "020a0680ca8bac0b0000087801"
            // their order: (t0, 5), then (+60 s, +1); then newest_ts_
            "0280ca8bac0b0a7802f8ca8bac0b");
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
