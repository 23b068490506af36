#include "process/processor.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <future>
#include <nlohmann/json.hpp>

#include "core/log.h"
#include "core/transaction_json.h"
#include "engine/model_for_test.h"
#include "queue/embedded_queue.h"

namespace vigil {
namespace {

namespace fs = std::filesystem;

class ProcessorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(fs::temp_directory_path() / ("vigil_processor_test_" + std::to_string(getpid())));
    fs::remove_all(*dir_);
    fs::create_directories(*dir_);
    TrainModelForTest(*dir_ + "/gbdt.model", 5, 100, 20);
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }

  void SetUp() override {
    SetLogSink([](std::string_view) {});
    data_ = *dir_ + "/" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::create_directories(data_);
    EngineOptions eo;
    eo.model_path = *dir_ + "/gbdt.model";
    eo.data_dir = data_;
    auto e = Engine::Open(eo);
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    engine_ = std::move(*e);
    QueueOptions qo;
    qo.data_dir = data_;
    qo.clock_us = [this] { return now_us_.load(); };  // leases run out when a test says
    auto q = OpenEmbeddedQueue(qo);
    ASSERT_TRUE(q.ok()) << q.status().ToString();
    queue_ = std::move(*q);
  }
  void TearDown() override {
    queue_.reset();
    engine_.reset();
    SetLogSink({});
  }

  std::string Push(const std::string& queue, const std::string& content) {
    std::vector<PushItem> items = {{content, "transaction"}};
    std::string id;
    queue_->Push(queue, items, [&](StatusOr<std::vector<std::string>> r) {
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      id = r->front();
    });
    return id;
  }
  // Runs a processor until the input queues are empty.
  ProcessorStats RunToIdle(ProcessorOptions o = {}) {
    o.exit_when_idle = true;
    auto p = Processor::Start(*engine_, *queue_, o);
    EXPECT_TRUE(p.ok()) << p.status().ToString();
    if (!p.ok()) return {};
    (*p)->Wait();
    return (*p)->stats();
  }
  std::vector<nlohmann::json> Records() {
    PullOptions p;
    p.max = 1000;
    auto got = queue_->Pull("PQ1", p);
    EXPECT_TRUE(got.ok());
    std::vector<nlohmann::json> out;
    for (const QueueMessage& m : *got) out.push_back(nlohmann::json::parse(m.content));
    return out;
  }

  static std::string* dir_;
  std::atomic<int64_t> now_us_{1700000000000000};
  std::string data_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<Queue> queue_;
};
std::string* ProcessorTest::dir_ = nullptr;

constexpr const char* kTx =
    R"({"transaction_id": "%s", "customer_id": "cust_001", "vendor_id": 17, "amount": %s,)"
    R"( "status": "submitted", "timestamp": "2018-05-01T12:00:00.250000"})";

std::string Tx(const std::string& id, const std::string& amount = "25.5") {
  char buf[512];
  std::snprintf(buf, sizeof buf, kTx, id.c_str(), amount.c_str());
  return buf;
}

TEST_F(ProcessorTest, ScoresQueuedTransactionsIntoPredictionRecordsAndDeadLettersTheRest) {
  Push("TQ1", Tx("a"));
  Push("TQ2", Tx("b", "900"));
  const std::string bad = Push("TQ1", R"({"customer_id": "cust_002", "amount": "lots"})");
  const std::string no_id = Push("TQ2", R"({"customer_id": 3, "terminal_id": 4, "amount": 1, "timestamp": "2018-05-01T13:00:00"})");
  ProcessorStats st = RunToIdle();
  EXPECT_EQ(st.processed, 3u);
  EXPECT_EQ(st.errors, 1u);

  std::map<std::string, nlohmann::json> by_id;
  for (auto& r : Records()) by_id[r["transaction_id"].get<std::string>()] = r;
  ASSERT_EQ(by_id.size(), 4u);
  const auto& a = by_id["a"];
  EXPECT_EQ(a["status"], "scored");
  EXPECT_EQ(a["customer_id"], "cust_001");
  EXPECT_EQ(a["vendor_id"], "17");
  EXPECT_EQ(a["amount"], 25.5);
  EXPECT_EQ(a["transaction_status"], "submitted");
  EXPECT_EQ(a["processor_rank"], 0);
  EXPECT_EQ(a["queue"], "TQ1");
  EXPECT_TRUE(a["prediction"].is_boolean());
  const double score = a["score"].get<double>();
  EXPECT_DOUBLE_EQ(a["confidence"].get<double>(), std::max(score, 1 - score));
  EXPECT_EQ(a["prediction"].get<bool>(), a["decision"] != "approve");
  EXPECT_EQ(by_id[no_id]["message_id"], no_id);  // the message id is its transaction id
  const auto& err = by_id[bad];
  EXPECT_EQ(err["status"], "error");
  EXPECT_TRUE(err["prediction"].is_null());
  EXPECT_NE(err["error"].get<std::string>().find("amount"), std::string::npos) << err["error"];
  EXPECT_NE(err["error"].get<std::string>().find("timestamp"), std::string::npos) << err["error"];

  // Each scored one is recorded, as by /v1/score; the bad one is a dead letter.
  for (const std::string id : {"a", "b", no_id.c_str()}) {
    auto found = engine_->Find(id);
    ASSERT_TRUE(found.ok() && found->has_value()) << id;
  }
  auto dead = queue_->DeadLetters("TQ1", 10);
  ASSERT_EQ(dead->size(), 1u);
  EXPECT_EQ((*dead)[0].id, bad);
  EXPECT_EQ((*dead)[0].last_error, err["error"]);
  EXPECT_EQ(queue_->Stats("TQ1")->in_flight, 0u);
  EXPECT_EQ(queue_->Stats("TQ2")->depth, 0u);
}

// A processor that scored a batch and died before its ack: the lease runs out, another processor
// gets the messages again, and the engine answers with the first reply without counting it again.
TEST_F(ProcessorTest, ARedeliveryAfterACrashBeforeTheAckIsScoredOnce) {
  Push("TQ1", Tx("r1"));
  PullOptions lease;
  lease.lease = std::chrono::milliseconds(300);
  auto taken = queue_->Pull("TQ1", lease);
  ASSERT_EQ(taken->size(), 1u);
  std::promise<ScoreOutcome> first;
  Transaction tx;
  TransactionParser parser;
  std::vector<FieldProblem> problems;
  TransactionParseOptions po;
  po.zoneless_timestamps_are_utc = true;
  ASSERT_TRUE(parser.Parse((*taken)[0].content, &tx, &problems, po).ok());
  engine_->Score(tx, "", [&](ScoreOutcome o) { first.set_value(std::move(o)); });
  const ScoreOutcome scored = first.get_future().get();
  ASSERT_TRUE(scored.status.ok());
  const int64_t committed = engine_->committed();
  now_us_ += 400000;  // the "crashed" processor's lease runs out

  ProcessorStats st = RunToIdle();
  EXPECT_EQ(st.processed, 1u);
  auto records = Records();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0]["transaction_id"], "r1");
  EXPECT_EQ(records[0]["score"], nlohmann::json::parse(*scored.reply)["score"]);
  EXPECT_EQ(engine_->committed(), committed);  // a replay: no second record, no second count
  EXPECT_EQ(queue_->Stats("TQ1")->depth + queue_->Stats("TQ1")->in_flight, 0u);
}

TEST_F(ProcessorTest, RefusesOptionsOutOfRange) {
  ProcessorOptions o;
  o.threads = 0;
  EXPECT_EQ(Processor::Start(*engine_, *queue_, o).status().code(), StatusCode::kInvalidArgument);
  o = {};
  o.input_queues = {"TQ1", "PQ1"};
  auto s = Processor::Start(*engine_, *queue_, o);
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("cannot also be an input"), std::string::npos);
  o = {};
  o.input_queues = {"bad name"};
  EXPECT_EQ(Processor::Start(*engine_, *queue_, o).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace vigil
