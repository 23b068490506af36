// Helpers shared by the `vigil` commands: progress on stderr, errors, version.
#ifndef VIGIL_CLI_CLI_UTIL_H_
#define VIGIL_CLI_CLI_UTIL_H_

#include <signal.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "vigil/status.h"

namespace vigil {
struct FileJobProgress;
}

namespace CLI {
class App;
}

namespace vigil::cli {

// Prints "vigil <command>: error: <message>" to stderr and returns the exit code 1.
int Fail(const std::string& command, const Status& status);

// Progress of one long step on stderr: a live percentage on a terminal, a line every 20%
// otherwise (logs stay readable). Silent when quiet. Not thread-safe.
class Progress {
 public:
  Progress(std::string label, bool quiet);
  ~Progress();
  void Update(double fraction);
  // Ends the line with the elapsed time: "simulate: 100% (2.1 s)".
  void Done();
  std::function<void(double)> Callback() {
    return [this](double f) { Update(f); };
  }
  double Seconds() const;

 private:
  std::string label_;
  bool quiet_;
  bool tty_;
  bool done_ = false;
  int last_step_ = -1;
  std::chrono::steady_clock::time_point start_;
};

// Each command adds its subcommand and sets `*exit_code` when it runs.
void AddSimulateCommand(CLI::App& app, int* exit_code);
void AddFeaturesCommand(CLI::App& app, int* exit_code);
void AddTrainCommand(CLI::App& app, int* exit_code);
void AddEvaluateCommand(CLI::App& app, int* exit_code);
void AddScoreCommand(CLI::App& app, int* exit_code);
void AddImportModelCommand(CLI::App& app, int* exit_code);
void AddBenchCommand(CLI::App& app, int* exit_code);
void AddServeCommand(CLI::App& app, int* exit_code);
void AddProcessCommand(CLI::App& app, int* exit_code);
void AddKeysCommand(CLI::App& app, int* exit_code);
void AddAuditCommand(CLI::App& app, int* exit_code);

// Scoring a transactions file into a predictions CSV: `vigil score`, and `vigil process --in`
// in one process (and on rank 0 of an MPI job of one rank).
struct FileScoreArgs {
  std::string model, in, out, kernel = "auto";
  bool explain = false;
  bool exact_reasons = false;
  int top_reasons = 3;
  int threads = 0;  // 0: one per core
  bool quiet = false;
};
// Adds --explain, --exact-reasons, --top-reasons and --quiet (the others are the command's).
void AddFileScoreOptions(CLI::App& cmd, FileScoreArgs* args);
Status CheckFileScoreArgs(const FileScoreArgs& args);
// Scores args.in into args.out (written whole or not at all) and prints the summary line;
// returns the exit code.
int ScoreFile(const std::string& command, const FileScoreArgs& args);

// Signals taken by one waiting thread, not by whichever thread runs. BlockTerminationSignals()
// blocks SIGINT and SIGTERM (and SIGHUP, a reload, when asked) in the calling thread, and so in
// every thread it starts from then on: call it before any. For a job that writes one file,
// WatchForTermination() then takes them on a detached thread of its own: it removes job's
// temporary file, prints "vigil COMMAND: stopped by SIGTERM (NOTE) with D of T transactions
// scored; nothing was written to OUT" and exits 128 + the signal's number; once job->committed
// it exits at once, silently. `job` must outlive the process (the thread is never joined): pass
// a shared one.
sigset_t BlockTerminationSignals(bool and_hangup = false);
void WatchForTermination(sigset_t signals, std::string command, std::string out,
                         std::shared_ptr<FileJobProgress> job, std::string note = "");

// Adds `--kernel NAME` (also the environment's VIGIL_KERNEL, "auto" by default) to `cmd`:
// parse the name with ParseKernel (vigil/forest.h) when the command runs.
void AddKernelOption(CLI::App& cmd, std::string* kernel);

// Parses repeated "--param key=value" options.
StatusOr<std::map<std::string, std::string>> ParseParams(const std::vector<std::string>& kvs);

// "90d", "12h", "30m", "45s" (a whole number and a unit), or "0": a duration in seconds.
StatusOr<std::chrono::seconds> ParseDuration(std::string_view text);

// Splits "TQ1,TQ2" into its items; empty items are dropped.
std::vector<std::string> SplitList(const std::string& list);

}  // namespace vigil::cli

#endif  // VIGIL_CLI_CLI_UTIL_H_
