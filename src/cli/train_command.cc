#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>

#include "cli/cli_util.h"
#include "vigil/evaluate.h"
#include "vigil/forest.h"
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
    ThresholdTargets targets;
    bool json = false, quiet = false;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("--data", args->data, "Transactions CSV with fraud labels")->required();
  cmd->add_option("--out", args->out, "Model file to write")->required();
  cmd->add_option("--algo", args->algo, "rf | gbdt | logistic | iforest (no labels needed)")
      ->capture_default_str();
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
  cmd->add_option("--review-rate", args->targets.review_rate,
                  "Thresholds: share of validation transactions to review or decline")
      ->capture_default_str();
  cmd->add_option("--decline-precision", args->targets.decline_precision,
                  "Thresholds: decline only where at least this share of validation declines "
                  "is fraud")
      ->capture_default_str();
  cmd->add_option("--threads", args->threads, "Training threads (0: all cores)")
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
    if (!(args->targets.review_rate >= 0 && args->targets.review_rate <= 1) ||
        !(args->targets.decline_precision > 0 && args->targets.decline_precision <= 1)) {
      return fail(InvalidArgument("--review-rate must be in [0, 1] and --decline-precision in (0, 1]"));
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
    model->label_delay_days = args->split.delay_days;
    model->training = {args->split.train_start, args->split.train_days,
                       static_cast<int64_t>(y.size()), 0};
    for (uint8_t l : y) model->training.frauds += l;
    model->data_fingerprint = data->Fingerprint();
    model->code_version = VersionString();
    model->created_at = NowRfc3339();
    model->metrics["train_seconds"] = train_seconds;
    if (*algo != Algorithm::kIsolationForest) {
      // Every supervised model carries an isolation forest over the same inputs, for the
      // anomaly score beside the fraud probability.
      TrainOptions io;
      io.algo = Algorithm::kIsolationForest;
      io.seed = args->seed;
      io.threads = args->threads;
      auto iforest = TrainModel(x, y, m.names, io);
      if (!iforest.ok()) return fail(iforest.status());
      model->anomaly_json = iforest->xgboost_json;
    }

    auto forest = Forest::FromModel(*model);
    if (!forest.ok()) return fail(forest.status());
    const int threads = args->threads > 0 ? args->threads : 2;
    const int64_t first_day = data->timestamp.front() - data->timestamp.front() % kSecondsPerDay;
    auto evaluate_rows = [&](const std::string& prefix, const std::vector<size_t>& rows,
                             std::vector<int64_t> days, std::vector<double>* p) {
      std::vector<float> xs;
      xs.reserve(rows.size() * m.cols());
      for (size_t r : rows) xs.insert(xs.end(), m.row(r), m.row(r) + m.cols());
      p->assign(rows.size(), 0.0);
      (*forest)->PredictBatch(xs, *p, threads);
      if (days.empty()) {
        for (size_t r : rows) days.push_back((data->timestamp[r] - first_day) / kSecondsPerDay);
      }
      Split view;
      view.test = rows;
      view.test_day = std::move(days);
      Scores sc = ScoreSplit(*data, view, *p);
      for (auto [name, v] : {std::pair{"auc", sc.auc}, {"ap", sc.ap}, {"cp100", sc.cp100}}) {
        if (std::isfinite(v)) model->metrics[prefix + name] = v;
      }
    };
    std::vector<double> train_p, test_p;
    evaluate_rows("train_", split.train, {}, &train_p);
    if (has_test) evaluate_rows("test_", split.test, split.test_day, &test_p);

    // Thresholds on the validation window (the test window after the delay; the training window
    // when the data has none).
    const std::vector<size_t>& vrows = has_test ? split.test : split.train;
    std::vector<uint8_t> vlabels;
    vlabels.reserve(vrows.size());
    for (size_t r : vrows) vlabels.push_back(data->fraud[r]);
    model->thresholds = ChooseThresholds(has_test ? test_p : train_p, vlabels, args->targets);
    model->has_thresholds = true;

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
      j["thresholds"] = {{"review", model->thresholds.review},
                         {"decline", model->thresholds.decline},
                         {"validation", model->thresholds.validation}};
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("model       %s (%s, %s features, %zu inputs)\n", args->out.c_str(),
                  args->algo.c_str(), args->features.c_str(), m.cols());
      std::printf("training    %s + %d days: %lld transactions, %lld frauds, %.1f s\n",
                  args->split.train_start.c_str(), args->split.train_days,
                  static_cast<long long>(model->training.rows),
                  static_cast<long long>(model->training.frauds), train_seconds);
      const auto& t = model->thresholds;
      const auto& v = t.validation;
      std::printf("thresholds  on %s (%.0f transactions, %.0f frauds)\n",
                  has_test ? "the test window" : "the training window (no test window)",
                  v.at("rows"), v.at("frauds"));
      std::printf("  review  >= %.4f  %5.2f%% of transactions, precision %.3f, recall %.3f\n",
                  t.review, 100 * v.at("review_rate"), v.at("review_precision"),
                  v.at("review_recall"));
      std::printf("  decline >= %.4f  %5.2f%% of transactions, precision %.3f, recall %.3f\n",
                  t.decline, 100 * v.at("decline_rate"), v.at("decline_precision"),
                  v.at("decline_recall"));
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
