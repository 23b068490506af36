// The queue engines underneath the queue API, without HTTP (bench/load/queue.sh measures the
// API): messages per second through the Queue interface and, beside it, the raw engines.
//
//   BM_JournalAppend/batch:B — the embedded queue's log: Journal::Append of B records of 190 bytes
//       in one write (process-crash durability, as a default push).
//   BM_EmbeddedPush/batch:B — Queue::Push of B messages to the embedded queue, waiting for done.
//   BM_EmbeddedPullAck/batch:B — a leased Pull of B messages, then their Ack (the queue is kept
//       filled outside the timing).
//   BM_NatsPublish/batch:B, BM_NatsPullAck/batch:B — the same through the NATS JetStream backend,
//       when $VIGIL_BENCH_NATS names a server (nats://127.0.0.1:4222; scripts/nats-server.sh
//       starts one); skipped otherwise.
//   BM_RawNatsPublish / BM_RawNatsPullAck — nats.c alone on that server: async JetStream
//       publishes with a wait for their acks every 1,000, and Fetch of 100 + acks of each.
// items_per_second counts messages. Folders under $VIGIL_BENCH_DIR (default /tmp/vigil_queue_bench).
// Run: ./build/queue_bench [--benchmark_repetitions=3 --benchmark_report_aggregates_only=true]
// Note: Debian's libbenchmark is a debug build; its overhead is small beside a write(2).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "journal/journal.h"
#include "queue/embedded_queue.h"
#include "vigil/queue.h"

#if VIGIL_HAS_NATS
#include <nats/nats.h>
#endif

namespace vigil {
namespace {

const std::string kMessage =
    R"({"customer_id":"cust_1234","vendor_id":5678,"amount":125.40,"status":"submitted",)"
    R"("timestamp":"2018-08-01T12:34:56.123456","transaction_id":"bench-0000000001"})";

std::string BenchDir(const std::string& name) {
  const char* dir = std::getenv("VIGIL_BENCH_DIR");
  std::string d = std::string(dir != nullptr ? dir : "/tmp/vigil_queue_bench") + "/" + name;
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

void BM_JournalAppend(benchmark::State& state) {
  JournalOptions o;
  o.dir = BenchDir("journal");
  auto journal = Journal::Open(o);
  if (!journal.ok()) return state.SkipWithError(journal.status().ToString().c_str());
  std::vector<std::string_view> records(static_cast<size_t>(state.range(0)), kMessage);
  for (auto _ : state) {
    auto r = (*journal)->Append(records);
    if (!r.ok()) return state.SkipWithError(r.status().ToString().c_str());
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_JournalAppend)->ArgName("batch")->Arg(1)->Arg(100)->UseRealTime();

std::unique_ptr<Queue> OpenQueue(benchmark::State& state, bool nats) {
  QueueOptions o;
  if (nats) {
    const char* url = std::getenv("VIGIL_BENCH_NATS");
    if (url == nullptr) {
      state.SkipWithError("set VIGIL_BENCH_NATS=nats://host:port to measure the JetStream backend");
      return nullptr;
    }
    o.url = url;
  }
  o.data_dir = BenchDir("queue");
  auto q = Queue::Open(o);
  if (!q.ok()) {
    state.SkipWithError(q.status().ToString().c_str());
    return nullptr;
  }
  return std::move(*q);
}

bool PushAll(Queue& q, const std::string& name, size_t n) {
  std::vector<PushItem> items(n, PushItem{kMessage, "transaction"});
  return q.PushAndWait(name, items).ok();
}

void Push(benchmark::State& state, bool nats) {
  auto q = OpenQueue(state, nats);
  if (q == nullptr) return;
  const auto batch = static_cast<size_t>(state.range(0));
  for (auto _ : state) {
    if (!PushAll(*q, "BENCH", batch)) return state.SkipWithError("push failed");
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

void PullAck(benchmark::State& state, bool nats) {
  auto q = OpenQueue(state, nats);
  if (q == nullptr) return;
  const auto batch = static_cast<size_t>(state.range(0));
  PullOptions p;
  p.max = batch;
  p.lease = std::chrono::seconds(60);
  size_t left = 0;
  for (auto _ : state) {
    if (left < batch) {
      state.PauseTiming();
      for (int i = 0; i < 10; ++i) {
        if (!PushAll(*q, "BENCH", 1000)) return state.SkipWithError("push failed");
      }
      left += 10000;
      state.ResumeTiming();
    }
    auto got = q->Pull("BENCH", p);
    if (!got.ok() || got->size() != batch) return state.SkipWithError("pull came short");
    std::vector<std::string> ids;
    for (const QueueMessage& m : *got) ids.push_back(m.id);
    auto acked = q->Ack("BENCH", ids);
    if (!acked.ok()) return state.SkipWithError(acked.status().ToString().c_str());
    left -= batch;
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

void BM_EmbeddedPush(benchmark::State& state) { Push(state, false); }
void BM_EmbeddedPullAck(benchmark::State& state) { PullAck(state, false); }
void BM_NatsPush(benchmark::State& state) { Push(state, true); }
void BM_NatsPullAck(benchmark::State& state) { PullAck(state, true); }
BENCHMARK(BM_EmbeddedPush)->ArgName("batch")->Arg(1)->Arg(100)->UseRealTime();
BENCHMARK(BM_EmbeddedPullAck)->ArgName("batch")->Arg(1)->Arg(100)->UseRealTime();
BENCHMARK(BM_NatsPush)->ArgName("batch")->Arg(1)->Arg(100)->UseRealTime();
BENCHMARK(BM_NatsPullAck)->ArgName("batch")->Arg(1)->Arg(100)->UseRealTime();

#if VIGIL_HAS_NATS
// nats.c on its own: what the JetStream backend could reach at best.
struct RawNats {
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  ~RawNats() {
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
  }
  bool Open(benchmark::State& state) {
    const char* url = std::getenv("VIGIL_BENCH_NATS");
    if (url == nullptr) {
      state.SkipWithError("set VIGIL_BENCH_NATS=nats://host:port to measure nats.c");
      return false;
    }
    if (natsConnection_ConnectTo(&nc, url) != NATS_OK || natsConnection_JetStream(&js, nc, nullptr) != NATS_OK) {
      state.SkipWithError("cannot connect to NATS");
      return false;
    }
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    cfg.Name = "RAWBENCH";
    const char* subjects[] = {"rawbench"};
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    cfg.Retention = js_WorkQueuePolicy;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    js_DeleteStream(js, "RAWBENCH", nullptr, &jerr);
    if (js_AddStream(nullptr, js, &cfg, nullptr, &jerr) != NATS_OK) {
      state.SkipWithError("cannot create the stream");
      return false;
    }
    return true;
  }
  bool Publish(int n) {
    for (int i = 0; i < n; ++i) {
      if (js_PublishAsync(js, "rawbench", kMessage.data(), static_cast<int>(kMessage.size()), nullptr) != NATS_OK) {
        return false;
      }
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 10000;
    return js_PublishAsyncComplete(js, &po) == NATS_OK;
  }
};

void BM_RawNatsPublish(benchmark::State& state) {
  RawNats raw;
  if (!raw.Open(state)) return;
  for (auto _ : state) {
    if (!raw.Publish(1000)) return state.SkipWithError("publish failed");
  }
  state.SetItemsProcessed(state.iterations() * 1000);
}
BENCHMARK(BM_RawNatsPublish)->UseRealTime();

void BM_RawNatsPullAck(benchmark::State& state) {
  RawNats raw;
  if (!raw.Open(state)) return;
  natsSubscription* sub = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  if (js_PullSubscribe(&sub, raw.js, "rawbench", "rawbench", nullptr, nullptr, &jerr) != NATS_OK) {
    return state.SkipWithError("cannot subscribe");
  }
  int left = 0;
  for (auto _ : state) {
    if (left < 100) {
      state.PauseTiming();
      if (!raw.Publish(10000)) return state.SkipWithError("publish failed");
      left += 10000;
      state.ResumeTiming();
    }
    natsMsgList list = {nullptr, 0};
    if (natsSubscription_Fetch(&list, sub, 100, 5000, &jerr) != NATS_OK) {
      return state.SkipWithError("fetch failed");
    }
    for (int i = 0; i < list.Count; ++i) natsMsg_Ack(list.Msgs[i], nullptr);
    left -= list.Count;
    natsMsgList_Destroy(&list);
  }
  natsSubscription_Destroy(sub);
  state.SetItemsProcessed(state.iterations() * 100);
}
BENCHMARK(BM_RawNatsPullAck)->UseRealTime();
#endif

}  // namespace
}  // namespace vigil

BENCHMARK_MAIN();
