// Vigil's tree inference (Forest) against XGBoost's C API on the same models and rows.
//
// Setup trains three models through TrainModel on synthetic data (16 features, 200,000 rows):
//   gbdt_d3: 50 rounds, max_depth 3, eta 0.3, hist (`vigil train`'s gbdt defaults but hist)
//   gbdt: 200 rounds, max_depth 6, eta 0.1, hist
//   rf:   num_parallel_tree 100, max_depth 12, subsample 0.63, colsample_bynode 0.8, eta 1, hist
// and times inference on 100,000 other rows:
//   single row: Forest::Predict vs XGBoosterPredictFromDense on a 1x16 row (nthread=1, one
//               reused proxy DMatrix, the array-interface string built per call);
//   batch:      Forest::PredictBatch(threads=1) vs XGBoosterPredictFromDense on all rows
//               (nthread=1), reported as items_per_second (rows/s);
// for every kernel this CPU has, and which of them Kernel::kAuto chooses on this CPU (its timings
// are in the "forest kernel chosen" log line on stderr); and explanations (TreeSHAP contributions
// of one row, what the service's reasons cost) from the Explainer's precomputed tables and from its
// recursive algorithm. After Google Benchmark's runs, a latency report times 20,000 single-row
// calls one by one (steady_clock around each call) for the median and p99, which Google Benchmark
// does not give, measures batch throughput per CPU-second of the calling thread (robust to other
// processes on a shared machine) and per wall-second, and prints the speedups measured in the same
// run.
//
// Run: ./build/inference_bench [--benchmark_filter=...] [--benchmark_repetitions=3]
//      [--latency_report=false]
// Note: Debian's libbenchmark is a debug build ("***WARNING*** Library was built as DEBUG"):
// that slows the harness, not the code under test, and the latency report does not use it.
#include <benchmark/benchmark.h>
#include <xgboost/c_api.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "model/explain.h"
#include "model/tree.h"
#include "model/xgboost_util.h"
#include "vigil/forest.h"
#include "vigil/model.h"

namespace vigil {
namespace {

constexpr size_t kFeatures = 16;
constexpr size_t kTrainRows = 200000;
constexpr size_t kTimedRows = 100000;

struct Bench {
  std::vector<float> train_x;
  std::vector<uint8_t> train_y;
  std::vector<float> rows;  // kTimedRows x kFeatures, the timed rows
  struct Model {
    std::string name;
    ModelFile file;
    std::unique_ptr<XgbBooster> booster;
    DMatrixHandle proxy = nullptr;
    std::vector<std::pair<Kernel, std::unique_ptr<Forest>>> forests;
    Kernel auto_kernel = Kernel::kAuto;  // what Kernel::kAuto chose at load
    // TreeSHAP for the reasons: precomputed tables (what serving uses) and the recursive algorithm.
    std::unique_ptr<Explainer> tables, recursive;
  };
  std::vector<Model> models;
};

Bench* g_bench = nullptr;

void Die(const Status& s, const char* what) {
  if (s.ok()) return;
  std::fprintf(stderr, "%s: %s\n", what, s.ToString().c_str());
  std::exit(1);
}

// Fraud-like synthetic rows: a few informative features with interactions, skewed amounts,
// counts, ~3% positives.
void MakeRows(size_t n, uint32_t seed, std::vector<float>* x, std::vector<uint8_t>* y) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  x->resize(n * kFeatures);
  y->resize(n);
  for (size_t r = 0; r < n; ++r) {
    float* v = &(*x)[r * kFeatures];
    for (size_t c = 0; c < kFeatures; ++c) {
      v[c] = c % 4 == 0   ? std::exp(normal(rng)) * 40.0f
             : c % 4 == 1 ? std::floor(unit(rng) * 20.0f)
                          : normal(rng);
    }
    const double z = -4.2 + 0.01 * v[0] + 0.08 * v[1] + 0.9 * v[2] * v[3] + 0.7 * (v[6] > 1.0) +
                     0.5 * std::sin(3 * v[7]) + 0.4 * v[10] + 0.6 * normal(rng);
    (*y)[r] = z > 0 ? 1 : 0;
  }
}

std::string ArrayInterface(const float* data, size_t rows) {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "{\"data\":[%zu,true],\"shape\":[%zu,%zu],\"typestr\":\"<f4\",\"version\":3}",
                static_cast<size_t>(reinterpret_cast<uintptr_t>(data)), rows, kFeatures);
  return buf;
}

constexpr char kPredictConfig[] =
    "{\"type\":0,\"training\":false,\"iteration_begin\":0,\"iteration_end\":0,"
    "\"strict_shape\":false,\"missing\":NaN,\"cache_id\":0}";

float XgbPredictOne(const Bench::Model& m, const float* row) {
  const std::string ai = ArrayInterface(row, 1);
  bst_ulong const* shape = nullptr;
  bst_ulong dim = 0;
  float const* out = nullptr;
  if (XGBoosterPredictFromDense(m.booster->get(), ai.c_str(), kPredictConfig, m.proxy, &shape, &dim,
                                &out) != 0) {
    std::fprintf(stderr, "XGBoost: %s\n", XGBGetLastError());
    std::exit(1);
  }
  return out[0];
}

const float* XgbPredictBatch(const Bench::Model& m, const float* rows, size_t n) {
  const std::string ai = ArrayInterface(rows, n);
  bst_ulong const* shape = nullptr;
  bst_ulong dim = 0;
  float const* out = nullptr;
  if (XGBoosterPredictFromDense(m.booster->get(), ai.c_str(), kPredictConfig, nullptr, &shape, &dim,
                                &out) != 0) {
    std::fprintf(stderr, "XGBoost: %s\n", XGBGetLastError());
    std::exit(1);
  }
  return out;
}

void Setup() {
  g_bench = new Bench;
  Bench& b = *g_bench;
  std::vector<uint8_t> unused;
  MakeRows(kTrainRows, 1, &b.train_x, &b.train_y);
  MakeRows(kTimedRows, 2, &b.rows, &unused);
  std::vector<std::string> names;
  for (size_t c = 0; c < kFeatures; ++c) names.push_back("f" + std::to_string(c));

  struct Spec {
    const char* name;
    Algorithm algo;
    std::map<std::string, std::string> params;
  };
  const Spec specs[] = {
      {"gbdt_d3",  // `vigil train --algo gbdt`'s defaults: what the quick start serves
       Algorithm::kGbdt,
       {{"n_estimators", "50"}, {"max_depth", "3"}, {"eta", "0.3"}, {"tree_method", "hist"}}},
      {"gbdt",
       Algorithm::kGbdt,
       {{"n_estimators", "200"}, {"max_depth", "6"}, {"eta", "0.1"}, {"tree_method", "hist"}}},
      {"rf",
       Algorithm::kRandomForest,
       {{"n_estimators", "100"},
        {"max_depth", "12"},
        {"subsample", "0.63"},
        {"colsample_bynode", "0.8"},
        {"eta", "1"},
        {"tree_method", "hist"},
        {"min_child_weight", "1"},
        {"lambda", "1"}}},
  };
  for (const Spec& spec : specs) {
    Bench::Model m;
    m.name = spec.name;
    TrainOptions options;
    options.algo = spec.algo;
    options.params = spec.params;
    options.seed = 7;
    auto t0 = std::chrono::steady_clock::now();
    auto file = TrainModel(b.train_x, b.train_y, names, options);
    Die(file.status(), "train");
    m.file = std::move(file).value();
    const double train_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    m.booster = std::make_unique<XgbBooster>();
    Die(m.booster->LoadJson(m.file.xgboost_json), "load booster");
    Die(m.booster->SetParam("nthread", "1"), "nthread");
    Die(XgbCheck(XGProxyDMatrixCreate(&m.proxy), "proxy"), "proxy");
    for (Kernel k : {Kernel::kScalar, Kernel::kAvx2, Kernel::kAvx512}) {
      auto forest = Forest::FromModel(m.file, k);
      if (forest.ok()) m.forests.emplace_back(k, std::move(forest).value());
    }
    std::fflush(stdout);  // before the choice's log line on stderr
    auto chosen = Forest::FromModel(m.file);
    Die(chosen.status(), "compile (auto)");
    m.auto_kernel = (*chosen)->kernel();
    // The same answers as XGBoost on the timed rows?
    const float* ref = XgbPredictBatch(m, b.rows.data(), kTimedRows);
    std::vector<float> reference(ref, ref + kTimedRows);
    size_t nodes = 0;
    for (const Tree& t : m.forests.front().second->ensemble().trees) nodes += t.size();
    std::printf("model %s: %zu trees, %zu nodes, trained in %.1f s\n", spec.name,
                m.forests.front().second->num_trees(), nodes, train_s);
    for (auto& [k, forest] : m.forests) {
      std::vector<double> out(kTimedRows);
      forest->PredictBatch(b.rows, out, 1);
      double max_diff = 0;
      for (size_t i = 0; i < kTimedRows; ++i) {
        max_diff = std::max(max_diff, std::abs(out[i] - static_cast<double>(reference[i])));
      }
      std::printf("  kernel %-6s max |vigil - xgboost| over %zu rows: %.3g\n",
                  std::string(KernelName(k)).c_str(), kTimedRows, max_diff);
    }
    std::printf("  kernel auto chose %s on this CPU\n",
                std::string(KernelName(m.auto_kernel)).c_str());
    const Ensemble& e = m.forests.front().second->ensemble();
    m.tables = std::make_unique<Explainer>(e);
    m.recursive = std::make_unique<Explainer>(e, 0);
    std::printf("  explainer: %zu of %zu trees tabulated, %.1f MiB of tables\n",
                m.tables->tabulated_trees(), e.trees.size(),
                static_cast<double>(m.tables->table_bytes()) / (1 << 20));
    b.models.push_back(std::move(m));
  }
  std::fflush(stdout);
}

void BM_VigilSingle(benchmark::State& state, const Bench::Model* m, const Forest* forest) {
  const std::vector<float>& rows = g_bench->rows;
  size_t i = 0;
  for (auto _ : state) {
    double p = forest->Predict(std::span<const float>(&rows[i * kFeatures], kFeatures));
    benchmark::DoNotOptimize(p);
    if (++i == kTimedRows) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_XGBoostSingle(benchmark::State& state, const Bench::Model* m) {
  const std::vector<float>& rows = g_bench->rows;
  size_t i = 0;
  for (auto _ : state) {
    float p = XgbPredictOne(*m, &rows[i * kFeatures]);
    benchmark::DoNotOptimize(p);
    if (++i == kTimedRows) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_VigilBatch(benchmark::State& state, const Bench::Model* m, const Forest* forest) {
  std::vector<double> out(kTimedRows);
  const int threads = static_cast<int>(state.range(0));
  for (auto _ : state) {
    forest->PredictBatch(g_bench->rows, out, threads);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * kTimedRows);
}

void BM_XGBoostBatch(benchmark::State& state, const Bench::Model* m) {
  for (auto _ : state) {
    const float* out = XgbPredictBatch(*m, g_bench->rows.data(), kTimedRows);
    benchmark::DoNotOptimize(out);
  }
  state.SetItemsProcessed(state.iterations() * kTimedRows);
}

void BM_Explain(benchmark::State& state, const Explainer* explainer) {
  const std::vector<float>& rows = g_bench->rows;
  std::vector<double> phi(kFeatures + 1);
  size_t i = 0;
  for (auto _ : state) {
    explainer->Contributions(std::span<const float>(&rows[i * kFeatures], kFeatures), phi);
    benchmark::DoNotOptimize(phi.data());
    if (++i == kTimedRows) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
}

void Register() {
  for (const Bench::Model& m : g_bench->models) {
    for (const auto& [k, forest] : m.forests) {
      benchmark::RegisterBenchmark(
          ("single/" + m.name + "/vigil_" + std::string(KernelName(k))).c_str(), BM_VigilSingle, &m,
          forest.get());
    }
    benchmark::RegisterBenchmark(("single/" + m.name + "/xgboost").c_str(), BM_XGBoostSingle, &m);
    for (const auto& [k, forest] : m.forests) {
      benchmark::RegisterBenchmark(
          ("batch/" + m.name + "/vigil_" + std::string(KernelName(k))).c_str(), BM_VigilBatch, &m,
          forest.get())
          ->Arg(1)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
    }
    benchmark::RegisterBenchmark(
        ("batch/" + m.name + "/vigil_" + std::string(KernelName(m.forests.back().first))).c_str(),
        BM_VigilBatch, &m, m.forests.back().second.get())
        ->Arg(2)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
    benchmark::RegisterBenchmark(("batch/" + m.name + "/xgboost").c_str(), BM_XGBoostBatch, &m)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
    if (m.tables->tabulated_trees() > 0) {
      benchmark::RegisterBenchmark(("explain/" + m.name + "/tables").c_str(), BM_Explain,
                                   m.tables.get());
    }
    benchmark::RegisterBenchmark(("explain/" + m.name + "/recursive").c_str(), BM_Explain,
                                 m.recursive.get());
  }
}

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const double idx = p / 100.0 * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(idx)), hi = static_cast<size_t>(std::ceil(idx));
  return v[lo] + (v[hi] - v[lo]) * (idx - static_cast<double>(lo));
}

double CpuSeconds(clockid_t clock) {
  timespec t;
  clock_gettime(clock, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

// Times single calls one by one; returns the mean CPU time per call of this thread (which, unlike
// the per-call wall times, excludes time the scheduler gave to other processes).
template <typename F>
double TimeCalls(F call, std::vector<double>* us) {
  using Clock = std::chrono::steady_clock;
  const size_t warm = 2000, calls = 20000;
  us->clear();
  us->reserve(calls);
  double cpu0 = 0;
  for (size_t i = 0; i < warm + calls; ++i) {
    if (i == warm) cpu0 = CpuSeconds(CLOCK_THREAD_CPUTIME_ID);
    const auto t0 = Clock::now();
    call(i % kTimedRows);
    const auto t1 = Clock::now();
    if (i >= warm) us->push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }
  return (CpuSeconds(CLOCK_THREAD_CPUTIME_ID) - cpu0) * 1e6 / static_cast<double>(calls);
}

struct Throughput {
  double cpu_rows_per_s;   // rows per second of this thread's CPU time
  double wall_rows_per_s;  // rows per second of wall time
  bool other_threads;      // the process used CPU beyond this thread (the figure is not 1-core)
};

// Median of 5 runs. On a shared machine the wall figure includes time the scheduler gave to
// other processes; the CPU-time figure does not, and both engines here run on the calling
// thread alone (XGBoost with nthread=1), which other_threads checks.
template <typename F>
Throughput MeasureBatch(F run) {
  std::vector<double> cpu, wall;
  double process = 0, thread = 0;
  for (int rep = 0; rep < 5; ++rep) {
    const double p0 = CpuSeconds(CLOCK_PROCESS_CPUTIME_ID);
    const double c0 = CpuSeconds(CLOCK_THREAD_CPUTIME_ID);
    const auto w0 = std::chrono::steady_clock::now();
    run();
    wall.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count());
    cpu.push_back(CpuSeconds(CLOCK_THREAD_CPUTIME_ID) - c0);
    thread += cpu.back();
    process += CpuSeconds(CLOCK_PROCESS_CPUTIME_ID) - p0;
  }
  return {kTimedRows / Percentile(cpu, 50), kTimedRows / Percentile(wall, 50),
          process > 1.05 * thread};
}

// Median and p99 of single calls, and batch rows/s (median of 5), all measured here in one run
// so that the ratios compare like with like on a shared machine.
void LatencyReport() {
  const std::vector<float>& rows = g_bench->rows;
  std::printf(
      "\nlatency report. single: 20,000 calls after 2,000 warm-up, median and p99 of steady_clock "
      "per call, and mean thread CPU time per call (cpu_us); batch: %zu rows, median of 5, rows "
      "per thread CPU-second and per wall-second; gains: XGBoost's figure over Vigil's, by median, "
      "by cpu_us, by batch CPU rows/s; \"<- auto\": the kernel Kernel::kAuto chose at load\n",
      kTimedRows);
  std::printf("%-5s %-8s %9s %8s %8s %12s %12s %8s %8s %8s\n", "model", "engine", "median_us",
              "p99_us", "cpu_us", "batch_cpu/s", "batch_wall/s", "gain_med", "gain_cpu",
              "gain_bat");
  for (const Bench::Model& m : g_bench->models) {
    std::vector<double> us;
    volatile double sink = 0;
    const double xgb_cpu =
        TimeCalls([&](size_t i) { sink = sink + XgbPredictOne(m, &rows[i * kFeatures]); }, &us);
    const double xgb_median = Percentile(us, 50), xgb_p99 = Percentile(us, 99);
    const Throughput xgb =
        MeasureBatch([&] { sink = sink + XgbPredictBatch(m, rows.data(), kTimedRows)[0]; });
    std::printf("%-5s %-8s %9.3f %8.3f %8.3f %12.0f %12.0f %8s %8s %8s%s\n", m.name.c_str(),
                "xgboost", xgb_median, xgb_p99, xgb_cpu, xgb.cpu_rows_per_s, xgb.wall_rows_per_s,
                "1.0x", "1.0x", "1.0x", xgb.other_threads ? "  (used other threads)" : "");
    std::vector<double> out(kTimedRows);
    for (const auto& [k, forest] : m.forests) {
      const Forest* f = forest.get();
      const double cpu = TimeCalls(
          [&](size_t i) {
            sink = sink + f->Predict(std::span<const float>(&rows[i * kFeatures], kFeatures));
          },
          &us);
      const double median = Percentile(us, 50), p99 = Percentile(us, 99);
      const Throughput vigil = MeasureBatch([&] { f->PredictBatch(rows, out, 1); });
      char gain_median[32], gain_cpu[32], gain_batch[32];
      std::snprintf(gain_median, sizeof gain_median, "%.1fx", xgb_median / median);
      std::snprintf(gain_cpu, sizeof gain_cpu, "%.1fx", xgb_cpu / cpu);
      std::snprintf(gain_batch, sizeof gain_batch, "%.1fx",
                    vigil.cpu_rows_per_s / xgb.cpu_rows_per_s);
      std::printf("%-5s %-8s %9.3f %8.3f %8.3f %12.0f %12.0f %8s %8s %8s%s\n", m.name.c_str(),
                  std::string(KernelName(k)).c_str(), median, p99, cpu, vigil.cpu_rows_per_s,
                  vigil.wall_rows_per_s, gain_median, gain_cpu, gain_batch,
                  k == m.auto_kernel ? "  <- auto" : "");
    }
  }
  std::fflush(stdout);
}

}  // namespace
}  // namespace vigil

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  bool latency_report = true;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--latency_report=false") == 0) latency_report = false;
  }
  vigil::Setup();
  vigil::Register();
  benchmark::RunSpecifiedBenchmarks();
  if (latency_report) vigil::LatencyReport();
  benchmark::Shutdown();
  return 0;
}
