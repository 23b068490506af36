#include "queue/embedded_queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/full_disk_for_test.h"
#include "core/log.h"

namespace vigil {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;

class EmbeddedQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "queue_" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    SetLogSink([](std::string_view) {});
  }
  void TearDown() override {
    queue_.reset();
    SetLogSink({});
    fs::remove_all(dir_);
  }

  QueueOptions Options() {
    QueueOptions o;
    o.data_dir = dir_;
    o.clock_us = [this] { return now_us_.load(); };
    return o;
  }
  void Open(const QueueOptions& o, uint64_t segment_bytes = uint64_t{64} << 20) {
    queue_.reset();
    auto q = OpenEmbeddedQueue(o, segment_bytes);
    ASSERT_TRUE(q.ok()) << q.status().ToString();
    queue_ = std::move(*q);
  }
  void Open() { Open(Options()); }

  StatusOr<std::vector<std::string>> Push(const std::string& queue, const std::vector<std::string>& contents,
                                          const std::string& type = "transaction") {
    std::vector<PushItem> items;
    items.reserve(contents.size());
    for (const std::string& c : contents) items.push_back({c, type});
    StatusOr<std::vector<std::string>> result = Internal("done not called");
    queue_->Push(queue, items, [&](StatusOr<std::vector<std::string>> r) { result = std::move(r); });
    return result;
  }
  std::string PushOne(const std::string& queue, const std::string& content) {
    auto ids = Push(queue, {content});
    EXPECT_TRUE(ids.ok()) << ids.status().ToString();
    return ids.ok() ? ids->front() : "";
  }
  std::vector<QueueMessage> Pull(const std::string& queue, size_t max, milliseconds lease = milliseconds(0)) {
    PullOptions p;
    p.max = max;
    p.lease = lease;
    auto r = queue_->Pull(queue, p);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : std::vector<QueueMessage>{};
  }
  static std::vector<std::string> Contents(const std::vector<QueueMessage>& ms) {
    std::vector<std::string> out;
    out.reserve(ms.size());
    for (const auto& m : ms) out.push_back(m.content);
    return out;
  }
  static std::vector<std::string> Ids(const std::vector<QueueMessage>& ms) {
    std::vector<std::string> out;
    out.reserve(ms.size());
    for (const auto& m : ms) out.push_back(m.id);
    return out;
  }
  QueueStats StatsOf(const std::string& queue) {
    auto s = queue_->Stats(queue);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? *s : QueueStats{};
  }
  void Advance(seconds s) { now_us_ += s.count() * 1000000; }

  std::string dir_;
  std::atomic<int64_t> now_us_{1700000000000000};
  std::unique_ptr<Queue> queue_;
};

TEST_F(EmbeddedQueueTest, DefaultQueuesExistAndAreEmpty) {
  Open();
  std::set<std::string> names;
  for (const QueueStats& s : queue_->List()) names.insert(s.name);
  EXPECT_EQ(names, (std::set<std::string>{"PQ1", "TQ1", "TQ2"}));
  EXPECT_TRUE(Pull("TQ1", 10).empty());
  auto missing = queue_->Pull("nope", PullOptions{});
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

TEST_F(EmbeddedQueueTest, PlainPullsTakeMessagesInPushOrderOnce) {
  Open();
  auto ids = Push("TQ1", {"{\"n\":1}", "{\"n\":2}", "{\"n\":3}"});
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(*ids, (std::vector<std::string>{"TQ1-1", "TQ1-2", "TQ1-3"}));
  auto first = Pull("TQ1", 2);
  EXPECT_EQ(Contents(first), (std::vector<std::string>{"{\"n\":1}", "{\"n\":2}"}));
  EXPECT_EQ(first[0].attempt, 1);
  EXPECT_EQ(first[0].message_type, "transaction");
  EXPECT_EQ(first[0].enqueued_us, now_us_.load());
  EXPECT_EQ(first[0].lease_expires_us, 0);
  EXPECT_EQ(Contents(Pull("TQ1", 5)), (std::vector<std::string>{"{\"n\":3}"}));
  EXPECT_TRUE(Pull("TQ1", 5).empty());
  // Taken means gone, also after a restart and after any time.
  Open();
  Advance(seconds(3600));
  EXPECT_TRUE(Pull("TQ1", 5).empty());
  EXPECT_EQ(StatsOf("TQ1").depth, 0u);
}

TEST_F(EmbeddedQueueTest, ALeaseHidesItsMessagesUntilItRunsOut) {
  Open();
  ASSERT_TRUE(Push("TQ1", {"a", "b"}).ok());
  auto leased = Pull("TQ1", 1, seconds(30));
  ASSERT_EQ(Contents(leased), (std::vector<std::string>{"a"}));
  EXPECT_EQ(leased[0].lease_expires_us, now_us_.load() + 30000000);
  // Another consumer gets the next one, never the leased one.
  EXPECT_EQ(Contents(Pull("TQ1", 10, seconds(30))), (std::vector<std::string>{"b"}));
  EXPECT_TRUE(Pull("TQ1", 10, seconds(30)).empty());
  QueueStats s = StatsOf("TQ1");
  EXPECT_EQ(s.depth, 0u);
  EXPECT_EQ(s.in_flight, 2u);
  Advance(seconds(29));
  EXPECT_TRUE(Pull("TQ1", 10).empty());
  Advance(seconds(2));
  auto again = Pull("TQ1", 10, seconds(30));
  ASSERT_EQ(Contents(again), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(again[0].attempt, 2);
  EXPECT_EQ(again[0].id, leased[0].id);
  EXPECT_EQ(StatsOf("TQ1").expired, 2u);
}

TEST_F(EmbeddedQueueTest, AcknowledgedMessagesAreDoneAndStaleAcksAreRefused) {
  Open();
  ASSERT_TRUE(Push("TQ1", {"a", "b", "c"}).ok());
  auto leased = Pull("TQ1", 3, seconds(10));
  ASSERT_EQ(leased.size(), 3u);
  // One bad id and nothing is acknowledged.
  std::vector<std::string> ids = {leased[0].id, "TQ1-999", "garbage", leased[0].id, "TQ2-2"};
  auto r = queue_->Ack("TQ1", ids);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE((*r)[0].ok());
  for (size_t i = 1; i < ids.size(); ++i) EXPECT_EQ((*r)[i].code(), StatusCode::kNotFound) << ids[i];
  EXPECT_EQ(StatsOf("TQ1").in_flight, 3u);
  std::vector<std::string> good = {leased[0].id};
  r = queue_->Ack("TQ1", good);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE((*r)[0].ok());
  // A lease that ran out cannot be acknowledged: the message may be with another consumer.
  Advance(seconds(11));
  std::vector<std::string> late = {leased[1].id};
  auto stale = queue_->Ack("TQ1", late);
  ASSERT_TRUE(stale.ok());
  EXPECT_EQ((*stale)[0].code(), StatusCode::kNotFound);
  EXPECT_EQ(Contents(Pull("TQ1", 10)), (std::vector<std::string>{"b", "c"}));
  QueueStats s = StatsOf("TQ1");
  EXPECT_EQ(s.acked, 1u);
  EXPECT_EQ(s.in_flight, 0u);
  EXPECT_EQ(queue_->Ack("nope", late).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(queue_->Ack("TQ1", {}).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(EmbeddedQueueTest, NackGivesBackAfterItsDelayInOrder) {
  Open();
  ASSERT_TRUE(Push("TQ1", {"a", "b", "c"}).ok());
  auto leased = Pull("TQ1", 2, seconds(60));
  NackOptions delay;
  delay.delay = seconds(5);
  std::vector<std::string> first = {leased[0].id};
  auto r = queue_->Nack("TQ1", first, delay);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE((*r)[0].ok());
  EXPECT_EQ(StatsOf("TQ1").depth, 2u);  // "a" (delayed) and "c"
  EXPECT_EQ(Contents(Pull("TQ1", 10, seconds(60))), (std::vector<std::string>{"c"}));
  Advance(seconds(6));
  auto back = Pull("TQ1", 10);
  ASSERT_EQ(Contents(back), (std::vector<std::string>{"a"}));
  EXPECT_EQ(back[0].attempt, 2);
  NackOptions too_long;
  too_long.delay = std::chrono::hours(13);
  EXPECT_EQ(queue_->Nack("TQ1", first, too_long).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(EmbeddedQueueTest, MessagesGoToTheDeadLettersAfterTheirLastAttemptAndCanBeRequeued) {
  QueueOptions o = Options();
  o.max_attempts = 2;
  Open(o);
  ASSERT_TRUE(Push("TQ1", {"poison", "fine"}).ok());
  for (int attempt = 1; attempt <= 2; ++attempt) {
    auto m = Pull("TQ1", 1, seconds(10));
    ASSERT_EQ(Contents(m), (std::vector<std::string>{"poison"})) << attempt;
    EXPECT_EQ(m[0].attempt, attempt);
    Advance(seconds(11));
  }
  EXPECT_EQ(Contents(Pull("TQ1", 10)), (std::vector<std::string>{"fine"}));
  auto dead = queue_->DeadLetters("TQ1", 10);
  ASSERT_TRUE(dead.ok());
  ASSERT_EQ(dead->size(), 1u);
  EXPECT_EQ((*dead)[0].content, "poison");
  EXPECT_EQ((*dead)[0].attempt, 2);
  EXPECT_NE((*dead)[0].last_error.find("lease ran out"), std::string::npos) << (*dead)[0].last_error;
  QueueStats s = StatsOf("TQ1");
  EXPECT_EQ(s.dead_letters, 1u);
  EXPECT_EQ(s.dead_lettered, 1u);
  // Dead letters survive a restart.
  Open(o);
  ASSERT_EQ(queue_->DeadLetters("TQ1", 10)->size(), 1u);
  std::vector<std::string> ids = {(*dead)[0].id, "TQ1-77"};
  auto n = queue_->Requeue("TQ1", ids);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 1u);
  auto again = Pull("TQ1", 10);
  ASSERT_EQ(Contents(again), (std::vector<std::string>{"poison"}));
  EXPECT_EQ(again[0].attempt, 1);
  EXPECT_TRUE(again[0].last_error.empty());
  EXPECT_EQ(StatsOf("TQ1").dead_letters, 0u);
}

TEST_F(EmbeddedQueueTest, ANackCanDeadLetterAtOnceWithAReason) {
  Open();
  ASSERT_TRUE(Push("TQ1", {"not a transaction", "ok"}).ok());
  auto m = Pull("TQ1", 2, seconds(30));
  NackOptions dead;
  dead.dead_letter = true;
  dead.reason = "amount must be a number";
  std::vector<std::string> ids = {m[0].id};
  ASSERT_TRUE(queue_->Nack("TQ1", ids, dead).ok());
  auto letters = queue_->DeadLetters("TQ1", 10);
  ASSERT_EQ(letters->size(), 1u);
  EXPECT_EQ((*letters)[0].last_error, "amount must be a number");
  // Requeue with no ids takes them all.
  EXPECT_EQ(*queue_->Requeue("TQ1", {}), 1u);
  EXPECT_EQ(Contents(Pull("TQ1", 10)), (std::vector<std::string>{"not a transaction"}));
}

TEST_F(EmbeddedQueueTest, EveryStateChangeSurvivesAReopen) {
  Open();
  ASSERT_TRUE(Push("TQ1", {"taken", "acked", "leased", "dead", "delayed", "waiting"}).ok());
  ASSERT_FALSE(Pull("TQ1", 1).empty());                                 // taken
  auto leased = Pull("TQ1", 4, seconds(60));      // acked, leased, dead, delayed
  std::vector<std::string> ack = {leased[0].id}, dead = {leased[2].id}, later = {leased[3].id};
  ASSERT_TRUE(queue_->Ack("TQ1", ack).ok());
  NackOptions d;
  d.dead_letter = true;
  ASSERT_TRUE(queue_->Nack("TQ1", dead, d).ok());
  NackOptions delay;
  delay.delay = seconds(300);
  ASSERT_TRUE(queue_->Nack("TQ1", later, delay).ok());
  const QueueStats before = StatsOf("TQ1");
  EXPECT_EQ(before.depth, 2u);
  EXPECT_EQ(before.in_flight, 1u);
  EXPECT_EQ(before.dead_letters, 1u);

  Open();
  const QueueStats after = StatsOf("TQ1");
  EXPECT_EQ(after.depth, before.depth);
  EXPECT_EQ(after.in_flight, before.in_flight);
  EXPECT_EQ(after.dead_letters, before.dead_letters);
  // The lease still holds after the restart: nobody else gets "leased" while it does.
  auto waiting = Pull("TQ1", 10, seconds(60));
  EXPECT_EQ(Contents(waiting), (std::vector<std::string>{"waiting"}));
  std::vector<std::string> still = {leased[1].id, waiting[0].id};
  auto r = queue_->Ack("TQ1", still);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE((*r)[0].ok());
  EXPECT_TRUE((*r)[1].ok());
  Advance(seconds(301));
  auto back = Pull("TQ1", 10);
  ASSERT_EQ(Contents(back), (std::vector<std::string>{"delayed"}));
  EXPECT_EQ(back[0].attempt, 2);
}

TEST_F(EmbeddedQueueTest, IdsAreNeverReusedAcrossRestarts) {
  Open();
  ASSERT_TRUE(Push("TQ1", {"1", "2"}).ok());
  ASSERT_FALSE(Pull("TQ1", 2).empty());
  Open();
  auto b = Push("TQ1", {"3"});
  ASSERT_TRUE(b.ok());
  // Sequences are journal offsets: 1 and 2 were the pushes, 3 the record of the pull.
  EXPECT_EQ(b->front(), "TQ1-4");
}

TEST_F(EmbeddedQueueTest, NewQueuesAreCreatedOnFirstPushAndNamesAreChecked) {
  Open();
  EXPECT_EQ(PushOne("orders_v2-x", "{}"), "orders_v2-x-1");
  auto s = queue_->Stats("orders_v2-x");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->depth, 1u);
  for (const std::string& bad : std::vector<std::string>{"", "a b", "a/b", "../x", "x.y", std::string(65, 'q'), "caf\xc3\xa9"}) {
    auto r = Push(bad, {"{}"});
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad;
  }
  Open();  // the new queue is found again from its folder
  EXPECT_EQ(Contents(Pull("orders_v2-x", 5)), (std::vector<std::string>{"{}"}));
}

TEST_F(EmbeddedQueueTest, LimitsAreRefusedAndChangeNothing) {
  QueueOptions o = Options();
  o.max_batch = 3;
  o.max_message_bytes = 10;
  o.max_queues = 4;
  o.max_memory_bytes = 4 * (160 + 10 + 11);
  Open(o);
  EXPECT_EQ(Push("TQ1", {}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Push("TQ1", {"1", "2", "3", "4"}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Push("TQ1", {"1", "12345678901"}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(StatsOf("TQ1").depth, 0u);
  EXPECT_TRUE(Push("Q4", {"x"}).ok());
  EXPECT_EQ(Push("Q5", {"x"}).status().code(), StatusCode::kResourceExhausted);
  EXPECT_TRUE(Push("TQ1", {"1234567890", "1234567890"}).ok());
  EXPECT_EQ(Push("TQ1", {"1234567890", "1234567890"}).status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(StatsOf("TQ1").depth, 2u);
  ASSERT_FALSE(Pull("TQ1", 2).empty());  // taking frees the memory
  EXPECT_TRUE(Push("TQ1", {"1234567890"}).ok());
  PullOptions p;
  p.max = 0;
  EXPECT_EQ(queue_->Pull("TQ1", p).status().code(), StatusCode::kInvalidArgument);
  p.max = 4;
  EXPECT_EQ(queue_->Pull("TQ1", p).status().code(), StatusCode::kInvalidArgument);
  p.max = 1;
  p.lease = std::chrono::hours(13);
  EXPECT_EQ(queue_->Pull("TQ1", p).status().code(), StatusCode::kInvalidArgument);
  p.lease = milliseconds(0);
  p.wait = seconds(21);
  EXPECT_EQ(queue_->Pull("TQ1", p).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(StatsOf("TQ1").depth, 1u);
}

TEST_F(EmbeddedQueueTest, CompactionKeepsTheDiskNearTheLiveMessages) {
  QueueOptions o = Options();
  Open(o, 4096);
  // A dead letter pushed first pins the first segment until compaction moves it.
  ASSERT_TRUE(Push("TQ1", {"{\"poison\":true}"}).ok());
  auto p = Pull("TQ1", 1, seconds(30));
  NackOptions d;
  d.dead_letter = true;
  d.reason = "bad";
  std::vector<std::string> ids = {p[0].id};
  ASSERT_TRUE(queue_->Nack("TQ1", ids, d).ok());
  const std::string body(200, 'x');
  for (int round = 0; round < 300; ++round) {
    ASSERT_TRUE(Push("TQ1", {body, body}).ok());
    auto m = Pull("TQ1", 2, seconds(30));
    ASSERT_EQ(m.size(), 2u);
    std::vector<std::string> done = Ids(m);
    ASSERT_TRUE(queue_->Ack("TQ1", done).ok());
  }
  size_t segments = 0;
  for (const auto& e : fs::directory_iterator(fs::path(dir_) / "queues" / "TQ1")) {
    segments += e.path().extension() == ".jnl";
  }
  // 300 rounds wrote ~150 KB, about 37 segments of 4 KiB: only the last few are kept.
  EXPECT_LE(segments, 4u);
  Open(o, 4096);
  auto dead = queue_->DeadLetters("TQ1", 10);
  ASSERT_EQ(dead->size(), 1u);
  EXPECT_EQ((*dead)[0].content, "{\"poison\":true}");
  EXPECT_EQ((*dead)[0].last_error, "bad");
  EXPECT_EQ((*dead)[0].id, "TQ1-1");
  EXPECT_EQ(StatsOf("TQ1").depth, 0u);
}

TEST_F(EmbeddedQueueTest, APullWaitsForAPush) {
  QueueOptions o = Options();
  o.clock_us = {};  // the real clock: this test waits
  Open(o);
  std::thread pusher([this] {
    std::this_thread::sleep_for(milliseconds(50));
    PushOne("TQ1", "late");
  });
  PullOptions p;
  p.wait = seconds(10);
  auto r = queue_->Pull("TQ1", p);
  pusher.join();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(Contents(*r), (std::vector<std::string>{"late"}));
}

TEST_F(EmbeddedQueueTest, StopWakesWaitingPulls) {
  QueueOptions o = Options();
  o.clock_us = {};
  Open(o);
  std::thread stopper([this] {
    std::this_thread::sleep_for(milliseconds(50));
    queue_->Stop();
  });
  PullOptions p;
  p.wait = seconds(20);
  auto r = queue_->Pull("TQ1", p);
  stopper.join();
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(Push("TQ1", {"x"}).status().code(), StatusCode::kUnavailable);
}

TEST_F(EmbeddedQueueTest, PowerLossDurabilityAnswersOnceSynced) {
  QueueOptions o = Options();
  o.durability = Durability::kPowerLoss;
  Open(o);
  std::mutex mu;
  std::condition_variable cv;
  std::optional<StatusOr<std::vector<std::string>>> result;
  std::vector<PushItem> items = {{"{\"a\":1}", "t"}};
  queue_->Push("TQ1", items, [&](StatusOr<std::vector<std::string>> r) {
    std::lock_guard lock(mu);
    result = std::move(r);
    cv.notify_all();
  });
  std::unique_lock lock(mu);
  cv.wait(lock, [&] { return result.has_value(); });
  ASSERT_TRUE(result->ok()) << result->status().ToString();
  EXPECT_EQ((*result)->front(), "TQ1-1");
}

// Consumers leasing and acknowledging while producers push: every message is acknowledged
// exactly once, and none is handed to two consumers while its lease holds.
TEST_F(EmbeddedQueueTest, ConcurrentProducersAndConsumersSeeEachMessageOnce) {
  QueueOptions o = Options();
  o.clock_us = {};
  Open(o, 1 << 16);
  constexpr int kProducers = 3, kConsumers = 3, kPerProducer = 2000;
  std::atomic<int> acked{0};
  std::mutex mu;
  std::map<std::string, int> deliveries;
  std::vector<std::thread> threads;
  threads.reserve(kProducers + kConsumers);
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      for (int i = 0; i < kPerProducer; i += 10) {
        std::vector<std::string> batch;
        batch.reserve(10);
        for (int k = 0; k < 10; ++k) batch.push_back(std::to_string(p * kPerProducer + i + k));
        ASSERT_TRUE(Push("TQ1", batch).ok());
      }
    });
  }
  for (int c = 0; c < kConsumers; ++c) {
    threads.emplace_back([&] {
      while (acked.load() < kProducers * kPerProducer) {
        PullOptions p;
        p.max = 16;
        p.lease = seconds(600);
        p.wait = milliseconds(20);
        auto m = queue_->Pull("TQ1", p);
        ASSERT_TRUE(m.ok());
        std::vector<std::string> ids;
        {
          std::lock_guard lock(mu);
          for (const auto& msg : *m) {
            ++deliveries[msg.content];
            ids.push_back(msg.id);
          }
        }
        if (ids.empty()) continue;
        auto r = queue_->Ack("TQ1", ids);
        ASSERT_TRUE(r.ok());
        for (const Status& s : *r) ASSERT_TRUE(s.ok()) << s.ToString();
        acked += static_cast<int>(ids.size());
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(acked.load(), kProducers * kPerProducer);
  EXPECT_EQ(deliveries.size(), static_cast<size_t>(kProducers * kPerProducer));
  for (const auto& [content, n] : deliveries) ASSERT_EQ(n, 1) << content;
  EXPECT_EQ(StatsOf("TQ1").depth, 0u);
}

TEST_F(EmbeddedQueueTest, AFullDiskRefusesPushesAndChangesNothing) {
  FullDiskForTest disk(dir_ + "/queues", 1 << 20);
  ASSERT_TRUE(disk.mounted()) << disk.error();
  Open();
  ASSERT_TRUE(Push("TQ1", {"before"}).ok());
  auto leased = Pull("TQ1", 1, seconds(30));
  disk.Fill();
  const std::string during(64 << 10, 'd');  // more than the last page of a segment holds
  auto r = Push("TQ1", {during});
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  std::vector<std::string> ids = Ids(leased);
  auto ack = queue_->Ack("TQ1", ids);
  // Either refused (nothing changed) or written into the last free bytes.
  if (!ack.ok()) {
    EXPECT_EQ(ack.status().code(), StatusCode::kUnavailable);
    EXPECT_EQ(StatsOf("TQ1").in_flight, 1u);
  }
  EXPECT_EQ(StatsOf("TQ1").depth, 0u);
  disk.Free();
  ASSERT_TRUE(Push("TQ1", {"after"}).ok());
  Open();
  std::vector<std::string> got;
  Advance(seconds(31));
  for (const auto& m : Pull("TQ1", 10)) got.push_back(m.content);
  EXPECT_EQ(got.back(), "after");
  EXPECT_EQ(std::count(got.begin(), got.end(), during), 0);
}

}  // namespace
}  // namespace vigil
