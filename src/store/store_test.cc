#include "vigil/store.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <iterator>
#include <limits>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/full_disk_for_test.h"
#include "core/log.h"
#include "store/sqlite_store.h"
#include "store/store_test_util.h"

namespace vigil {
namespace {

namespace fs = std::filesystem;

// An index_delay the indexer never ends by itself while a test runs: only Flush and closing
// the store do, so what a test appends stays unindexed until it says so.
constexpr std::chrono::hours kForever{1};

StoreOptions Options(const std::string& dir) {
  StoreOptions options;
  options.dir = dir;
  return options;
}

std::unique_ptr<Store> OpenOrDie(const StoreOptions& options) {
  auto store = Store::Open(options);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  return store.ok() ? std::move(store).value() : nullptr;
}

// A record with every field set to something of its own.
TransactionRecord FullRecord(const std::string& id) {
  TransactionRecord r = MakeRecord(id);
  r.idempotency_key = "key-" + id;
  r.request_fingerprint = std::hash<std::string>{}(id);
  r.features = {1.0f, 2.5f, static_cast<float>(id.size())};
  return r;
}

// Every field but `sequence` equal; NaNs equal NaNs, floats compared bit for bit.
void ExpectSameRecord(const TransactionRecord& got, const TransactionRecord& want) {
  auto same_double = [](double a, double b) {
    return std::isnan(a) ? std::isnan(b) : std::bit_cast<uint64_t>(a) == std::bit_cast<uint64_t>(b);
  };
  EXPECT_EQ(got.transaction_id, want.transaction_id);
  EXPECT_EQ(got.customer_id, want.customer_id);
  EXPECT_EQ(got.terminal_id, want.terminal_id);
  EXPECT_PRED2(same_double, got.amount, want.amount);
  EXPECT_EQ(got.timestamp, want.timestamp);
  EXPECT_EQ(got.transaction_json, want.transaction_json);
  EXPECT_PRED2(same_double, got.score, want.score);
  EXPECT_EQ(got.decision, want.decision);
  EXPECT_PRED2(same_double, got.anomaly_score, want.anomaly_score);
  EXPECT_EQ(got.model_name, want.model_name);
  EXPECT_EQ(got.model_version, want.model_version);
  EXPECT_EQ(got.reply_json, want.reply_json);
  EXPECT_EQ(got.latency_us, want.latency_us);
  EXPECT_EQ(got.recorded_at_us, want.recorded_at_us);
  EXPECT_EQ(got.idempotency_key, want.idempotency_key);
  EXPECT_EQ(got.request_fingerprint, want.request_fingerprint);
  ASSERT_EQ(got.features.size(), want.features.size());
  for (size_t i = 0; i < got.features.size(); ++i) {
    const bool same = std::isnan(want.features[i]) ? std::isnan(got.features[i])
                                                   : std::bit_cast<uint32_t>(got.features[i]) ==
                                                         std::bit_cast<uint32_t>(want.features[i]);
    EXPECT_TRUE(same) << "feature " << i << ": " << got.features[i] << " vs " << want.features[i];
  }
}

// Appends and waits for `done`; returns the status it got.
Status AppendAndWait(Store& store, TransactionRecord record,
                     Durability durability = Durability::kProcessCrash) {
  std::promise<Status> result;
  store.Append(std::move(record), WriteOptions{.durability = durability},
               [&result](const Status& s) { result.set_value(s); });
  return result.get_future().get();
}

std::vector<TransactionRecord> ScanAll(Store& store) {
  std::vector<TransactionRecord> out;
  Status s = store.Scan([&out](const TransactionRecord& r) { out.push_back(r); });
  EXPECT_TRUE(s.ok()) << s.ToString();
  return out;
}

std::vector<std::string> ScanIds(Store& store) {
  std::vector<std::string> ids;
  for (const TransactionRecord& r : ScanAll(store)) ids.push_back(r.transaction_id);
  return ids;
}

// Flushes until the index has caught up: a Flush that waited for a failing try of the index
// (which retries) returns that failure.
Status FlushUntilOk(Store& store) {
  Status s = store.Flush();
  for (int i = 0; i < 500 && !s.ok(); ++i) s = store.Flush();
  return s;
}

int64_t IndexedRows(const std::string& dir) {
  return RawDb(dir + "/vigil.db").QueryInt("SELECT COUNT(*) FROM transactions");
}

// Collects the log lines written while it lives.
class LogCapture {
 public:
  LogCapture() {
    SetLogSink([this](std::string_view line) {
      std::lock_guard<std::mutex> lock(mu_);
      lines_.push_back(nlohmann::json::parse(line));
    });
  }
  ~LogCapture() { SetLogSink({}); }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  // The lines whose message contains `text`.
  std::vector<nlohmann::json> With(const std::string& text) {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<nlohmann::json> out;
    std::copy_if(lines_.begin(), lines_.end(), std::back_inserter(out),
                 [&](const nlohmann::json& j) {
                   return j["msg"].get<std::string>().find(text) != std::string::npos;
                 });
    return out;
  }

 private:
  std::mutex mu_;
  std::vector<nlohmann::json> lines_;
};

// The newest segment file of the journal in `dir` (journal.h: named by their first offset,
// zero-padded, so that name order is offset order).
std::string NewestSegment(const std::string& dir) {
  std::vector<std::string> segments;
  for (const auto& e : fs::directory_iterator(dir + "/journal")) {
    if (e.path().extension() == ".jnl") segments.push_back(e.path().string());
  }
  std::sort(segments.begin(), segments.end());
  return segments.empty() ? std::string() : segments.back();
}

// Where each record of a segment begins: after the 32-byte segment header, records back to
// back, each a 24-byte header (its payload's length at byte 4, little-endian) and the payload.
std::vector<uint64_t> RecordStarts(const std::string& segment) {
  std::ifstream in(segment, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<uint64_t> starts;
  uint64_t pos = 32;
  while (pos + 24 <= bytes.size()) {
    uint32_t length = 0;
    std::memcpy(&length, bytes.data() + pos + 4, sizeof length);
    starts.push_back(pos);
    pos += 24 + length;
  }
  EXPECT_EQ(pos, bytes.size()) << "the segment ends with a whole record";
  return starts;
}

// Writes `n` records r1..rN (sequences 1..N) into an index-only store, as a Vigil before the
// journal left it. `edit` may change a record before it is written.
std::vector<TransactionRecord> WriteOldStore(
    const std::string& dir, int n, const std::function<void(TransactionRecord*)>& edit = nullptr) {
  SqliteOptions options;
  options.path = dir + "/vigil.db";
  auto index = SqliteIndex::Open(options);
  EXPECT_TRUE(index.ok()) << index.status().ToString();
  if (!index.ok()) return {};
  std::vector<TransactionRecord> records;
  std::vector<SqliteIndex::Write> writes;
  for (int i = 1; i <= n; ++i) {
    TransactionRecord r = FullRecord("r" + std::to_string(i));
    if (i % 3 == 0) {  // older records may have no key (and then no fingerprint)
      r.idempotency_key.clear();
      r.request_fingerprint = 0;
    }
    r.sequence = i;
    if (edit) edit(&r);
    records.push_back(r);
    writes.push_back({std::make_shared<const TransactionRecord>(std::move(r)), nullptr});
  }
  (*index)->AppendAll(std::move(writes));
  EXPECT_TRUE((*index)->Flush().ok());
  EXPECT_EQ(*(*index)->LastSequence(), n);
  return records;
}

class StoreTest : public FreshDirTest {
 protected:
  StoreTest() : FreshDirTest("store_") {}
};

// Every field comes back from memory (not indexed yet), from the index, from the journal
// (Scan), and after a reopen; `sequence` is the journal offset.
TEST_F(StoreTest, RoundTripsEveryFieldThroughGetAndScan) {
  const std::string dir = FreshDir("roundtrip");
  StoreOptions options = Options(dir);
  options.index_delay = kForever;
  TransactionRecord r;
  r.transaction_id = "tx-1";
  r.customer_id = "cust 7";
  r.terminal_id = "term'9";
  r.amount = 1234.5678;
  r.timestamp = -86400;  // before 1970 still round-trips
  r.transaction_json =
      "{\"transaction_id\":\"tx-1\",\"note\":\"caf\xc3\xa9 \\\"quoted\\\"\",\"x\":null}";
  r.score = 0.987654321;
  r.decision = "decline";
  r.anomaly_score = std::numeric_limits<double>::quiet_NaN();
  r.model_name = "gbdt";
  r.model_version = "2024-01-02.1";
  r.reply_json = std::string("{\"score\":0.98}\0tail", 19);  // embedded NUL kept
  r.latency_us = 873;
  r.recorded_at_us = 1712345678901234;
  r.sequence = 99;  // ignored: the store sets it
  r.idempotency_key = "client-key-1";
  r.request_fingerprint = 0x8000000000000001ULL;
  r.features = {1.5f, -0.0f, std::numeric_limits<float>::quiet_NaN(), 3e38f};
  // A finite anomaly score; recorded_at_us left at 0 is set by Append; no key, no features.
  TransactionRecord second = FullRecord("tx-2");
  second.anomaly_score = 0.625;
  second.recorded_at_us = 0;
  second.idempotency_key.clear();
  second.request_fingerprint = 0;
  second.features.clear();

  auto check = [&](Store& store, const char* where) {
    SCOPED_TRACE(where);
    auto got = store.Get("tx-1");
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    ASSERT_TRUE(got->has_value());
    ExpectSameRecord(**got, r);
    EXPECT_TRUE(std::signbit((*got)->features[1]));
    EXPECT_EQ((*got)->sequence, 1);
    auto got2 = store.Get("tx-2");
    ASSERT_TRUE(got2.ok() && got2->has_value());
    EXPECT_EQ((*got2)->anomaly_score, 0.625);
    EXPECT_GT((*got2)->recorded_at_us, 1600000000000000);
    EXPECT_EQ((*got2)->sequence, 2);
    TransactionRecord want2 = second;
    want2.recorded_at_us = (*got2)->recorded_at_us;
    ExpectSameRecord(**got2, want2);
    EXPECT_EQ(**store.FindReplyById("tx-1"), r.reply_json);
    auto keyed = store.FindReplyByKey("client-key-1");
    ASSERT_TRUE(keyed.ok() && keyed->has_value());
    EXPECT_EQ((*keyed)->reply_json, r.reply_json);
    EXPECT_EQ((*keyed)->request_fingerprint, r.request_fingerprint);

    auto all = ScanAll(store);
    ASSERT_EQ(all.size(), 2u);
    ExpectSameRecord(all[0], r);
    ExpectSameRecord(all[1], want2);
    EXPECT_EQ(all[0].sequence, 1);
    EXPECT_EQ(all[1].sequence, 2);
  };
  {
    auto store = OpenOrDie(options);
    ASSERT_TRUE(store);
    ASSERT_TRUE(AppendAndWait(*store, r).ok());
    ASSERT_TRUE(AppendAndWait(*store, second).ok());
    EXPECT_EQ(store->backlog(), 2u);
    EXPECT_EQ(IndexedRows(dir), 0);
    check(*store, "from memory");
    ASSERT_TRUE(store->Flush().ok());
    EXPECT_EQ(store->backlog(), 0u);
    EXPECT_EQ(IndexedRows(dir), 2);
    check(*store, "from the index");
    EXPECT_EQ(store->committed(), 2);
    EXPECT_EQ(store->commits(), 2);
  }
  auto store = OpenOrDie(options);
  ASSERT_TRUE(store);
  check(*store, "after reopening");
  EXPECT_EQ(store->committed(), 0);
}

// Get and FindReplyBy* find a record from the moment its `done(Ok)` is called, long before the
// indexer writes it, for both durabilities.
TEST_F(StoreTest, FindsARecordTheMomentItIsAcknowledged) {
  const std::string dir = FreshDir("acknowledged");
  StoreOptions options = Options(dir);
  options.index_delay = kForever;
  auto store = OpenOrDie(options);
  ASSERT_TRUE(store);
  Store* raw = store.get();
  for (Durability durability : {Durability::kProcessCrash, Durability::kPowerLoss}) {
    const std::string id = durability == Durability::kPowerLoss ? "power" : "crash";
    std::promise<bool> found_in_done;
    store->Append(FullRecord(id), WriteOptions{.durability = durability}, [&, id](const Status& s) {
      auto got = raw->Get(id);
      auto by_id = raw->FindReplyById(id);
      auto by_key = raw->FindReplyByKey("key-" + id);
      found_in_done.set_value(s.ok() && got.ok() && got->has_value() && by_id.ok() &&
                              by_id->has_value() && by_key.ok() && by_key->has_value());
    });
    EXPECT_TRUE(found_in_done.get_future().get()) << id;
  }
  EXPECT_EQ(IndexedRows(dir), 0) << "the indexer is held back";
  EXPECT_EQ(store->backlog(), 2u);
  EXPECT_EQ((*store->Get("power"))->sequence, 2);
  EXPECT_FALSE(store->Get("key-power")->has_value());  // ids and keys are separate
  EXPECT_FALSE(store->FindReplyByKey("power")->has_value());
  EXPECT_FALSE(store->Get("other")->has_value());

  ASSERT_TRUE(store->Flush().ok());
  EXPECT_EQ(IndexedRows(dir), 2);
  EXPECT_EQ(store->backlog(), 0u);
  for (const std::string id : {"crash", "power"}) {
    auto got = store->Get(id);
    ASSERT_TRUE(got.ok() && got->has_value()) << id;
    ExpectSameRecord(**got, FullRecord(id));
    EXPECT_EQ(**store->FindReplyById(id), FullRecord(id).reply_json);
    auto keyed = store->FindReplyByKey("key-" + id);
    ASSERT_TRUE(keyed.ok() && keyed->has_value()) << id;
    EXPECT_EQ((*keyed)->request_fingerprint, FullRecord(id).request_fingerprint);
  }
}

TEST_F(StoreTest, EmptyTransactionIdIsInvalidArgument) {
  const std::string dir = FreshDir("empty_id");
  auto store = OpenOrDie(Options(dir));
  ASSERT_TRUE(store);
  EXPECT_EQ(AppendAndWait(*store, FullRecord("")).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store->committed(), 0);

  // In a batch, the others are committed, with offsets that leave no gap.
  std::vector<Status> got(3, Internal("not called"));
  std::vector<Store::Write> writes;
  writes.push_back({FullRecord("a"), [&got](const Status& s) { got[0] = s; }});
  writes.push_back({FullRecord(""), [&got](const Status& s) { got[1] = s; }});
  writes.push_back({FullRecord("b"), [&got](const Status& s) { got[2] = s; }});
  store->AppendAll(std::move(writes), WriteOptions{});
  EXPECT_TRUE(got[0].ok()) << got[0].ToString();
  EXPECT_EQ(got[1].code(), StatusCode::kInvalidArgument) << got[1].ToString();
  EXPECT_NE(got[1].message().find("transaction_id"), std::string::npos) << got[1].ToString();
  EXPECT_TRUE(got[2].ok()) << got[2].ToString();
  EXPECT_EQ(store->committed(), 2);
  EXPECT_EQ(store->commits(), 1);
  auto all = ScanAll(*store);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].transaction_id, "a");
  EXPECT_EQ(all[0].sequence, 1);
  EXPECT_EQ(all[1].transaction_id, "b");
  EXPECT_EQ(all[1].sequence, 2);
  EXPECT_FALSE(store->Get("")->has_value());
  ASSERT_TRUE(store->Flush().ok());
  EXPECT_EQ(IndexedRows(dir), 2);
}

// Durability::kPowerLoss waits for the journal's sync of the records themselves: `done` runs on
// the sync thread, never at once on the caller's (nothing else syncs these records first).
TEST_F(StoreTest, PowerLossAcknowledgesOnlyAfterTheRecordsAreSynced) {
  auto store = OpenOrDie(Options(FreshDir("power_loss_sync")));
  ASSERT_TRUE(store);
  for (int i = 0; i < 10; ++i) {
    std::promise<std::thread::id> ran_on;
    std::vector<Store::Write> writes;
    writes.push_back({FullRecord("s" + std::to_string(i)), [&ran_on](const Status& s) {
                        EXPECT_TRUE(s.ok()) << s.ToString();
                        ran_on.set_value(std::this_thread::get_id());
                      }});
    if (i % 2 == 1) writes.push_back({FullRecord("s" + std::to_string(i) + "b"), nullptr});
    store->AppendAll(std::move(writes), WriteOptions{.durability = Durability::kPowerLoss});
    EXPECT_NE(ran_on.get_future().get(), std::this_thread::get_id())
        << "append " << i << " was acknowledged before any sync";
  }
}

// Durability::kPowerLoss from several threads, one at a time and in batches: every `done`
// called once, with Ok, and every record committed once, each thread's in its order.
TEST_F(StoreTest, PowerLossAppendsFromSeveralThreads) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 120;
  const std::string dir = FreshDir("power_loss");
  {
    auto store = OpenOrDie(Options(dir));
    ASSERT_TRUE(store);
    std::vector<std::atomic<int>> calls(static_cast<size_t>(kThreads) * kPerThread);
    std::atomic<int> failures{0};
    const WriteOptions power_loss{.durability = Durability::kPowerLoss};
    std::vector<std::thread> threads;
    threads.reserve(kThreads);
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        auto done = [&](int n) {
          return [&, n](const Status& s) {
            if (!s.ok()) ++failures;
            ++calls[n];
          };
        };
        for (int i = 0; i < kPerThread;) {
          const auto id = [t](int k) { return "t" + std::to_string(t) + "-" + std::to_string(k); };
          if (i % 8 == 0) {
            // Every eighth waits for its sync; the rest do not, so syncs are shared.
            std::promise<Status> synced;
            store->Append(FullRecord(id(i)), power_loss,
                          [&, n = t * kPerThread + i](const Status& s) {
                            done(n)(s);
                            synced.set_value(s);
                          });
            EXPECT_TRUE(synced.get_future().get().ok());
            ++i;
          } else if (i + 3 <= kPerThread && i % 8 == 1) {
            std::vector<Store::Write> writes;
            for (int k = i; k < i + 3; ++k) {
              writes.push_back({FullRecord(id(k)), done(t * kPerThread + k)});
            }
            store->AppendAll(std::move(writes), power_loss);
            i += 3;
          } else {
            store->Append(FullRecord(id(i)), power_loss, done(t * kPerThread + i));
            ++i;
          }
        }
      });
    }
    for (auto& th : threads) th.join();
    ASSERT_TRUE(store->Flush().ok());  // waits for the syncs' callbacks too
    EXPECT_EQ(failures.load(), 0);
    for (size_t n = 0; n < calls.size(); ++n) ASSERT_EQ(calls[n].load(), 1) << "record " << n;
    EXPECT_EQ(store->committed(), kThreads * kPerThread);
  }
  auto store = OpenOrDie(Options(dir));
  ASSERT_TRUE(store);
  auto all = ScanAll(*store);
  ASSERT_EQ(all.size(), static_cast<size_t>(kThreads * kPerThread));
  std::vector<int> next_per_thread(kThreads, 0);
  for (size_t k = 0; k < all.size(); ++k) {
    EXPECT_EQ(all[k].sequence, static_cast<int64_t>(k + 1));
    const std::string& id = all[k].transaction_id;
    const int t = std::stoi(id.substr(1));
    EXPECT_EQ(std::stoi(id.substr(id.find('-') + 1)), next_per_thread[t]++) << id;
  }
  EXPECT_EQ(IndexedRows(dir), kThreads * kPerThread);
}

// Appenders check that what they were told is committed is found at once, while the indexer
// moves records from memory to the index beside them.
TEST_F(StoreTest, AcknowledgedRecordsAreFoundWhileTheIndexerRuns) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 250;
  const std::string dir = FreshDir("handoff");
  StoreOptions options = Options(dir);
  options.index_delay = std::chrono::microseconds(200);  // many hand-offs
  auto store = OpenOrDie(options);
  ASSERT_TRUE(store);
  std::atomic<int> misses{0};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::string id = "t" + std::to_string(t) + "-" + std::to_string(i);
        if (!AppendAndWait(*store, FullRecord(id)).ok()) ++failures;
        auto got = store->Get(id);
        auto by_key = store->FindReplyByKey("key-" + id);
        if (!got.ok() || !got->has_value() || !by_key.ok() || !by_key->has_value()) ++misses;
        // An earlier one, most likely indexed by now.
        const std::string old = "t" + std::to_string(t) + "-" + std::to_string(i / 2);
        auto again = store->FindReplyById(old);
        if (!again.ok() || !again->has_value()) ++misses;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(misses.load(), 0);
  ASSERT_TRUE(store->Flush().ok());
  EXPECT_EQ(IndexedRows(dir), kThreads * kPerThread);
  EXPECT_EQ(ScanAll(*store).size(), static_cast<size_t>(kThreads * kPerThread));
}

// The index lost its newest rows (a power loss undid its last batches): Open indexes them again
// from the journal.
TEST_F(StoreTest, ReopenIndexesWhatTheIndexLost) {
  const std::string dir = FreshDir("index_tail");
  {
    auto store = OpenOrDie(Options(dir));
    ASSERT_TRUE(store);
    for (int i = 1; i <= 50; ++i)
      ASSERT_TRUE(AppendAndWait(*store, FullRecord("r" + std::to_string(i))).ok());
    ASSERT_TRUE(store->Flush().ok());
  }
  RawDb(dir + "/vigil.db").Exec("DELETE FROM transactions WHERE sequence > 20");
  ASSERT_EQ(IndexedRows(dir), 20);

  LogCapture log;
  StoreOptions options = Options(dir);
  options.index_delay = kForever;  // what Open hands the indexer stays in memory for now
  {
    auto store = OpenOrDie(options);
    ASSERT_TRUE(store);
    EXPECT_EQ(store->backlog(), 30u);
    for (int i = 1; i <= 50; ++i) {
      const std::string id = "r" + std::to_string(i);
      auto got = store->Get(id);
      ASSERT_TRUE(got.ok() && got->has_value()) << id;
      EXPECT_EQ((*got)->sequence, i);
      ExpectSameRecord(**got, FullRecord(id));
      EXPECT_TRUE(store->FindReplyByKey("key-" + id)->has_value()) << id;
    }
    ASSERT_TRUE(store->Flush().ok());
    EXPECT_EQ(IndexedRows(dir), 50);
    // Appends go on after them.
    ASSERT_TRUE(AppendAndWait(*store, FullRecord("r51")).ok());
    EXPECT_EQ((*store->Get("r51"))->sequence, 51);
  }
  auto reindexed = log.With("indexing the records the index lacks");
  ASSERT_EQ(reindexed.size(), 1u);
  EXPECT_EQ(reindexed[0]["records"], 30);
  EXPECT_EQ(reindexed[0]["from_sequence"], 21);
  EXPECT_EQ(IndexedRows(dir), 51);
}

// The index file is gone altogether: Open builds it again from the journal.
TEST_F(StoreTest, ReopenRebuildsADeletedIndex) {
  const std::string dir = FreshDir("index_gone");
  std::vector<TransactionRecord> written;
  {
    auto store = OpenOrDie(Options(dir));
    ASSERT_TRUE(store);
    for (int i = 1; i <= 40; ++i)
      ASSERT_TRUE(AppendAndWait(*store, FullRecord("r" + std::to_string(i))).ok());
    written = ScanAll(*store);
  }
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(dir + "/vigil.db" + suffix);
  {
    auto store = OpenOrDie(Options(dir));
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->Flush().ok());
    EXPECT_EQ(IndexedRows(dir), 40);
    for (const TransactionRecord& r : written) {
      auto got = store->Get(r.transaction_id);
      ASSERT_TRUE(got.ok() && got->has_value()) << r.transaction_id;
      ExpectSameRecord(**got, r);
      EXPECT_EQ((*got)->sequence, r.sequence);
      EXPECT_EQ((*store->FindReplyByKey(r.idempotency_key))->reply_json, r.reply_json);
    }
  }
  EXPECT_EQ(RawDb(dir + "/vigil.db").QueryText("PRAGMA integrity_check"), "ok");
}

// The journal lost its tail and the index did not (a power loss took the journal's unsynced
// records while the index's last batches had reached the disk): Open cuts the index back to the
// journal, logs it, and the next appends take the lost offsets again.
TEST_F(StoreTest, ReopenCutsTheIndexBackToTheJournal) {
  const std::string dir = FreshDir("journal_tail");
  {
    auto store = OpenOrDie(Options(dir));
    ASSERT_TRUE(store);
    for (int i = 1; i <= 30; ++i)
      ASSERT_TRUE(AppendAndWait(*store, FullRecord("r" + std::to_string(i))).ok());
    ASSERT_TRUE(store->Flush().ok());
  }
  ASSERT_EQ(IndexedRows(dir), 30);
  // Records 26..30 lost: the segment ends 10 bytes into record 26 (a torn write).
  const std::string segment = NewestSegment(dir);
  ASSERT_FALSE(segment.empty());
  const std::vector<uint64_t> starts = RecordStarts(segment);
  ASSERT_EQ(starts.size(), 30u);
  fs::resize_file(segment, starts[25] + 10);

  {
    LogCapture log;
    auto store = OpenOrDie(Options(dir));
    ASSERT_TRUE(store);
    auto cut = log.With("the index held records the journal lost");
    ASSERT_EQ(cut.size(), 1u);
    EXPECT_EQ(cut[0]["records"], 5);
    EXPECT_EQ(cut[0]["after_sequence"], 25);
    EXPECT_EQ(IndexedRows(dir), 25);
    auto ids = ScanIds(*store);
    ASSERT_EQ(ids.size(), 25u);
    EXPECT_EQ(ids.back(), "r25");
    for (int i = 26; i <= 30; ++i) {
      const std::string id = "r" + std::to_string(i);
      EXPECT_FALSE(store->Get(id)->has_value()) << id;
      EXPECT_FALSE(store->FindReplyById(id)->has_value()) << id;
      EXPECT_FALSE(store->FindReplyByKey("key-" + id)->has_value()) << id;
    }
    EXPECT_TRUE(store->Get("r25")->has_value());
    // A lost record may come again (the client retries): it takes the next offset.
    ASSERT_TRUE(AppendAndWait(*store, FullRecord("r28")).ok());
    EXPECT_EQ((*store->Get("r28"))->sequence, 26);
    ASSERT_TRUE(store->Flush().ok());
    EXPECT_EQ(IndexedRows(dir), 26);
  }
  LogCapture log;
  auto store = OpenOrDie(Options(dir));
  ASSERT_TRUE(store);
  EXPECT_TRUE(log.With("the index held records the journal lost").empty());
  EXPECT_EQ((*store->Get("r28"))->sequence, 26);
  EXPECT_EQ(ScanAll(*store).size(), 26u);
}

// A store from before the journal (an index, no journal) has its records copied into a new
// journal, once; more than one journal write's worth of them.
TEST_F(StoreTest, MigratesAnIndexOnlyStoreIntoANewJournal) {
  constexpr int kRecords = 5000;
  const std::string dir = FreshDir("migrate");
  const std::vector<TransactionRecord> old = WriteOldStore(dir, kRecords);
  ASSERT_EQ(old.size(), static_cast<size_t>(kRecords));
  ASSERT_FALSE(fs::exists(dir + "/journal"));
  {
    LogCapture log;
    auto store = OpenOrDie(Options(dir));
    ASSERT_TRUE(store);
    auto copied = log.With("copied the records of an older store");
    ASSERT_EQ(copied.size(), 1u);
    EXPECT_EQ(copied[0]["records"], kRecords);
    auto all = ScanAll(*store);
    ASSERT_EQ(all.size(), old.size());
    for (size_t k = 0; k < all.size(); ++k) {
      ASSERT_EQ(all[k].sequence, old[k].sequence);
      ExpectSameRecord(all[k], old[k]);
    }
    for (int i : {1, 4096, 4097, kRecords}) {
      const std::string id = "r" + std::to_string(i);
      auto got = store->Get(id);
      ASSERT_TRUE(got.ok() && got->has_value()) << id;
      EXPECT_EQ((*got)->sequence, i);
    }
    EXPECT_EQ((*store->FindReplyByKey("key-r4097"))->reply_json, old[4096].reply_json);
    EXPECT_EQ(store->backlog(), 0u);
  }
  LogCapture log;
  auto store = OpenOrDie(Options(dir));
  ASSERT_TRUE(store);
  EXPECT_TRUE(log.With("copied the records").empty()) << "copied twice";
  EXPECT_TRUE(log.With("the index held records the journal lost").empty());
  EXPECT_EQ(ScanAll(*store).size(), static_cast<size_t>(kRecords));
  ASSERT_TRUE(AppendAndWait(*store, FullRecord("new")).ok());
  EXPECT_EQ((*store->Get("new"))->sequence, kRecords + 1);
  ASSERT_TRUE(store->Flush().ok());
  EXPECT_EQ(IndexedRows(dir), kRecords + 1);
}

// A copy into the journal cut short leaves the journal holding fewer records than the index,
// as a power loss would; the next Open must finish the copy, not delete what is not copied yet.
// Here a record over the journal's size limit stops the copy after the first journal write.
TEST_F(StoreTest, AnInterruptedMigrationLosesNothing) {
  constexpr int kRecords = 5000;
  const std::string dir = FreshDir("migrate_interrupted");
  WriteOldStore(dir, kRecords, [](TransactionRecord* r) {
    if (r->sequence == 4500) r->reply_json.assign(17u << 20, 'x');  // over 16 MiB
  });
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto store = Store::Open(Options(dir));
    ASSERT_FALSE(store.ok()) << "attempt " << attempt;
    EXPECT_NE(store.status().message().find("over the limit"), std::string::npos)
        << store.status().ToString();
    EXPECT_EQ(IndexedRows(dir), kRecords) << "attempt " << attempt;
  }
  RawDb(dir + "/vigil.db")
      .Exec("UPDATE transactions SET reply_json = 'small' WHERE sequence = 4500");
  {
    auto store = OpenOrDie(Options(dir));
    ASSERT_TRUE(store);
    auto all = ScanAll(*store);
    ASSERT_EQ(all.size(), static_cast<size_t>(kRecords));
    for (size_t k = 0; k < all.size(); ++k) {
      ASSERT_EQ(all[k].sequence, static_cast<int64_t>(k + 1));
      ASSERT_EQ(all[k].transaction_id, "r" + std::to_string(k + 1));
    }
    EXPECT_EQ(all[4499].reply_json, "small");
    EXPECT_TRUE(store->Get("r5000")->has_value());
  }
  auto store = OpenOrDie(Options(dir));
  ASSERT_TRUE(store);
  EXPECT_EQ(ScanAll(*store).size(), static_cast<size_t>(kRecords));
  EXPECT_EQ(IndexedRows(dir), kRecords);
}

TEST_F(StoreTest, SecondOpenOfTheSameFolderIsRefused) {
  const std::string dir = FreshDir("in_use");
  {
    auto first = OpenOrDie(Options(dir));
    ASSERT_TRUE(first);
    auto second = Store::Open(Options(dir));
    ASSERT_FALSE(second.ok());
    EXPECT_EQ(second.status().code(), StatusCode::kUnavailable) << second.status().ToString();
    EXPECT_NE(second.status().message().find(dir), std::string::npos) << second.status().ToString();
    EXPECT_NE(second.status().message().find("in use"), std::string::npos)
        << second.status().ToString();
    // The first goes on undisturbed.
    ASSERT_TRUE(AppendAndWait(*first, FullRecord("a")).ok());
    EXPECT_TRUE(first->Get("a")->has_value());
  }
  auto again = OpenOrDie(Options(dir));
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->Get("a")->has_value());
}

TEST_F(StoreTest, OpenRefusesUnusableFolders) {
  const std::string dir = FreshDir("unusable");
  auto missing = Store::Open(Options(dir + "/missing"));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find(dir + "/missing"), std::string::npos)
      << missing.status().ToString();
  EXPECT_NE(missing.status().message().find("does not exist"), std::string::npos)
      << missing.status().ToString();
  EXPECT_FALSE(fs::exists(dir + "/missing"));

  std::ofstream(dir + "/plain_file") << "x";
  auto file = Store::Open(Options(dir + "/plain_file"));
  ASSERT_FALSE(file.ok());
  EXPECT_NE(file.status().message().find("is not a folder"), std::string::npos)
      << file.status().ToString();

  EXPECT_EQ(Store::Open(Options("")).status().code(), StatusCode::kInvalidArgument);
}

// Past max_index_backlog records not yet indexed, appends are refused and write nothing, until
// the index catches up.
TEST_F(StoreTest, RefusesAppendsWhenTheIndexIsTooFarBehind) {
  const std::string dir = FreshDir("backlog");
  StoreOptions options = Options(dir);
  options.index_delay = kForever;
  options.max_index_backlog = 3;
  {
    auto store = OpenOrDie(options);
    ASSERT_TRUE(store);
    for (const char* id : {"a", "b", "c"}) ASSERT_TRUE(AppendAndWait(*store, FullRecord(id)).ok());
    EXPECT_EQ(store->backlog(), 3u);
    Status refused = AppendAndWait(*store, FullRecord("d"));
    EXPECT_EQ(refused.code(), StatusCode::kUnavailable) << refused.ToString();
    EXPECT_NE(refused.message().find("behind"), std::string::npos) << refused.ToString();
    std::vector<Status> got(2, Internal("not called"));
    std::vector<Store::Write> writes;
    writes.push_back({FullRecord("e"), [&got](const Status& s) { got[0] = s; }});
    writes.push_back({FullRecord("f"), [&got](const Status& s) { got[1] = s; }});
    store->AppendAll(std::move(writes), WriteOptions{});
    EXPECT_EQ(got[0].code(), StatusCode::kUnavailable) << got[0].ToString();
    EXPECT_EQ(got[1].code(), StatusCode::kUnavailable) << got[1].ToString();
    EXPECT_EQ(store->committed(), 3);
    EXPECT_EQ(ScanIds(*store), (std::vector<std::string>{"a", "b", "c"}));
    for (const char* id : {"d", "e", "f"}) EXPECT_FALSE(store->Get(id)->has_value()) << id;

    ASSERT_TRUE(store->Flush().ok());
    EXPECT_EQ(store->backlog(), 0u);
    ASSERT_TRUE(AppendAndWait(*store, FullRecord("d")).ok());
    EXPECT_EQ((*store->Get("d"))->sequence, 4) << "refused appends take no offset";
  }
  auto store = OpenOrDie(Options(dir));
  ASSERT_TRUE(store);
  EXPECT_EQ(ScanIds(*store), (std::vector<std::string>{"a", "b", "c", "d"}));
  EXPECT_EQ(IndexedRows(dir), 4);
}

// Appends `prefix`0, 1, ... until the store refuses one; returns the refusal and adds the ids
// acknowledged to `acked`.
Status AppendUntilRefused(Store& store, const std::string& prefix,
                          std::vector<std::string>* acked) {
  const std::string padding(800, 'p');
  for (int i = 0; i < 100000; ++i) {
    TransactionRecord r = FullRecord(prefix + std::to_string(i));
    r.transaction_json += padding;
    const std::string id = r.transaction_id;
    Status s = AppendAndWait(store, std::move(r));
    if (!s.ok()) return s;
    acked->push_back(id);
  }
  return Internal("the disk never filled up");
}

// On a full disk appends are refused and write nothing; what was acknowledged, and only that,
// is there after a restart, indexed too.
TEST_F(StoreTest, FullDiskKeepsExactlyTheAcknowledgedRecords) {
  const std::string dir = FreshDir("full_disk") + "/disk";
  FullDiskForTest disk(dir, 8 << 20);
  ASSERT_TRUE(disk.mounted()) << disk.error();
  std::vector<std::string> acked;
  {
    auto store = OpenOrDie(Options(dir));
    ASSERT_TRUE(store);
    for (int i = 0; i < 10; ++i) {
      ASSERT_TRUE(AppendAndWait(*store, FullRecord("before-" + std::to_string(i))).ok());
      acked.push_back("before-" + std::to_string(i));
    }
    ASSERT_TRUE(store->Flush().ok());
    disk.Fill();
    Status refused = AppendUntilRefused(*store, "full-", &acked);
    EXPECT_EQ(refused.code(), StatusCode::kUnavailable) << refused.ToString();
    // More are refused (or, should the index have given a page back, acknowledged and kept).
    for (int i = 0; i < 5; ++i) {
      const std::string id = "more-" + std::to_string(i);
      Status s = AppendAndWait(*store, FullRecord(id));
      if (s.ok()) {
        acked.push_back(id);
      } else {
        EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
        EXPECT_FALSE(store->Get(id)->has_value()) << id;
      }
    }
    EXPECT_EQ(ScanIds(*store), acked);
    // Closed while full: what the index could not take is still in the journal.
  }
  disk.Free();
  auto store = OpenOrDie(Options(dir));
  ASSERT_TRUE(store);
  EXPECT_EQ(ScanIds(*store), acked);
  ASSERT_TRUE(FlushUntilOk(*store).ok());
  for (const std::string& id : acked) {
    ASSERT_TRUE(store->Get(id)->has_value()) << id;
  }
  EXPECT_EQ(IndexedRows(dir), static_cast<int64_t>(acked.size()));
}

// Once the disk has space again appends succeed without a restart, and the index, which kept
// retrying, catches up.
TEST_F(StoreTest, FullDiskRecoversWithoutARestart) {
  const std::string dir = FreshDir("full_disk_recovers") + "/disk";
  FullDiskForTest disk(dir, 8 << 20);
  ASSERT_TRUE(disk.mounted()) << disk.error();
  std::vector<std::string> acked;
  {
    auto store = OpenOrDie(Options(dir));
    ASSERT_TRUE(store);
    ASSERT_TRUE(AppendAndWait(*store, FullRecord("first")).ok());
    acked.push_back("first");
    disk.Fill();
    Status refused = AppendUntilRefused(*store, "fill-", &acked);
    ASSERT_EQ(refused.code(), StatusCode::kUnavailable) << refused.ToString();
    EXPECT_NE(refused.message().find("journal"), std::string::npos) << refused.ToString();
    EXPECT_FALSE(store->Get("fill-" + std::to_string(acked.size() - 1))->has_value());
    disk.Free();

    for (int i = 0; i < 20; ++i) {
      const std::string id = "after-" + std::to_string(i);
      Status s = AppendAndWait(*store, FullRecord(id));
      ASSERT_TRUE(s.ok()) << id << ": " << s.ToString();
      acked.push_back(id);
    }
    Status flushed = FlushUntilOk(*store);
    ASSERT_TRUE(flushed.ok()) << flushed.ToString();
    EXPECT_EQ(store->backlog(), 0u);
    EXPECT_EQ(IndexedRows(dir), static_cast<int64_t>(acked.size()));
    for (const std::string& id : acked) ASSERT_TRUE(store->Get(id)->has_value()) << id;
    EXPECT_EQ(ScanIds(*store), acked);
  }
  auto store = OpenOrDie(Options(dir));
  ASSERT_TRUE(store);
  EXPECT_EQ(ScanIds(*store), acked);
  EXPECT_EQ(store->backlog(), 0u);
}

// What the crash test's child reports: thread `thread` has had its first `acked` records
// acknowledged.
struct Ack {
  int64_t thread;
  int64_t acked;
};

// The child of the crash test: two threads append records "<round>-<thread>-<i>" for ever, one
// at a time and in threes, and write an Ack to `fd` each time done(Ok) arrives (each thread's
// are called in order). Never returns.
[[noreturn]] void RunCrashChild(const std::string& dir, int round, int fd) {
  auto opened = Store::Open(Options(dir));
  if (!opened.ok()) ::_exit(2);
  Store& store = **opened;
  auto appender = [&store, round, fd](int64_t t) {
    auto done = [fd, t](int64_t acked) {
      return [fd, t, acked](const Status& s) {
        if (!s.ok()) ::_exit(3);
        const Ack ack{t, acked};
        if (::write(fd, &ack, sizeof ack) != sizeof ack) ::_exit(4);
      };
    };
    const std::string prefix = std::to_string(round) + "-" + std::to_string(t) + "-";
    for (int64_t i = 0;; i += 4) {
      store.Append(FullRecord(prefix + std::to_string(i)), WriteOptions{}, done(i + 1));
      std::vector<Store::Write> writes;
      for (int64_t k = i + 1; k < i + 4; ++k) {
        writes.push_back({FullRecord(prefix + std::to_string(k)), done(k + 1)});
      }
      store.AppendAll(std::move(writes), WriteOptions{});
    }
  };
  std::thread other(appender, 1);
  appender(0);
  ::_exit(5);
}

// Reads one Ack; false at the end of the pipe.
bool ReadAck(int fd, Ack* out) {
  char buf[sizeof(Ack)];
  size_t got = 0;
  while (got < sizeof buf) {
    const ssize_t n = ::read(fd, buf + got, sizeof buf - got);
    if (n <= 0) return false;
    got += static_cast<size_t>(n);
  }
  std::memcpy(out, buf, sizeof buf);
  return true;
}

TEST_F(StoreTest, AcknowledgedRecordsSurviveKill9) {
  const std::string dir = FreshDir("crash");
  const int64_t kill_after[] = {300, 1200, 2500};
  for (int round = 0; round < 3; ++round) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(fds[0]);
      RunCrashChild(dir, round, fds[1]);
    }
    ::close(fds[1]);
    int64_t acked[2] = {0, 0};
    Ack ack{};
    while (acked[0] + acked[1] < kill_after[round] && ReadAck(fds[0], &ack)) {
      acked[ack.thread] = std::max(acked[ack.thread], ack.acked);
    }
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
    while (ReadAck(fds[0], &ack)) {  // acks written before the kill landed
      acked[ack.thread] = std::max(acked[ack.thread], ack.acked);
    }
    ::close(fds[0]);
    int wstatus = 0;
    ASSERT_EQ(::waitpid(pid, &wstatus, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL)
        << "the child stopped by itself, status " << wstatus;
    ASSERT_GE(acked[0] + acked[1], kill_after[round]);

    auto store = OpenOrDie(Options(dir));
    ASSERT_TRUE(store);
    for (int t = 0; t < 2; ++t) {
      for (int64_t i = 0; i < acked[t]; ++i) {
        const std::string id =
            std::to_string(round) + "-" + std::to_string(t) + "-" + std::to_string(i);
        auto got = store->Get(id);
        ASSERT_TRUE(got.ok()) << got.status().ToString();
        ASSERT_TRUE(got->has_value()) << "acknowledged record " << id << " lost; " << acked[t]
                                      << " acknowledged to thread " << t << " in round " << round;
        ASSERT_TRUE(store->FindReplyByKey("key-" + id)->has_value()) << id;
      }
    }
    // Offsets stay dense across the crash (a torn tail is cut, nothing skipped), and once
    // flushed the index holds exactly what the journal holds.
    auto all = ScanAll(*store);
    for (size_t k = 0; k < all.size(); ++k) {
      ASSERT_EQ(all[k].sequence, static_cast<int64_t>(k + 1));
    }
    ASSERT_TRUE(store->Flush().ok());
    EXPECT_EQ(IndexedRows(dir), static_cast<int64_t>(all.size()));
    EXPECT_EQ(RawDb(dir + "/vigil.db").QueryText("PRAGMA integrity_check"), "ok");
  }
}

// Retention drops whole journal segments older than the cutoff, never what the snapshot does not
// hold yet (keep_from) nor the newest segment, and the index rows of what it dropped; what is
// kept reads back unchanged.
TEST_F(StoreTest, RetentionDropsOldSegmentsAndTheirIndexRows) {
  StoreOptions options = Options(FreshDir("retain"));
  options.segment_bytes = 4096;  // a few records a segment
  auto store = OpenOrDie(options);
  for (int i = 1; i <= 60; ++i) {
    ASSERT_TRUE(AppendAndWait(*store, FullRecord("r" + std::to_string(i))).ok());
  }
  ASSERT_TRUE(FlushUntilOk(*store).ok());
  EXPECT_EQ(store->first_sequence(), 1);
  EXPECT_EQ(store->dropped_before_us(), 0) << "nothing dropped yet";
  const auto now_us = [] {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  const int64_t appended_by = now_us();

  // A cutoff before every record drops nothing.
  auto none = store->Retain(/*cutoff_us=*/1, /*keep_from=*/1000);
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_EQ(*none, 0);
  EXPECT_EQ(store->dropped_before_us(), 0);

  // Everything is older than a cutoff in the future, but records from 40 on are not in the
  // snapshot yet: they stay, and so does whatever shares their segment.
  const int64_t future = std::chrono::duration_cast<std::chrono::microseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count() +
                         3600 * 1000000LL;
  auto dropped = store->Retain(future, /*keep_from=*/40);
  ASSERT_TRUE(dropped.ok()) << dropped.status().ToString();
  const int64_t first = store->first_sequence();
  EXPECT_GT(*dropped, 0);
  EXPECT_EQ(first, 1 + *dropped);
  EXPECT_LE(first, 40);
  // The dropped records were all committed before it: a time within the appends.
  EXPECT_GT(store->dropped_before_us(), 0);
  EXPECT_LE(store->dropped_before_us(), appended_by);
  for (int i = 1; i <= 60; ++i) {
    auto got = store->Get("r" + std::to_string(i));
    ASSERT_TRUE(got.ok());
    EXPECT_EQ(got->has_value(), i >= first) << i;
  }
  const std::vector<std::string> ids = ScanIds(*store);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids.front(), "r" + std::to_string(first));
  EXPECT_EQ(ids.back(), "r60");

  // With the snapshot past everything, all but the newest segment go.
  ASSERT_TRUE(store->Retain(future, /*keep_from=*/61).ok());
  EXPECT_GT(store->first_sequence(), first);
  EXPECT_TRUE((*store->Get("r60")).has_value());
  const int64_t dropped_before = store->dropped_before_us();
  EXPECT_GT(dropped_before, 0);
  store.reset();
  // What is kept survives a restart, and nothing dropped comes back.
  auto reopened = OpenOrDie(options);
  const std::vector<std::string> after = ScanIds(*reopened);
  ASSERT_FALSE(after.empty());
  EXPECT_EQ(after.back(), "r60");
  EXPECT_FALSE((*reopened->Get("r1")).has_value());
  EXPECT_EQ(reopened->dropped_before_us(), dropped_before) << "kept in the segment's header";
}

}  // namespace
}  // namespace vigil
