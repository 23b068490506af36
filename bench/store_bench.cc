// The store's write path: records committed per second through Store::Append.
//
//   BM_AppendAndWait/<sync>/threads:N — N appenders, each waiting for its record's done(Ok)
//       before appending the next, as the scoring service does before replying. With 8
//       appenders the writer commits their records together (group commit).
//   BM_AppendAsync/<sync> — one appender that does not wait (the service's `--record async`),
//       with a Flush every 1,000 records: what the writer thread can commit at most.
// <sync> is 0 for SyncMode::kNormal, 1 for SyncMode::kFull. items_per_second is records
// committed per second of wall time over all threads; records_per_commit the mean batch. Records
// are about 700 bytes (transaction and reply JSON included). Each run starts on a fresh file in
// $VIGIL_BENCH_DIR (default /tmp/vigil_store_bench; put it on the disk the service uses: FULL's
// cost is an fsync).
//
// Run: ./build/store_bench [--benchmark_repetitions=3 --benchmark_report_aggregates_only=true]
// Note: Debian's libbenchmark is a debug build; its overhead is small beside a commit.
#include <benchmark/benchmark.h>

#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>

#include "vigil/store.h"

namespace vigil {
namespace {

std::unique_ptr<Store> g_store;  // opened by Setup, closed by Teardown (one benchmark at a time)

// Commits seen by the done callbacks. The writer adds a whole batch to committed() before it
// calls the batch's callbacks, so each batch shows them one committed() value. Touched only on
// the writer thread (and by Setup before it).
int64_t g_batches = 0;
int64_t g_last_committed = -1;

void CountBatch() {
  int64_t c = g_store->committed();
  if (c != g_last_committed) {
    ++g_batches;
    g_last_committed = c;
  }
}

void ReportBatches(benchmark::State& state, int64_t records) {
  if (state.thread_index() != 0) return;
  // Read after every thread's last record was acknowledged, so the writer has counted them.
  state.counters["records_per_commit"] =
      g_batches > 0 ? static_cast<double>(records) / static_cast<double>(g_batches) : 0;
}

std::string BenchPath() {
  const char* dir = std::getenv("VIGIL_BENCH_DIR");
  std::string folder = dir != nullptr ? dir : "/tmp/vigil_store_bench";
  std::filesystem::create_directories(folder);
  return folder + "/store_bench.db";
}

void OpenStore(const benchmark::State& state) {
  StoreOptions options;
  options.path = BenchPath();
  options.sync = state.range(0) == 1 ? SyncMode::kFull : SyncMode::kNormal;
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(options.path + suffix);
  auto store = Store::Open(options);
  if (!store.ok()) {
    std::fprintf(stderr, "%s\n", store.status().ToString().c_str());
    std::abort();
  }
  g_store = std::move(store).value();
  g_batches = 0;
  g_last_committed = -1;
}

void CloseStore(const benchmark::State&) { g_store.reset(); }

TransactionRecord MakeRecord(int thread, int64_t i) {
  TransactionRecord r;
  r.transaction_id = "tx-" + std::to_string(thread) + "-" + std::to_string(i);
  r.customer_id = "C" + std::to_string(i % 5000);
  r.terminal_id = "T" + std::to_string(i % 10000);
  r.amount = 57.16;
  r.timestamp = 1522540831 + i;
  r.transaction_json =
      R"({"transaction_id":")" + r.transaction_id + R"(","customer_id":")" + r.customer_id +
      R"(","terminal_id":")" + r.terminal_id +
      R"(","amount":57.16,"timestamp":"2018-04-01T00:00:31Z","currency":"EUR",)"
      R"("status":"submitted","metadata":{"channel":"pos","country":"FR","mcc":"5411"}})";
  r.score = 0.0123;
  r.decision = "approve";
  r.anomaly_score = 0.41;
  r.model_name = "gbdt";
  r.model_version = "20240101-1";
  r.reply_json =
      R"({"transaction_id":")" + r.transaction_id +
      R"(","score":0.0123,"decision":"approve","reasons":[{"code":"AMOUNT_VS_CUSTOMER_AVERAGE",)"
      R"("text":"amount is 1.1x this customer's 30-day average","contribution":0.012},)"
      R"({"code":"TERMINAL_RISK_7D","text":"terminal had no fraud in 7 days","contribution":-0.3}],)"
      R"("anomaly_score":0.41,"model":{"name":"gbdt","version":"20240101-1","alias":"champion"},)"
      R"("latency_us":87})";
  r.latency_us = 87;
  return r;
}

// One appender's wait for its own record's commit.
class Waiter {
 public:
  void Arm() { done_ = false; }
  void Done(const Status& s) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ok_ = s.ok();
      done_ = true;
    }
    cv_.notify_one();
  }
  bool Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return done_; });
    return ok_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;  // GUARDED_BY(mu_)
  bool ok_ = false;    // GUARDED_BY(mu_)
};

void BM_AppendAndWait(benchmark::State& state) {
  Waiter waiter;
  int64_t i = 0;
  for (auto _ : state) {
    waiter.Arm();
    g_store->Append(MakeRecord(state.thread_index(), i++), [&waiter](const Status& s) {
      CountBatch();
      waiter.Done(s);
    });
    if (!waiter.Wait()) {
      state.SkipWithError("append failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
  ReportBatches(state, state.iterations() * state.threads());
}

void BM_AppendAsync(benchmark::State& state) {
  int64_t i = 0;
  for (auto _ : state) {
    g_store->Append(MakeRecord(0, i++), [](const Status&) { CountBatch(); });
    if (i % 1000 == 0 && !g_store->Flush().ok()) {
      state.SkipWithError("commit failed");
      break;
    }
  }
  if (!g_store->Flush().ok()) state.SkipWithError("commit failed");
  state.SetItemsProcessed(state.iterations());
  ReportBatches(state, state.iterations());
}

BENCHMARK(BM_AppendAndWait)
    ->Setup(OpenStore)
    ->Teardown(CloseStore)
    ->ArgName("full")
    ->Arg(0)
    ->Arg(1)
    ->Threads(1)
    ->Threads(8)
    ->UseRealTime()
    ->MinTime(1.0);
BENCHMARK(BM_AppendAsync)
    ->Setup(OpenStore)
    ->Teardown(CloseStore)
    ->ArgName("full")
    ->Arg(0)
    ->Arg(1)
    ->UseRealTime()
    ->MinTime(1.0);

}  // namespace
}  // namespace vigil

BENCHMARK_MAIN();
