#include <CLI/CLI.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/cli_util.h"
#include "vigil/simulator.h"

namespace vigil::cli {

void AddSimulateCommand(CLI::App& app, int* exit_code) {
  auto* cmd = app.add_subcommand(
      "simulate", "Generate transactions with known fraud (the handbook's simulator)");
  struct Args {
    SimulatorOptions sim;
    std::string out = "data/transactions.csv";
    bool json = false;
    bool quiet = false;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("--customers", args->sim.customers, "Number of customers")->capture_default_str();
  cmd->add_option("--terminals", args->sim.terminals, "Number of terminals")->capture_default_str();
  cmd->add_option("--days", args->sim.days, "Number of days")->capture_default_str();
  cmd->add_option("--start", args->sim.start_date, "First day, YYYY-MM-DD (UTC)")
      ->capture_default_str();
  cmd->add_option("--seed", args->sim.seed, "Random seed (0 reproduces the book's data set)")
      ->capture_default_str();
  cmd->add_option("--radius", args->sim.radius,
                  "Customers use terminals closer than this (grid is 100x100)")
      ->capture_default_str();
  cmd->add_option("--threads", args->sim.threads, "Worker threads (0: one per core)")
      ->capture_default_str();
  cmd->add_option("--out", args->out, "Output CSV")->capture_default_str();
  cmd->add_flag("--json", args->json, "Print the summary as one JSON object");
  cmd->add_flag("--quiet", args->quiet, "No progress on stderr");
  cmd->callback([args, exit_code] {
    Status valid = ValidateSimulatorOptions(args->sim);
    if (!valid.ok()) {
      *exit_code = Fail("simulate", valid);
      return;
    }
    Progress progress("simulate", args->quiet);
    args->sim.progress = progress.Callback();
    auto data = Simulate(args->sim);
    if (!data.ok()) {
      *exit_code = Fail("simulate", data.status());
      return;
    }
    progress.Done();
    Status written = WriteTransactionsCsv(*data, args->out);
    if (!written.ok()) {
      *exit_code = Fail("simulate", written);
      return;
    }
    SimulationSummary s = Summarize(*data);
    if (args->json) {
      nlohmann::ordered_json j;
      j["transactions"] = s.transactions;
      j["frauds"] = s.frauds;
      j["fraud_rate"] = s.fraud_rate();
      j["scenario_frauds"] = {{"1", s.scenario_frauds[1]},
                              {"2", s.scenario_frauds[2]},
                              {"3", s.scenario_frauds[3]}};
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("transactions  %lld\nfrauds        %lld (%.4f%%)\n",
                  static_cast<long long>(s.transactions), static_cast<long long>(s.frauds),
                  100 * s.fraud_rate());
      for (int k = 1; k <= 3; ++k) {
        std::printf("  scenario %d  %lld\n", k, static_cast<long long>(s.scenario_frauds[k]));
      }
      std::printf("written to    %s\n", args->out.c_str());
    }
  });
}

}  // namespace vigil::cli
