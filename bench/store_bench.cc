// The store's write path: records committed per second through Store::Append (the record
// encoded, written to the journal, handed to the indexer, which writes SQLite on its own thread).
//
//   BM_AppendAndWait/full:<d>/threads:N — N appenders, each waiting for its record's done(Ok)
//       before appending the next, as the engine does before replying (--record sync).
//   BM_AppendAsync/full:<d> — one appender that does not wait, with a Flush (journal and index)
//       every 10,000 records: what the store sustains, indexing included.
// <d> is 0 for Durability::kProcessCrash (--sync normal), 1 for kPowerLoss (--sync full: an
// fdatasync, shared by the appenders waiting together). items_per_second is records committed
// per second of wall time over all threads; records_per_write the mean journal write. Records are
// about 700 bytes (transaction and reply JSON included). Each run starts in a fresh folder under
// $VIGIL_BENCH_DIR (default /tmp/vigil_store_bench; put it on the disk the service uses: kPowerLoss
// costs an fdatasync).
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
WriteOptions g_write;

void ReportWrites(benchmark::State& state) {
  if (state.thread_index() != 0) return;
  state.counters["records_per_write"] =
      g_store->commits() > 0
          ? static_cast<double>(g_store->committed()) / static_cast<double>(g_store->commits())
          : 0;
}

void OpenStore(const benchmark::State& state) {
  const char* dir = std::getenv("VIGIL_BENCH_DIR");
  StoreOptions options;
  options.dir = std::string(dir != nullptr ? dir : "/tmp/vigil_store_bench") + "/store";
  std::filesystem::remove_all(options.dir);
  std::filesystem::create_directories(options.dir);
  g_write.durability = state.range(0) == 1 ? Durability::kPowerLoss : Durability::kProcessCrash;
  auto store = Store::Open(options);
  if (!store.ok()) {
    std::fprintf(stderr, "%s\n", store.status().ToString().c_str());
    std::abort();
  }
  g_store = std::move(store).value();
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
    g_store->Append(MakeRecord(state.thread_index(), i++), g_write,
                    [&waiter](const Status& s) { waiter.Done(s); });
    if (!waiter.Wait()) {
      state.SkipWithError("append failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
  ReportWrites(state);
}

void BM_AppendAsync(benchmark::State& state) {
  int64_t i = 0;
  for (auto _ : state) {
    g_store->Append(MakeRecord(0, i++), g_write, nullptr);
    if (i % 10000 == 0 && !g_store->Flush().ok()) {
      state.SkipWithError("commit failed");
      break;
    }
  }
  if (!g_store->Flush().ok()) state.SkipWithError("commit failed");
  state.SetItemsProcessed(state.iterations());
  ReportWrites(state);
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
