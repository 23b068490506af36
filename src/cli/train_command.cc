#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>

#include "cli/cli_util.h"
#include "vigil/evaluate.h"
#include "vigil/model.h"
#include "vigil/time.h"

namespace vigil::cli {
namespace {

std::string NowRfc3339() { return FormatRfc3339(static_cast<int64_t>(std::time(nullptr))); }

}  // namespace

void AddTrainCommand(CLI::App& app, int* exit_code) {
  auto* cmd = app.add_subcommand("train", "Train a model through XGBoost and write a model file");
  struct Args {
    std::string data, out, algo = "gbdt", features = "all";
    SplitOptions split;
    std::vector<std::string> params;
    int threads = 0;
    uint64_t seed = 0;
    bool json = false, quiet = false;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("--data", args->data, "Transactions CSV with fraud labels")->required();
  cmd->add_option("--out", args->out, "Model file to write")->required();
  cmd->add_option("--algo", args->algo, "rf | gbdt | logistic")->capture_default_str();
  cmd->add_option("--features", args->features, "Feature set: book | all")->capture_default_str();
  cmd->add_option("--train-start", args->split.train_start, "First training day, YYYY-MM-DD")
      ->capture_default_str();
  cmd->add_option("--train-days", args->split.train_days, "Days of training data")
      ->capture_default_str();
  cmd->add_option("--delay-days", args->split.delay_days,
                  "Days between training and test (labels arrive this late)")
      ->capture_default_str();
  cmd->add_option("--test-days", args->split.test_days,
                  "Days of test data after the delay (metrics stored in the model)")
      ->capture_default_str();
  cmd->add_option("--param", args->params,
                  "XGBoost parameter over Vigil's defaults, key=value (repeatable); "
                  "n_estimators sets rounds (trees for rf)");
  cmd->add_option("--threads", args->threads, "XGBoost threads (0: all cores)")
      ->capture_default_str();
  cmd->add_option("--seed", args->seed, "Training seed")->capture_default_str();
  cmd->add_flag("--json", args->json, "Print the result as one JSON object");
  cmd->add_flag("--quiet", args->quiet, "No progress on stderr");
  cmd->callback([args, exit_code] {
    auto fail = [&](const Status& s) { *exit_code = Fail("train", s); };
    auto algo = ParseAlgorithm(args->algo);
    if (!algo.ok()) return fail(algo.status());
    auto set = ParseFeatureSet(args->features);
    if (!set.ok()) return fail(set.status());
    auto params = ParseParams(args->params);
    if (!params.ok()) return fail(params.status());
    if (args->split.train_days < 1 || args->split.delay_days < 1 || args->split.test_days < 0) {
      return fail(InvalidArgument(
          "--train-days and --delay-days must be at least 1, --test-days at least 0"));
    }
    auto start = ParseDate(args->split.train_start);
    if (!start.ok()) return fail(start.status().WithContext("--train-start"));
    auto data = ReadTransactionsCsv(args->data);
    if (!data.ok()) return fail(data.status());
    if (!data->has_labels) return fail(InvalidArgument(args->data + ": no 'fraud' column to learn from"));

    Progress fprogress("features", args->quiet);
    FeatureMatrix m = ComputeFeatures(*data, *set, {.label_delay_days = args->split.delay_days},
                                      fprogress.Callback());
    fprogress.Done();

    // The training window, and the test window after the delay when the data covers it.
    const size_t lo = data->LowerBound(*start);
    const size_t hi = data->LowerBound(*start + int64_t{args->split.train_days} * kSecondsPerDay);
    Split split;
    bool has_test = false;
    if (args->split.test_days > 0) {
      auto s = HandbookSplit(*data, args->split);
      if (s.ok()) {
        split = std::move(*s);
        has_test = true;
      } else if (!args->quiet) {
        std::fprintf(stderr, "train: no test metrics: %s\n", s.status().message().c_str());
      }
    }
    if (!has_test) {
      for (size_t i = lo; i < hi; ++i) split.train.push_back(i);
    }
    if (split.train.empty()) {
      return fail(InvalidArgument("no transactions between " + args->split.train_start + " and " +
                                  FormatDate(*start + int64_t{args->split.train_days - 1} * kSecondsPerDay)));
    }
    std::vector<float> x;
    std::vector<uint8_t> y;
    x.reserve(split.train.size() * m.cols());
    for (size_t r : split.train) {
      x.insert(x.end(), m.row(r), m.row(r) + m.cols());
      y.push_back(data->fraud[r]);
    }
    Progress tprogress("train " + args->algo, args->quiet);
    TrainOptions to;
    to.algo = *algo;
    to.params = *params;
    to.threads = args->threads;
    to.seed = args->seed;
    auto model = TrainModel(x, y, m.names, to);
    if (!model.ok()) return fail(model.status());
    tprogress.Done();
    const double train_seconds = tprogress.Seconds();

    model->feature_set = FeatureSetName(*set);
    model->training = {args->split.train_start, args->split.train_days,
                       static_cast<int64_t>(y.size()), 0};
    for (uint8_t l : y) model->training.frauds += l;
    model->data_fingerprint = data->Fingerprint();
    model->code_version = VersionString();
    model->created_at = NowRfc3339();
    model->metrics["train_seconds"] = train_seconds;

    auto record = [&](const std::string& prefix, const Split& s, const std::vector<size_t>& rows) {
      std::vector<float> xs;
      for (size_t r : rows) xs.insert(xs.end(), m.row(r), m.row(r) + m.cols());
      auto p = PredictWithXGBoost(*model, xs, args->threads);
      if (!p.ok()) return p.status();
      Split view = s;
      view.test = rows;
      if (view.test_day.size() != rows.size()) {
        // Training rows: day index relative to the data's first day.
        const int64_t first = data->timestamp.front() - data->timestamp.front() % kSecondsPerDay;
        view.test_day.clear();
        for (size_t r : rows) view.test_day.push_back((data->timestamp[r] - first) / kSecondsPerDay);
      }
      Scores sc = ScoreSplit(*data, view, *p);
      for (auto [name, v] : {std::pair{"auc", sc.auc}, {"ap", sc.ap}, {"cp100", sc.cp100}}) {
        if (std::isfinite(v)) model->metrics[prefix + name] = v;
      }
      return Status::Ok();
    };
    Status st = record("train_", split, split.train);
    if (st.ok() && has_test) st = record("test_", split, split.test);
    if (!st.ok()) return fail(st);
    Status saved = SaveModel(*model, args->out);
    if (!saved.ok()) return fail(saved);

    if (args->json) {
      nlohmann::ordered_json j;
      j["model"] = args->out;
      j["algorithm"] = args->algo;
      j["features"] = args->features;
      j["train_rows"] = model->training.rows;
      j["train_frauds"] = model->training.frauds;
      j["metrics"] = model->metrics;
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("model       %s (%s, %s features, %zu inputs)\n", args->out.c_str(),
                  args->algo.c_str(), args->features.c_str(), m.cols());
      std::printf("training    %s + %d days: %lld transactions, %lld frauds, %.1f s\n",
                  args->split.train_start.c_str(), args->split.train_days,
                  static_cast<long long>(model->training.rows),
                  static_cast<long long>(model->training.frauds), train_seconds);
      for (const char* w : {"train", "test"}) {
        std::string p = w;
        if (!model->metrics.count(p + "_auc")) continue;
        std::printf("%-11s AUC %.3f  AP %.3f  CP@100 %.3f\n", w, model->metrics[p + "_auc"],
                    model->metrics[p + "_ap"], model->metrics[p + "_cp100"]);
      }
    }
  });
}

}  // namespace vigil::cli
