// `vigil train`: options, progress and output around Train() (vigil/training.h).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli/cli_util.h"
#include "vigil/model.h"
#include "vigil/time.h"
#include "vigil/training.h"

namespace vigil::cli {

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
    // Checked here, before reading the data, so that errors name the flags. Train() checks its
    // spec again in its own terms, and allows a delay of 0 days, as the evaluation always has.
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

    TrainSpec spec;
    spec.algo = *algo;
    spec.features = *set;
    spec.split = args->split;
    spec.params = *params;
    spec.threads = args->threads;
    spec.seed = args->seed;
    spec.targets = args->targets;
    Progress features_progress("features", args->quiet);
    std::optional<Progress> train_progress;
    spec.progress = [&](TrainStep step, double fraction) {
      if (step == TrainStep::kFeatures) {
        fraction < 1 ? features_progress.Update(fraction) : features_progress.Done();
      } else if (fraction == 0) {
        train_progress.emplace("train " + args->algo, args->quiet);
      } else {
        train_progress->Done();
      }
    };
    if (!args->quiet) {
      spec.notice = [](const std::string& note) {
        std::fprintf(stderr, "train: %s\n", note.c_str());
      };
    }
    auto trained = Train(*data, spec);
    if (!trained.ok()) return fail(trained.status());
    const ModelFile& model = trained->model;
    Status saved = SaveModel(model, args->out);
    if (!saved.ok()) return fail(saved);

    if (args->json) {
      nlohmann::ordered_json j;
      j["model"] = args->out;
      j["algorithm"] = args->algo;
      j["features"] = args->features;
      j["train_rows"] = model.training.rows;
      j["train_frauds"] = model.training.frauds;
      j["metrics"] = model.metrics;
      j["thresholds"] = {{"review", model.thresholds.review},
                         {"decline", model.thresholds.decline},
                         {"validation", model.thresholds.validation}};
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("model       %s (%s, %s features, %zu inputs)\n", args->out.c_str(),
                  args->algo.c_str(), args->features.c_str(), model.feature_names.size());
      std::printf("training    %s + %d days: %lld transactions, %lld frauds, %.1f s\n",
                  args->split.train_start.c_str(), args->split.train_days,
                  static_cast<long long>(model.training.rows),
                  static_cast<long long>(model.training.frauds), model.metrics.at("train_seconds"));
      const auto& t = model.thresholds;
      const auto& v = t.validation;
      std::printf(
          "thresholds  on %s (%.0f transactions, %.0f frauds)\n",
          trained->has_test_window ? "the test window" : "the training window (no test window)",
          v.at("rows"), v.at("frauds"));
      std::printf("  review  >= %.4f  %5.2f%% of transactions, precision %.3f, recall %.3f\n",
                  t.review, 100 * v.at("review_rate"), v.at("review_precision"),
                  v.at("review_recall"));
      std::printf("  decline >= %.4f  %5.2f%% of transactions, precision %.3f, recall %.3f\n",
                  t.decline, 100 * v.at("decline_rate"), v.at("decline_precision"),
                  v.at("decline_recall"));
      for (const char* w : {"train", "test"}) {
        std::string p = w;
        if (!model.metrics.count(p + "_auc")) continue;
        std::printf("%-11s AUC %.3f  AP %.3f  CP@100 %.3f\n", w, model.metrics.at(p + "_auc"),
                    model.metrics.at(p + "_ap"), model.metrics.at(p + "_cp100"));
      }
    }
  });
}

}  // namespace vigil::cli
