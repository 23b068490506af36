#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>

#include "cli/cli_util.h"
#include "core/file_util.h"
#include "engine/prediction_csv.h"
#include "vigil/engine.h"
#include "vigil/scorer.h"

namespace vigil::cli {

void AddFileScoreOptions(CLI::App& cmd, FileScoreArgs* args) {
  cmd.add_flag("--explain", args->explain, "Add a reasons column (TreeSHAP, strongest first)");
  cmd.add_flag("--exact-reasons", args->exact_reasons,
               "Exact TreeSHAP also for trees too deep for its tables (deep random forests: "
               "milliseconds per row) instead of path attributions");
  cmd.add_option("--top-reasons", args->top_reasons, "Reasons per transaction with --explain")
      ->capture_default_str();
  cmd.add_flag("--quiet", args->quiet, "No progress on stderr");
}

Status CheckFileScoreArgs(const FileScoreArgs& args) {
  if (args.threads < 0) return InvalidArgument("--threads cannot be negative");
  if (args.top_reasons < 1) return InvalidArgument("--top-reasons must be at least 1");
  return Status::Ok();
}

int ScoreFile(const std::string& command, const FileScoreArgs& args) {
  auto fail = [&](const Status& s) { return Fail(command, s); };
  if (Status st = CheckFileScoreArgs(args); !st.ok()) return fail(st);
  // Before any thread starts: Ctrl-C or a kill leaves no temporary file behind.
  auto job = std::make_shared<FileJobProgress>();
  WatchForTermination(BlockTerminationSignals(), command, args.out, job);
  auto kernel = ParseKernel(args.kernel);
  if (!kernel.ok()) return fail(kernel.status().WithContext("--kernel / VIGIL_KERNEL"));
  auto scorer = Scorer::Load(args.model, *kernel,
                             args.exact_reasons ? ReasonsMethod::kExact : ReasonsMethod::kFast);
  if (!scorer.ok()) return fail(scorer.status());
  auto data = ReadTransactionsCsv(args.in);
  if (!data.ok()) return fail(data.status());
  job->rows_total.store(data->size());
  auto out = AtomicFile::Create(args.out);
  if (!out.ok()) return fail(out.status());
  job->SetTempPath((*out)->temp_path());

  AtomicFile& f = **out;
  f.Write(PredictionCsvHeader(args.explain));
  Progress progress(command, args.quiet);
  size_t declined = 0, reviewed = 0;
  std::string line;
  BatchScoreOptions bo;
  bo.explain_top_k = args.explain ? args.top_reasons : 0;
  bo.threads = args.threads;
  bo.progress = [&](double fraction) {
    job->rows_done.store(static_cast<uint64_t>(fraction * static_cast<double>(data->size())));
    progress.Update(fraction);
  };
  Status scored = ScoreDataset(**scorer, *data, bo, [&](size_t row, const Prediction& p) {
    line.clear();
    AppendPredictionCsvRow(&line, data->transaction_id[row], p, args.explain);
    f.Write(line);
    declined += p.decision == Decision::kDecline;
    reviewed += p.decision == Decision::kReview;
  });
  if (!scored.ok()) return fail(scored);
  progress.Done();
  job->rows_done.store(data->size());
  Status committed = f.Commit();
  job->committed.store(committed.ok());
  job->SetTempPath("");
  if (!committed.ok()) return fail(committed);
  std::printf("%zu transactions scored with %s: %zu declined, %zu to review; written to %s\n",
              data->size(), args.model.c_str(), declined, reviewed, args.out.c_str());
  return 0;
}

void AddScoreCommand(CLI::App& app, int* exit_code) {
  auto* cmd = app.add_subcommand(
      "score", "Score a transactions file with a model: score, decision, anomaly score, reasons");
  auto args = std::make_shared<FileScoreArgs>();
  cmd->add_option("--model", args->model, "Model file")->required();
  cmd->add_option("--in", args->in, "Transactions CSV, in time order")->required();
  cmd->add_option("--out", args->out, "Predictions CSV to write")->required();
  AddFileScoreOptions(*cmd, args.get());
  cmd->add_option("--threads", args->threads, "Scoring threads (0: one per core)")
      ->capture_default_str();
  AddKernelOption(*cmd, &args->kernel);
  cmd->callback([args, exit_code] { *exit_code = ScoreFile("score", *args); });
}

}  // namespace vigil::cli
