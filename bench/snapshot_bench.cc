// The cost of a snapshot's bytes: FeatureEngine::Save and Load of a serving-sized state, and the
// same for the scoring service's filter of seen transaction ids.
//
//   BM_FeatureStateSave / BM_FeatureStateLoad — the "all" set's engine after 1M transactions of
//       100k customers at 10k terminals spread over 37 days (30 days of windows + the 7-day label
//       delay: the whole horizon), 0.5% of them labelled fraud (a week later). Counters: bytes
//       of the state, bytes per transaction, throughput.
//   BM_SeenFilterSave / BM_SeenFilterLoad — the filter of seen ids after 10M transactions (four
//       generations, 30 MiB).
//
// The state is built from a deterministic RNG, not the simulator: only its shape matters here.
// Run: ./build/snapshot_bench [--benchmark_repetitions=3 --benchmark_report_aggregates_only=true]
// VIGIL_SNAPSHOT_BENCH_TX=N sets the transaction count (default 1,000,000), the customer and
// terminal counts scaled with it.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>

#include "core/seen_filter.h"
#include "vigil/features.h"
#include "vigil/time.h"

namespace vigil {
namespace {

struct BuiltState {
  int64_t transactions = 0;
  int64_t frauds = 0;
  std::string bytes;  // its Save
};

int64_t TransactionCount() {
  const char* n = std::getenv("VIGIL_SNAPSHOT_BENCH_TX");
  return n != nullptr ? std::atoll(n) : 1'000'000;
}

// Builds the engine, saves it, and keeps the bytes (the engine too, for BM_FeatureStateSave).
FeatureEngine& Engine(BuiltState* built = nullptr) {
  static BuiltState state;
  static FeatureEngine* engine = [] {
    auto* e = new FeatureEngine(FeatureSet::kAll);  // NOLINT: lives for the whole program
    const int64_t n = TransactionCount();
    const int64_t customers = std::max<int64_t>(1, n / 10);
    const int64_t terminals = std::max<int64_t>(1, n / 100);
    const int64_t span = 37 * kSecondsPerDay;
    const int64_t t0 = *ParseDate("2024-01-01");
    std::mt19937_64 rng(20240101);
    std::lognormal_distribution<double> amount(3.5, 1.0);
    for (int64_t i = 0; i < n; ++i) {
      const TransactionView tx{i, t0 + i * span / n, static_cast<int64_t>(rng() % customers),
                               static_cast<int64_t>(rng() % terminals),
                               std::round(amount(rng) * 100) / 100};
      e->Insert(tx);
      // Labels come back for the fraud among the transactions of a week ago.
      if (rng() % 200 == 0 && i >= n / 5 && e->AddLabel(i - n / 5, true).ok()) ++state.frauds;
    }
    state.transactions = n;
    e->Save(&state.bytes);
    return e;
  }();
  if (built != nullptr) *built = state;
  return *engine;
}

void Report(benchmark::State& state, const BuiltState& built) {
  state.counters["bytes"] = static_cast<double>(built.bytes.size());
  state.counters["bytes_per_tx"] =
      static_cast<double>(built.bytes.size()) / static_cast<double>(built.transactions);
  state.counters["transactions"] = static_cast<double>(built.transactions);
  state.counters["frauds"] = static_cast<double>(built.frauds);
  state.counters["MB_per_second"] = benchmark::Counter(
      static_cast<double>(built.bytes.size()) / 1e6, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_FeatureStateSave(benchmark::State& state) {
  BuiltState built;
  const FeatureEngine& engine = Engine(&built);
  for (auto _ : state) {
    std::string bytes;
    engine.Save(&bytes);
    benchmark::DoNotOptimize(bytes.data());
    if (bytes.size() != built.bytes.size()) state.SkipWithError("Save is not deterministic");
  }
  Report(state, built);
}
BENCHMARK(BM_FeatureStateSave)->Unit(benchmark::kMillisecond);

void BM_FeatureStateLoad(benchmark::State& state) {
  BuiltState built;
  Engine(&built);
  for (auto _ : state) {
    auto loaded = std::make_unique<FeatureEngine>(FeatureSet::kAll);
    if (!loaded->Load(built.bytes).ok()) state.SkipWithError("Load failed");
    benchmark::DoNotOptimize(loaded.get());
    state.PauseTiming();  // freeing the state is no part of a start-up
    loaded.reset();
    state.ResumeTiming();
  }
  Report(state, built);
}
BENCHMARK(BM_FeatureStateLoad)->Unit(benchmark::kMillisecond);

SeenFilter& Filter() {
  static SeenFilter* filter = [] {
    auto* f = new SeenFilter();  // NOLINT: lives for the whole program
    for (int i = 0; i < 10'000'000; ++i) f->Add(SeenFilter::Hash("tx-" + std::to_string(i)), i);
    return f;
  }();
  return *filter;
}

void BM_SeenFilterSave(benchmark::State& state) {
  const SeenFilter& f = Filter();
  for (auto _ : state) {
    std::string bytes;
    f.Save(&bytes);
    benchmark::DoNotOptimize(bytes.data());
  }
  state.counters["bytes"] = static_cast<double>(f.bytes());
}
BENCHMARK(BM_SeenFilterSave)->Unit(benchmark::kMillisecond);

void BM_SeenFilterLoad(benchmark::State& state) {
  std::string bytes;
  Filter().Save(&bytes);
  SeenFilter f;
  for (auto _ : state) {
    if (!f.Load(bytes).ok()) state.SkipWithError("Load failed");
    benchmark::DoNotOptimize(&f);
  }
  state.counters["bytes"] = static_cast<double>(bytes.size());
}
BENCHMARK(BM_SeenFilterLoad)->Unit(benchmark::kMillisecond);

// The check a request makes: an id never seen (all four generations probed) and one seen.
void BM_SeenFilterMiss(benchmark::State& state) {
  const SeenFilter& f = Filter();
  uint64_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(f.MayContain(SeenFilter::Hash("new-" + std::to_string(i++))));
}
BENCHMARK(BM_SeenFilterMiss);

}  // namespace
}  // namespace vigil

BENCHMARK_MAIN();
