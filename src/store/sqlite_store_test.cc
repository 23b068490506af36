#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <limits>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "vigil/store.h"

namespace vigil {
namespace {

namespace fs = std::filesystem;

StoreOptions Options(const std::string& dir, SyncMode sync = SyncMode::kNormal) {
  StoreOptions options;
  options.path = dir + "/vigil.db";
  options.sync = sync;
  return options;
}

std::unique_ptr<Store> OpenOrDie(const StoreOptions& options) {
  auto store = Store::Open(options);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  return store.ok() ? std::move(store).value() : nullptr;
}

TransactionRecord MakeRecord(const std::string& id) {
  TransactionRecord r;
  r.transaction_id = id;
  r.customer_id = "c-" + id;
  r.terminal_id = "t-" + id;
  r.amount = 12.5;
  r.timestamp = 1522540831;
  r.transaction_json = R"({"transaction_id":")" + id + R"(","amount":12.5})";
  r.score = 0.25;
  r.decision = "approve";
  r.anomaly_score = 0.5;
  r.model_name = "gbdt";
  r.model_version = "3";
  r.reply_json = R"({"transaction_id":")" + id + R"(","score":0.25})";
  r.latency_us = 42;
  r.recorded_at_us = 1700000000000000;
  return r;
}

// Appends and waits for `done`; returns the status it got.
Status AppendAndWait(Store& store, TransactionRecord record) {
  std::promise<Status> result;
  store.Append(std::move(record), [&result](const Status& s) { result.set_value(s); });
  return result.get_future().get();
}

std::vector<TransactionRecord> ScanAll(Store& store) {
  std::vector<TransactionRecord> out;
  Status s = store.Scan([&out](const TransactionRecord& r) { out.push_back(r); });
  EXPECT_TRUE(s.ok()) << s.ToString();
  return out;
}

// Runs SQL on the store's file through a separate connection, as another process would.
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    EXPECT_EQ(sqlite3_open(path.c_str(), &db_), SQLITE_OK);
    sqlite3_busy_timeout(db_, 5000);
  }
  ~RawDb() { sqlite3_close_v2(db_); }
  void Exec(const std::string& sql) {
    char* error = nullptr;
    EXPECT_EQ(sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error), SQLITE_OK)
        << sql << ": " << (error ? error : "");
    sqlite3_free(error);
  }
  std::string QueryText(const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    std::string out;
    EXPECT_EQ(sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK);
    if (sqlite3_step(stmt) == SQLITE_ROW) {
      out = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    }
    sqlite3_finalize(stmt);
    return out;
  }

 private:
  sqlite3* db_ = nullptr;
};

// Holds the writer thread inside a `done` callback so that what is appended meanwhile is
// committed as one batch when Release() is called.
class WriterBlocker {
 public:
  explicit WriterBlocker(Store& store, const std::string& id) {
    store.Append(MakeRecord(id), [this](const Status&) {
      entered_.set_value();
      release_.get_future().wait();
    });
    entered_.get_future().wait();
  }
  void Release() { release_.set_value(); }

 private:
  std::promise<void> entered_;
  std::promise<void> release_;
};

class SqliteStoreTest : public ::testing::Test {
 protected:
  // A fresh, empty folder for this test; removed after it unless the test failed.
  std::string FreshDir(const std::string& name) {
    std::string dir =
        ::testing::TempDir() + "/vigil_store_" + name + "_" + std::to_string(::getpid());
    fs::remove_all(dir);
    fs::create_directories(dir);
    dirs_.push_back(dir);
    return dir;
  }

  void TearDown() override {
    if (HasFailure()) return;
    std::error_code ec;
    for (const std::string& dir : dirs_) fs::remove_all(dir, ec);
  }

 private:
  std::vector<std::string> dirs_;
};

TEST_F(SqliteStoreTest, RoundTripsEveryField) {
  auto store = OpenOrDie(Options(FreshDir("roundtrip")));
  ASSERT_TRUE(store);
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
  r.sequence = 99;  // ignored: the store assigns it
  r.idempotency_key = "client-key-1";
  r.request_fingerprint = 0x8000000000000001ULL;
  r.features = {1.5f, -0.0f, std::numeric_limits<float>::quiet_NaN(), 3e38f};
  ASSERT_TRUE(AppendAndWait(*store, r).ok());

  auto got = store->Get("tx-1");
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
  EXPECT_EQ(g.sequence, 1);

  // A finite anomaly score comes back as is; recorded_at_us left at 0 is set on Append.
  TransactionRecord second = MakeRecord("tx-2");
  second.anomaly_score = 0.625;
  second.recorded_at_us = 0;
  ASSERT_TRUE(AppendAndWait(*store, second).ok());
  auto got2 = store->Get("tx-2");
  ASSERT_TRUE(got2.ok() && got2->has_value());
  EXPECT_EQ((*got2)->anomaly_score, 0.625);
  EXPECT_GT((*got2)->recorded_at_us, 1600000000000000);
  EXPECT_EQ((*got2)->sequence, 2);
}

TEST_F(SqliteStoreTest, GetOfUnknownIdIsNullopt) {
  auto store = OpenOrDie(Options(FreshDir("unknown")));
  ASSERT_TRUE(store);
  auto got = store->Get("nope");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_FALSE(got->has_value());
  ASSERT_TRUE(AppendAndWait(*store, MakeRecord("a")).ok());
  EXPECT_FALSE(store->Get("A")->has_value());  // ids are exact
  EXPECT_FALSE(store->Get("")->has_value());
}

TEST_F(SqliteStoreTest, DuplicateIsAlreadyExistsAndFirstIsKept) {
  auto store = OpenOrDie(Options(FreshDir("dup")));
  ASSERT_TRUE(store);
  TransactionRecord first = MakeRecord("dup");
  first.score = 0.1;
  TransactionRecord second = MakeRecord("dup");
  second.score = 0.9;
  ASSERT_TRUE(AppendAndWait(*store, first).ok());
  Status s = AppendAndWait(*store, second);
  EXPECT_EQ(s.code(), StatusCode::kAlreadyExists) << s.ToString();
  EXPECT_NE(s.message().find("dup"), std::string::npos) << s.message();
  auto got = store->Get("dup");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->score, 0.1);
  EXPECT_EQ(store->committed(), 1);
}

TEST_F(SqliteStoreTest, DuplicateWithinOneBatchIsAlreadyExists) {
  auto store = OpenOrDie(Options(FreshDir("dup_batch")));
  ASSERT_TRUE(store);
  WriterBlocker blocker(*store, "blocker");
  std::vector<Status> results;  // written by the writer thread, read after Flush
  auto record = [&results](const Status& s) { results.push_back(s); };
  TransactionRecord a1 = MakeRecord("a");
  a1.decision = "review";
  TransactionRecord a2 = MakeRecord("a");
  a2.decision = "decline";
  store->Append(a1, record);
  store->Append(MakeRecord("b"), record);
  store->Append(a2, record);
  store->Append(MakeRecord(""), record);
  EXPECT_EQ(store->backlog(), 4u);  // the blocker is committed; its done is still running
  blocker.Release();
  ASSERT_TRUE(store->Flush().ok());
  ASSERT_EQ(results.size(), 4u);
  EXPECT_TRUE(results[0].ok()) << results[0].ToString();
  EXPECT_TRUE(results[1].ok()) << results[1].ToString();
  EXPECT_EQ(results[2].code(), StatusCode::kAlreadyExists) << results[2].ToString();
  EXPECT_EQ(results[3].code(), StatusCode::kInvalidArgument) << results[3].ToString();
  EXPECT_EQ((*store->Get("a"))->decision, "review");
  auto all = ScanAll(*store);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[1].transaction_id, "a");
  EXPECT_EQ(all[2].transaction_id, "b");
  EXPECT_EQ(all[2].sequence, 3);  // no gap where the duplicate was skipped
  EXPECT_EQ(store->committed(), 3);
  EXPECT_EQ(store->backlog(), 0u);
}

// Many appenders, half of them waiting for their commit: every record committed once, in an
// order consistent with each appender's, with reads beside. For both ways of committing.
void GroupCommitFromManyThreads(const StoreOptions& options, Store::CommitBy by) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 500;
  auto store = OpenOrDie(options);
  ASSERT_TRUE(store);
  std::vector<std::atomic<int>> calls(static_cast<size_t>(kThreads) * kPerThread);
  std::vector<std::string> commit_order;  // appended by one committing thread at a time
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        int n = t * kPerThread + i;
        std::string id = "t" + std::to_string(t) + "-" + std::to_string(i);
        // Every other append waits for its commit, the rest are fire-and-forget, so batches
        // mix waiting and non-waiting appenders.
        std::promise<void> committed;
        std::promise<void>* waiter = i % 2 == 0 ? &committed : nullptr;
        store->Append(MakeRecord(id),
                      [&calls, &commit_order, &failures, n, id, waiter](const Status& s) {
                        if (!s.ok()) ++failures;
                        ++calls[n];
                        commit_order.push_back(id);
                        if (waiter != nullptr) waiter->set_value();
                      },
                      by);
        if (waiter != nullptr) committed.get_future().wait();
      }
    });
  }
  // Reads run beside the writer on their own connection.
  std::atomic<bool> appending{true};
  std::atomic<int> read_errors{0};
  std::thread reader([&] {
    for (int k = 0; appending.load(); ++k) {
      if (!store->Get("t0-" + std::to_string(k % kPerThread)).ok()) ++read_errors;
      if (k % 32 == 0 && !store->Scan([](const TransactionRecord&) {}).ok()) ++read_errors;
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  });
  for (auto& th : threads) th.join();
  appending = false;
  reader.join();
  EXPECT_EQ(read_errors.load(), 0);
  ASSERT_TRUE(store->Flush().ok());
  EXPECT_EQ(failures.load(), 0);
  for (size_t n = 0; n < calls.size(); ++n) ASSERT_EQ(calls[n].load(), 1) << "record " << n;
  EXPECT_EQ(store->committed(), kThreads * kPerThread);
  EXPECT_EQ(store->backlog(), 0u);

  // Scan gives every record once, sequences 1..N in the order the callbacks saw the commits,
  // and each thread's records in the order it appended them.
  auto all = ScanAll(*store);
  ASSERT_EQ(all.size(), static_cast<size_t>(kThreads * kPerThread));
  ASSERT_EQ(commit_order.size(), all.size());
  std::vector<int> next_per_thread(kThreads, 0);
  for (size_t k = 0; k < all.size(); ++k) {
    EXPECT_EQ(all[k].sequence, static_cast<int64_t>(k + 1));
    EXPECT_EQ(all[k].transaction_id, commit_order[k]);
    int t = std::stoi(all[k].transaction_id.substr(1));
    int i = std::stoi(all[k].transaction_id.substr(all[k].transaction_id.find('-') + 1));
    EXPECT_EQ(i, next_per_thread[t]++) << all[k].transaction_id;
  }
}

TEST_F(SqliteStoreTest, GroupCommitFromManyThreads) {
  GroupCommitFromManyThreads(Options(FreshDir("group")), Store::CommitBy::kWriter);
}

TEST_F(SqliteStoreTest, GroupCommitFromManyThreadsCommittingOnTheCaller) {
  GroupCommitFromManyThreads(Options(FreshDir("group_caller")), Store::CommitBy::kCaller);
}

// CommitBy::kCaller: with no commit running, Append commits before it returns, on the caller's
// thread; AppendAll commits its records in one transaction.
TEST_F(SqliteStoreTest, CommitByCallerCommitsInsideAppend) {
  auto store = OpenOrDie(Options(FreshDir("caller")));
  ASSERT_TRUE(store);
  constexpr auto kCaller = Store::CommitBy::kCaller;
  std::thread::id ran_on;
  Status got = Internal("not called");
  store->Append(MakeRecord("c1"), [&](const Status& s) {
    ran_on = std::this_thread::get_id();
    got = s;
  }, kCaller);
  EXPECT_TRUE(got.ok()) << got.ToString();
  EXPECT_EQ(ran_on, std::this_thread::get_id());
  EXPECT_EQ(store->committed(), 1);
  EXPECT_TRUE(store->Get("c1")->has_value());

  // A callback may append; what is appended while a commit runs goes to the writer thread.
  std::atomic<bool> inner_done{false};
  std::thread::id inner_ran_on;
  store->Append(MakeRecord("c2"), [&](const Status&) {
    store->Append(MakeRecord("c3"), [&](const Status& s) {
      inner_ran_on = std::this_thread::get_id();
      inner_done = s.ok();
    }, kCaller);
    EXPECT_FALSE(store->Flush().ok()) << "Flush from a callback would wait for itself";
  }, kCaller);
  ASSERT_TRUE(store->Flush().ok());
  EXPECT_TRUE(inner_done.load());
  EXPECT_NE(inner_ran_on, std::this_thread::get_id());
  EXPECT_EQ(store->committed(), 3);

  // AppendAll: one transaction for all of them (each callback sees them all committed), a
  // repeated id inside it is AlreadyExists.
  std::vector<Store::Write> writes;
  std::vector<int64_t> seen;
  std::vector<Status> statuses;
  for (const char* id : {"b1", "b2", "b1", "b3"}) {
    writes.push_back({MakeRecord(id), [&, s = store.get()](const Status& st) {
                        seen.push_back(s->committed());
                        statuses.push_back(st);
                      }});
  }
  store->AppendAll(std::move(writes), kCaller);
  ASSERT_EQ(statuses.size(), 4u);
  EXPECT_TRUE(statuses[0].ok() && statuses[1].ok() && statuses[3].ok());
  EXPECT_EQ(statuses[2].code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(seen, (std::vector<int64_t>{6, 6, 6, 6}));
}

// CommitBy::kLater: queued without waking the writer; Kick(), Flush() or, failing both, the
// safety net after 20 ms commits them, together.
TEST_F(SqliteStoreTest, LaterRecordsAreCommittedOnKickFlushOrSafetyNet) {
  auto store = OpenOrDie(Options(FreshDir("later")));
  ASSERT_TRUE(store);
  constexpr auto kLater = Store::CommitBy::kLater;
  auto burst = [](const std::string& prefix) {
    std::vector<Store::Write> writes;
    writes.reserve(10);
    for (int i = 0; i < 10; ++i) writes.push_back({MakeRecord(prefix + std::to_string(i)), nullptr});
    return writes;
  };
  store->AppendAll(burst("k"), kLater);
  store->Kick();
  ASSERT_TRUE(store->Flush().ok());
  EXPECT_EQ(store->committed(), 10);
  EXPECT_EQ(store->commits(), 1) << "one burst, one commit";

  store->AppendAll(burst("f"), kLater);
  ASSERT_TRUE(store->Flush().ok()) << "Flush does not wait for a kick";
  EXPECT_EQ(store->committed(), 20);

  std::atomic<int> done{0};
  store->Append(MakeRecord("net"), [&](const Status& s) { done = s.ok() ? 1 : -1; }, kLater);
  for (int i = 0; i < 500 && done.load() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(done.load(), 1) << "without a kick, the safety net commits it";
  store->Kick();  // nothing queued: a no-op
  EXPECT_EQ(store->committed(), 21);
}

TEST_F(SqliteStoreTest, CommitDelayGathersOneBatch) {
  StoreOptions options = Options(FreshDir("delay"));
  // Long beside the microseconds the appends below take, so a busy machine does not split them.
  options.commit_delay = std::chrono::seconds(1);
  auto store = OpenOrDie(options);
  ASSERT_TRUE(store);
  std::mutex mu;
  std::vector<int64_t> seen;
  for (int i = 0; i < 20; ++i) {
    store->Append(MakeRecord("d" + std::to_string(i)), [&, s = store.get()](const Status&) {
      std::lock_guard<std::mutex> lock(mu);
      seen.push_back(s->committed());
    });
  }
  ASSERT_TRUE(store->Flush().ok());
  // Appended within microseconds, well inside the delay: all in one commit.
  EXPECT_EQ(seen, std::vector<int64_t>(20, 20));
}

TEST_F(SqliteStoreTest, RejectsANegativeCommitDelay) {
  StoreOptions options = Options(FreshDir("bad_options"));
  options.commit_delay = std::chrono::milliseconds(-1);
  auto store = Store::Open(options);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(store.status().message().find("commit_delay"), std::string::npos);
}

TEST_F(SqliteStoreTest, ScanReturnsArrivalOrder) {
  auto store = OpenOrDie(Options(FreshDir("scan")));
  ASSERT_TRUE(store);
  EXPECT_TRUE(ScanAll(*store).empty());
  // More than one scan page (1024 rows), in an order unlike the ids' sort order.
  std::vector<std::string> ids;
  for (int i = 2500; i > 0; --i) ids.push_back("id" + std::to_string(i * 7919 % 2503));
  for (const auto& id : ids) store->Append(MakeRecord(id), nullptr);
  ASSERT_TRUE(store->Flush().ok());
  auto all = ScanAll(*store);
  ASSERT_EQ(all.size(), ids.size());
  for (size_t k = 0; k < ids.size(); ++k) {
    ASSERT_EQ(all[k].transaction_id, ids[k]) << k;
    ASSERT_EQ(all[k].sequence, static_cast<int64_t>(k + 1));
  }
  // The callback may read the store.
  int seen = 0;
  Status scanned = store->Scan([&](const TransactionRecord& r) {
    auto got = store->Get(r.transaction_id);
    if (got.ok() && got->has_value()) ++seen;
  });
  ASSERT_TRUE(scanned.ok()) << scanned.ToString();
  EXPECT_EQ(seen, 2500);
}

TEST_F(SqliteStoreTest, FlushWaitsForEverythingQueued) {
  auto store = OpenOrDie(Options(FreshDir("flush")));
  ASSERT_TRUE(store);
  EXPECT_TRUE(store->Flush().ok());  // nothing queued
  std::atomic<int> done{0};
  for (int i = 0; i < 300; ++i) {
    store->Append(MakeRecord("f" + std::to_string(i)), [&done](const Status& s) {
      if (s.ok()) ++done;
    });
  }
  ASSERT_TRUE(store->Flush().ok());
  EXPECT_EQ(done.load(), 300);
  EXPECT_EQ(store->backlog(), 0u);
  EXPECT_EQ(store->committed(), 300);
  EXPECT_TRUE((*store->Get("f299")).has_value());
}

TEST_F(SqliteStoreTest, FlushFromACallbackIsRefused) {
  auto store = OpenOrDie(Options(FreshDir("flush_cb")));
  ASSERT_TRUE(store);
  Status inner;
  Store* raw = store.get();
  ASSERT_TRUE(AppendAndWait(*store, MakeRecord("x")).ok());
  store->Append(MakeRecord("y"), [&inner, raw](const Status&) { inner = raw->Flush(); });
  ASSERT_TRUE(store->Flush().ok());
  EXPECT_EQ(inner.code(), StatusCode::kInternal);
}

TEST_F(SqliteStoreTest, CallbackRunsAfterCommit) {
  auto store = OpenOrDie(Options(FreshDir("after_commit")));
  ASSERT_TRUE(store);
  bool visible = false;
  Store* raw = store.get();
  ASSERT_TRUE(store->Flush().ok());
  std::promise<void> called;
  store->Append(MakeRecord("v"), [&](const Status& s) {
    // Another connection sees the record as soon as done is called: it is committed.
    auto got = raw->Get("v");
    visible = s.ok() && got.ok() && got->has_value();
    called.set_value();
  });
  called.get_future().wait();
  EXPECT_TRUE(visible);
}

TEST_F(SqliteStoreTest, ReopenSeesEverythingAndContinuesSequence) {
  std::string dir = FreshDir("reopen");
  {
    auto store = OpenOrDie(Options(dir, SyncMode::kFull));
    ASSERT_TRUE(store);
    for (int i = 0; i < 100; ++i) store->Append(MakeRecord("r" + std::to_string(i)), nullptr);
    // No Flush: the destructor commits what is queued.
  }
  auto store = OpenOrDie(Options(dir));
  ASSERT_TRUE(store);
  EXPECT_EQ(store->committed(), 0);
  auto all = ScanAll(*store);
  ASSERT_EQ(all.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(all[i].transaction_id, "r" + std::to_string(i));
  EXPECT_EQ(AppendAndWait(*store, MakeRecord("r5")).code(), StatusCode::kAlreadyExists);
  ASSERT_TRUE(AppendAndWait(*store, MakeRecord("r100")).ok());
  EXPECT_EQ((*store->Get("r100"))->sequence, 101);
  EXPECT_EQ(RawDb(dir + "/vigil.db").QueryText("PRAGMA journal_mode"), "wal");
}

TEST_F(SqliteStoreTest, UnusablePathsGiveClearErrors) {
  std::string dir = FreshDir("paths");
  StoreOptions options;

  options.path = dir + "/missing/vigil.db";
  auto missing = Store::Open(options);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find(options.path), std::string::npos)
      << missing.status().ToString();
  EXPECT_NE(missing.status().message().find("does not exist"), std::string::npos)
      << missing.status().ToString();
  EXPECT_FALSE(fs::exists(dir + "/missing"));  // no folder is created

  std::ofstream(dir + "/plain_file") << "x";
  options.path = dir + "/plain_file/vigil.db";
  auto under_file = Store::Open(options);
  ASSERT_FALSE(under_file.ok());
  EXPECT_NE(under_file.status().message().find("is not a folder"), std::string::npos)
      << under_file.status().ToString();

  options.path = dir;  // a folder, not a file
  auto folder = Store::Open(options);
  ASSERT_FALSE(folder.ok());
  EXPECT_NE(folder.status().message().find(dir), std::string::npos) << folder.status().ToString();

  options.path = dir + "/garbage.db";
  std::ofstream(options.path) << std::string(4096, 'g');
  auto garbage = Store::Open(options);
  ASSERT_FALSE(garbage.ok());
  EXPECT_NE(garbage.status().message().find(options.path), std::string::npos)
      << garbage.status().ToString();

  options.path = "";
  EXPECT_EQ(Store::Open(options).status().code(), StatusCode::kInvalidArgument);
  options = Options(dir);
  options.max_batch = 0;
  EXPECT_EQ(Store::Open(options).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(SqliteStoreTest, RefusesAnotherSchemaVersion) {
  std::string dir = FreshDir("schema");
  { ASSERT_TRUE(OpenOrDie(Options(dir))); }
  RawDb(dir + "/vigil.db").Exec("UPDATE schema_version SET version = 4");
  auto store = Store::Open(Options(dir));
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find("schema version 4"), std::string::npos)
      << store.status().ToString();
}

TEST_F(SqliteStoreTest, FindReplyByTransactionIdOrIdempotencyKey) {
  auto store = OpenOrDie(Options(FreshDir("find_reply")));
  ASSERT_TRUE(store);
  TransactionRecord a = MakeRecord("a");
  a.reply_json = "{\"first\":\"a\"}";
  TransactionRecord b = MakeRecord("b");
  b.reply_json = "{\"first\":\"b\"}";
  b.idempotency_key = "key-b";
  b.request_fingerprint = 0xfedcba9876543210ULL;  // all 64 bits survive the INTEGER column
  ASSERT_TRUE(AppendAndWait(*store, a).ok());
  ASSERT_TRUE(AppendAndWait(*store, b).ok());

  auto by_id = store->FindReplyById("a");
  ASSERT_TRUE(by_id.ok() && by_id->has_value()) << by_id.status().ToString();
  EXPECT_EQ(**by_id, a.reply_json);
  auto by_key = store->FindReplyByKey("key-b");
  ASSERT_TRUE(by_key.ok() && by_key->has_value());
  EXPECT_EQ((*by_key)->reply_json, b.reply_json);
  EXPECT_EQ((*by_key)->request_fingerprint, b.request_fingerprint);
  EXPECT_FALSE(store->FindReplyById("c")->has_value());
  EXPECT_FALSE(store->FindReplyByKey("key-c")->has_value());
  // Ids and keys are separate: "a" as a key finds nothing, "key-b" as an id neither.
  EXPECT_FALSE(store->FindReplyByKey("a")->has_value());
  EXPECT_FALSE(store->FindReplyById("key-b")->has_value());

  // A new transaction id under a key already used is a replay: not written.
  TransactionRecord c = MakeRecord("c");
  c.idempotency_key = "key-b";
  Status s = AppendAndWait(*store, c);
  EXPECT_EQ(s.code(), StatusCode::kAlreadyExists) << s.ToString();
  EXPECT_NE(s.message().find("key-b"), std::string::npos) << s.message();
  EXPECT_FALSE(store->Get("c")->has_value());
  // Records without a key never collide with one another on it.
  ASSERT_TRUE(AppendAndWait(*store, MakeRecord("d")).ok());
  EXPECT_EQ(store->committed(), 3);
}

// A store written by the first schema opens, keeps every record in its order, and goes on.
// A version 2 store gains the request fingerprint and features columns; its rows keep everything.
TEST_F(SqliteStoreTest, MigratesASchemaVersion2Store) {
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
  auto store = OpenOrDie(Options(dir));
  ASSERT_TRUE(store);
  auto old = store->Get("v2-1");
  ASSERT_TRUE(old.ok() && old->has_value());
  EXPECT_EQ((*old)->idempotency_key, "key-1");
  EXPECT_EQ((*old)->request_fingerprint, 0u);
  EXPECT_TRUE((*old)->features.empty());
  EXPECT_EQ((*store->FindReplyByKey("key-1"))->reply_json, "{\"r\":1}");
  TransactionRecord r = MakeRecord("v3-1");
  r.features = {1, 2, 3};
  ASSERT_TRUE(AppendAndWait(*store, r).ok());
  EXPECT_EQ((*store->Get("v3-1"))->features, (std::vector<float>{1, 2, 3}));
  EXPECT_EQ((*store->Get("v3-1"))->sequence, 2);
}

TEST_F(SqliteStoreTest, MigratesASchemaVersion1Store) {
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
  auto store = OpenOrDie(Options(dir));
  ASSERT_TRUE(store);
  std::vector<std::string> order;
  ASSERT_TRUE(store->Scan([&](const TransactionRecord& r) { order.push_back(r.transaction_id); }).ok());
  EXPECT_EQ(order, (std::vector<std::string>{"old-1", "old-2"}));
  auto old = store->Get("old-2");
  ASSERT_TRUE(old.ok() && old->has_value());
  EXPECT_EQ((*old)->decision, "review");
  EXPECT_EQ((*old)->reply_json, "{\"r\":2}");
  EXPECT_TRUE(std::isnan((*old)->anomaly_score));
  EXPECT_EQ(**store->FindReplyById("old-1"), "{\"r\":1}");
  EXPECT_TRUE((*old)->features.empty());
  ASSERT_TRUE(AppendAndWait(*store, MakeRecord("new")).ok());
  EXPECT_EQ((*store->Get("new"))->sequence, 3);
  store.reset();
  // Reopening finds version 3: nothing to migrate again.
  auto again = OpenOrDie(Options(dir));
  ASSERT_TRUE(again);
  EXPECT_EQ((*again->Get("new"))->sequence, 3);
}

// The log is copied into the database file by the background checkpointer, and does not grow
// without bound while records keep coming: 60 MB of records through commits of 100.
TEST_F(SqliteStoreTest, CheckpointsKeepTheLogBounded) {
  std::string dir = FreshDir("checkpoint");
  StoreOptions options = Options(dir);
  options.max_batch = 100;
  auto store = OpenOrDie(options);
  ASSERT_TRUE(store);
  const std::string padding(900, 'x');
  for (int i = 0; i < 60000; ++i) {
    TransactionRecord r = MakeRecord("cp-" + std::to_string(i));
    r.reply_json = padding;
    store->Append(std::move(r), nullptr);
    if (i % 1000 == 999) {
      ASSERT_TRUE(store->Flush().ok());
    }
  }
  ASSERT_TRUE(store->Flush().ok());
  EXPECT_EQ(store->committed(), 60000);
  // The checkpointer runs beside the writer: wait (bounded) for the file to hold the records.
  const std::string db = dir + "/vigil.db";
  for (int i = 0; i < 500 && fs::file_size(db) < (40u << 20); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_GT(fs::file_size(db), 40u << 20) << "checkpoints copied the records into the file";
  // 4 x 1,000 pages of 4 KiB before a checkpoint holds the writer off to finish, plus the
  // commits that came while it waited: far below the 60 MB that went through.
  EXPECT_LT(fs::file_size(db + "-wal"), 30u << 20) << "the log stays bounded";
  EXPECT_EQ(ScanAll(*store).size(), 60000u);
}

TEST_F(SqliteStoreTest, CheckWritable) {
  std::string dir = FreshDir("writable");
  StoreOptions options = Options(dir);
  options.busy_timeout_ms = 20;
  auto store = OpenOrDie(options);
  ASSERT_TRUE(store);
  Status s = store->CheckWritable();
  EXPECT_TRUE(s.ok()) << s.ToString();

  // While another connection holds the write lock, neither the probe nor a batch can write.
  RawDb other(options.path);
  other.Exec("BEGIN IMMEDIATE");
  EXPECT_EQ(store->CheckWritable().code(), StatusCode::kUnavailable);
  Status locked = AppendAndWait(*store, MakeRecord("w"));
  EXPECT_EQ(locked.code(), StatusCode::kUnavailable) << locked.ToString();
  EXPECT_NE(locked.message().find("locked"), std::string::npos) << locked.ToString();
  other.Exec("ROLLBACK");
  EXPECT_TRUE(store->CheckWritable().ok());
  EXPECT_TRUE(AppendAndWait(*store, MakeRecord("w")).ok());
  EXPECT_EQ(store->committed(), 1);
}

TEST_F(SqliteStoreTest, FailedCommitWritesNothingOfTheBatch) {
  std::string dir = FreshDir("rollback");
  auto store = OpenOrDie(Options(dir));
  ASSERT_TRUE(store);
  // A write that fails mid-batch, as a full disk would.
  RawDb(dir + "/vigil.db")
      .Exec(
          "CREATE TRIGGER poison BEFORE INSERT ON transactions "
          "WHEN NEW.transaction_id = 'poison' BEGIN SELECT RAISE(ABORT, 'disk on fire'); END");
  WriterBlocker blocker(*store, "before");
  std::vector<Status> results;  // written by the writer thread, read after Flush
  auto record = [&results](const Status& s) { results.push_back(s); };
  store->Append(MakeRecord("a"), record);
  store->Append(MakeRecord("poison"), record);
  store->Append(MakeRecord("b"), record);
  blocker.Release();
  // Flush reports the failure only if the batch had not completed when it was called.
  Status first_flush = store->Flush();
  EXPECT_TRUE(first_flush.ok() || first_flush.code() == StatusCode::kUnavailable);
  ASSERT_EQ(results.size(), 3u);
  for (const Status& s : results) {
    EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
    EXPECT_NE(s.message().find("disk on fire"), std::string::npos) << s.ToString();
  }
  EXPECT_FALSE((*store->Get("a")).has_value());
  EXPECT_FALSE((*store->Get("b")).has_value());
  EXPECT_EQ(store->committed(), 1);

  // Flush reports a failed commit of records queued before it was called. The failing
  // batch's callback holds the writer until Flush has had ample time to start waiting.
  std::promise<void> entered;
  std::promise<void> release;
  store->Append(MakeRecord("poison"), [&](const Status&) {
    entered.set_value();
    release.get_future().wait();
  });
  entered.get_future().wait();
  std::thread releaser([&release] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    release.set_value();
  });
  Status flushed = store->Flush();
  releaser.join();
  EXPECT_EQ(flushed.code(), StatusCode::kUnavailable) << flushed.ToString();
  EXPECT_NE(flushed.message().find("disk on fire"), std::string::npos) << flushed.ToString();

  // The store keeps working, and the failed records can be appended again without a gap.
  RawDb(dir + "/vigil.db").Exec("DROP TRIGGER poison");
  ASSERT_TRUE(AppendAndWait(*store, MakeRecord("a")).ok());
  EXPECT_EQ((*store->Get("a"))->sequence, 2);
  EXPECT_TRUE(store->Flush().ok());
}

// The child of the crash test: appends records "<round>-<i>" for ever, up to 32 in flight, and
// writes to `fd` the number acknowledged so far each time a done(Ok) arrives (done is called in
// order, so records 0..n-1 are the acknowledged ones). Never returns.
[[noreturn]] void RunCrashChild(const std::string& path, int round, int fd) {
  auto opened = Store::Open({.path = path, .sync = SyncMode::kNormal});
  if (!opened.ok()) ::_exit(2);
  Store& store = **opened;
  std::mutex mu;
  std::condition_variable cv;
  int64_t acked = 0;
  for (int64_t i = 0;; ++i) {
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return i - acked < 32; });
    }
    store.Append(MakeRecord(std::to_string(round) + "-" + std::to_string(i)),
                 [&, fd](const Status& s) {
                   if (!s.ok()) ::_exit(3);
                   int64_t n;
                   {
                     std::lock_guard<std::mutex> lock(mu);
                     n = ++acked;
                   }
                   cv.notify_one();
                   if (::write(fd, &n, sizeof n) != sizeof n) ::_exit(4);
                 });
  }
}

bool ReadCount(int fd, int64_t* out) {
  char buf[sizeof(int64_t)];
  size_t got = 0;
  while (got < sizeof buf) {
    ssize_t n = ::read(fd, buf + got, sizeof buf - got);
    if (n <= 0) return false;
    got += static_cast<size_t>(n);
  }
  std::memcpy(out, buf, sizeof buf);
  return true;
}

TEST_F(SqliteStoreTest, AcknowledgedRecordsSurviveKill9) {
  std::string dir = FreshDir("crash");
  std::string path = dir + "/vigil.db";
  const int64_t kill_after[] = {300, 1200, 2500};
  for (int round = 0; round < 3; ++round) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(fds[0]);
      RunCrashChild(path, round, fds[1]);
    }
    ::close(fds[1]);
    int64_t acked = 0;
    int64_t n = 0;
    while (acked < kill_after[round] && ReadCount(fds[0], &n)) acked = n;
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
    while (ReadCount(fds[0], &n)) acked = n;  // acks written before the kill landed
    ::close(fds[0]);
    int wstatus = 0;
    ASSERT_EQ(::waitpid(pid, &wstatus, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL)
        << "the child stopped by itself, status " << wstatus;
    ASSERT_GE(acked, kill_after[round]);

    auto store = OpenOrDie(Options(dir));
    ASSERT_TRUE(store);
    for (int64_t i = 0; i < acked; ++i) {
      std::string id = std::to_string(round) + "-" + std::to_string(i);
      auto got = store->Get(id);
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      ASSERT_TRUE(got->has_value()) << "acknowledged record " << id << " lost; " << acked
                                    << " acknowledged in round " << round;
    }
    // Sequences stay dense and in arrival order across the crash.
    auto all = ScanAll(*store);
    for (size_t k = 0; k < all.size(); ++k) {
      ASSERT_EQ(all[k].sequence, static_cast<int64_t>(k + 1));
    }
    EXPECT_EQ(RawDb(path).QueryText("PRAGMA integrity_check"), "ok");
  }
}

}  // namespace
}  // namespace vigil
