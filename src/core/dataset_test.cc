#include "vigil/dataset.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

namespace vigil {
namespace {

std::string WriteTemp(const std::string& name, const std::string& content) {
  std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path) << content;
  return path;
}

TEST(DatasetCsvTest, RoundTrips) {
  Dataset d;
  d.has_labels = true;
  d.Append(0, 1522540831, 3, 7, 12.34, 0, 0);
  d.Append(1, 1522540900, 4, 7, 0.1 + 0.2, 1, 2);
  const std::string path = ::testing::TempDir() + "/roundtrip.csv";
  ASSERT_TRUE(WriteTransactionsCsv(d, path).ok());
  auto back = ReadTransactionsCsv(path);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->amount, d.amount) << "amounts read back bit-exact";
  EXPECT_EQ(back->timestamp, d.timestamp);
  EXPECT_EQ(back->fraud_scenario, d.fraud_scenario);
  EXPECT_EQ(back->Fingerprint(), d.Fingerprint());
  std::remove(path.c_str());
}

// Model lineage records the fingerprint, so its value is pinned: FNV-1a 64 (published offset
// basis) over each row's little-endian int64 ids and timestamp, double amount, then the fraud
// byte. The expected values come from a separate Python implementation of that definition.
TEST(DatasetFingerprintTest, IsFnv1aOverTheColumns) {
  Dataset empty;
  EXPECT_EQ(empty.Fingerprint(), "cbf29ce484222325") << "FNV-1a's offset basis: nothing hashed";
  Dataset d;
  d.has_labels = true;
  d.Append(0, 1522540831, 3, 7, 12.34, 1, 2);
  d.Append(1, 1522540900, 4, 7, 0.1 + 0.2, 0, 0);
  EXPECT_EQ(d.Fingerprint(), "bdabb7cd173989d4");
  // Not the value of the truncated offset basis (1469598103934665603) it was once computed with.
  EXPECT_NE(d.Fingerprint(), "c4e189af53dfafbe");
  Dataset unlabelled = d;
  unlabelled.has_labels = false;
  EXPECT_EQ(unlabelled.Fingerprint(), "cf42060910ea87bd");
  Dataset other = d;
  other.amount[1] = 0.3;  // one bit away from 0.1 + 0.2
  EXPECT_NE(other.Fingerprint(), d.Fingerprint());
  // The scenario is not part of the content fingerprinted.
  Dataset scenario = d;
  scenario.fraud_scenario[0] = 1;
  EXPECT_EQ(scenario.Fingerprint(), d.Fingerprint());
}

TEST(DatasetCsvTest, AcceptsVendorIdAndNoLabels) {
  auto d = ReadTransactionsCsv(WriteTemp(
      "vendor.csv", "transaction_id,timestamp,customer_id,vendor_id,amount\n"
                    "5,2018-04-01T00:00:00Z,1,9,3.5\n"));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_FALSE(d->has_labels);
  EXPECT_EQ(d->terminal_id[0], 9);
}

struct BadCase {
  const char* content;
  const char* message;
};

TEST(DatasetCsvTest, NamesFileLineAndColumnOfBadInput) {
  const std::string header = "transaction_id,timestamp,customer_id,terminal_id,amount,fraud\n";
  const BadCase cases[] = {
      {"", "the file is empty"},
      {"transaction_id,timestamp,customer_id,amount\n", ":1: missing column 'terminal_id'"},
      {"transaction_id,timestamp,customer_id,terminal_id,amount\n", "no transactions"},
      {"HEADER0,2018-04-01T00:00:00Z,1,2,abc,0\n", ":2:28: amount: 'abc' is not a number"},
      {"HEADER0,2018-04-01T00:00:00Z,1,2,-4,0\n", ":2:28: amount: '-4' is not a finite"},
      {"HEADER0,2018-04-01T00:00:00Z,1,2,nan,0\n", "amount: 'nan' is not a finite"},
      {"HEADER0,2018-04-01,1,2,5,0\n", ":2:3: timestamp: '2018-04-01' is not an RFC 3339"},
      {"HEADER0,2018-04-01T00:00:00Z,x,2,5,0\n", ":2:24: customer_id: 'x' is not an integer"},
      {"HEADER0,2018-04-01T00:00:00Z,1,2,5,2\n", "fraud: '2' is not 0 or 1"},
      {"HEADER0,2018-04-01T00:00:00Z,1,2,5\n", ":2: expected 6 fields as in the header, found 5"},
      {"HEADER0,2018-04-02T00:00:00Z,1,2,5,0\n1,2018-04-01T00:00:00Z,1,2,5,0\n",
       ":3:3: timestamp: rows are not in time order"},
  };
  int i = 0;
  for (const BadCase& c : cases) {
    std::string content = c.content;
    if (content.rfind("HEADER", 0) == 0) content = header + content.substr(6);
    const std::string path = WriteTemp("bad" + std::to_string(i++) + ".csv", content);
    auto d = ReadTransactionsCsv(path);
    ASSERT_FALSE(d.ok()) << content;
    EXPECT_NE(d.status().message().find(path), std::string::npos) << d.status().message();
    EXPECT_NE(d.status().message().find(c.message), std::string::npos)
        << "got: " << d.status().message() << "\nwant: " << c.message;
  }
}

}  // namespace
}  // namespace vigil
