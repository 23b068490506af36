#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli/cli_util.h"
#include "vigil/features.h"

namespace vigil::cli {

void AddFeaturesCommand(CLI::App& app, int* exit_code) {
  auto* cmd = app.add_subcommand(
      "features", "List the features, or write a data set's feature matrix as CSV");
  struct Args {
    bool list = false;
    std::string data, out, set = "all";
    int delay_days = 7;
    bool quiet = false;
  };
  auto args = std::make_shared<Args>();
  cmd->add_flag("--list", args->list, "Print every feature's name, description and reason code");
  cmd->add_option("--data", args->data, "Transactions CSV (as `vigil simulate` writes)");
  cmd->add_option("--out", args->out, "Feature matrix CSV to write");
  cmd->add_option("--set", args->set, "Feature set: book (the handbook's 15) or all")
      ->capture_default_str();
  cmd->add_option("--label-delay-days", args->delay_days,
                  "Days before a fraud label is known to the terminal windows")
      ->capture_default_str();
  cmd->add_flag("--quiet", args->quiet, "No progress on stderr");
  cmd->callback([args, exit_code] {
    auto set = ParseFeatureSet(args->set);
    if (!set.ok()) {
      *exit_code = Fail("features", set.status());
      return;
    }
    if (args->list) {
      for (const auto& f : Features(*set)) {
        std::printf("%-34s %s  [reason %s]\n", f.name.c_str(), f.description.c_str(),
                    f.reason_code.c_str());
      }
      return;
    }
    if (args->data.empty() || args->out.empty()) {
      *exit_code = Fail("features", InvalidArgument("give --list, or both --data and --out"));
      return;
    }
    if (args->delay_days < 1) {
      *exit_code = Fail("features", InvalidArgument("--label-delay-days must be at least 1"));
      return;
    }
    auto data = ReadTransactionsCsv(args->data);
    if (!data.ok()) {
      *exit_code = Fail("features", data.status());
      return;
    }
    Progress progress("features", args->quiet);
    FeatureMatrix m =
        ComputeFeatures(*data, *set, {.label_delay_days = args->delay_days}, progress.Callback());
    progress.Done();
    Status written = WriteFeaturesCsv(*data, m, args->out);
    if (!written.ok()) {
      *exit_code = Fail("features", written);
      return;
    }
    std::printf("%zu rows x %zu features written to %s\n", m.rows, m.cols(), args->out.c_str());
  });
}

}  // namespace vigil::cli
