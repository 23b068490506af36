#include <CLI/CLI.hpp>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>

#include "cli/cli_util.h"
#include "core/file_util.h"
#include "core/version.h"
#include "model/tree.h"
#include "vigil/scorer.h"
#include "vigil/time.h"

namespace vigil::cli {

void AddImportModelCommand(CLI::App& app, int* exit_code) {
  auto* cmd = app.add_subcommand(
      "import-model", "Wrap an XGBoost JSON model trained elsewhere into a Vigil model file");
  struct Args {
    std::string xgboost, features, out;
    double review = 2, decline = 2;
    int delay_days = 7;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("--xgboost", args->xgboost, "XGBoost JSON model (Booster.save_model('m.json'))")
      ->required();
  cmd->add_option("--features", args->features,
                  "The model's input features in order, comma-separated Vigil feature names "
                  "(as in the header of `vigil features --out`)")
      ->required();
  cmd->add_option("--out", args->out, "Vigil model file to write")->required();
  cmd->add_option("--review-threshold", args->review,
                  "Scores at or above this are reviewed (default: never)");
  cmd->add_option("--decline-threshold", args->decline,
                  "Scores at or above this are declined (default: never)");
  cmd->add_option("--label-delay-days", args->delay_days,
                  "Label delay of the feature engine the model was trained with")
      ->capture_default_str();
  cmd->callback([args, exit_code] {
    auto fail = [&](const Status& s) { *exit_code = Fail("import-model", s); };
    ModelFile model;
    for (size_t start = 0; start <= args->features.size();) {
      size_t comma = args->features.find(',', start);
      if (comma == std::string::npos) comma = args->features.size();
      model.feature_names.push_back(args->features.substr(start, comma - start));
      start = comma + 1;
    }
    auto json = ReadFile(args->xgboost);
    if (!json.ok()) return fail(json.status());
    auto ensemble = ParseXGBoostJson(*json, model.feature_names.size());
    if (!ensemble.ok()) return fail(ensemble.status().WithContext(args->xgboost));
    if (ensemble->link == Link::kIsolation) {
      model.algo = Algorithm::kIsolationForest;
    } else if (ensemble->linear) {
      model.algo = Algorithm::kLogistic;
    } else {
      // A random forest is a booster with parallel trees; the parse above proved the JSON sound.
      auto j = nlohmann::json::parse(*json, nullptr, false);
      const auto& p = j["learner"]["gradient_booster"]["model"]["gbtree_model_param"];
      const std::string parallel = p.is_object() ? p.value("num_parallel_tree", "1") : "1";
      model.algo = parallel != "1" ? Algorithm::kRandomForest : Algorithm::kGbdt;
    }
    model.feature_set = "custom";
    model.label_delay_days = args->delay_days;
    model.params["imported_from"] = args->xgboost;
    model.code_version = VersionString();
    model.created_at = FormatRfc3339(static_cast<int64_t>(std::time(nullptr)));
    model.xgboost_json = std::move(*json);
    if (args->review <= 1 || args->decline <= 1) {
      model.has_thresholds = true;
      model.thresholds.review = std::min(args->review, args->decline);
      model.thresholds.decline = args->decline;
    }
    // Everything a scorer needs must check out before the file is written.
    auto scorer = Scorer::Create(model);
    if (!scorer.ok()) return fail(scorer.status());
    Status st = SaveModel(model, args->out);
    if (!st.ok()) return fail(st);
    std::printf("imported %s as %s (%s, %zu features, %zu trees)\n", args->xgboost.c_str(),
                args->out.c_str(), std::string(AlgorithmName(model.algo)).c_str(),
                model.feature_names.size(), (*scorer)->forest().num_trees());
  });
}

}  // namespace vigil::cli
