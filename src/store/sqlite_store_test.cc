#include "store/sqlite_store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <future>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "store/store_test_util.h"
#include "vigil/store.h"

namespace vigil {
namespace {

namespace fs = std::filesystem;

// Long enough that the writer never ends it by itself while a test runs: only Flush and the
// index's destructor do. Were they to wait for it, the test would hang (a failure).
constexpr std::chrono::hours kForever{1};

SqliteOptions Options(const std::string& dir) {
  SqliteOptions options;
  options.path = dir + "/vigil.db";
  return options;
}

std::unique_ptr<SqliteIndex> OpenOrDie(const SqliteOptions& options) {
  auto index = SqliteIndex::Open(options);
  EXPECT_TRUE(index.ok()) << index.status().ToString();
  return index.ok() ? std::move(index).value() : nullptr;
}

SqliteIndex::Write MakeWrite(TransactionRecord record,
                             std::function<void(const Status&)> done = nullptr) {
  return {std::make_shared<const TransactionRecord>(std::move(record)), std::move(done)};
}

void Append(SqliteIndex& index, TransactionRecord record,
            std::function<void(const Status&)> done = nullptr) {
  std::vector<SqliteIndex::Write> one;
  one.push_back(MakeWrite(std::move(record), std::move(done)));
  index.AppendAll(std::move(one));
}

// Appends and waits for `done`; returns the status it got.
Status AppendAndWait(SqliteIndex& index, TransactionRecord record) {
  std::promise<Status> result;
  Append(index, std::move(record), [&result](const Status& s) { result.set_value(s); });
  return result.get_future().get();
}

std::vector<TransactionRecord> ScanAll(SqliteIndex& index) {
  std::vector<TransactionRecord> out;
  Status s = index.Scan([&out](const TransactionRecord& r) { out.push_back(r); });
  EXPECT_TRUE(s.ok()) << s.ToString();
  return out;
}

// The done callbacks' statuses, in the order they ran (on the writer thread).
class Results {
 public:
  std::function<void(const Status&)> Callback() {
    return [this](const Status& s) {
      std::lock_guard<std::mutex> lock(mu_);
      statuses_.push_back(s);
    };
  }
  std::vector<Status> statuses() {
    std::lock_guard<std::mutex> lock(mu_);
    return statuses_;
  }

 private:
  std::mutex mu_;
  std::vector<Status> statuses_;
};

class SqliteIndexTest : public FreshDirTest {
 protected:
  SqliteIndexTest() : FreshDirTest("index_") {}
};

TEST_F(SqliteIndexTest, RoundTripsEveryField) {
  auto index = OpenOrDie(Options(FreshDir("roundtrip")));
  ASSERT_TRUE(index);
  TransactionRecord r;
  r.transaction_id = "tx-1";
  r.customer_id = "cust 7";
  r.terminal_id = "term'9";
  r.amount = 1234.5678;
  r.timestamp = -86400;  // before 1970 still round-trips
  r.transaction_json =
      "{\"transaction_id\":\"tx-1\",\"note\":\"caf\xc3\xa9 \\\"quoted\\\"\","
      "\"x\":null}";
  r.score = 0.987654321;
  r.decision = "decline";
  r.anomaly_score = std::numeric_limits<double>::quiet_NaN();
  r.model_name = "gbdt";
  r.model_version = "2024-01-02.1";
  r.reply_json = std::string("{\"score\":0.98}\0tail", 19);  // embedded NUL kept
  r.latency_us = 873;
  r.recorded_at_us = 1712345678901234;
  r.sequence = 99;  // bound as given: the journal's offset
  r.idempotency_key = "client-key-1";
  r.request_fingerprint = 0x8000000000000001ULL;
  r.features = {1.5f, -0.0f, std::numeric_limits<float>::quiet_NaN(), 3e38f};
  ASSERT_TRUE(AppendAndWait(*index, r).ok());

  auto got = index->Get("tx-1");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_TRUE(got->has_value());
  const TransactionRecord& g = **got;
  EXPECT_EQ(g.transaction_id, r.transaction_id);
  EXPECT_EQ(g.customer_id, r.customer_id);
  EXPECT_EQ(g.terminal_id, r.terminal_id);
  EXPECT_EQ(g.amount, r.amount);
  EXPECT_EQ(g.timestamp, r.timestamp);
  EXPECT_EQ(g.transaction_json, r.transaction_json);
  EXPECT_EQ(g.score, r.score);
  EXPECT_EQ(g.decision, r.decision);
  EXPECT_TRUE(std::isnan(g.anomaly_score));
  EXPECT_EQ(g.model_name, r.model_name);
  EXPECT_EQ(g.model_version, r.model_version);
  EXPECT_EQ(g.reply_json, r.reply_json);
  EXPECT_EQ(g.latency_us, r.latency_us);
  EXPECT_EQ(g.recorded_at_us, r.recorded_at_us);
  EXPECT_EQ(g.idempotency_key, r.idempotency_key);
  EXPECT_EQ(g.request_fingerprint, r.request_fingerprint);
  ASSERT_EQ(g.features.size(), 4u);
  EXPECT_EQ(g.features[0], 1.5f);
  EXPECT_TRUE(std::signbit(g.features[1]));
  EXPECT_TRUE(std::isnan(g.features[2]));
  EXPECT_EQ(g.features[3], 3e38f);
  EXPECT_EQ(g.sequence, 99);

  // A finite anomaly score comes back as is; the index stamps nothing (recorded_at_us is the
  // store's business).
  TransactionRecord second = MakeRecord("tx-2", 100);
  second.anomaly_score = 0.625;
  second.recorded_at_us = 0;
  ASSERT_TRUE(AppendAndWait(*index, second).ok());
  auto got2 = index->Get("tx-2");
  ASSERT_TRUE(got2.ok() && got2->has_value());
  EXPECT_EQ((*got2)->anomaly_score, 0.625);
  EXPECT_EQ((*got2)->recorded_at_us, 0);
  EXPECT_EQ((*got2)->sequence, 100);
  EXPECT_TRUE((*got2)->idempotency_key.empty());
  EXPECT_EQ((*got2)->request_fingerprint, 0u);
  EXPECT_TRUE((*got2)->features.empty());
}

TEST_F(SqliteIndexTest, GetOfUnknownIdIsNullopt) {
  auto index = OpenOrDie(Options(FreshDir("unknown")));
  ASSERT_TRUE(index);
  auto got = index->Get("nope");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_FALSE(got->has_value());
  ASSERT_TRUE(AppendAndWait(*index, MakeRecord("a", 1)).ok());
  EXPECT_FALSE(index->Get("A")->has_value());  // ids are exact
  EXPECT_FALSE(index->Get("")->has_value());
}

TEST_F(SqliteIndexTest, DuplicateIsAlreadyExistsAndFirstIsKept) {
  auto index = OpenOrDie(Options(FreshDir("dup")));
  ASSERT_TRUE(index);
  TransactionRecord first = MakeRecord("dup", 1);
  first.score = 0.1;
  TransactionRecord second = MakeRecord("dup", 2);
  second.score = 0.9;
  ASSERT_TRUE(AppendAndWait(*index, first).ok());
  Status s = AppendAndWait(*index, second);
  EXPECT_EQ(s.code(), StatusCode::kAlreadyExists) << s.ToString();
  EXPECT_NE(s.message().find("dup"), std::string::npos) << s.message();
  auto got = index->Get("dup");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->score, 0.1);
  EXPECT_EQ((*got)->sequence, 1);

  // A repeated sequence under another id is a repeat too: the first is kept.
  Status same_sequence = AppendAndWait(*index, MakeRecord("other", 1));
  EXPECT_EQ(same_sequence.code(), StatusCode::kAlreadyExists) << same_sequence.ToString();
  EXPECT_FALSE(index->Get("other")->has_value());
  EXPECT_EQ(index->committed(), 1);
  EXPECT_EQ(ScanAll(*index).size(), 1u);
}

TEST_F(SqliteIndexTest, DuplicateWithinOneBatchIsAlreadyExists) {
  SqliteOptions options = Options(FreshDir("dup_batch"));
  options.commit_delay = kForever;  // everything below goes into one batch, at Flush
  auto index = OpenOrDie(options);
  ASSERT_TRUE(index);
  Results results;
  TransactionRecord a1 = MakeRecord("a", 1);
  a1.decision = "review";
  TransactionRecord a2 = MakeRecord("a", 3);
  a2.decision = "decline";
  std::vector<SqliteIndex::Write> writes;
  writes.push_back(MakeWrite(a1, results.Callback()));
  writes.push_back(MakeWrite(MakeRecord("b", 2), results.Callback()));
  writes.push_back(MakeWrite(a2, results.Callback()));
  writes.push_back(MakeWrite(MakeRecord("", 4), results.Callback()));
  index->AppendAll(std::move(writes));
  EXPECT_EQ(index->backlog(), 4u);
  ASSERT_TRUE(index->Flush().ok());
  const std::vector<Status> got = results.statuses();
  ASSERT_EQ(got.size(), 4u);
  EXPECT_TRUE(got[0].ok()) << got[0].ToString();
  EXPECT_TRUE(got[1].ok()) << got[1].ToString();
  EXPECT_EQ(got[2].code(), StatusCode::kAlreadyExists) << got[2].ToString();
  EXPECT_EQ(got[3].code(), StatusCode::kInvalidArgument) << got[3].ToString();
  EXPECT_EQ((*index->Get("a"))->decision, "review");
  auto all = ScanAll(*index);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].transaction_id, "a");
  EXPECT_EQ(all[1].transaction_id, "b");
  EXPECT_EQ(index->committed(), 2);
  EXPECT_EQ(index->commits(), 1);
  EXPECT_EQ(index->backlog(), 0u);
}

// Many appenders, half of them waiting for their write: every record written once, `done`
// called in queue order, with reads beside.
TEST_F(SqliteIndexTest, GroupCommitFromManyThreads) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 500;
  auto index = OpenOrDie(Options(FreshDir("group")));
  ASSERT_TRUE(index);
  std::vector<std::atomic<int>> calls(static_cast<size_t>(kThreads) * kPerThread);
  std::vector<std::string> done_order;  // appended by the writer thread only
  std::atomic<int> failures{0};
  // The store hands records over in sequence order; so does this test, under this lock.
  std::mutex sequence_mu;
  int64_t next_sequence = 1;
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const int n = t * kPerThread + i;
        const std::string id = "t" + std::to_string(t) + "-" + std::to_string(i);
        // Every other append waits for its write, the rest do not, so batches mix both.
        std::promise<void> written;
        std::promise<void>* waiter = i % 2 == 0 ? &written : nullptr;
        {
          std::lock_guard<std::mutex> lock(sequence_mu);
          Append(*index, MakeRecord(id, next_sequence++),
                 [&calls, &done_order, &failures, n, id, waiter](const Status& s) {
                   if (!s.ok()) ++failures;
                   ++calls[n];
                   done_order.push_back(id);
                   if (waiter != nullptr) waiter->set_value();
                 });
        }
        if (waiter != nullptr) written.get_future().wait();
      }
    });
  }
  // Reads run beside the writer on their own connection.
  std::atomic<bool> appending{true};
  std::atomic<int> read_errors{0};
  std::thread reader([&] {
    for (int k = 0; appending.load(); ++k) {
      if (!index->Get("t0-" + std::to_string(k % kPerThread)).ok()) ++read_errors;
      if (k % 32 == 0 && !index->Scan([](const TransactionRecord&) {}).ok()) ++read_errors;
      if (!index->LastSequence().ok()) ++read_errors;
      std::this_thread::sleep_for(std::chrono::microseconds(200));  // leave the cores to writers
    }
  });
  for (auto& th : threads) th.join();
  appending = false;
  reader.join();
  EXPECT_EQ(read_errors.load(), 0);
  ASSERT_TRUE(index->Flush().ok());
  EXPECT_EQ(failures.load(), 0);
  for (size_t n = 0; n < calls.size(); ++n) ASSERT_EQ(calls[n].load(), 1) << "record " << n;
  EXPECT_EQ(index->committed(), kThreads * kPerThread);
  EXPECT_LE(index->commits(), kThreads * kPerThread);
  EXPECT_EQ(index->backlog(), 0u);
  EXPECT_EQ(*index->LastSequence(), kThreads * kPerThread);

  // Scan gives every record once, sequences 1..N in the order `done` was called, and each
  // thread's records in the order it appended them.
  auto all = ScanAll(*index);
  ASSERT_EQ(all.size(), static_cast<size_t>(kThreads * kPerThread));
  ASSERT_EQ(done_order.size(), all.size());
  std::vector<int> next_per_thread(kThreads, 0);
  for (size_t k = 0; k < all.size(); ++k) {
    EXPECT_EQ(all[k].sequence, static_cast<int64_t>(k + 1));
    EXPECT_EQ(all[k].transaction_id, done_order[k]);
    const int t = std::stoi(all[k].transaction_id.substr(1));
    const int i = std::stoi(all[k].transaction_id.substr(all[k].transaction_id.find('-') + 1));
    EXPECT_EQ(i, next_per_thread[t]++) << all[k].transaction_id;
  }
}

// Records queued during the delay are written together; Flush ends the delay, and so does
// closing the index.
TEST_F(SqliteIndexTest, CommitDelayGathersOneBatch) {
  const std::string dir = FreshDir("delay");
  SqliteOptions options = Options(dir);
  options.commit_delay = kForever;
  {
    auto index = OpenOrDie(options);
    ASSERT_TRUE(index);
    std::mutex mu;
    std::vector<int64_t> seen;
    for (int i = 0; i < 20; ++i) {
      Append(*index, MakeRecord("d" + std::to_string(i), i + 1),
             [&, s = index.get()](const Status&) {
               std::lock_guard<std::mutex> lock(mu);
               seen.push_back(s->committed());
             });
    }
    EXPECT_EQ(index->committed(), 0);
    ASSERT_TRUE(index->Flush().ok());
    EXPECT_EQ(seen, std::vector<int64_t>(20, 20));
    EXPECT_EQ(index->commits(), 1);

    // Queued and never flushed: the destructor writes it without waiting for the delay.
    Append(*index, MakeRecord("last", 21));
  }
  auto index = OpenOrDie(options);
  ASSERT_TRUE(index);
  EXPECT_TRUE(index->Get("last")->has_value());
}

TEST_F(SqliteIndexTest, RejectsBadOptions) {
  SqliteOptions options = Options(FreshDir("bad_options"));
  options.commit_delay = std::chrono::milliseconds(-1);
  auto negative = SqliteIndex::Open(options);
  ASSERT_FALSE(negative.ok());
  EXPECT_EQ(negative.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(negative.status().message().find("commit_delay"), std::string::npos)
      << negative.status().ToString();

  options.commit_delay = std::chrono::microseconds(0);
  options.max_batch = 0;
  auto batch = SqliteIndex::Open(options);
  EXPECT_EQ(batch.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(batch.status().message().find("max_batch"), std::string::npos);

  options.max_batch = 1;
  options.busy_timeout_ms = -1;
  EXPECT_EQ(SqliteIndex::Open(options).status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(fs::exists(options.path)) << "refused options create nothing";
}

// Scan goes by sequence, whatever order the records were queued in, across several pages.
TEST_F(SqliteIndexTest, ScanReturnsSequenceOrder) {
  auto index = OpenOrDie(Options(FreshDir("scan")));
  ASSERT_TRUE(index);
  EXPECT_TRUE(ScanAll(*index).empty());
  // More than one scan page (1024 rows); ids in an order unlike their sort order, queued in an
  // order unlike their sequences.
  constexpr int kRecords = 2500;
  std::vector<std::string> id_of(kRecords + 1);
  for (int seq = 1; seq <= kRecords; ++seq) id_of[seq] = "id" + std::to_string(seq * 7919 % 2503);
  std::vector<SqliteIndex::Write> writes;
  for (int k = 0; k < kRecords; ++k) {
    const int seq = 1 + (k * 1031) % kRecords;  // 1031 is prime to 2500: a permutation
    writes.push_back(MakeWrite(MakeRecord(id_of[seq], seq)));
  }
  index->AppendAll(std::move(writes));
  ASSERT_TRUE(index->Flush().ok());
  auto all = ScanAll(*index);
  ASSERT_EQ(all.size(), static_cast<size_t>(kRecords));
  for (int k = 0; k < kRecords; ++k) {
    ASSERT_EQ(all[k].sequence, k + 1);
    ASSERT_EQ(all[k].transaction_id, id_of[k + 1]) << k;
  }
  // The callback may read the index.
  int seen = 0;
  Status scanned = index->Scan([&](const TransactionRecord& r) {
    auto got = index->Get(r.transaction_id);
    if (got.ok() && got->has_value()) ++seen;
  });
  ASSERT_TRUE(scanned.ok()) << scanned.ToString();
  EXPECT_EQ(seen, kRecords);
}

TEST_F(SqliteIndexTest, FlushWaitsForEverythingQueued) {
  SqliteOptions options = Options(FreshDir("flush"));
  options.max_batch = 64;  // several batches
  auto index = OpenOrDie(options);
  ASSERT_TRUE(index);
  EXPECT_TRUE(index->Flush().ok());  // nothing queued
  std::atomic<int> done{0};
  for (int i = 0; i < 300; ++i) {
    Append(*index, MakeRecord("f" + std::to_string(i), i + 1), [&done](const Status& s) {
      if (s.ok()) ++done;
    });
  }
  ASSERT_TRUE(index->Flush().ok());
  EXPECT_EQ(done.load(), 300);
  EXPECT_EQ(index->backlog(), 0u);
  EXPECT_EQ(index->committed(), 300);
  EXPECT_GE(index->commits(), 5);
  EXPECT_TRUE((*index->Get("f299")).has_value());
}

TEST_F(SqliteIndexTest, FlushFromACallbackIsRefused) {
  auto index = OpenOrDie(Options(FreshDir("flush_cb")));
  ASSERT_TRUE(index);
  Status inner;
  SqliteIndex* raw = index.get();
  ASSERT_TRUE(AppendAndWait(*index, MakeRecord("x", 1)).ok());
  Append(*index, MakeRecord("y", 2), [&inner, raw](const Status&) { inner = raw->Flush(); });
  ASSERT_TRUE(index->Flush().ok());
  EXPECT_EQ(inner.code(), StatusCode::kInternal);
}

TEST_F(SqliteIndexTest, CallbackRunsAfterCommit) {
  auto index = OpenOrDie(Options(FreshDir("after_commit")));
  ASSERT_TRUE(index);
  bool visible = false;
  SqliteIndex* raw = index.get();
  std::promise<void> called;
  Append(*index, MakeRecord("v", 1), [&](const Status& s) {
    // Another connection sees the record as soon as done is called: it is committed.
    auto got = raw->Get("v");
    auto last = raw->LastSequence();
    visible = s.ok() && got.ok() && got->has_value() && last.ok() && *last == 1;
    called.set_value();
  });
  called.get_future().wait();
  EXPECT_TRUE(visible);
}

TEST_F(SqliteIndexTest, ReopenSeesEverything) {
  std::string dir = FreshDir("reopen");
  {
    auto index = OpenOrDie(Options(dir));
    ASSERT_TRUE(index);
    for (int i = 0; i < 100; ++i) Append(*index, MakeRecord("r" + std::to_string(i), i + 1));
    // No Flush: the destructor writes what is queued.
  }
  auto index = OpenOrDie(Options(dir));
  ASSERT_TRUE(index);
  EXPECT_EQ(index->committed(), 0);
  EXPECT_EQ(*index->LastSequence(), 100);
  auto all = ScanAll(*index);
  ASSERT_EQ(all.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(all[i].transaction_id, "r" + std::to_string(i));
  EXPECT_EQ(AppendAndWait(*index, MakeRecord("r5", 101)).code(), StatusCode::kAlreadyExists);
  ASSERT_TRUE(AppendAndWait(*index, MakeRecord("r100", 101)).ok());
  EXPECT_EQ((*index->Get("r100"))->sequence, 101);
  EXPECT_EQ(RawDb(dir + "/vigil.db").QueryText("PRAGMA journal_mode"), "wal");
}

TEST_F(SqliteIndexTest, UnusablePathsGiveClearErrors) {
  std::string dir = FreshDir("paths");
  SqliteOptions options;

  options.path = dir + "/missing/vigil.db";
  auto missing = SqliteIndex::Open(options);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find(options.path), std::string::npos)
      << missing.status().ToString();
  EXPECT_NE(missing.status().message().find("does not exist"), std::string::npos)
      << missing.status().ToString();
  EXPECT_FALSE(fs::exists(dir + "/missing"));  // no folder is created

  std::ofstream(dir + "/plain_file") << "x";
  options.path = dir + "/plain_file/vigil.db";
  auto under_file = SqliteIndex::Open(options);
  ASSERT_FALSE(under_file.ok());
  EXPECT_NE(under_file.status().message().find("is not a folder"), std::string::npos)
      << under_file.status().ToString();

  options.path = dir;  // a folder, not a file
  auto folder = SqliteIndex::Open(options);
  ASSERT_FALSE(folder.ok());
  EXPECT_NE(folder.status().message().find(dir), std::string::npos) << folder.status().ToString();

  options.path = dir + "/garbage.db";
  std::ofstream(options.path) << std::string(4096, 'g');
  auto garbage = SqliteIndex::Open(options);
  ASSERT_FALSE(garbage.ok());
  EXPECT_NE(garbage.status().message().find(options.path), std::string::npos)
      << garbage.status().ToString();

  options.path = "";
  EXPECT_EQ(SqliteIndex::Open(options).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(SqliteIndexTest, RefusesAnotherSchemaVersion) {
  std::string dir = FreshDir("schema");
  { ASSERT_TRUE(OpenOrDie(Options(dir))); }
  RawDb(dir + "/vigil.db").Exec("UPDATE schema_version SET version = 4");
  auto index = SqliteIndex::Open(Options(dir));
  ASSERT_FALSE(index.ok());
  EXPECT_EQ(index.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(index.status().message().find("schema version 4"), std::string::npos)
      << index.status().ToString();
}

TEST_F(SqliteIndexTest, FindReplyByTransactionIdOrIdempotencyKey) {
  auto index = OpenOrDie(Options(FreshDir("find_reply")));
  ASSERT_TRUE(index);
  TransactionRecord a = MakeRecord("a", 1);
  a.reply_json = "{\"first\":\"a\"}";
  TransactionRecord b = MakeRecord("b", 2);
  b.reply_json = "{\"first\":\"b\"}";
  b.idempotency_key = "key-b";
  b.request_fingerprint = 0xfedcba9876543210ULL;  // all 64 bits survive the INTEGER column
  ASSERT_TRUE(AppendAndWait(*index, a).ok());
  ASSERT_TRUE(AppendAndWait(*index, b).ok());

  auto by_id = index->FindReplyById("a");
  ASSERT_TRUE(by_id.ok() && by_id->has_value()) << by_id.status().ToString();
  EXPECT_EQ(**by_id, a.reply_json);
  auto by_key = index->FindReplyByKey("key-b");
  ASSERT_TRUE(by_key.ok() && by_key->has_value());
  EXPECT_EQ((*by_key)->reply_json, b.reply_json);
  EXPECT_EQ((*by_key)->request_fingerprint, b.request_fingerprint);
  EXPECT_FALSE(index->FindReplyById("c")->has_value());
  EXPECT_FALSE(index->FindReplyByKey("key-c")->has_value());
  // Ids and keys are separate: "a" as a key finds nothing, "key-b" as an id neither.
  EXPECT_FALSE(index->FindReplyByKey("a")->has_value());
  EXPECT_FALSE(index->FindReplyById("key-b")->has_value());

  // A new transaction id under a key already used is a repeat: not written.
  TransactionRecord c = MakeRecord("c", 3);
  c.idempotency_key = "key-b";
  Status s = AppendAndWait(*index, c);
  EXPECT_EQ(s.code(), StatusCode::kAlreadyExists) << s.ToString();
  EXPECT_NE(s.message().find("key-b"), std::string::npos) << s.message();
  EXPECT_FALSE(index->Get("c")->has_value());
  // Records without a key never collide with one another on it.
  ASSERT_TRUE(AppendAndWait(*index, MakeRecord("d", 4)).ok());
  EXPECT_EQ(index->committed(), 3);
}

// A version 2 index gains the request fingerprint and features columns; its rows keep
// everything.
TEST_F(SqliteIndexTest, MigratesASchemaVersion2Index) {
  std::string dir = FreshDir("migrate2");
  {
    RawDb v2(dir + "/vigil.db");
    v2.Exec(R"sql(
      PRAGMA journal_mode=WAL;
      CREATE TABLE schema_version (version INTEGER NOT NULL);
      CREATE TABLE transactions (
        sequence INTEGER PRIMARY KEY, transaction_id TEXT NOT NULL UNIQUE,
        customer_id TEXT NOT NULL, terminal_id TEXT NOT NULL, amount REAL,
        timestamp INTEGER NOT NULL, transaction_json TEXT NOT NULL, score REAL,
        decision TEXT NOT NULL, anomaly_score REAL, model_name TEXT NOT NULL,
        model_version TEXT NOT NULL, reply_json TEXT NOT NULL, latency_us INTEGER NOT NULL,
        recorded_at_us INTEGER NOT NULL, idempotency_key TEXT);
      CREATE UNIQUE INDEX transactions_idempotency_key ON transactions (idempotency_key)
        WHERE idempotency_key IS NOT NULL;
      CREATE TABLE store_probe (id INTEGER PRIMARY KEY, checked_at_us INTEGER NOT NULL);
      INSERT INTO schema_version (version) VALUES (2);
      INSERT INTO transactions VALUES (1, 'v2-1', 'c', 't', 5.5, 100, '{}', 0.5, 'review',
        NULL, 'gbdt', 'v1', '{"r":1}', 10, 1000, 'key-1');
    )sql");
  }
  auto index = OpenOrDie(Options(dir));
  ASSERT_TRUE(index);
  auto old = index->Get("v2-1");
  ASSERT_TRUE(old.ok() && old->has_value());
  EXPECT_EQ((*old)->idempotency_key, "key-1");
  EXPECT_EQ((*old)->request_fingerprint, 0u);
  EXPECT_TRUE((*old)->features.empty());
  EXPECT_EQ((*index->FindReplyByKey("key-1"))->reply_json, "{\"r\":1}");
  EXPECT_EQ(*index->LastSequence(), 1);
  TransactionRecord r = MakeRecord("v3-1", 2);
  r.features = {1, 2, 3};
  ASSERT_TRUE(AppendAndWait(*index, r).ok());
  EXPECT_EQ((*index->Get("v3-1"))->features, (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(RawDb(dir + "/vigil.db").QueryText("SELECT version FROM schema_version"), "3");
}

// An index written by the first schema opens, keeps every record in its order, and goes on.
TEST_F(SqliteIndexTest, MigratesASchemaVersion1Index) {
  std::string dir = FreshDir("migrate");
  {
    RawDb v1(dir + "/vigil.db");
    v1.Exec(R"sql(
      PRAGMA journal_mode=WAL;
      CREATE TABLE schema_version (version INTEGER NOT NULL);
      CREATE TABLE transactions (
        transaction_id TEXT PRIMARY KEY, sequence INTEGER NOT NULL UNIQUE,
        customer_id TEXT NOT NULL, terminal_id TEXT NOT NULL, amount REAL,
        timestamp INTEGER NOT NULL, transaction_json TEXT NOT NULL, score REAL,
        decision TEXT NOT NULL, anomaly_score REAL, model_name TEXT NOT NULL,
        model_version TEXT NOT NULL, reply_json TEXT NOT NULL, latency_us INTEGER NOT NULL,
        recorded_at_us INTEGER NOT NULL);
      CREATE TABLE store_probe (id INTEGER PRIMARY KEY, checked_at_us INTEGER NOT NULL);
      INSERT INTO schema_version (version) VALUES (1);
      INSERT INTO transactions VALUES ('old-2', 2, 'c', 't', 5.5, 100, '{}', 0.5, 'review',
        NULL, 'gbdt', 'v1', '{"r":2}', 10, 1000);
      INSERT INTO transactions VALUES ('old-1', 1, 'c', 't', 1.5, 50, '{}', 0.1, 'approve',
        0.4, 'gbdt', 'v1', '{"r":1}', 9, 900);
    )sql");
  }
  auto index = OpenOrDie(Options(dir));
  ASSERT_TRUE(index);
  std::vector<std::string> order;
  ASSERT_TRUE(
      index->Scan([&](const TransactionRecord& r) { order.push_back(r.transaction_id); }).ok());
  EXPECT_EQ(order, (std::vector<std::string>{"old-1", "old-2"}));
  auto old = index->Get("old-2");
  ASSERT_TRUE(old.ok() && old->has_value());
  EXPECT_EQ((*old)->decision, "review");
  EXPECT_EQ((*old)->reply_json, "{\"r\":2}");
  EXPECT_EQ((*old)->sequence, 2);
  EXPECT_TRUE(std::isnan((*old)->anomaly_score));
  EXPECT_EQ(**index->FindReplyById("old-1"), "{\"r\":1}");
  EXPECT_TRUE((*old)->features.empty());
  EXPECT_EQ(*index->LastSequence(), 2);
  ASSERT_TRUE(AppendAndWait(*index, MakeRecord("new", 3)).ok());
  index.reset();
  // Reopening finds version 3: nothing to migrate again.
  auto again = OpenOrDie(Options(dir));
  ASSERT_TRUE(again);
  EXPECT_EQ((*again->Get("new"))->sequence, 3);
  EXPECT_EQ(ScanAll(*again).size(), 3u);
}

// The log is copied into the database file by the background checkpointer, and does not grow
// without bound while records keep coming: 60 MB of records through commits of 100.
TEST_F(SqliteIndexTest, CheckpointsKeepTheLogBounded) {
  std::string dir = FreshDir("checkpoint");
  SqliteOptions options = Options(dir);
  options.max_batch = 100;
  auto index = OpenOrDie(options);
  ASSERT_TRUE(index);
  const std::string padding(900, 'x');
  for (int i = 0; i < 60000; ++i) {
    TransactionRecord r = MakeRecord("cp-" + std::to_string(i), i + 1);
    r.reply_json = padding;
    Append(*index, std::move(r));
    if (i % 1000 == 999) {
      ASSERT_TRUE(index->Flush().ok());
    }
  }
  ASSERT_TRUE(index->Flush().ok());
  EXPECT_EQ(index->committed(), 60000);
  // The checkpointer runs beside the writer: wait (bounded) for the file to hold the records.
  const std::string db = dir + "/vigil.db";
  for (int i = 0; i < 500 && fs::file_size(db) < (40u << 20); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_GT(fs::file_size(db), 40u << 20) << "checkpoints copied the records into the file";
  // 4 x 1,000 pages of 4 KiB before a checkpoint holds the writer off to finish, plus the
  // commits that came while it waited: far below the 60 MB that went through.
  EXPECT_LT(fs::file_size(db + "-wal"), 30u << 20) << "the log stays bounded";
  EXPECT_EQ(ScanAll(*index).size(), 60000u);
}

TEST_F(SqliteIndexTest, CheckWritable) {
  std::string dir = FreshDir("writable");
  SqliteOptions options = Options(dir);
  options.busy_timeout_ms = 20;
  auto index = OpenOrDie(options);
  ASSERT_TRUE(index);
  Status s = index->CheckWritable();
  EXPECT_TRUE(s.ok()) << s.ToString();

  // While another connection holds the write lock, neither the probe nor a batch can write
  // (retry_after is 0: the batch is reported at once).
  RawDb other(options.path);
  other.Exec("BEGIN IMMEDIATE");
  Status probe = index->CheckWritable();
  EXPECT_EQ(probe.code(), StatusCode::kUnavailable) << probe.ToString();
  EXPECT_NE(probe.message().find(options.path), std::string::npos) << probe.ToString();
  Status locked = AppendAndWait(*index, MakeRecord("w", 1));
  EXPECT_EQ(locked.code(), StatusCode::kUnavailable) << locked.ToString();
  EXPECT_NE(locked.message().find("locked"), std::string::npos) << locked.ToString();
  other.Exec("ROLLBACK");
  EXPECT_TRUE(index->CheckWritable().ok());
  EXPECT_TRUE(AppendAndWait(*index, MakeRecord("w", 1)).ok());
  EXPECT_EQ(index->committed(), 1);
}

TEST_F(SqliteIndexTest, FailedCommitWritesNothingOfTheBatch) {
  std::string dir = FreshDir("rollback");
  SqliteOptions options = Options(dir);
  options.commit_delay = kForever;  // what is queued before a Flush is one batch
  auto index = OpenOrDie(options);
  ASSERT_TRUE(index);
  Append(*index, MakeRecord("before", 1));
  ASSERT_TRUE(index->Flush().ok());
  ASSERT_TRUE(index->Get("before")->has_value());
  // A write that fails mid-batch, as a full disk would.
  RawDb(dir + "/vigil.db")
      .Exec(
          "CREATE TRIGGER poison BEFORE INSERT ON transactions "
          "WHEN NEW.transaction_id = 'poison' BEGIN SELECT RAISE(ABORT, 'disk on fire'); END");
  Results results;
  std::vector<SqliteIndex::Write> writes;
  writes.push_back(MakeWrite(MakeRecord("a", 2), results.Callback()));
  writes.push_back(MakeWrite(MakeRecord("poison", 3), results.Callback()));
  writes.push_back(MakeWrite(MakeRecord("b", 4), results.Callback()));
  index->AppendAll(std::move(writes));
  // The batch waits for the delay, so Flush is waiting for it when it fails.
  Status flushed = index->Flush();
  EXPECT_EQ(flushed.code(), StatusCode::kUnavailable) << flushed.ToString();
  EXPECT_NE(flushed.message().find("disk on fire"), std::string::npos) << flushed.ToString();
  const std::vector<Status> got = results.statuses();
  ASSERT_EQ(got.size(), 3u);
  for (const Status& s : got) {
    EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
    EXPECT_NE(s.message().find("disk on fire"), std::string::npos) << s.ToString();
  }
  EXPECT_FALSE((*index->Get("a")).has_value());
  EXPECT_FALSE((*index->Get("b")).has_value());
  EXPECT_EQ(index->committed(), 1);
  EXPECT_EQ(*index->LastSequence(), 1);
  EXPECT_EQ(index->backlog(), 0u);
  // Reported once: the next Flush has nothing to report.
  EXPECT_TRUE(index->Flush().ok());

  // The index keeps working, and the failed records can be written again with their sequences.
  RawDb(dir + "/vigil.db").Exec("DROP TRIGGER poison");
  Append(*index, MakeRecord("a", 2));
  Append(*index, MakeRecord("poison", 3));
  ASSERT_TRUE(index->Flush().ok());
  EXPECT_EQ((*index->Get("a"))->sequence, 2);
  EXPECT_EQ(*index->LastSequence(), 3);
}

TEST_F(SqliteIndexTest, LastSequenceIsTheLargestWritten) {
  std::string dir = FreshDir("last_sequence");
  {
    auto index = OpenOrDie(Options(dir));
    ASSERT_TRUE(index);
    auto empty = index->LastSequence();
    ASSERT_TRUE(empty.ok()) << empty.status().ToString();
    EXPECT_EQ(*empty, 0);
    // A gap (a damaged journal record skipped) is kept as is.
    ASSERT_TRUE(AppendAndWait(*index, MakeRecord("one", 1)).ok());
    ASSERT_TRUE(AppendAndWait(*index, MakeRecord("two", 2)).ok());
    ASSERT_TRUE(AppendAndWait(*index, MakeRecord("five", 5)).ok());
    EXPECT_EQ(*index->LastSequence(), 5);
    // A failed record does not count.
    EXPECT_EQ(AppendAndWait(*index, MakeRecord("one", 9)).code(), StatusCode::kAlreadyExists);
    EXPECT_EQ(*index->LastSequence(), 5);
  }
  auto index = OpenOrDie(Options(dir));
  ASSERT_TRUE(index);
  EXPECT_EQ(*index->LastSequence(), 5);
}

TEST_F(SqliteIndexTest, DeleteAfterRemovesTheTail) {
  std::string dir = FreshDir("delete_after");
  SqliteOptions options = Options(dir);
  options.commit_delay = kForever;
  auto index = OpenOrDie(options);
  ASSERT_TRUE(index);
  for (int i = 1; i <= 10; ++i) {
    TransactionRecord r = MakeRecord("d" + std::to_string(i), i);
    r.idempotency_key = "key-" + std::to_string(i);
    Append(*index, std::move(r));
  }
  // Still queued (the delay holds them): DeleteAfter writes them first, then deletes.
  EXPECT_EQ(index->backlog(), 10u);
  auto deleted = index->DeleteAfter(6);
  ASSERT_TRUE(deleted.ok()) << deleted.status().ToString();
  EXPECT_EQ(*deleted, 4);
  EXPECT_EQ(index->backlog(), 0u);
  EXPECT_EQ(*index->LastSequence(), 6);
  EXPECT_TRUE(index->Get("d6")->has_value());
  for (int i = 7; i <= 10; ++i) {
    EXPECT_FALSE(index->Get("d" + std::to_string(i))->has_value()) << i;
    EXPECT_FALSE(index->FindReplyById("d" + std::to_string(i))->has_value()) << i;
    EXPECT_FALSE(index->FindReplyByKey("key-" + std::to_string(i))->has_value()) << i;
  }
  auto all = ScanAll(*index);
  ASSERT_EQ(all.size(), 6u);
  EXPECT_EQ(all.back().transaction_id, "d6");
  EXPECT_EQ(*index->DeleteAfter(6), 0);  // nothing more

  // The sequences, ids and keys deleted are free again.
  TransactionRecord again = MakeRecord("d8", 7);
  again.idempotency_key = "key-9";
  Append(*index, again);
  ASSERT_TRUE(index->Flush().ok());
  EXPECT_EQ((*index->Get("d8"))->sequence, 7);
  EXPECT_TRUE(index->FindReplyByKey("key-9")->has_value());

  EXPECT_EQ(*index->DeleteAfter(0), 7);  // everything
  EXPECT_EQ(*index->LastSequence(), 0);
  EXPECT_TRUE(ScanAll(*index).empty());
}

// retry_after > 0: a batch whose transaction fails is kept and tried again, Flush reports the
// failure meanwhile, and once the lock is gone everything is written, in order, each `done`
// called once with Ok.
TEST_F(SqliteIndexTest, RetryAfterKeepsAFailedBatchUntilItIsWritten) {
  std::string dir = FreshDir("retry");
  SqliteOptions options = Options(dir);
  options.busy_timeout_ms = 5;
  options.retry_after = std::chrono::milliseconds(5);
  auto index = OpenOrDie(options);
  ASSERT_TRUE(index);
  ASSERT_TRUE(AppendAndWait(*index, MakeRecord("first", 1)).ok());

  std::mutex mu;
  std::vector<std::pair<int64_t, Status>> calls;  // (sequence, status), in the order called
  auto record = [&](int64_t sequence) {
    return [&, sequence](const Status& s) {
      std::lock_guard<std::mutex> lock(mu);
      calls.emplace_back(sequence, s);
    };
  };
  auto blocker = std::make_unique<RawDb>(options.path);
  blocker->Exec("BEGIN IMMEDIATE");
  for (int64_t seq = 2; seq <= 31; ++seq) {
    Append(*index, MakeRecord("r" + std::to_string(seq), seq), record(seq));
  }
  // The writer cannot write while the blocker holds the lock: each Flush sees a failed try.
  Status flushed = index->Flush();
  EXPECT_EQ(flushed.code(), StatusCode::kUnavailable) << flushed.ToString();
  EXPECT_NE(flushed.message().find("locked"), std::string::npos) << flushed.ToString();
  // Records queued behind the failed batch wait too.
  std::vector<SqliteIndex::Write> more;
  for (int64_t seq = 32; seq <= 41; ++seq) {
    more.push_back(MakeWrite(MakeRecord("r" + std::to_string(seq), seq), record(seq)));
  }
  index->AppendAll(std::move(more));
  EXPECT_EQ(index->Flush().code(), StatusCode::kUnavailable);
  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_TRUE(calls.empty()) << "a kept batch is not reported";
  }
  EXPECT_EQ(index->backlog(), 40u);
  EXPECT_FALSE(index->Get("r2")->has_value());
  EXPECT_EQ(*index->LastSequence(), 1);

  blocker->Exec("ROLLBACK");
  blocker.reset();
  // A Flush that began while a try was failing reports it; a later one sees everything written.
  Status caught_up = Unavailable("not flushed");
  for (int i = 0; i < 1000 && !caught_up.ok(); ++i) caught_up = index->Flush();
  ASSERT_TRUE(caught_up.ok()) << caught_up.ToString();
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_EQ(calls.size(), 40u);
  for (size_t k = 0; k < calls.size(); ++k) {
    EXPECT_EQ(calls[k].first, static_cast<int64_t>(k + 2));
    EXPECT_TRUE(calls[k].second.ok()) << calls[k].second.ToString();
  }
  auto all = ScanAll(*index);
  ASSERT_EQ(all.size(), 41u);
  for (size_t k = 0; k < all.size(); ++k) {
    EXPECT_EQ(all[k].sequence, static_cast<int64_t>(k + 1));
  }
  EXPECT_EQ(index->committed(), 41);
  EXPECT_EQ(index->backlog(), 0u);
}

// A batch still failing when the index closes is reported then, once.
TEST_F(SqliteIndexTest, RetriedBatchIsReportedWhenTheIndexCloses) {
  std::string dir = FreshDir("retry_close");
  SqliteOptions options = Options(dir);
  options.busy_timeout_ms = 5;
  options.retry_after = std::chrono::milliseconds(5);
  std::unique_ptr<RawDb> blocker;
  std::vector<Status> got;  // written by the writer thread, read after it is joined
  {
    auto index = OpenOrDie(options);
    ASSERT_TRUE(index);
    blocker = std::make_unique<RawDb>(options.path);
    blocker->Exec("BEGIN IMMEDIATE");
    Append(*index, MakeRecord("a", 1), [&got](const Status& s) { got.push_back(s); });
    Append(*index, MakeRecord("b", 2), [&got](const Status& s) { got.push_back(s); });
    EXPECT_EQ(index->Flush().code(), StatusCode::kUnavailable);
  }
  blocker->Exec("ROLLBACK");
  blocker.reset();
  ASSERT_EQ(got.size(), 2u);
  for (const Status& s : got) EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  auto index = OpenOrDie(options);
  ASSERT_TRUE(index);
  EXPECT_EQ(*index->LastSequence(), 0);
}

}  // namespace
}  // namespace vigil
