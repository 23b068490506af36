#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>

#include "cli/cli_util.h"
#include "core/file_util.h"
#include "vigil/engine.h"
#include "vigil/scorer.h"

namespace vigil::cli {
namespace {

// "CODE (+0.84): text; CODE (+0.31): text", quoted for CSV.
std::string ReasonsCell(const std::vector<Reason>& reasons) {
  std::string s = "\"";
  for (size_t i = 0; i < reasons.size(); ++i) {
    char contribution[32];
    std::snprintf(contribution, sizeof contribution, " (%+.3f): ", reasons[i].contribution);
    if (i > 0) s += "; ";
    s += reasons[i].code + contribution;
    for (char c : reasons[i].text) {
      if (c == '"') s += '"';
      s += c;
    }
  }
  return s + "\"";
}

}  // namespace

void AddScoreCommand(CLI::App& app, int* exit_code) {
  auto* cmd = app.add_subcommand(
      "score", "Score a transactions file with a model: score, decision, anomaly score, reasons");
  struct Args {
    std::string model, in, out, kernel = "auto";
    bool explain = false;
    bool exact_reasons = false;
    int top_reasons = 3;
    int threads = 0;
    bool quiet = false;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("--model", args->model, "Model file")->required();
  cmd->add_option("--in", args->in, "Transactions CSV, in time order")->required();
  cmd->add_option("--out", args->out, "Predictions CSV to write")->required();
  cmd->add_flag("--explain", args->explain, "Add a reasons column (TreeSHAP, strongest first)");
  cmd->add_flag("--exact-reasons", args->exact_reasons,
                "Exact TreeSHAP also for trees too deep for its tables (deep random forests: "
                "milliseconds per row) instead of path attributions");
  cmd->add_option("--top-reasons", args->top_reasons, "Reasons per transaction with --explain")
      ->capture_default_str();
  cmd->add_option("--threads", args->threads, "Scoring threads (0: one per core)")
      ->capture_default_str();
  AddKernelOption(*cmd, &args->kernel);
  cmd->add_flag("--quiet", args->quiet, "No progress on stderr");
  cmd->callback([args, exit_code] {
    auto fail = [&](const Status& s) { *exit_code = Fail("score", s); };
    auto kernel = ParseKernel(args->kernel);
    if (!kernel.ok()) return fail(kernel.status().WithContext("--kernel / VIGIL_KERNEL"));
    if (args->threads < 0) return fail(InvalidArgument("--threads cannot be negative"));
    if (args->top_reasons < 1) return fail(InvalidArgument("--top-reasons must be at least 1"));
    auto scorer = Scorer::Load(args->model, *kernel,
                               args->exact_reasons ? ReasonsMethod::kExact : ReasonsMethod::kFast);
    if (!scorer.ok()) return fail(scorer.status());
    auto data = ReadTransactionsCsv(args->in);
    if (!data.ok()) return fail(data.status());
    auto out = AtomicFile::Create(args->out);
    if (!out.ok()) return fail(out.status());

    const int top = args->explain ? args->top_reasons : 0;
    AtomicFile& f = **out;
    f.Write(args->explain ? "transaction_id,score,decision,anomaly_score,reasons\n"
                          : "transaction_id,score,decision,anomaly_score\n");
    Progress sprogress("score", args->quiet);
    size_t declined = 0, reviewed = 0;
    std::string line;
    BatchScoreOptions bo;
    bo.explain_top_k = top;
    bo.threads = args->threads;
    bo.progress = sprogress.Callback();
    Status scored = ScoreDataset(**scorer, *data, bo, [&](size_t row, const Prediction& p) {
      line = std::to_string(data->transaction_id[row]) + "," + FormatDouble(p.score) + "," +
             std::string(DecisionName(p.decision)) + "," +
             (std::isnan(p.anomaly_score) ? std::string() : FormatDouble(p.anomaly_score));
      if (args->explain) line += "," + ReasonsCell(p.reasons);
      line += "\n";
      f.Write(line);
      declined += p.decision == Decision::kDecline;
      reviewed += p.decision == Decision::kReview;
    });
    if (!scored.ok()) return fail(scored);
    const size_t n = data->size();
    sprogress.Done();
    Status st = f.Commit();
    if (!st.ok()) return fail(st);
    std::printf("%zu transactions scored with %s: %zu declined, %zu to review; written to %s\n", n,
                args->model.c_str(), declined, reviewed, args->out.c_str());
  });
}

}  // namespace vigil::cli
