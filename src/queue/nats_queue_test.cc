// Tests of the NATS JetStream queue against a real nats-server (Debian's nats-server), which
// each test starts on a free port with its own store folder, and kills at the end.
#include "queue/nats_queue.h"

#if VIGIL_HAS_NATS

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <nats/nats.h>

#include "gtest/gtest.h"
#include "vigil/queue.h"
#include "vigil/status.h"

namespace vigil {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

bool Accepts(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

// Polls `condition` every 20 ms until it holds or `timeout` passed.
bool Eventually(const std::function<bool()>& condition, milliseconds timeout = seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(milliseconds(20));
  }
  return condition();
}

int64_t SystemNowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// One nats-server with JetStream, its store in a folder of its own.
class NatsServer {
 public:
  NatsServer() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "vigil-nats-XXXXXX").string();
    dir_ = mkdtemp(tmpl.data()) != nullptr ? tmpl : "";
    port_ = FreePort();
  }
  ~NatsServer() {
    Kill(SIGKILL);
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  NatsServer(const NatsServer&) = delete;
  NatsServer& operator=(const NatsServer&) = delete;

  // Starts it (again, on the same port and store) and waits until it accepts connections.
  bool Start() {
    if (dir_.empty() || port_ <= 0) return false;
    const std::string store = dir_ + "/store";
    const std::string log = dir_ + "/server.log";
    const std::string port = std::to_string(port_);
    pid_ = fork();
    if (pid_ == 0) {
      const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
      }
      execlp("nats-server", "nats-server", "-js", "-sd", store.c_str(), "-p", port.c_str(), "-a",
             "127.0.0.1", static_cast<char*>(nullptr));
      _exit(127);
    }
    if (pid_ < 0) return false;
    return Eventually([&] { return Accepts(port_); });
  }

  void Kill(int sig) {
    if (pid_ <= 0) return;
    kill(pid_, sig);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  std::string url() const { return "nats://127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }

  // While it is down: removes the state of the consumers of `stream` (what they delivered and
  // what awaits an ack), as a kill -9 does when it comes before nats-server flushed it.
  // Returns how many state files it removed.
  int LoseConsumerState(const std::string& stream) {
    int removed = 0;
    std::error_code ec;
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir_ + "/store", ec)) {
      const std::string path = e.path().string();
      if (e.path().filename() == "o.dat" && path.find("/" + stream + "/") != std::string::npos) {
        std::filesystem::remove(e.path(), ec);
        ++removed;
      }
    }
    return removed;
  }

 private:
  std::string dir_;
  int port_ = -1;
  pid_t pid_ = -1;
};

class NatsQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.Start()) << "nats-server did not start (scripts/install-deps.sh)";
    options_.url = server_.url();
    now_us_ = std::make_shared<std::atomic<int64_t>>(
        std::chrono::duration_cast<std::chrono::microseconds>(
            std::chrono::system_clock::now().time_since_epoch())
            .count());
  }

  // Options whose clock the test moves (leases run out without sleeping).
  QueueOptions FakeClock(QueueOptions options) {
    auto now = now_us_;
    options.clock_us = [now] { return now->load(); };
    return options;
  }
  void Advance(milliseconds d) { *now_us_ += d.count() * 1000; }

  // Opens a queue; JetStream may need a moment after a restart.
  std::unique_ptr<Queue> Open(const QueueOptions& options) {
    StatusOr<std::unique_ptr<Queue>> q = Status(StatusCode::kUnavailable, "not tried");
    Eventually([&] {
      q = OpenNatsQueue(options);
      return q.ok();
    });
    EXPECT_TRUE(q.ok()) << q.status().ToString();
    return q.ok() ? std::move(q).value() : nullptr;
  }
  std::unique_ptr<Queue> Open() { return Open(options_); }

  static StatusOr<std::vector<std::string>> PushSync(Queue& q, std::string_view name,
                                                     const std::vector<std::string>& contents,
                                                     std::string_view type = "tx") {
    std::vector<PushItem> items;
    items.reserve(contents.size());
    for (const std::string& c : contents) items.push_back({c, type});
    // `done` comes once, from nats.c's thread.
    auto result = std::make_shared<StatusOr<std::vector<std::string>>>(
        Status(StatusCode::kInternal, "done not called"));
    auto calls = std::make_shared<std::atomic<int>>(0);
    q.Push(name, items, [result, calls](StatusOr<std::vector<std::string>> r) {
      *result = std::move(r);
      ++*calls;
    });
    EXPECT_TRUE(Eventually([&] { return calls->load() > 0; }));
    EXPECT_EQ(calls->load(), 1);
    return *result;
  }

  static std::vector<QueueMessage> PullOk(Queue& q, std::string_view name, size_t max,
                                          milliseconds lease = milliseconds(0),
                                          milliseconds wait = milliseconds(0)) {
    PullOptions po;
    po.max = max;
    po.lease = lease;
    po.wait = wait;
    auto r = q.Pull(name, po);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? std::move(r).value() : std::vector<QueueMessage>{};
  }

  static QueueStats StatsOk(Queue& q, std::string_view name) {
    auto s = q.Stats(name);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? *s : QueueStats{};
  }

  static std::vector<std::string> Contents(const std::vector<QueueMessage>& ms) {
    std::vector<std::string> out;
    out.reserve(ms.size());
    for (const QueueMessage& m : ms) out.push_back(m.content);
    return out;
  }

  // JetStream as the server has it, through a connection of the test's own.
  class Inspect {
   public:
    explicit Inspect(const std::string& url) {
      EXPECT_EQ(natsConnection_ConnectTo(&nc_, url.c_str()), NATS_OK);
      if (nc_ != nullptr) {
        EXPECT_EQ(natsConnection_JetStream(&js_, nc_, nullptr), NATS_OK);
      }
    }
    ~Inspect() {
      jsCtx_Destroy(js_);
      natsConnection_Destroy(nc_);
    }
    Inspect(const Inspect&) = delete;
    Inspect& operator=(const Inspect&) = delete;
    // The stream's message count, or -1 when it cannot be read.
    int64_t Messages(const std::string& stream) {
      jsStreamInfo* si = nullptr;
      if (js_GetStreamInfo(&si, js_, stream.c_str(), nullptr, nullptr) != NATS_OK) return -1;
      const auto n = static_cast<int64_t>(si->State.Msgs);
      jsStreamInfo_Destroy(si);
      return n;
    }
    // The sequence of the stream's last message: how many were ever stored, purged or not.
    int64_t LastSeq(const std::string& stream) {
      jsStreamInfo* si = nullptr;
      if (js_GetStreamInfo(&si, js_, stream.c_str(), nullptr, nullptr) != NATS_OK) return -1;
      const auto n = static_cast<int64_t>(si->State.LastSeq);
      jsStreamInfo_Destroy(si);
      return n;
    }
    jsCtx* js() { return js_; }

   private:
    natsConnection* nc_ = nullptr;
    jsCtx* js_ = nullptr;
  };

  NatsServer server_;
  QueueOptions options_;
  std::shared_ptr<std::atomic<int64_t>> now_us_;
};

TEST_F(NatsQueueTest, ConcurrentLeasedPullsNeverShareAMessage) {
  auto q = Open();
  ASSERT_NE(q, nullptr);
  constexpr int kMessages = 2000;
  std::vector<std::string> contents;
  contents.reserve(kMessages);
  for (int i = 0; i < kMessages; ++i) contents.push_back(std::to_string(i));
  for (size_t i = 0; i < contents.size(); i += 500) {
    const std::vector<std::string> part(contents.begin() + static_cast<std::ptrdiff_t>(i),
                                        contents.begin() + static_cast<std::ptrdiff_t>(i + 500));
    ASSERT_TRUE(PushSync(*q, "TQ1", part).ok());
  }
  // Four consumers lease batches of 1 to 50 at once and ack what they got.
  std::vector<std::vector<std::string>> got(4);
  std::atomic<int> errors{0};
  std::vector<std::thread> consumers;
  consumers.reserve(4);
  for (int c = 0; c < 4; ++c) {
    consumers.emplace_back([&, c] {
      PullOptions po;
      po.lease = seconds(60);
      for (int round = 0;; ++round) {
        po.max = static_cast<size_t>(1 + (round * 7 + c * 13) % 50);
        auto r = q->Pull("TQ1", po);
        if (!r.ok()) {
          ++errors;
          return;
        }
        if (r->empty()) return;
        std::vector<std::string> ids;
        for (const QueueMessage& m : *r) {
          got[static_cast<size_t>(c)].push_back(m.content);
          ids.push_back(m.id);
        }
        auto acked = q->Ack("TQ1", ids);
        if (!acked.ok() || !std::all_of(acked->begin(), acked->end(),
                                        [](const Status& s) { return s.ok(); })) {
          ++errors;
        }
      }
    });
  }
  for (std::thread& t : consumers) t.join();
  EXPECT_EQ(errors.load(), 0);
  std::vector<std::string> all;
  for (const auto& g : got) all.insert(all.end(), g.begin(), g.end());
  std::sort(all.begin(), all.end());
  std::sort(contents.begin(), contents.end());
  EXPECT_EQ(all, contents);  // each exactly once
  EXPECT_EQ(StatsOk(*q, "TQ1").in_flight, 0u);
}

TEST_F(NatsQueueTest, MoreLeasesThanTheServersDefaultMaxAckPending) {
  // nats-server stops delivering, and leaves pulls unanswered, once a consumer's max_ack_pending
  // deliveries await an ack (its default is 1000).
  auto q = Open();
  ASSERT_NE(q, nullptr);
  for (int part = 0; part < 3; ++part) {
    ASSERT_TRUE(PushSync(*q, "TQ1", std::vector<std::string>(600, "x")).ok());
  }
  size_t leased = 0;
  for (int pull = 0; pull < 3; ++pull) leased += PullOk(*q, "TQ1", 600, seconds(60)).size();
  EXPECT_EQ(leased, 1800u);
  EXPECT_EQ(StatsOk(*q, "TQ1").in_flight, 1800u);
}

TEST_F(NatsQueueTest, SettledLeaseRecordsArePurged) {
  auto q = Open();
  ASSERT_NE(q, nullptr);
  ASSERT_TRUE(PushSync(*q, "TQ1", std::vector<std::string>(300, "x")).ok());
  // 100 pulls, one record each; one lease is kept.
  std::vector<QueueMessage> kept;
  for (int i = 0; i < 100; ++i) {
    const auto got = PullOk(*q, "TQ1", 3, seconds(60));
    ASSERT_EQ(got.size(), 3u);
    std::vector<std::string> ids;
    ids.reserve(got.size());
    for (const QueueMessage& m : got) ids.push_back(m.id);
    if (i == 50) {
      kept.push_back(got[0]);
      ids.erase(ids.begin());
    }
    ASSERT_TRUE((*q->Ack("TQ1", ids))[0].ok());
  }
  Inspect server(server_.url());
  // A record per pull was stored; the reaper may already have purged some of them.
  ASSERT_GE(server.LastSeq("VIGIL_LEASES_TQ1"), 100);
  // Purged below the first record that holds something: the kept lease's (pull 51 of 100).
  EXPECT_TRUE(Eventually([&] { return server.Messages("VIGIL_LEASES_TQ1") <= 51; }));
  EXPECT_GE(server.Messages("VIGIL_LEASES_TQ1"), 1);
  const std::vector<std::string> last = {kept[0].id};
  ASSERT_TRUE((*q->Ack("TQ1", last))[0].ok());
  EXPECT_TRUE(Eventually([&] { return server.Messages("VIGIL_LEASES_TQ1") == 0; }));
  // The lease still held across a reopen until its ack: nothing is left to deliver.
  q.reset();
  q = Open();
  ASSERT_NE(q, nullptr);
  EXPECT_TRUE(PullOk(*q, "TQ1", 10, seconds(60)).empty());
}

TEST_F(NatsQueueTest, RecordsOfAStoppedOrKilledVigilArePurged) {
  {
    // One that stopped with its leases settled leaves nothing.
    auto q = Open();
    ASSERT_NE(q, nullptr);
    ASSERT_TRUE(PushSync(*q, "TQ1", {"a", "b"}).ok());
    for (int i = 0; i < 2; ++i) {
      const auto got = PullOk(*q, "TQ1", 1, seconds(60));
      ASSERT_EQ(got.size(), 1u);
      const std::vector<std::string> ids = {got[0].id};
      ASSERT_TRUE((*q->Ack("TQ1", ids))[0].ok());
    }
  }
  Inspect server(server_.url());
  EXPECT_TRUE(Eventually([&] { return server.Messages("VIGIL_LEASES_TQ1") == 0; }));
  // One that was killed left a record whose lease has ended: the next Vigil purges it.
  const std::string body =
      "L " + std::to_string(SystemNowUs() - 1000000) + "\nTQ1-1 1 1 $JS.ACK.x.y.1.1.1.1.0\n";
  jsPubAck* pa = nullptr;
  ASSERT_EQ(js_Publish(&pa, server.js(), "vigil.lease.TQ1.pkilled", body.data(),
                       static_cast<int>(body.size()), nullptr, nullptr),
            NATS_OK);
  jsPubAck_Destroy(pa);
  ASSERT_EQ(server.Messages("VIGIL_LEASES_TQ1"), 1);
  auto q = Open();
  ASSERT_NE(q, nullptr);
  EXPECT_TRUE(Eventually([&] { return server.Messages("VIGIL_LEASES_TQ1") == 0; }));
}

TEST_F(NatsQueueTest, ANackReachesAnotherVigilAtOnce) {
  // Another process has the lease's record; the nack's release record ends it there too.
  auto a = Open();
  auto b = Open();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(PushSync(*a, "TQ1", {"m"}).ok());
  const auto leased = PullOk(*a, "TQ1", 1, seconds(60));
  ASSERT_EQ(leased.size(), 1u);
  const std::vector<std::string> ids = {leased[0].id};
  ASSERT_TRUE((*a->Nack("TQ1", ids, NackOptions{}))[0].ok());
  const auto again = PullOk(*b, "TQ1", 10, seconds(60), seconds(3));
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].id, leased[0].id);
  EXPECT_EQ(again[0].attempt, 2);
  EXPECT_TRUE(PullOk(*a, "TQ1", 10, seconds(60), milliseconds(300)).empty());
  const std::vector<std::string> again_ids = {again[0].id};
  EXPECT_TRUE((*b->Ack("TQ1", again_ids))[0].ok());
}

TEST_F(NatsQueueTest, StreamsOfAnEarlierVigilAreUpgraded) {
  // An earlier Vigil kept one lease record per subject, and its consumer the server's default
  // max_ack_pending of 1000.
  {
    Inspect server(server_.url());
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    const char* subjects[] = {"vigil.lease.TQ1.*"};
    cfg.Name = "VIGIL_LEASES_TQ1";
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    cfg.MaxMsgsPerSubject = 1;
    jsStreamInfo* si = nullptr;
    ASSERT_EQ(js_AddStream(&si, server.js(), &cfg, nullptr, nullptr), NATS_OK);
    jsStreamInfo_Destroy(si);
    const char* q_subjects[] = {"vigil.q.TQ1"};
    cfg.Name = "VIGIL_Q_TQ1";
    cfg.Subjects = q_subjects;
    cfg.Retention = js_WorkQueuePolicy;
    cfg.MaxMsgsPerSubject = -1;
    ASSERT_EQ(js_AddStream(&si, server.js(), &cfg, nullptr, nullptr), NATS_OK);
    jsStreamInfo_Destroy(si);
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = "vigil";
    cc.AckPolicy = js_AckExplicit;
    jsConsumerInfo* ci = nullptr;
    ASSERT_EQ(js_AddConsumer(&ci, server.js(), "VIGIL_Q_TQ1", &cc, nullptr, nullptr), NATS_OK);
    jsConsumerInfo_Destroy(ci);
  }
  auto q = Open();
  ASSERT_NE(q, nullptr);
  Inspect server(server_.url());
  jsStreamInfo* si = nullptr;
  ASSERT_EQ(js_GetStreamInfo(&si, server.js(), "VIGIL_LEASES_TQ1", nullptr, nullptr), NATS_OK);
  EXPECT_LE(si->Config->MaxMsgsPerSubject, 0);
  jsStreamInfo_Destroy(si);
  jsConsumerInfo* ci = nullptr;
  ASSERT_EQ(js_GetConsumerInfo(&ci, server.js(), "VIGIL_Q_TQ1", "vigil", nullptr, nullptr),
            NATS_OK);
  EXPECT_GT(ci->Config->MaxAckPending, 1000);
  jsConsumerInfo_Destroy(ci);
  // Two leased pulls keep two records (one per subject would have kept the last only).
  ASSERT_TRUE(PushSync(*q, "TQ1", {"a", "b"}).ok());
  EXPECT_EQ(PullOk(*q, "TQ1", 1, seconds(60)).size(), 1u);
  EXPECT_EQ(PullOk(*q, "TQ1", 1, seconds(60)).size(), 1u);
  EXPECT_GE(server.Messages("VIGIL_LEASES_TQ1"), 2);
}

TEST_F(NatsQueueTest, OpenCreatesTheDefaultQueues) {
  auto q = Open();
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->backend(), "nats");
  for (const char* name : {"TQ1", "TQ2", "PQ1"}) {
    const QueueStats s = StatsOk(*q, name);
    EXPECT_EQ(s.name, name);
    EXPECT_EQ(s.depth, 0u);
    EXPECT_EQ(s.in_flight, 0u);
    EXPECT_EQ(s.dead_letters, 0u);
    EXPECT_TRUE(PullOk(*q, name, 10).empty());
  }
  std::vector<std::string> names;
  for (const QueueStats& s : q->List()) names.push_back(s.name);
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"PQ1", "TQ1", "TQ2"}));
}

TEST_F(NatsQueueTest, OpenRefusesBadUrlsAndAbsentServers) {
  QueueOptions o = options_;
  o.url = "http://127.0.0.1:4222";
  EXPECT_EQ(OpenNatsQueue(o).status().code(), StatusCode::kInvalidArgument);
  o.url = "nats://127.0.0.1:" + std::to_string(FreePort());
  const auto absent = OpenNatsQueue(o);
  EXPECT_EQ(absent.status().code(), StatusCode::kUnavailable) << absent.status().ToString();
}

TEST_F(NatsQueueTest, PushThenPullIsFifoAcrossBatches) {
  auto q = Open();
  ASSERT_NE(q, nullptr);
  auto first = PushSync(*q, "TQ1", {"{\"n\":1}", "{\"n\":2}", "{\"n\":3}"});
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(*first, (std::vector<std::string>{"TQ1-1", "TQ1-2", "TQ1-3"}));
  // A type with bytes a header cannot hold travels intact.
  auto second = PushSync(*q, "TQ1", {"{\"n\":4}", "{\"n\":5}"}, "odd\r\ntype %41");
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(*second, (std::vector<std::string>{"TQ1-4", "TQ1-5"}));

  const auto a = PullOk(*q, "TQ1", 2);
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].id, "TQ1-1");
  EXPECT_EQ(a[0].content, "{\"n\":1}");
  EXPECT_EQ(a[0].message_type, "tx");
  EXPECT_EQ(a[0].attempt, 1);
  EXPECT_GT(a[0].enqueued_us, 0);
  EXPECT_EQ(a[0].lease_expires_us, 0);
  EXPECT_EQ(a[1].id, "TQ1-2");
  const auto b = PullOk(*q, "TQ1", 10);
  EXPECT_EQ(Contents(b), (std::vector<std::string>{"{\"n\":3}", "{\"n\":4}", "{\"n\":5}"}));
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b[2].message_type, "odd\r\ntype %41");
  EXPECT_TRUE(PullOk(*q, "TQ1", 10).empty());
  // A new queue is created by its first push.
  auto fresh = PushSync(*q, "orders-EU_2", {"{}"});
  ASSERT_TRUE(fresh.ok()) << fresh.status().ToString();
  EXPECT_EQ(*fresh, std::vector<std::string>{"orders-EU_2-1"});
  EXPECT_EQ(PullOk(*q, "orders-EU_2", 1).size(), 1u);
}

TEST_F(NatsQueueTest, PlainPullTakesMessagesForGood) {
  auto q = Open();
  ASSERT_NE(q, nullptr);
  ASSERT_TRUE(PushSync(*q, "TQ1", {"a", "b"}).ok());
  EXPECT_EQ(Contents(PullOk(*q, "TQ1", 10)), (std::vector<std::string>{"a", "b"}));
  // The server holds no delivery to come back: nothing pending, nothing awaiting an ack.
  QueueStats s = StatsOk(*q, "TQ1");
  EXPECT_EQ(s.depth, 0u);
  EXPECT_EQ(s.in_flight, 0u);
  EXPECT_EQ(s.delivered, 2u);
  EXPECT_TRUE(PullOk(*q, "TQ1", 10, milliseconds(0), milliseconds(1500)).empty());
  // Nor after a restart of Vigil.
  q.reset();
  q = Open();
  ASSERT_NE(q, nullptr);
  EXPECT_TRUE(PullOk(*q, "TQ1", 10).empty());
  EXPECT_EQ(StatsOk(*q, "TQ1").in_flight, 0u);
}

TEST_F(NatsQueueTest, LeasedMessagesAreInvisibleWhileTheLeaseHolds) {
  auto q = Open();
  ASSERT_NE(q, nullptr);
  ASSERT_TRUE(PushSync(*q, "TQ1", {"a", "b"}).ok());
  const auto first = PullOk(*q, "TQ1", 1, seconds(20));
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].content, "a");
  EXPECT_GT(first[0].lease_expires_us, first[0].enqueued_us);
  const auto second = PullOk(*q, "TQ1", 10, seconds(20));
  EXPECT_EQ(Contents(second), std::vector<std::string>{"b"});
  EXPECT_TRUE(PullOk(*q, "TQ1", 10, seconds(20), milliseconds(500)).empty());
  QueueStats s = StatsOk(*q, "TQ1");
  EXPECT_EQ(s.in_flight, 2u);
  EXPECT_EQ(s.depth, 0u);
  // Also across a restart of Vigil: their lease records keep them.
  q.reset();
  q = Open();
  ASSERT_NE(q, nullptr);
  EXPECT_TRUE(PullOk(*q, "TQ1", 10, seconds(20), milliseconds(500)).empty());
  EXPECT_EQ(StatsOk(*q, "TQ1").in_flight, 2u);
}

TEST_F(NatsQueueTest, AnExpiredLeaseIsDeliveredAgainWithTheNextAttempt) {
  auto q = Open(FakeClock(options_));
  ASSERT_NE(q, nullptr);
  ASSERT_TRUE(PushSync(*q, "TQ1", {"a", "b"}).ok());
  const auto first = PullOk(*q, "TQ1", 1, seconds(2));
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].attempt, 1);
  Advance(milliseconds(2500));
  ASSERT_TRUE(Eventually([&] { return StatsOk(*q, "TQ1").expired == 1; }));
  // Its lease ran out: acknowledging it now is refused.
  const std::vector<std::string> ids = {first[0].id};
  auto late = q->Ack("TQ1", ids);
  ASSERT_TRUE(late.ok());
  EXPECT_EQ((*late)[0].code(), StatusCode::kNotFound);
  // Given back first in line, before "b".
  const auto again = PullOk(*q, "TQ1", 2, seconds(2), seconds(3));
  ASSERT_EQ(again.size(), 2u);
  EXPECT_EQ(again[0].id, first[0].id);
  EXPECT_EQ(again[0].content, "a");
  EXPECT_EQ(again[0].attempt, 2);
  EXPECT_EQ(again[1].content, "b");
  EXPECT_EQ(again[1].attempt, 1);
  const std::vector<std::string> both = {again[0].id, again[1].id};
  auto acked = q->Ack("TQ1", both);
  ASSERT_TRUE(acked.ok());
  EXPECT_TRUE((*acked)[0].ok()) << (*acked)[0].ToString();
  EXPECT_TRUE((*acked)[1].ok()) << (*acked)[1].ToString();
  const QueueStats s = StatsOk(*q, "TQ1");
  EXPECT_EQ(s.depth, 0u);
  EXPECT_EQ(s.in_flight, 0u);
  EXPECT_EQ(s.acked, 2u);
}

TEST_F(NatsQueueTest, RealTimeLeaseRunsOut) {
  // The same with the system clock and a 1 s lease: what a processor sees.
  auto q = Open();
  ASSERT_NE(q, nullptr);
  ASSERT_TRUE(PushSync(*q, "TQ2", {"x"}).ok());
  const auto first = PullOk(*q, "TQ2", 1, seconds(1));
  ASSERT_EQ(first.size(), 1u);
  const auto again = PullOk(*q, "TQ2", 1, seconds(1), seconds(5));
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].id, first[0].id);
  EXPECT_EQ(again[0].attempt, 2);
}

TEST_F(NatsQueueTest, AckAndNack) {
  auto q = Open();
  ASSERT_NE(q, nullptr);
  ASSERT_TRUE(PushSync(*q, "TQ1", {"a", "b", "c"}).ok());
  const auto got = PullOk(*q, "TQ1", 3, seconds(30));
  ASSERT_EQ(got.size(), 3u);

  // All or nothing: a twice-named id, or one never leased, and nothing is acknowledged.
  const std::vector<std::string> ack_ids = {got[0].id, got[0].id, "TQ1-999"};
  auto refused = q->Ack("TQ1", ack_ids);
  ASSERT_TRUE(refused.ok());
  ASSERT_EQ(refused->size(), 3u);
  EXPECT_TRUE((*refused)[0].ok());
  EXPECT_EQ((*refused)[1].code(), StatusCode::kNotFound);  // named twice
  EXPECT_EQ((*refused)[2].code(), StatusCode::kNotFound);  // never existed
  EXPECT_EQ(StatsOk(*q, "TQ1").in_flight, 3u);
  const std::vector<std::string> a = {got[0].id};
  auto acked = q->Ack("TQ1", a);
  ASSERT_TRUE(acked.ok());
  EXPECT_TRUE((*acked)[0].ok()) << (*acked)[0].ToString();
  EXPECT_EQ((*q->Ack("TQ1", a))[0].code(), StatusCode::kNotFound);  // acknowledged already
  EXPECT_EQ(q->Ack("TQ1", std::vector<std::string>{}).status().code(),
            StatusCode::kInvalidArgument);

  // A nack with a delay: not delivered at once, then delivered with the next attempt.
  NackOptions later;
  later.delay = milliseconds(1000);
  const std::vector<std::string> b = {got[1].id};
  auto nacked = q->Nack("TQ1", b, later);
  ASSERT_TRUE(nacked.ok());
  EXPECT_TRUE((*nacked)[0].ok());
  EXPECT_TRUE(PullOk(*q, "TQ1", 10, seconds(30)).empty());
  EXPECT_EQ(StatsOk(*q, "TQ1").depth, 1u);  // given back, delayed
  const auto redelivered = PullOk(*q, "TQ1", 10, seconds(30), seconds(5));
  ASSERT_EQ(redelivered.size(), 1u);
  EXPECT_EQ(redelivered[0].id, got[1].id);
  EXPECT_EQ(redelivered[0].attempt, 2);

  // A nack to the dead letters, with its reason.
  NackOptions dead;
  dead.dead_letter = true;
  dead.reason = "cannot parse: line 1\nbad";
  const std::vector<std::string> c_and_unknown = {got[2].id, "TQ1-12345"};
  auto refused_nack = q->Nack("TQ1", c_and_unknown, dead);
  ASSERT_TRUE(refused_nack.ok());
  EXPECT_EQ((*refused_nack)[1].code(), StatusCode::kNotFound);
  EXPECT_EQ(StatsOk(*q, "TQ1").dead_letters, 0u);  // all or nothing
  const std::vector<std::string> c = {got[2].id};
  auto dead_nack = q->Nack("TQ1", c, dead);
  ASSERT_TRUE(dead_nack.ok());
  EXPECT_TRUE((*dead_nack)[0].ok());
  auto letters = q->DeadLetters("TQ1", 10);
  ASSERT_TRUE(letters.ok()) << letters.status().ToString();
  ASSERT_EQ(letters->size(), 1u);
  EXPECT_EQ((*letters)[0].id, got[2].id);
  EXPECT_EQ((*letters)[0].content, "c");
  EXPECT_EQ((*letters)[0].message_type, "tx");
  EXPECT_EQ((*letters)[0].attempt, 1);
  EXPECT_EQ((*letters)[0].last_error, "cannot parse: line 1\nbad");
  EXPECT_EQ((*letters)[0].enqueued_us, got[2].enqueued_us);

  const QueueStats s = StatsOk(*q, "TQ1");
  EXPECT_EQ(s.in_flight, 1u);  // b, leased again
  EXPECT_EQ(s.depth, 0u);
  EXPECT_EQ(s.dead_letters, 1u);
  EXPECT_EQ(s.acked, 1u);
  EXPECT_EQ(s.nacked, 2u);
  EXPECT_EQ(s.dead_lettered, 1u);
}

TEST_F(NatsQueueTest, MaxAttemptsSendsAMessageToTheDeadLetters) {
  QueueOptions o = FakeClock(options_);
  o.max_attempts = 3;
  auto q = Open(o);
  ASSERT_NE(q, nullptr);
  ASSERT_TRUE(PushSync(*q, "TQ1", {"poison", "fine"}).ok());
  // Attempt 1 nacked, attempt 2 left to expire, attempt 3 nacked: dead.
  auto got = PullOk(*q, "TQ1", 1, seconds(5));
  ASSERT_EQ(got.size(), 1u);
  const std::string id = got[0].id;
  const std::vector<std::string> ids = {id};
  ASSERT_TRUE((*q->Nack("TQ1", ids, NackOptions{}))[0].ok());
  got = PullOk(*q, "TQ1", 1, seconds(5), seconds(3));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].id, id);
  EXPECT_EQ(got[0].attempt, 2);
  Advance(seconds(6));
  got = PullOk(*q, "TQ1", 1, seconds(5), seconds(3));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].id, id);
  EXPECT_EQ(got[0].attempt, 3);
  ASSERT_TRUE((*q->Nack("TQ1", ids, NackOptions{}))[0].ok());

  // The rest of the queue flows on; the poison message is gone from it.
  const auto rest = PullOk(*q, "TQ1", 10, milliseconds(0), seconds(1));
  EXPECT_EQ(Contents(rest), std::vector<std::string>{"fine"});
  EXPECT_TRUE(PullOk(*q, "TQ1", 10, milliseconds(0), milliseconds(500)).empty());
  auto letters = q->DeadLetters("TQ1", 10);
  ASSERT_TRUE(letters.ok()) << letters.status().ToString();
  ASSERT_EQ(letters->size(), 1u);
  EXPECT_EQ((*letters)[0].id, id);
  EXPECT_EQ((*letters)[0].attempt, 3);
  EXPECT_NE((*letters)[0].last_error.find("max_attempts 3"), std::string::npos)
      << (*letters)[0].last_error;
  const QueueStats s = StatsOk(*q, "TQ1");
  EXPECT_EQ(s.dead_letters, 1u);
  EXPECT_EQ(s.expired, 1u);
  EXPECT_EQ(s.depth, 0u);
  EXPECT_EQ(s.in_flight, 0u);
}

TEST_F(NatsQueueTest, ExpiredLeasesAloneReachTheDeadLetters) {
  QueueOptions o = FakeClock(options_);
  o.max_attempts = 2;
  auto q = Open(o);
  ASSERT_NE(q, nullptr);
  ASSERT_TRUE(PushSync(*q, "TQ1", {"slow"}).ok());
  for (int attempt = 1; attempt <= 2; ++attempt) {
    const auto got = PullOk(*q, "TQ1", 1, seconds(1), seconds(3));
    ASSERT_EQ(got.size(), 1u) << "attempt " << attempt;
    EXPECT_EQ(got[0].attempt, attempt);
    Advance(seconds(2));
    ASSERT_TRUE(Eventually([&] { return StatsOk(*q, "TQ1").expired == uint64_t(attempt); }));
  }
  ASSERT_TRUE(Eventually([&] { return StatsOk(*q, "TQ1").dead_letters == 1; }));
  EXPECT_TRUE(PullOk(*q, "TQ1", 1, seconds(1), milliseconds(500)).empty());
  auto letters = q->DeadLetters("TQ1", 10);
  ASSERT_TRUE(letters.ok());
  ASSERT_EQ(letters->size(), 1u);
  EXPECT_EQ((*letters)[0].content, "slow");
  EXPECT_NE((*letters)[0].last_error.find("lease ran out"), std::string::npos);
}

TEST_F(NatsQueueTest, RequeuePutsDeadLettersBackWithFreshAttempts) {
  auto q = Open();
  ASSERT_NE(q, nullptr);
  ASSERT_TRUE(PushSync(*q, "TQ1", {"one", "two", "three"}).ok());
  const auto got = PullOk(*q, "TQ1", 3, seconds(30));
  ASSERT_EQ(got.size(), 3u);
  NackOptions dead;
  dead.dead_letter = true;
  const std::vector<std::string> ids = {got[0].id, got[1].id};
  auto nacked = q->Nack("TQ1", ids, dead);
  ASSERT_TRUE(nacked.ok());
  ASSERT_TRUE((*nacked)[0].ok() && (*nacked)[1].ok());
  const std::vector<std::string> third = {got[2].id};
  ASSERT_TRUE((*q->Ack("TQ1", third))[0].ok());
  EXPECT_EQ(StatsOk(*q, "TQ1").dead_letters, 2u);

  // Ids that are not dead letters are skipped.
  const std::vector<std::string> unknown = {"TQ1-777", got[2].id, "other"};
  auto none = q->Requeue("TQ1", unknown);
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_EQ(*none, 0u);

  const std::vector<std::string> second = {got[1].id};
  auto one = q->Requeue("TQ1", second);
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  EXPECT_EQ(*one, 1u);
  auto letters = q->DeadLetters("TQ1", 10);
  ASSERT_TRUE(letters.ok());
  ASSERT_EQ(letters->size(), 1u);
  EXPECT_EQ((*letters)[0].id, got[0].id);
  // Back in the queue: same id, content and enqueue time, attempts from 0 again.
  auto back = PullOk(*q, "TQ1", 10, seconds(30));
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].id, got[1].id);
  EXPECT_EQ(back[0].content, "two");
  EXPECT_EQ(back[0].message_type, "tx");
  EXPECT_EQ(back[0].attempt, 1);
  EXPECT_EQ(back[0].enqueued_us, got[1].enqueued_us);
  const std::vector<std::string> back_ids = {back[0].id};
  auto acked = q->Ack("TQ1", back_ids);
  ASSERT_TRUE(acked.ok());
  EXPECT_TRUE((*acked)[0].ok()) << (*acked)[0].ToString();

  auto all = q->Requeue("TQ1", {});
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(*all, 1u);
  EXPECT_EQ(StatsOk(*q, "TQ1").dead_letters, 0u);
  const auto last = PullOk(*q, "TQ1", 10);
  ASSERT_EQ(last.size(), 1u);
  EXPECT_EQ(last[0].id, got[0].id);
  EXPECT_EQ(last[0].content, "one");
  EXPECT_TRUE(q->DeadLetters("TQ1", 10)->empty());
}

TEST_F(NatsQueueTest, StatsFollowTheQueue) {
  auto q = Open(FakeClock(options_));
  ASSERT_NE(q, nullptr);
  ASSERT_TRUE(PushSync(*q, "TQ2", {"a", "b", "c", "d"}).ok());
  QueueStats s = StatsOk(*q, "TQ2");
  EXPECT_EQ(s.depth, 4u);
  EXPECT_EQ(s.in_flight, 0u);
  EXPECT_EQ(s.pushed, 4u);
  EXPECT_DOUBLE_EQ(s.push_rate, 4.0 / 60.0);
  Advance(seconds(10));
  s = StatsOk(*q, "TQ2");
  EXPECT_GT(s.oldest_age_seconds, 9.0);
  EXPECT_LT(s.oldest_age_seconds, 60.0);

  const auto got = PullOk(*q, "TQ2", 3, seconds(30));
  ASSERT_EQ(got.size(), 3u);
  const std::vector<std::string> one = {got[0].id};
  ASSERT_TRUE((*q->Ack("TQ2", one))[0].ok());
  s = StatsOk(*q, "TQ2");
  EXPECT_EQ(s.depth, 1u);
  EXPECT_EQ(s.in_flight, 2u);
  EXPECT_EQ(s.delivered, 3u);
  EXPECT_EQ(s.acked, 1u);
  EXPECT_DOUBLE_EQ(s.deliver_rate, 3.0 / 60.0);
  EXPECT_DOUBLE_EQ(s.ack_rate, 1.0 / 60.0);
  // A minute later the rates have fallen to 0; the counters stay.
  Advance(seconds(61));
  s = StatsOk(*q, "TQ2");
  EXPECT_EQ(s.push_rate, 0.0);
  EXPECT_EQ(s.pushed, 4u);
}

TEST_F(NatsQueueTest, BadInputIsRefusedAndChangesNothing) {
  QueueOptions o = options_;
  o.max_message_bytes = 1024;
  o.max_batch = 4;
  o.max_lease = seconds(60);
  o.max_wait = seconds(5);
  auto q = Open(o);
  ASSERT_NE(q, nullptr);
  const std::string too_long(65, 'a');
  for (const std::string& bad : {std::string(""), std::string("bad name"), std::string("a.b"),
                                 std::string("x/y"), too_long}) {
    auto pushed = PushSync(*q, bad, {"{}"});
    EXPECT_EQ(pushed.status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(q->Pull(bad, PullOptions{}).status().code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_NE(PushSync(*q, "bad name", {"{}"}).status().message().find("1 to 64"), std::string::npos);
  EXPECT_EQ(PushSync(*q, "TQ1", {std::string(1025, 'x')}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(PushSync(*q, "TQ1", {std::string(1024, 'x')}).ok());
  EXPECT_EQ(PushSync(*q, "TQ1", {"1", "2", "3", "4", "5"}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(PushSync(*q, "TQ1", {}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(StatsOk(*q, "TQ1").depth, 1u);  // only the one that fit

  PullOptions po;
  po.max = 0;
  EXPECT_EQ(q->Pull("TQ1", po).status().code(), StatusCode::kInvalidArgument);
  po.max = 5;
  EXPECT_EQ(q->Pull("TQ1", po).status().code(), StatusCode::kInvalidArgument);
  po.max = 1;
  po.lease = seconds(61);
  EXPECT_EQ(q->Pull("TQ1", po).status().code(), StatusCode::kInvalidArgument);
  po.lease = milliseconds(0);
  po.wait = seconds(6);
  EXPECT_EQ(q->Pull("TQ1", po).status().code(), StatusCode::kInvalidArgument);

  const std::vector<std::string> ids = {"NOPE-1"};
  EXPECT_EQ(q->Pull("NOPE", PullOptions{}).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(q->Ack("NOPE", ids).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(q->Nack("NOPE", ids, NackOptions{}).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(q->Stats("NOPE").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(q->DeadLetters("NOPE", 10).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(q->Requeue("NOPE", ids).status().code(), StatusCode::kNotFound);
  // A pull of a queue that does not exist does not create it.
  EXPECT_EQ(q->Stats("NOPE").status().code(), StatusCode::kNotFound);

  EXPECT_EQ(q->Ack("TQ1", std::vector<std::string>(5, "TQ1-1")).status().code(),
            StatusCode::kInvalidArgument);  // over max_batch
  const std::vector<std::string> unknown = {"TQ1-42", "garbage"};
  auto acked = q->Ack("TQ1", unknown);
  ASSERT_TRUE(acked.ok());
  ASSERT_EQ(acked->size(), 2u);
  EXPECT_EQ((*acked)[0].code(), StatusCode::kNotFound);
  EXPECT_EQ((*acked)[1].code(), StatusCode::kNotFound);
  EXPECT_EQ(StatsOk(*q, "TQ1").depth, 1u);
}

TEST_F(NatsQueueTest, ContentOverTheServersMaxPayloadIsRefused) {
  // The default max_message_bytes (1 MiB) is the server's default max_payload, which must also
  // hold the headers: such a push is refused up front, naming the server's limit.
  auto q = Open();
  ASSERT_NE(q, nullptr);
  const auto pushed = PushSync(*q, "TQ1", {std::string(options_.max_message_bytes, 'x')});
  EXPECT_EQ(pushed.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(pushed.status().message().find("max_payload"), std::string::npos)
      << pushed.status().ToString();
  EXPECT_EQ(StatsOk(*q, "TQ1").depth, 0u);
  EXPECT_TRUE(PushSync(*q, "TQ1", {std::string(512 * 1024, 'x')}).ok());
}

TEST_F(NatsQueueTest, TooManyQueuesIsResourceExhausted) {
  QueueOptions o = options_;
  o.max_queues = 4;  // the three default queues and one more
  auto q = Open(o);
  ASSERT_NE(q, nullptr);
  EXPECT_TRUE(PushSync(*q, "extra", {"{}"}).ok());
  EXPECT_EQ(PushSync(*q, "one_too_many", {"{}"}).status().code(), StatusCode::kResourceExhausted);
  EXPECT_TRUE(PushSync(*q, "extra", {"{}"}).ok());  // an existing one still takes pushes
  EXPECT_EQ(q->Stats("one_too_many").status().code(), StatusCode::kNotFound);
}

TEST_F(NatsQueueTest, ALongPollReturnsWhenAPushArrives) {
  auto q = Open();
  ASSERT_NE(q, nullptr);
  std::vector<QueueMessage> got;
  std::thread puller([&] { got = PullOk(*q, "TQ1", 10, seconds(30), seconds(15)); });
  std::this_thread::sleep_for(milliseconds(300));
  ASSERT_TRUE(PushSync(*q, "TQ1", {"late"}).ok());
  puller.join();
  EXPECT_EQ(Contents(got), std::vector<std::string>{"late"});
}

TEST_F(NatsQueueTest, StopWakesWaitingPullsAndRefusesCalls) {
  auto q = Open();
  ASSERT_NE(q, nullptr);
  StatusOr<std::vector<QueueMessage>> got = Status(StatusCode::kInternal, "not returned");
  std::thread puller([&] {
    PullOptions po;
    po.wait = seconds(20);
    got = q->Pull("TQ1", po);
  });
  std::this_thread::sleep_for(milliseconds(300));
  q->Stop();
  puller.join();
  EXPECT_TRUE(!got.ok() || got->empty());
  EXPECT_EQ(PushSync(*q, "TQ1", {"{}"}).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(q->Pull("TQ1", PullOptions{}).status().code(), StatusCode::kUnavailable);
  q->Stop();  // idempotent
}

TEST_F(NatsQueueTest, AcknowledgedPushesSurviveKill9OfTheServer) {
  auto q = Open();
  ASSERT_NE(q, nullptr);
  std::vector<std::string> acknowledged;
  for (int batch = 0; batch < 20; ++batch) {
    std::vector<std::string> contents;
    contents.reserve(10);
    for (int i = 0; i < 10; ++i) {
      contents.push_back("{\"n\":" + std::to_string(batch * 10 + i) + "}");
    }
    auto ids = PushSync(*q, "TQ1", contents);
    ASSERT_TRUE(ids.ok()) << ids.status().ToString();
    acknowledged.insert(acknowledged.end(), ids->begin(), ids->end());
  }
  server_.Kill(SIGKILL);

  // A dead server is Unavailable, not a crash.
  auto pushed = PushSync(*q, "TQ1", {"{\"lost\":true}"});
  EXPECT_EQ(pushed.status().code(), StatusCode::kUnavailable) << pushed.status().ToString();
  EXPECT_EQ(q->Pull("TQ1", PullOptions{}).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(q->Stats("TQ1").status().code(), StatusCode::kUnavailable);
  q.reset();

  ASSERT_TRUE(server_.Start());
  q = Open();
  ASSERT_NE(q, nullptr);
  std::vector<std::string> delivered;
  for (;;) {
    const auto got = PullOk(*q, "TQ1", 50);
    if (got.empty()) break;
    for (const QueueMessage& m : got) delivered.push_back(m.id);
  }
  EXPECT_EQ(delivered, acknowledged);
  // And the ids go on from there.
  auto next = PushSync(*q, "TQ1", {"{}"});
  ASSERT_TRUE(next.ok()) << next.status().ToString();
  EXPECT_EQ((*next)[0], "TQ1-" + std::to_string(acknowledged.size() + 1));
}


bool NatsQueueTestPush(Queue& q, const std::vector<std::string>& contents) {
  std::vector<PushItem> items;
  items.reserve(contents.size());
  for (const std::string& c : contents) items.push_back({c, "tx"});
  return q.PushAndWait("TQ1", items).ok();
}


// Leases "a" for 4 s, kills nats-server and Vigil with SIGKILL (the server's consumer state
// lost too, when `lose_consumer_state`), restarts both, and checks that "a" stays invisible
// until its lease ends and then comes back with attempt 2.
void CheckALeaseAcrossKill9(NatsServer& server, const std::function<std::unique_ptr<Queue>()>& open,
                            bool lose_consumer_state) {
  auto q = open();
  ASSERT_NE(q, nullptr);
  ASSERT_TRUE(NatsQueueTestPush(*q, {"a", "b"}));
  PullOptions lease;
  lease.max = 1;
  lease.lease = seconds(4);
  auto first = q->Pull("TQ1", lease);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  ASSERT_EQ(first->size(), 1u);
  const QueueMessage a = (*first)[0];
  EXPECT_EQ(a.content, "a");
  EXPECT_EQ(a.attempt, 1);
  server.Kill(SIGKILL);
  q.reset();
  if (lose_consumer_state) {
    ASSERT_GT(server.LoseConsumerState("VIGIL_Q_TQ1"), 0);
  }
  ASSERT_TRUE(server.Start());
  q = open();
  ASSERT_NE(q, nullptr);
  // "a" is leased still: the next pull gets "b" only.
  PullOptions more;
  more.max = 10;
  more.lease = seconds(30);
  more.wait = milliseconds(500);
  auto next = q->Pull("TQ1", more);
  ASSERT_TRUE(next.ok()) << next.status().ToString();
  ASSERT_EQ(next->size(), 1u);
  EXPECT_EQ((*next)[0].content, "b");
  ASSERT_LT(SystemNowUs(), a.lease_expires_us) << "the test was too slow to tell";
  const std::vector<std::string> b = {(*next)[0].id};
  ASSERT_TRUE((*q->Ack("TQ1", b))[0].ok());
  // It comes back once its lease ran out, one attempt further.
  more.wait = seconds(6);
  auto again = q->Pull("TQ1", more);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  ASSERT_EQ(again->size(), 1u);
  EXPECT_EQ((*again)[0].id, a.id);
  EXPECT_EQ((*again)[0].content, "a");
  EXPECT_EQ((*again)[0].attempt, 2);
  EXPECT_GE(SystemNowUs(), a.lease_expires_us);
  const std::vector<std::string> ids = {a.id};
  auto acked = q->Ack("TQ1", ids);
  ASSERT_TRUE(acked.ok());
  EXPECT_TRUE((*acked)[0].ok()) << (*acked)[0].ToString();
}

TEST_F(NatsQueueTest, ALeaseHoldsAcrossKill9OfTheServerAndOfVigil) {
  CheckALeaseAcrossKill9(server_, [&] { return Open(); }, /*lose_consumer_state=*/false);
}

TEST_F(NatsQueueTest, ALeaseHoldsWhenTheServerLostItsConsumerState) {
  // What the e2e suite's kill -9 under load meets: the restarted server delivers "a" as new.
  CheckALeaseAcrossKill9(server_, [&] { return Open(); }, /*lose_consumer_state=*/true);
}

TEST_F(NatsQueueTest, ALeaseHoldsAcrossKill9OfTheServerAlone) {
  // Vigil stays up and reconnects; the restarted server, its consumer state lost, delivers
  // "a" again as new.
  auto q = Open();
  ASSERT_NE(q, nullptr);
  ASSERT_TRUE(PushSync(*q, "TQ1", {"a", "b"}).ok());
  const auto first = PullOk(*q, "TQ1", 1, seconds(4));
  ASSERT_EQ(first.size(), 1u);
  server_.Kill(SIGKILL);
  ASSERT_GT(server_.LoseConsumerState("VIGIL_Q_TQ1"), 0);
  ASSERT_TRUE(server_.Start());
  std::vector<QueueMessage> next;
  ASSERT_TRUE(Eventually([&] {
    PullOptions po;
    po.max = 10;
    po.lease = seconds(30);
    po.wait = milliseconds(300);
    auto r = q->Pull("TQ1", po);
    const bool ok = r.ok();
    if (ok) next = std::move(r).value();
    return ok && !next.empty();
  }));
  ASSERT_EQ(Contents(next), std::vector<std::string>{"b"});
  ASSERT_LT(SystemNowUs(), first[0].lease_expires_us) << "the test was too slow to tell";
  EXPECT_TRUE(PullOk(*q, "TQ1", 10, seconds(30), milliseconds(300)).empty());
  // Still this process's lease: its Ack works.
  const std::vector<std::string> a = {first[0].id};
  auto acked = q->Ack("TQ1", a);
  ASSERT_TRUE(acked.ok());
  EXPECT_TRUE((*acked)[0].ok()) << (*acked)[0].ToString();
  EXPECT_TRUE(PullOk(*q, "TQ1", 10, seconds(30), seconds(5)).empty());
}

TEST_F(NatsQueueTest, ALeaseHeldByAnotherVigilHoldsAcrossKill9OfTheServer) {
  // Two Vigil processes on one server; the one that did not lease "a" pulls first after the
  // server restarted without its consumer state: it reads the records again and holds "a".
  auto holder = Open();
  auto other = Open();
  ASSERT_NE(holder, nullptr);
  ASSERT_NE(other, nullptr);
  ASSERT_TRUE(PushSync(*holder, "TQ1", {"a", "b"}).ok());
  const auto first = PullOk(*holder, "TQ1", 1, seconds(4));
  ASSERT_EQ(Contents(first), std::vector<std::string>{"a"});
  server_.Kill(SIGKILL);
  ASSERT_GT(server_.LoseConsumerState("VIGIL_Q_TQ1"), 0);
  ASSERT_TRUE(server_.Start());
  std::vector<QueueMessage> got;
  ASSERT_TRUE(Eventually([&] {
    PullOptions po;
    po.max = 10;
    po.lease = seconds(30);
    po.wait = milliseconds(300);
    auto r = other->Pull("TQ1", po);
    const bool ok = r.ok();
    if (ok) got = std::move(r).value();
    return ok && !got.empty();
  }));
  EXPECT_EQ(Contents(got), std::vector<std::string>{"b"});
  ASSERT_LT(SystemNowUs(), first[0].lease_expires_us) << "the test was too slow to tell";
  EXPECT_TRUE(PullOk(*other, "TQ1", 10, seconds(30), milliseconds(300)).empty());
}

TEST_F(NatsQueueTest, LeasesOfARestartedVigilCanBeSettled) {
  auto old_vigil = Open();
  ASSERT_NE(old_vigil, nullptr);
  ASSERT_TRUE(PushSync(*old_vigil, "TQ1", {"a", "b", "c", "d"}).ok());
  const auto leased = PullOk(*old_vigil, "TQ1", 3, seconds(20));
  ASSERT_EQ(Contents(leased), (std::vector<std::string>{"a", "b", "c"}));
  old_vigil.reset();  // what a restart of Vigil leaves: the leases, and no delivery to ack
  auto q = Open();
  ASSERT_NE(q, nullptr);

  // All or nothing still: with an id never leased, nothing is acknowledged.
  const std::vector<std::string> with_unknown = {leased[0].id, "TQ1-999", "TQ1-x"};
  auto refused = q->Ack("TQ1", with_unknown);
  ASSERT_TRUE(refused.ok());
  EXPECT_TRUE((*refused)[0].ok());
  EXPECT_EQ((*refused)[1].code(), StatusCode::kNotFound);
  EXPECT_EQ((*refused)[2].code(), StatusCode::kNotFound);
  const std::vector<std::string> twice = {leased[0].id, leased[0].id};
  EXPECT_EQ((*q->Ack("TQ1", twice))[1].code(), StatusCode::kNotFound);

  // An ack of "a": settled for good.
  const std::vector<std::string> a = {leased[0].id};
  auto acked = q->Ack("TQ1", a);
  ASSERT_TRUE(acked.ok());
  EXPECT_TRUE((*acked)[0].ok()) << (*acked)[0].ToString();
  EXPECT_EQ((*q->Ack("TQ1", a))[0].code(), StatusCode::kNotFound);  // acknowledged already

  // A nack of "b": delivered again at once, one attempt further.
  const std::vector<std::string> b = {leased[1].id};
  auto nacked = q->Nack("TQ1", b, NackOptions{});
  ASSERT_TRUE(nacked.ok());
  EXPECT_TRUE((*nacked)[0].ok()) << (*nacked)[0].ToString();
  const auto got = PullOk(*q, "TQ1", 10, seconds(20), seconds(3));
  ASSERT_EQ(Contents(got), (std::vector<std::string>{"b", "d"}));
  EXPECT_EQ(got[0].id, leased[1].id);
  EXPECT_EQ(got[0].attempt, 2);
  const std::vector<std::string> b_and_d = {got[0].id, got[1].id};
  ASSERT_TRUE((*q->Ack("TQ1", b_and_d))[0].ok());

  // A nack of "c" to the dead letters: read from the stream, with its content.
  NackOptions dead;
  dead.dead_letter = true;
  dead.reason = "bad";
  const std::vector<std::string> c = {leased[2].id};
  auto dead_nack = q->Nack("TQ1", c, dead);
  ASSERT_TRUE(dead_nack.ok());
  EXPECT_TRUE((*dead_nack)[0].ok()) << (*dead_nack)[0].ToString();
  auto letters = q->DeadLetters("TQ1", 10);
  ASSERT_TRUE(letters.ok());
  ASSERT_EQ(letters->size(), 1u);
  EXPECT_EQ((*letters)[0].id, leased[2].id);
  EXPECT_EQ((*letters)[0].content, "c");
  EXPECT_EQ((*letters)[0].last_error, "bad");

  // Nothing is left to deliver, now or after the ack wait: "a" and "c" are gone from the
  // stream, and the server counts nothing pending.
  EXPECT_TRUE(PullOk(*q, "TQ1", 10, seconds(20), milliseconds(500)).empty());
  EXPECT_TRUE(Eventually([&] {
    const QueueStats s = StatsOk(*q, "TQ1");
    return s.depth == 0 && s.in_flight == 0;
  }));
  q.reset();
  q = Open();
  ASSERT_NE(q, nullptr);
  EXPECT_TRUE(PullOk(*q, "TQ1", 10, seconds(20), milliseconds(500)).empty());
}

}  // namespace
}  // namespace vigil

#endif  // VIGIL_HAS_NATS
