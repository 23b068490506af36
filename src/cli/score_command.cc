#include <CLI/CLI.hpp>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <thread>

#include "cli/cli_util.h"
#include "core/file_util.h"
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
    std::string model, in, out;
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
  cmd->add_flag("--quiet", args->quiet, "No progress on stderr");
  cmd->callback([args, exit_code] {
    auto fail = [&](const Status& s) { *exit_code = Fail("score", s); };
    if (args->threads < 0) return fail(InvalidArgument("--threads cannot be negative"));
    if (args->top_reasons < 1) return fail(InvalidArgument("--top-reasons must be at least 1"));
    auto scorer = Scorer::Load(args->model, Kernel::kAuto,
                               args->exact_reasons ? ReasonsMethod::kExact : ReasonsMethod::kFast);
    if (!scorer.ok()) return fail(scorer.status());
    auto data = ReadTransactionsCsv(args->in);
    if (!data.ok()) return fail(data.status());
    auto out = AtomicFile::Create(args->out);
    if (!out.ok()) return fail(out.status());

    // Features from the online engine, state replayed in time order; labels, where the file has
    // them, reach it only after the model's delay, as analyst feedback would.
    Progress fprogress("features", args->quiet);
    FeatureMatrix m = ComputeFeatures(*data, (*scorer)->engine_set(), (*scorer)->engine_options(),
                                      fprogress.Callback());
    fprogress.Done();

    const size_t n = m.rows;
    const int top = args->explain ? args->top_reasons : 0;
    const int threads = args->threads > 0
                            ? args->threads
                            : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    AtomicFile& f = **out;
    f.Write(args->explain ? "transaction_id,score,decision,anomaly_score,reasons\n"
                          : "transaction_id,score,decision,anomaly_score\n");
    // Blocks of rows: threads score a block, then it is written in order, so memory stays
    // bounded and the output does not depend on the thread count.
    constexpr size_t kBlock = 1 << 16;
    std::vector<ScoreResult> results(std::min(n, kBlock));
    Progress sprogress("score", args->quiet);
    size_t declined = 0, reviewed = 0;
    std::string line;
    for (size_t block = 0; block < n; block += kBlock) {
      const size_t rows = std::min(kBlock, n - block);
      std::atomic<size_t> next{0};
      auto work = [&] {
        constexpr size_t kChunk = 1024;
        for (size_t lo; (lo = next.fetch_add(kChunk)) < rows;) {
          for (size_t i = lo; i < std::min(rows, lo + kChunk); ++i) {
            results[i] =
                (*scorer)->Score(std::span<const float>(m.row(block + i), m.cols()), top);
          }
        }
      };
      std::vector<std::thread> pool;
      for (int t = 1; t < threads; ++t) pool.emplace_back(work);
      work();
      for (auto& t : pool) t.join();
      for (size_t i = 0; i < rows; ++i) {
        const ScoreResult& r = results[i];
        line = std::to_string(data->transaction_id[block + i]) + "," + FormatDouble(r.score) +
               "," + std::string(DecisionName(r.decision)) + "," +
               (std::isnan(r.anomaly_score) ? std::string() : FormatDouble(r.anomaly_score));
        if (args->explain) line += "," + ReasonsCell(r.reasons);
        line += "\n";
        f.Write(line);
        declined += r.decision == Decision::kDecline;
        reviewed += r.decision == Decision::kReview;
      }
      sprogress.Update(static_cast<double>(block + rows) / n);
    }
    sprogress.Done();
    Status st = f.Commit();
    if (!st.ok()) return fail(st);
    std::printf("%zu transactions scored with %s: %zu declined, %zu to review; written to %s\n", n,
                args->model.c_str(), declined, reviewed, args->out.c_str());
  });
}

}  // namespace vigil::cli
