// `vigil`: one binary, one subcommand per job.
#include <CLI/CLI.hpp>

#include "cli/cli_util.h"
#include "core/version.h"

// An exception escaping a command is a bug: std::terminate's message names it.
int main(int argc, char** argv) {  // NOLINT(bugprone-exception-escape)
  CLI::App app{"Vigil: real-time fraud detection for payment transactions"};
  app.set_version_flag("--version", vigil::VersionString());
  app.require_subcommand(1);
  app.set_config("--config", "", "A TOML file of options, [serve] section for serve's (also VIGIL_* variables)");
  app.fallthrough(false);
  int exit_code = 0;
  vigil::cli::AddSimulateCommand(app, &exit_code);
  vigil::cli::AddFeaturesCommand(app, &exit_code);
  vigil::cli::AddTrainCommand(app, &exit_code);
  vigil::cli::AddEvaluateCommand(app, &exit_code);
  vigil::cli::AddScoreCommand(app, &exit_code);
  vigil::cli::AddImportModelCommand(app, &exit_code);
  vigil::cli::AddBenchCommand(app, &exit_code);
  vigil::cli::AddServeCommand(app, &exit_code);
  vigil::cli::AddProcessCommand(app, &exit_code);
  vigil::cli::AddKeysCommand(app, &exit_code);
  vigil::cli::AddAuditCommand(app, &exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return exit_code;
}
