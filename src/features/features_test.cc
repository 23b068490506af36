#include "vigil/features.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <cmath>
#include <map>
#include <random>

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
