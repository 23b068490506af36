#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/cli_util.h"
#include "model/tree.h"
#include "model/xgboost_predictor.h"
#include "vigil/scorer.h"

namespace vigil::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct Latency {
  double median_us = 0, p99_us = 0;
};

Latency Summarize(std::vector<double> us) {
  std::sort(us.begin(), us.end());
  return {us[us.size() / 2], us[std::min(us.size() - 1, us.size() * 99 / 100)]};
}

double Micros(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::micro>(b - a).count();
}

}  // namespace

void AddBenchCommand(CLI::App& app, int* exit_code) {
  auto* cmd = app.add_subcommand(
      "bench", "Measure a model's scoring speed: Vigil against XGBoost's C API, same rows");
  struct Args {
    std::string model, data, kernel = "auto";
    size_t rows = 100000;
    int single_calls = 20000;
    int repeats = 3;
    bool json = false, quiet = false;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("--model", args->model, "Model file")->required();
  cmd->add_option("--data", args->data, "Transactions CSV whose features are scored")->required();
  cmd->add_option("--rows", args->rows, "Rows in the batch measurement")->capture_default_str();
  cmd->add_option("--single-calls", args->single_calls, "Single-row calls timed")
      ->capture_default_str();
  cmd->add_option("--repeats", args->repeats, "Batch repetitions (the median is reported)")
      ->capture_default_str();
  AddKernelOption(*cmd, &args->kernel);
  cmd->add_flag("--json", args->json, "Print the figures as one JSON object");
  cmd->add_flag("--quiet", args->quiet, "No progress on stderr");
  cmd->callback([args, exit_code] {
    auto fail = [&](const Status& s) { *exit_code = Fail("bench", s); };
    auto kernel = ParseKernel(args->kernel);
    if (!kernel.ok()) return fail(kernel.status().WithContext("--kernel / VIGIL_KERNEL"));
    if (args->rows < 1 || args->single_calls < 1 || args->repeats < 1) {
      return fail(InvalidArgument("--rows, --single-calls and --repeats must be at least 1"));
    }
    auto scorer = Scorer::Load(args->model, *kernel);
    if (!scorer.ok()) return fail(scorer.status());
    const ModelFile& model = (*scorer)->model();
    const Forest& forest = (*scorer)->forest();
    auto data = ReadTransactionsCsv(args->data);
    if (!data.ok()) return fail(data.status());
    Progress fprogress("features", args->quiet);
    FeatureMatrix m = ComputeFeatures(*data, (*scorer)->engine_set(), (*scorer)->engine_options(),
                                      fprogress.Callback());
    fprogress.Done();

    // The model's inputs, gathered by name from the engine's rows: the last `rows` rows.
    const size_t n = std::min(args->rows, m.rows);
    const size_t cols = model.feature_names.size();
    std::vector<int> index;
    const auto names = FeatureNames(FeatureSet::kAll);
    for (const auto& f : model.feature_names) {
      index.push_back(static_cast<int>(std::find(names.begin(), names.end(), f) - names.begin()));
    }
    std::vector<float> x(n * cols);
    for (size_t i = 0; i < n; ++i) {
      for (size_t j = 0; j < cols; ++j) x[i * cols + j] = m.row(m.rows - n + i)[index[j]];
    }
    // XGBoost reads standardised inputs for logistic models; Vigil standardises itself.
    std::vector<float> xs = x;
    if (!model.feature_mean.empty()) Standardize(x, model.feature_mean, model.feature_scale, xs);

    nlohmann::ordered_json out;
    out["model"] = args->model;
    out["algorithm"] = AlgorithmName(model.algo);
    out["trees"] = forest.num_trees();
    out["features"] = cols;
    out["kernel"] = KernelName(forest.kernel());
    out["rows"] = n;

    // Single row: each call timed on its own.
    std::vector<double> us;
    us.reserve(args->single_calls);
    double sink = 0;
    for (int i = 0; i < args->single_calls + 1000; ++i) {
      const float* row = x.data() + (i % n) * cols;
      auto t0 = Clock::now();
      sink += forest.Predict(std::span<const float>(row, cols));
      auto t1 = Clock::now();
      if (i >= 1000) us.push_back(Micros(t0, t1));
    }
    const Latency vigil_single = Summarize(us);
    // Batch, one thread.
    std::vector<double> p(n);
    std::vector<double> rates;
    for (int r = 0; r < args->repeats; ++r) {
      auto t0 = Clock::now();
      forest.PredictBatch(x, p, 1);
      rates.push_back(n / (Micros(t0, Clock::now()) / 1e6));
    }
    std::sort(rates.begin(), rates.end());
    const double vigil_batch = rates[rates.size() / 2];
    out["vigil_single_us"] = vigil_single.median_us;
    out["vigil_single_p99_us"] = vigil_single.p99_us;
    out["vigil_batch_rows_per_s"] = vigil_batch;

    if (model.algo != Algorithm::kIsolationForest) {
      auto xgb = XGBoostPredictor::Create(model, 1);
      if (!xgb.ok()) return fail(xgb.status());
      const int calls = std::max(1, args->single_calls / 5);
      us.clear();
      double max_diff = 0;
      for (int i = 0; i < calls + 200; ++i) {
        const size_t row = i % n;
        auto t0 = Clock::now();
        auto res = (*xgb)->Predict(std::span<const float>(xs.data() + row * cols, cols), 1);
        auto t1 = Clock::now();
        if (!res.ok()) return fail(res.status());
        max_diff = std::max(max_diff, std::abs((*res)[0] - forest.Predict(std::span<const float>(
                                                              x.data() + row * cols, cols))));
        if (i >= 200) us.push_back(Micros(t0, t1));
      }
      const Latency xgb_single = Summarize(us);
      rates.clear();
      for (int r = 0; r < args->repeats; ++r) {
        auto t0 = Clock::now();
        auto res = (*xgb)->Predict(xs, n);
        if (!res.ok()) return fail(res.status());
        rates.push_back(n / (Micros(t0, Clock::now()) / 1e6));
      }
      std::sort(rates.begin(), rates.end());
      const double xgb_batch = rates[rates.size() / 2];
      out["xgboost_single_us"] = xgb_single.median_us;
      out["xgboost_single_p99_us"] = xgb_single.p99_us;
      out["single_speedup"] = xgb_single.median_us / vigil_single.median_us;
      out["xgboost_batch_rows_per_s"] = xgb_batch;
      out["batch_speedup"] = vigil_batch / xgb_batch;
      out["max_abs_diff"] = max_diff;
    }
    out["checksum"] = sink;

    if (args->json) {
      std::printf("%s\n", out.dump().c_str());
      return;
    }
    std::printf("model %s: %s, %zu trees, %zu features, kernel %s, %zu rows\n",
                args->model.c_str(), std::string(AlgorithmName(model.algo)).c_str(),
                forest.num_trees(), cols, std::string(KernelName(forest.kernel())).c_str(), n);
    std::printf("%-10s %16s %16s %18s\n", "", "single median", "single p99", "batch rows/s (1t)");
    std::printf("%-10s %13.2f us %13.2f us %18.0f\n", "vigil", vigil_single.median_us,
                vigil_single.p99_us, vigil_batch);
    if (out.contains("xgboost_single_us")) {
      std::printf("%-10s %13.2f us %13.2f us %18.0f\n", "xgboost",
                  out["xgboost_single_us"].get<double>(), out["xgboost_single_p99_us"].get<double>(),
                  out["xgboost_batch_rows_per_s"].get<double>());
      std::printf("%-10s %15.1fx %16s %17.1fx\n", "speedup", out["single_speedup"].get<double>(), "",
                  out["batch_speedup"].get<double>());
      std::printf("max |vigil - xgboost| = %.2g\n", out["max_abs_diff"].get<double>());
    }
  });
}

}  // namespace vigil::cli
