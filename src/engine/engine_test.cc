#include "vigil/engine.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "core/full_disk_for_test.h"
#include "core/transaction_json.h"
#include "engine/model_for_test.h"
#include "monitor/metrics.h"
#include "vigil/features.h"
#include "vigil/model.h"
#include "vigil/simulator.h"

namespace vigil {
namespace {

namespace fs = std::filesystem;

// Waits for outcomes given on any thread.
class Outcomes {
 public:
  Engine::Done Slot() {
    std::lock_guard<std::mutex> lock(mu_);
    const size_t i = all_.size();
    all_.emplace_back();
    return [this, i](ScoreOutcome o) {
      std::lock_guard<std::mutex> lock(mu_);
      all_[i] = std::move(o);
      ++given_;
      cv_.notify_all();
    };
  }
  const std::vector<ScoreOutcome>& Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return given_ == all_.size(); });
    return all_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<ScoreOutcome> all_;
  size_t given_ = 0;
};

ScoreOutcome ScoreNow(Engine& e, Transaction tx, std::string key = "") {
  Outcomes o;
  e.Score(std::move(tx), std::move(key), o.Slot());
  return o.Wait()[0];
}

// A transaction as a client sends it, parsed as every front end parses it.
Transaction Tx(const std::string& id, const std::string& customer = "c1",
               const std::string& terminal = "t1", double amount = 10,
               const std::string& ts = "2024-05-01T12:00:00Z") {
  const std::string body = "{\"transaction_id\":\"" + id + "\",\"customer_id\":\"" + customer +
                           "\",\"terminal_id\":\"" + terminal +
                           "\",\"amount\":" + std::to_string(amount) + ",\"timestamp\":\"" + ts +
                           "\"}";
  TransactionParser parser;
  Transaction tx;
  std::vector<FieldProblem> problems;
  EXPECT_TRUE(parser.Parse(body, &tx, &problems).ok()) << body;
  return tx;
}

class EngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(fs::temp_directory_path() / ("vigil_engine_test_" + std::to_string(getpid())));
    fs::remove_all(*dir_);
    fs::create_directories(*dir_ + "/models");
    TrainModelForTest(*dir_ + "/models/gbdt.model", 10);
    TrainModelForTest(*dir_ + "/models/small.model", 5);
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }

  void SetUp() override {
    data_dir_ = *dir_ + "/" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::create_directories(data_dir_);
  }

  EngineOptions Options() const {
    EngineOptions o;
    o.model_path = *dir_ + "/models/gbdt.model";
    o.data_dir = data_dir_;
    o.explain_top_k = 2;
    return o;
  }
  std::unique_ptr<Engine> OpenOrDie(const EngineOptions& o) {
    auto e = Engine::Open(o);
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    return e.ok() ? std::move(*e) : nullptr;
  }
  std::unique_ptr<Engine> OpenOrDie() { return OpenOrDie(Options()); }

  static std::vector<float> Peek(const Engine& e, const Transaction& tx) {
    std::vector<float> row(Features(FeatureSet::kAll).size());
    e.PeekFeatures(tx, row);
    return row;
  }
  static float Feature(const std::vector<float>& row, const std::string& name) {
    const auto names = FeatureNames(FeatureSet::kAll);
    return row[std::find(names.begin(), names.end(), name) - names.begin()];
  }

  static std::string* dir_;
  std::string data_dir_;
};
std::string* EngineTest::dir_ = nullptr;

TEST_F(EngineTest, ScoresRecordsAndAnswersForATransaction) {
  auto e = OpenOrDie();
  ScoreOutcome o = ScoreNow(*e, Tx("a"));
  ASSERT_TRUE(o.status.ok()) << o.status.ToString();
  EXPECT_FALSE(o.replay);
  auto reply = nlohmann::json::parse(*o.reply);
  EXPECT_EQ(reply["transaction_id"], "a");
  EXPECT_EQ(reply["model"]["name"], "gbdt");
  EXPECT_EQ(reply["model"]["version"], e->model().version);
  EXPECT_LE(reply["reasons"].size(), 2u);

  auto found = e->Find("a");
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ((*found)->record.reply_json, *o.reply);
  // The features the model saw are recorded with their names.
  ASSERT_EQ((*found)->feature_names, FeatureNames(FeatureSet::kAll));
  ASSERT_EQ((*found)->record.features.size(), (*found)->feature_names.size());
  EXPECT_EQ(Feature((*found)->record.features, "amount"), 10.0f);
  EXPECT_EQ(Feature((*found)->record.features, "customer_nb_tx_1d"), 1.0f);
  EXPECT_FALSE(e->Find("b")->has_value());
}

// One id sent by 16 threads at once: scored and counted once, every caller the same reply.
TEST_F(EngineTest, OneIdFromSixteenThreadsIsScoredOnce) {
  auto e = OpenOrDie();
  Outcomes outs;
  std::vector<Engine::Done> slots;
  slots.reserve(16);
  for (int i = 0; i < 16; ++i) slots.push_back(outs.Slot());
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  threads.reserve(16);
  for (int i = 0; i < 16; ++i) {
    threads.emplace_back([&, i] {
      ready.fetch_add(1);
      while (ready.load() < 16) {
      }
      e->Score(Tx("same", "c9", "t9", 42), "", std::move(slots[i]));
    });
  }
  for (auto& t : threads) t.join();
  const auto& all = outs.Wait();
  int fresh = 0;
  for (const ScoreOutcome& o : all) {
    ASSERT_TRUE(o.status.ok()) << o.status.ToString();
    EXPECT_EQ(*o.reply, *all[0].reply);
    fresh += !o.replay;
  }
  EXPECT_EQ(fresh, 1);
  ASSERT_TRUE(e->Flush().ok());
  EXPECT_EQ(e->committed(), 1);
  // Counted once: the next transaction of the customer sees one before it.
  EXPECT_EQ(Feature(Peek(*e, Tx("next", "c9", "t9", 1)), "customer_nb_tx_1d"), 2.0f);
}

// The same id in a batch and in a single request at once: one record, one prediction.
TEST_F(EngineTest, BatchAndSingleRacingOnOneIdCountOnce) {
  auto e = OpenOrDie();
  for (int round = 0; round < 20; ++round) {
    const std::string id = "race-" + std::to_string(round);
    std::vector<Transaction> batch = {Tx("other-" + std::to_string(round), "c2"), Tx(id, "c2")};
    std::mutex mu;
    std::condition_variable cv;
    int given = 0;
    std::vector<ScoreOutcome> batch_out;
    ScoreOutcome single;
    std::thread t([&] {
      e->ScoreBatch(batch, [&](std::vector<ScoreOutcome> o) {
        std::lock_guard<std::mutex> lock(mu);
        batch_out = std::move(o);
        ++given;
        cv.notify_all();
      });
    });
    e->Score(Tx(id, "c2"), "", [&](ScoreOutcome o) {
      std::lock_guard<std::mutex> lock(mu);
      single = std::move(o);
      ++given;
      cv.notify_all();
    });
    t.join();
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return given == 2; });
    ASSERT_TRUE(single.status.ok());
    ASSERT_EQ(batch_out.size(), 2u);
    EXPECT_EQ(*batch_out[1].reply, *single.reply);
    EXPECT_NE(batch_out[1].replay, single.replay);  // exactly one of them scored it
  }
  ASSERT_TRUE(e->Flush().ok());
  EXPECT_EQ(e->committed(), 40);
  EXPECT_EQ(Feature(Peek(*e, Tx("probe", "c2")), "customer_nb_tx_1d"), 41.0f);
}

// Keys and ids are separate namespaces: a key equal to another transaction's id is not a replay.
TEST_F(EngineTest, KeyEqualToAnotherIdIsItsOwnRequest) {
  auto e = OpenOrDie();
  ScoreOutcome first = ScoreNow(*e, Tx("victim", "c3"));
  ASSERT_TRUE(first.status.ok());
  ScoreOutcome mine = ScoreNow(*e, Tx("attacker-tx", "c4"), "victim");
  ASSERT_TRUE(mine.status.ok());
  EXPECT_FALSE(mine.replay);
  EXPECT_EQ(nlohmann::json::parse(*mine.reply)["transaction_id"], "attacker-tx");
  ASSERT_TRUE(e->Flush().ok());
  EXPECT_TRUE(e->Find("attacker-tx")->has_value());
  // And an id equal to a key already used is its own transaction too.
  ScoreOutcome by_key = ScoreNow(*e, Tx("k-tx", "c5"), "shared-name");
  ScoreOutcome by_id = ScoreNow(*e, Tx("shared-name", "c5"));
  ASSERT_TRUE(by_key.status.ok() && by_id.status.ok());
  EXPECT_FALSE(by_id.replay);
  EXPECT_EQ(nlohmann::json::parse(*by_id.reply)["transaction_id"], "shared-name");
}

// A key reused for another transaction is refused, in memory, in flight and from the store.
TEST_F(EngineTest, KeyReusedWithAnotherBodyIsRefused) {
  auto o = Options();
  {
    auto e = OpenOrDie(o);
    ScoreOutcome first = ScoreNow(*e, Tx("p1", "c6"), "key-1");
    ASSERT_TRUE(first.status.ok());
    ScoreOutcome again = ScoreNow(*e, Tx("p1", "c6"), "key-1");
    ASSERT_TRUE(again.status.ok());
    EXPECT_TRUE(again.replay);
    EXPECT_EQ(*again.reply, *first.reply);
    ScoreOutcome other = ScoreNow(*e, Tx("p2", "c6"), "key-1");
    EXPECT_EQ(other.status.code(), StatusCode::kAlreadyExists) << other.status.ToString();
    EXPECT_NE(other.status.message().find("key-1"), std::string::npos);
    ScoreOutcome amount = ScoreNow(*e, Tx("p1", "c6", "t1", 11), "key-1");
    EXPECT_EQ(amount.status.code(), StatusCode::kAlreadyExists);
    ASSERT_TRUE(e->Flush().ok());
    EXPECT_FALSE(e->Find("p2")->has_value());
    EXPECT_EQ(e->committed(), 1);
  }
  // After a restart the store answers: same body replays, another is refused.
  auto e = OpenOrDie(o);
  EXPECT_TRUE(ScoreNow(*e, Tx("p1", "c6"), "key-1").replay);
  EXPECT_EQ(ScoreNow(*e, Tx("p3", "c6"), "key-1").status.code(), StatusCode::kAlreadyExists);
  ASSERT_TRUE(e->Flush().ok());
  EXPECT_FALSE(e->Find("p3")->has_value());
}

// Replies beyond the ones kept in memory are read from the store: every repeat, by id or by key,
// old or recent, gets its first reply byte for byte and counts nothing.
TEST_F(EngineTest, RepeatsOfRepliesMemoryForgotAreAnsweredFromTheStore) {
  auto o = Options();
  o.recent_replies = 4;
  auto e = OpenOrDie(o);
  std::vector<std::string> replies;
  for (int i = 0; i < 20; ++i) {
    const std::string id = "r" + std::to_string(i);
    ScoreOutcome first = ScoreNow(*e, Tx(id, "c9"), i % 2 == 0 ? "key-" + id : "");
    ASSERT_TRUE(first.status.ok()) << first.status.ToString();
    ASSERT_FALSE(first.replay);
    replies.push_back(*first.reply);
  }
  for (int round = 0; round < 2; ++round) {  // the second round finds them remembered again
    for (int i = 0; i < 20; ++i) {
      const std::string id = "r" + std::to_string(i);
      ScoreOutcome by_id = ScoreNow(*e, Tx(id, "c9"));
      ASSERT_TRUE(by_id.status.ok()) << id;
      EXPECT_TRUE(by_id.replay) << id;
      EXPECT_EQ(*by_id.reply, replies[i]) << id;
      if (i % 2 != 0) continue;
      ScoreOutcome by_key = ScoreNow(*e, Tx(id, "c9"), "key-" + id);
      EXPECT_TRUE(by_key.replay) << id;
      EXPECT_EQ(*by_key.reply, replies[i]) << id;
      EXPECT_EQ(ScoreNow(*e, Tx("other-" + id, "c9"), "key-" + id).status.code(),
                StatusCode::kAlreadyExists)
          << "a key is still bound to its first request once memory forgot it: " << id;
    }
  }
  ASSERT_TRUE(e->Flush().ok());
  EXPECT_EQ(e->committed(), 20);
  o.recent_replies = 0;
  EXPECT_EQ(Engine::Open(o).status().code(), StatusCode::kInvalidArgument);
}

// Fills the disk under `e`'s data folder and scores until the store refuses: the journal's last
// page may still take a record or two. Returns the refusal.
ScoreOutcome ScoreUntilTheDiskRefuses(Engine& e, FullDiskForTest& disk, const std::string& tag) {
  disk.Fill();
  ScoreOutcome o;
  for (int i = 0; i < 50; ++i) {
    o = ScoreNow(e, Tx(tag + std::to_string(i), "c7", "t1", 500));
    if (!o.status.ok()) break;
  }
  return o;
}

// While the disk is full nothing is counted; once space returns a retry counts once, without a
// restart.
TEST_F(EngineTest, FailedCommitsCountNothing) {
  FullDiskForTest disk(data_dir_, 8 << 20);
  ASSERT_TRUE(disk.mounted()) << disk.error();
  auto e = OpenOrDie();
  ASSERT_TRUE(ScoreNow(*e, Tx("ok-1", "c7")).status.ok());
  const ScoreOutcome full = ScoreUntilTheDiskRefuses(*e, disk, "fill-");
  ASSERT_EQ(full.status.code(), StatusCode::kUnavailable) << full.status.ToString();
  const std::vector<float> before = Peek(*e, Tx("probe", "c7"));
  for (int i = 0; i < 3; ++i) {
    ScoreOutcome failed = ScoreNow(*e, Tx("blocked", "c7", "t1", 500));
    EXPECT_EQ(failed.status.code(), StatusCode::kUnavailable) << failed.status.ToString();
    EXPECT_EQ(failed.status.message().find("space"), std::string::npos)
        << "no system internals in the outcome: " << failed.status.message();
    EXPECT_EQ(failed.status.message().find(data_dir_), std::string::npos)
        << "no path in the outcome: " << failed.status.message();
    EXPECT_EQ(Peek(*e, Tx("probe", "c7")), before);
  }
  disk.Free();

  ScoreOutcome retried = ScoreNow(*e, Tx("blocked", "c7", "t1", 500));
  ASSERT_TRUE(retried.status.ok()) << retried.status.ToString();
  EXPECT_FALSE(retried.replay);
  EXPECT_EQ(Feature(Peek(*e, Tx("probe", "c7")), "customer_nb_tx_1d"),
            Feature(before, "customer_nb_tx_1d") + 1);
  ASSERT_TRUE(e->Flush().ok());  // the index caught up too
  EXPECT_TRUE(e->Find("blocked")->has_value());
}

// A RowPredictor that runs the model here, as rank `rank`, or fails while `fail` is set; it
// counts its calls and rows, and checks it got the model's bytes.
class CountingPredictor : public RowPredictor {
 public:
  Status Predict(const PredictModel& model, std::span<const float> features, size_t rows,
                 int explain_top_k, std::span<Prediction> out, int* scored_by) override {
    std::lock_guard<std::mutex> lock(mu);
    ++calls;
    batch_rows.push_back(rows);
    bytes = model.bytes.size();
    if (fail) return Unavailable("rank 3 is gone");
    PredictRows(model.scorer, features, rows, explain_top_k, 1, out);
    *scored_by = rank;
    return Status::Ok();
  }
  std::mutex mu;
  int calls = 0, rank = 7;
  bool fail = false;
  size_t bytes = 0;
  std::vector<size_t> batch_rows;
};

std::vector<ScoreOutcome> ScoreBatchNow(Engine& e, std::vector<Transaction> txs) {
  std::mutex mu;
  std::condition_variable cv;
  bool given = false;
  std::vector<ScoreOutcome> out;
  e.ScoreBatch(std::move(txs), [&](std::vector<ScoreOutcome> o) {
    std::lock_guard<std::mutex> lock(mu);
    out = std::move(o);
    given = true;
    cv.notify_all();
  });
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return given; });
  return out;
}

// ScoreBatch counts the features in order, then hands the new rows to the predictor in one call:
// the replies equal those of an engine that runs the model itself, and say who scored them.
TEST_F(EngineTest, ABatchGoesToTheRowPredictorWhole) {
  auto predictor = std::make_shared<CountingPredictor>();
  EngineOptions with = Options();
  with.predictor = predictor;
  auto e = OpenOrDie(with);
  EngineOptions local = Options();
  local.data_dir = data_dir_ + "/local";
  fs::create_directories(local.data_dir);
  auto reference = OpenOrDie(local);
  std::vector<Transaction> txs;
  txs.reserve(6);
  for (int i = 0; i < 5; ++i) {
    txs.push_back(Tx("b" + std::to_string(i), "c3", "t" + std::to_string(i % 2), 10 + 40 * i,
                     "2024-05-01T12:0" + std::to_string(i) + ":00Z"));
  }
  txs.push_back(Tx("b1", "c3"));  // a repeat inside the batch: a replay, not a row
  const std::vector<ScoreOutcome> got = ScoreBatchNow(*e, txs);
  const std::vector<ScoreOutcome> want = ScoreBatchNow(*reference, txs);
  ASSERT_EQ(got.size(), 6u);
  ASSERT_TRUE(got[0].status.ok()) << got[0].status.ToString();
  EXPECT_EQ(predictor->calls, 1);
  EXPECT_EQ(predictor->batch_rows, std::vector<size_t>{5});
  EXPECT_GT(predictor->bytes, 0u);  // the model's bytes, for a predictor that sends them
  for (size_t i = 0; i < 5; ++i) {
    auto a = nlohmann::json::parse(*got[i].reply), b = nlohmann::json::parse(*want[i].reply);
    a.erase("latency_us");
    b.erase("latency_us");
    EXPECT_EQ(a, b) << i;
    EXPECT_EQ(got[i].scored_by, 7);
    EXPECT_EQ(want[i].scored_by, -1);
  }
  EXPECT_TRUE(got[5].replay);
  EXPECT_EQ(got[5].scored_by, -1);
  // Single scores run the model here.
  ASSERT_TRUE(ScoreNow(*e, Tx("single", "c3")).status.ok());
  EXPECT_EQ(predictor->calls, 1);
}

// A predictor that fails (a worker rank lost) counts nothing of the batch: the retry is scored
// as if the first try had never happened.
TEST_F(EngineTest, AFailedRowPredictorCountsNothing) {
  auto predictor = std::make_shared<CountingPredictor>();
  predictor->fail = true;
  EngineOptions o = Options();
  o.predictor = predictor;
  auto e = OpenOrDie(o);
  const std::vector<float> before = Peek(*e, Tx("probe", "c4"));
  const std::vector<Transaction> txs = {Tx("f1", "c4"), Tx("f2", "c4", "t2", 99)};
  std::vector<ScoreOutcome> failed = ScoreBatchNow(*e, txs);
  ASSERT_EQ(failed.size(), 2u);
  EXPECT_EQ(failed[0].status.code(), StatusCode::kUnavailable);
  EXPECT_NE(failed[0].status.message().find("rank 3 is gone"), std::string::npos)
      << failed[0].status.message();
  EXPECT_EQ(Peek(*e, Tx("probe", "c4")), before);
  ASSERT_TRUE(e->Flush().ok());
  EXPECT_EQ(e->committed(), 0);
  EXPECT_FALSE(e->Find("f1")->has_value());

  {
    std::lock_guard<std::mutex> lock(predictor->mu);
    predictor->fail = false;
  }
  std::vector<ScoreOutcome> retried = ScoreBatchNow(*e, txs);
  ASSERT_TRUE(retried[0].status.ok()) << retried[0].status.ToString();
  EXPECT_FALSE(retried[0].replay);
  EXPECT_FALSE(retried[1].replay);
  EXPECT_EQ(Feature(Peek(*e, Tx("probe", "c4")), "customer_nb_tx_1d"),
            Feature(before, "customer_nb_tx_1d") + 2);
  ASSERT_TRUE(e->Flush().ok());
  EXPECT_EQ(e->committed(), 2);
}

// --record async: a reply whose record the full disk refused is forgotten, and it does not keep
// the replies after it in memory (they are evicted once committed, as usual).
TEST_F(EngineTest, AsyncRepliesLostToAFullDiskLeaveMemoryBounded) {
  FullDiskForTest disk(data_dir_, 8 << 20);
  ASSERT_TRUE(disk.mounted()) << disk.error();
  auto o = Options();
  o.record = RecordMode::kAsync;
  o.recent_replies = 4;
  auto e = OpenOrDie(o);
  const auto remembered = [&] {
    const std::string text = e->metrics().Render();
    const size_t at = text.find("\nvigil_recent_replies ");
    EXPECT_NE(at, std::string::npos) << text;
    return at == std::string::npos ? -1 : std::stoi(text.substr(at + 22));
  };
  disk.Fill();
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(ScoreNow(*e, Tx("lost-" + std::to_string(i), "c8")).status.ok())
        << "async answers before the record is written";
  }
  disk.Free();
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(ScoreNow(*e, Tx("kept-" + std::to_string(i), "c8")).status.ok());
  }
  (void)e->Flush();  // index writes refused while the disk was full are not this test's concern
  ASSERT_TRUE(ScoreNow(*e, Tx("last", "c8")).status.ok());  // eviction runs as a reply is kept
  EXPECT_LE(remembered(), 5);
  EXPECT_GE(remembered(), 1);
  // The lost ones were taken back out: a retry is scored anew (the disk has room again).
  EXPECT_FALSE(ScoreNow(*e, Tx("lost-9", "c8")).replay);
  EXPECT_TRUE(ScoreNow(*e, Tx("kept-0", "c8")).replay);
}

// The online state after a restart (rebuilt from the records) equals the live one, whatever
// repeats and failures came before.
TEST_F(EngineTest, FeaturesAfterRestartEqualTheLiveOnes) {
  FullDiskForTest disk(data_dir_, 8 << 20);
  ASSERT_TRUE(disk.mounted()) << disk.error();
  std::vector<Transaction> probes = {Tx("probe-1", "c1", "t1", 77, "2024-05-02T00:00:00Z"),
                                     Tx("probe-2", "c2", "t2", 5, "2024-05-09T06:00:00Z"),
                                     Tx("probe-3", "c7", "t1", 900, "2024-05-20T23:00:00Z")};
  std::vector<std::vector<float>> live;
  {
    auto e = OpenOrDie();
    for (int i = 0; i < 60; ++i) {
      const std::string day = std::to_string(1 + i % 9);
      Transaction tx = Tx("tx-" + std::to_string(i), "c" + std::to_string(i % 3),
                          "t" + std::to_string(i % 4), 10 + i, "2024-05-0" + day + "T1" +
                              std::to_string(i % 10) + ":00:00Z");
      ASSERT_TRUE(ScoreNow(*e, tx).status.ok());
      if (i % 7 == 0) {
        ASSERT_TRUE(ScoreNow(*e, tx).replay);  // repeats
      }
    }
    EXPECT_FALSE(ScoreUntilTheDiskRefuses(*e, disk, "lost-").status.ok());
    disk.Free();
    for (const Transaction& p : probes) live.push_back(Peek(*e, p));
  }
  auto e = OpenOrDie();
  for (size_t i = 0; i < probes.size(); ++i) EXPECT_EQ(Peek(*e, probes[i]), live[i]) << i;
}

// Scores `n` transactions of a few customers and terminals over nine days.
void ScoreMany(Engine& e, int first, int n) {
  for (int i = first; i < first + n; ++i) {
    const std::string day = std::to_string(1 + i % 9);
    Transaction tx = Tx("m-" + std::to_string(i), "c" + std::to_string(i % 5),
                        "t" + std::to_string(i % 3), 10 + i % 50,
                        "2024-05-0" + day + "T1" + std::to_string(i % 10) + ":00:00Z");
    ASSERT_TRUE(ScoreNow(e, tx).status.ok()) << i;
  }
}

// A stop writes a snapshot: the next start loads it and replays nothing, with the same state.
TEST_F(EngineTest, RestartAfterAStopLoadsTheSnapshotAndReplaysNothing) {
  const Transaction probe = Tx("probe", "c1", "t1", 40, "2024-05-09T23:00:00Z");
  std::vector<float> live;
  {
    auto e = OpenOrDie();
    ScoreMany(*e, 0, 40);
    live = Peek(*e, probe);
  }
  auto e = OpenOrDie();
  EXPECT_EQ(e->startup().snapshot_through, 40);
  EXPECT_EQ(e->startup().replayed, 0);
  EXPECT_EQ(Peek(*e, probe), live);
  // The ids the snapshot holds are still known: a repeat is a replay, not a new transaction.
  ScoreOutcome again = ScoreNow(*e, Tx("m-7", "c2", "t1", 17, "2024-05-08T17:00:00Z"));
  EXPECT_TRUE(again.replay);
}

// Snapshots come every snapshot_every_records while the engine runs; a crash image (the data
// folder copied while it runs, as a kill -9 leaves it) starts from the newest and replays the
// records after it, to the same state as replaying everything.
TEST_F(EngineTest, ACrashImageStartsFromTheNewestSnapshotAndReplaysTheRest) {
  auto o = Options();
  o.snapshot_every_records = 10;
  const Transaction probe = Tx("probe", "c3", "t2", 40, "2024-05-09T23:00:00Z");
  auto e = OpenOrDie(o);
  ScoreMany(*e, 0, 25);
  // The snapshotter follows the journal within a second; wait for its snapshot of 20.
  for (int i = 0; i < 600 && e->snapshot_through() < 20; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_GE(e->snapshot_through(), 20);
  const std::vector<float> live = Peek(*e, probe);
  const std::string image = data_dir_ + "-image";
  fs::remove_all(image);
  fs::copy(data_dir_, image, fs::copy_options::recursive);
  fs::remove(image + "/journal/LOCK");  // the running engine's lock file is not a lock

  auto copy = o;
  copy.data_dir = image;
  {
    auto restarted = OpenOrDie(copy);
    const StartupInfo s = restarted->startup();
    EXPECT_GE(s.snapshot_through, 20);
    EXPECT_EQ(s.snapshot_through + s.replayed, 25);
    EXPECT_EQ(Peek(*restarted, probe), live);
  }
  // Without snapshots, a whole replay reaches the same state.
  fs::remove_all(image + "/snapshots");
  auto full = OpenOrDie(copy);
  EXPECT_EQ(full->startup().snapshot_through, 0);
  EXPECT_EQ(full->startup().replayed, 25);
  EXPECT_EQ(Peek(*full, probe), live);
  fs::remove_all(image);
}

// A damaged newest snapshot is passed over for the one before it.
TEST_F(EngineTest, ADamagedSnapshotIsPassedOver) {
  auto o = Options();
  const Transaction probe = Tx("probe", "c4", "t0", 40, "2024-05-09T23:00:00Z");
  std::vector<float> live;
  {
    auto e = OpenOrDie(o);
    ScoreMany(*e, 0, 12);
  }
  {
    auto e = OpenOrDie(o);
    ScoreMany(*e, 12, 12);
    live = Peek(*e, probe);
  }
  std::vector<std::string> snaps;
  for (const auto& f : fs::directory_iterator(data_dir_ + "/snapshots")) {
    snaps.push_back(f.path().string());
  }
  std::sort(snaps.begin(), snaps.end());
  ASSERT_EQ(snaps.size(), 2u);
  {
    std::fstream f(snaps.back(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('\x7f');
  }
  auto e = OpenOrDie(o);
  EXPECT_EQ(e->startup().snapshot_through, 12);
  EXPECT_EQ(e->startup().replayed, 12);
  EXPECT_EQ(Peek(*e, probe), live);
}

TEST_F(EngineTest, LabelsReachTheTerminalRiskWindows) {
  auto e = OpenOrDie();
  ASSERT_TRUE(ScoreNow(*e, Tx("fraud-1", "c1", "risky", 100, "2024-05-01T10:00:00Z")).status.ok());
  ASSERT_TRUE(ScoreNow(*e, Tx("fine-1", "c2", "risky", 100, "2024-05-01T11:00:00Z")).status.ok());
  const Transaction later = Tx("later", "c3", "risky", 10, "2024-05-08T12:00:00Z");
  EXPECT_EQ(Feature(Peek(*e, later), "terminal_risk_1d"), 0.0f);
  ASSERT_TRUE(e->AddLabel("fraud-1", true).ok());
  EXPECT_EQ(Feature(Peek(*e, later), "terminal_risk_1d"), 0.5f);
  EXPECT_EQ(e->AddLabel("never-seen", true).code(), StatusCode::kNotFound);
}

TEST_F(EngineTest, ReloadTakesANameInTheModelsFolderOnly) {
  auto o = Options();
  o.max_model_bytes = 4 << 20;
  auto e = OpenOrDie(o);
  const std::string first = e->model().version;
  for (const char* bad : {"../models/gbdt", "/etc/passwd", "a/b", ".hidden", "..", "x y",
                          "-rf", ""}) {
    if (std::string_view(bad).empty()) continue;  // empty means "the current file"
    auto r = e->Reload(bad);
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(e->Reload("missing").status().code(), StatusCode::kNotFound);

  const std::string models = *dir_ + "/models";
  // Not a model: the reply must not quote the file.
  std::ofstream(models + "/secret.model") << "root:x:0:0:root:/root:/bin/bash\n";
  auto garbage = e->Reload("secret");
  EXPECT_EQ(garbage.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(garbage.status().message().find("root"), std::string::npos)
      << garbage.status().message();
  EXPECT_EQ(garbage.status().message().find(models), std::string::npos)
      << "no file path in the message: " << garbage.status().message();
  // A FIFO is refused without blocking; a device too; an oversized file unread.
  ASSERT_EQ(mkfifo((models + "/fifo.model").c_str(), 0600), 0);
  EXPECT_EQ(e->Reload("fifo").status().code(), StatusCode::kInvalidArgument);
  fs::create_symlink("/dev/zero", models + "/zero.model");
  EXPECT_EQ(e->Reload("zero").status().code(), StatusCode::kInvalidArgument);
  {
    std::ofstream big(models + "/big.model");
    big.seekp((8 << 20) - 1);
    big.put('x');
  }
  auto big = e->Reload("big");
  EXPECT_EQ(big.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(big.status().message().find("larger than the limit"), std::string::npos);
  EXPECT_EQ(e->model().version, first);  // none of that changed the model

  auto small = e->Reload("small");
  ASSERT_TRUE(small.ok()) << small.status().ToString();
  EXPECT_EQ(small->name, "small");
  EXPECT_NE(small->version, first);
  EXPECT_EQ(e->model().name, "small");
  EXPECT_TRUE(e->Reload("gbdt.model").ok());
  EXPECT_EQ(e->model().version, first);
  for (const char* f : {"secret.model", "fifo.model", "zero.model", "big.model"}) {
    fs::remove(models + "/" + f);
  }
}

// EngineOptions::kernel reaches every model loaded, reloads too, and the model info names the
// kernel; kAuto's choice (timed at load) is a kernel, and scores the same as a forced one.
TEST_F(EngineTest, TheKernelOptionForcesTheKernelOfEveryModel) {
  auto chosen = OpenOrDie();
  ASSERT_NE(chosen, nullptr);
  EXPECT_NE(chosen->model().kernel, Kernel::kAuto);
  auto o = Options();
  o.kernel = Kernel::kScalar;
  o.data_dir = data_dir_ + "/scalar";
  fs::create_directories(o.data_dir);
  auto scalar = OpenOrDie(o);
  ASSERT_NE(scalar, nullptr);
  EXPECT_EQ(scalar->model().kernel, Kernel::kScalar);
  const ScoreOutcome a = ScoreNow(*chosen, Tx("k"));
  const ScoreOutcome b = ScoreNow(*scalar, Tx("k"));
  ASSERT_TRUE(a.status.ok() && b.status.ok());
  EXPECT_EQ(nlohmann::json::parse(*a.reply)["score"], nlohmann::json::parse(*b.reply)["score"]);
  auto small = scalar->Reload("small");
  ASSERT_TRUE(small.ok()) << small.status().ToString();
  EXPECT_EQ(small->kernel, Kernel::kScalar);
}

// Reloads while other threads score: every transaction gets a prediction from one model or
// the other, none fails.
TEST_F(EngineTest, ReloadWhileScoring) {
  auto e = OpenOrDie();
  std::atomic<bool> done{false};
  std::atomic<int> failures{0};
  std::vector<std::thread> scorers;
  scorers.reserve(2);
  for (int t = 0; t < 2; ++t) {
    scorers.emplace_back([&, t] {
      for (int i = 0; i < 300; ++i) {
        ScoreOutcome o = ScoreNow(*e, Tx("r" + std::to_string(t) + "-" + std::to_string(i)));
        if (!o.status.ok()) failures.fetch_add(1);
      }
    });
  }
  std::thread reloader([&] {
    for (int i = 0; i < 10; ++i) {
      if (!e->Reload(i % 2 ? "gbdt" : "small").ok()) failures.fetch_add(1);
    }
    done = true;
  });
  for (auto& t : scorers) t.join();
  reloader.join();
  EXPECT_EQ(failures.load(), 0);
  ASSERT_TRUE(e->Flush().ok());
  EXPECT_EQ(e->committed(), 600);
}

TEST_F(EngineTest, StoppedEngineRefusesWork) {
  auto e = OpenOrDie();
  e->Stop();
  EXPECT_EQ(ScoreNow(*e, Tx("late")).status.code(), StatusCode::kUnavailable);
  EXPECT_FALSE(e->Ready().ok());
}

// A simulated data set of `days` days, its features, and a small model trained on them.
struct SmallSetup {
  Dataset data;
  FeatureMatrix features;
  std::unique_ptr<Scorer> scorer;
};
SmallSetup TrainSmall(int days) {
  SimulatorOptions so;
  so.customers = 50;
  so.terminals = 100;
  so.days = days;
  SmallSetup s;
  s.data = *Simulate(so);
  s.features = ComputeFeatures(s.data, FeatureSet::kAll, {});
  std::vector<uint8_t> y(s.data.fraud.begin(), s.data.fraud.end());
  TrainOptions o;
  o.params = {{"n_estimators", "5"}};
  o.threads = 1;
  auto model = TrainModel(s.features.values, y, s.features.names, o);
  EXPECT_TRUE(model.ok());
  if (!model.ok()) return s;
  auto scorer = Scorer::Create(*model);
  EXPECT_TRUE(scorer.ok());
  if (scorer.ok()) s.scorer = std::move(*scorer);
  return s;
}

TEST(ScoreDatasetTest, PredictsEveryRowInOrderWhateverTheThreads) {
  SmallSetup setup = TrainSmall(10);
  ASSERT_NE(setup.scorer, nullptr);
  const Dataset& data = setup.data;
  const Scorer& scorer = *setup.scorer;
  std::vector<std::vector<double>> by_threads;
  for (int threads : {1, 3}) {
    std::vector<double> scores;
    BatchScoreOptions bo;
    bo.threads = threads;
    ASSERT_TRUE(ScoreDataset(scorer, data, bo, [&](size_t row, const Prediction& p) {
                  EXPECT_EQ(row, scores.size());
                  scores.push_back(p.score);
                }).ok());
    EXPECT_EQ(scores.size(), data.size());
    by_threads.push_back(scores);
  }
  EXPECT_EQ(by_threads[0], by_threads[1]);
  BatchScoreOptions bad;
  bad.threads = -1;
  EXPECT_EQ(ScoreDataset(scorer, data, bad, [](size_t, const Prediction&) {}).code(),
            StatusCode::kInvalidArgument);
}

TEST(PredictRowsTest, EqualsPredictOnEachRowWhateverTheThreads) {
  SmallSetup setup = TrainSmall(20);
  ASSERT_NE(setup.scorer, nullptr);
  const FeatureMatrix& m = setup.features;
  const Scorer& scorer = *setup.scorer;
  // Not a multiple of the chunk, so the last chunk is a short one.
  const size_t rows = std::min<size_t>(m.rows, 1000);
  ASSERT_GT(rows, 600u);
  const std::span<const float> features(m.values.data(), rows * m.cols());
  for (int threads : {1, 2, 5}) {
    std::vector<Prediction> out(rows);
    PredictRows(scorer, features, rows, 2, threads, out);
    for (size_t i = 0; i < rows; i += 97) {
      const Prediction want = Predict(scorer, features.subspan(i * m.cols(), m.cols()), 2);
      EXPECT_EQ(out[i].score, want.score) << "row " << i << ", " << threads << " threads";
      EXPECT_EQ(out[i].decision, want.decision);
      ASSERT_EQ(out[i].reasons.size(), want.reasons.size());
      for (size_t k = 0; k < want.reasons.size(); ++k) EXPECT_EQ(out[i].reasons[k].code, want.reasons[k].code);
    }
    EXPECT_EQ(out[rows - 1].score, Predict(scorer, features.subspan((rows - 1) * m.cols(), m.cols()), 2).score);
  }
}

}  // namespace
}  // namespace vigil
