#include <CLI/CLI.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/cli_util.h"
#include "vigil/evaluate.h"

namespace vigil::cli {

void AddEvaluateCommand(CLI::App& app, int* exit_code) {
  auto* cmd = app.add_subcommand(
      "evaluate", "Evaluate models on a published protocol and print the results table");
  struct Args {
    std::string data, protocol = "handbook", algos = "rf,gbdt,logistic,iforest", features = "book";
    EvaluateOptions eval;
    int threads = 0;
    std::vector<std::string> params;
    bool json = false, quiet = false;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("--data", args->data, "Transactions CSV with fraud labels")->required();
  cmd->add_option("--protocol", args->protocol,
                  "handbook: prequential folds of 7 days train, 7 delay, 7 test")
      ->capture_default_str();
  cmd->add_option("--algo", args->algos, "Comma-separated algorithms: rf,gbdt,logistic,iforest")
      ->capture_default_str();
  cmd->add_option("--features", args->features, "Feature sets, comma-separated: book,all")
      ->capture_default_str();
  cmd->add_option("--start", args->eval.split.train_start,
                  "Training start of the earliest fold, YYYY-MM-DD")
      ->capture_default_str();
  cmd->add_option("--folds", args->eval.folds, "Number of prequential folds")
      ->capture_default_str();
  cmd->add_option("--param", args->params,
                  "XGBoost parameter for every algorithm, key=value (repeatable)");
  cmd->add_option("--threads", args->threads, "XGBoost threads (0: all cores)")
      ->capture_default_str();
  cmd->add_flag("--json", args->json, "Print the results as a JSON array");
  cmd->add_flag("--quiet", args->quiet, "No progress on stderr");
  cmd->callback([args, exit_code] {
    auto fail = [&](const Status& s) { *exit_code = Fail("evaluate", s); };
    if (args->protocol != "handbook") {
      return fail(InvalidArgument("unknown protocol '" + args->protocol + "' (expected handbook)"));
    }
    auto algos = ParseAlgorithmList(args->algos);
    if (!algos.ok()) return fail(algos.status());
    std::vector<FeatureSet> sets;
    for (const auto& name : {std::string("book"), std::string("all")}) {
      if (args->features == name || args->features.find(name + ",") == 0 ||
          args->features.find("," + name) != std::string::npos) {
        sets.push_back(*ParseFeatureSet(name));
      }
    }
    if (sets.empty()) {
      return fail(ParseFeatureSet(args->features).status());
    }
    auto params = ParseParams(args->params);
    if (!params.ok()) return fail(params.status());
    args->eval.train.params = *params;
    if (args->eval.folds < 1) return fail(InvalidArgument("--folds must be at least 1"));
    auto data = ReadTransactionsCsv(args->data);
    if (!data.ok()) return fail(data.status());

    std::vector<EvaluationRow> rows;
    Progress progress("evaluate", args->quiet);
    for (FeatureSet set : sets) {
      EvaluateOptions o = args->eval;
      o.algos = *algos;
      o.features = set;
      o.train.threads = args->threads;
      if (!args->quiet) {
        o.progress = [set](const std::string& step) {
          std::fprintf(stderr, "evaluate [%s features]: %s\n",
                       std::string(FeatureSetName(set)).c_str(), step.c_str());
        };
      }
      auto r = EvaluateHandbook(*data, o);
      if (!r.ok()) return fail(r.status());
      rows.insert(rows.end(), r->begin(), r->end());
    }
    progress.Done();

    if (args->json) {
      nlohmann::ordered_json out = nlohmann::ordered_json::array();
      for (const auto& r : rows) {
        out.push_back({{"algo", r.algo},
                       {"features", r.features},
                       {"auc", r.mean.auc},
                       {"ap", r.mean.ap},
                       {"cp100", r.mean.cp100},
                       {"auc_std", r.std.auc},
                       {"ap_std", r.std.ap},
                       {"cp100_std", r.std.cp100},
                       {"folds", r.folds.size()},
                       {"train_seconds", r.train_seconds}});
      }
      std::printf("%s\n", out.dump().c_str());
      return;
    }
    std::printf("Handbook protocol: %d prequential fold(s) of %d days train, %d delay, %d test; "
                "first training start %s\n",
                args->eval.folds, args->eval.split.train_days, args->eval.split.delay_days,
                args->eval.split.test_days, args->eval.split.train_start.c_str());
    std::printf("%-9s %-8s  %-13s  %-13s  %-13s  %s\n", "model", "features", "AUC ROC", "AP",
                "CP@100", "train s/fold");
    for (const auto& r : rows) {
      std::printf("%-9s %-8s  %.3f ± %.3f  %.3f ± %.3f  %.3f ± %.3f  %.2f\n", r.algo.c_str(),
                  r.features.c_str(), r.mean.auc, r.std.auc, r.mean.ap, r.std.ap, r.mean.cp100,
                  r.std.cp100, r.train_seconds);
    }
    std::printf("Book, best prequential row (XGBoost): AUC 0.869 ± 0.01, AP 0.687 ± 0.01, "
                "CP@100 0.303 ± 0.01\n");
  });
}

}  // namespace vigil::cli
