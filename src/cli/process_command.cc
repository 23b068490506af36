// `vigil process`: the streaming processor in its own process (src/process/processor.h), against
// a queue service over HTTP (--queue-url, or the reference's QUEUE_SERVICE_URL), NATS JetStream
// (--queue nats://...), or the embedded queue of its data folder; or, with --in/--out, a
// transactions file scored into `vigil score`'s CSV, over MPI ranks when a launcher started it
// (src/dist/score_job.h) and in one process otherwise.
#include <pthread.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <thread>

#include "cli/cli_util.h"
#include "core/json_text.h"
#include "dist/mpi_runtime.h"
#include "dist/rank_predictor.h"
#include "dist/score_job.h"
#include "process/processor.h"
#include "serve/http_queue.h"
#include "vigil/engine.h"
#include "vigil/queue.h"
#include "vigil/simulator.h"
#include "vigil/time.h"

namespace vigil::cli {
namespace {

// N simulated transactions in the reference's shape: customer_id "cust_001", a numeric
// vendor_id, a status, and Python's utcnow().isoformat() timestamps (no zone).
StatusOr<std::vector<std::string>> MockTransactions(int n) {
  SimulatorOptions so;
  so.customers = std::clamp(n / 20, 20, 5000);
  so.terminals = 2 * so.customers;
  so.days = 30;
  so.radius = 10;
  so.start_date = FormatDate(std::chrono::duration_cast<std::chrono::seconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count() -
                             31 * kSecondsPerDay);
  VIGIL_ASSIGN_OR_RETURN(Dataset d, Simulate(so));
  std::vector<std::string> out;
  static constexpr const char* kStatus[] = {"submitted", "accepted", "rejected"};
  for (size_t i = 0; i < d.size() && out.size() < static_cast<size_t>(n); ++i) {
    char customer[32];
    std::snprintf(customer, sizeof customer, "cust_%03lld",
                  static_cast<long long>(d.customer_id[i]));
    std::string iso =
        FormatRfc3339Micros(d.timestamp[i] * 1000000 + static_cast<int64_t>(i % 1000000));
    iso.pop_back();  // no 'Z', as datetime.utcnow().isoformat() writes it
    std::string t = "{\"customer_id\":";
    AppendJsonString(&t, customer);
    t += ",\"vendor_id\":" + std::to_string(d.terminal_id[i]) + ",\"amount\":";
    AppendJsonNumber(&t, d.amount[i]);
    t += ",\"status\":\"";
    t += kStatus[i % 10 == 9 ? 2 : (i % 3 == 0 ? 1 : 0)];
    t += "\",\"timestamp\":\"" + iso + "\"}";
    out.push_back(std::move(t));
  }
  return out;
}

void PrintRankTable(const std::vector<dist::RankSummary>& ranks) {
  std::printf("%-5s %-16s %-7s %-7s %10s %8s %9s %9s\n", "rank", "host", "role", "kernel", "rows",
              "batches", "busy s", "idle s");
  for (const auto& r : ranks) {
    std::printf("%-5d %-16.16s %-7s %-7s %10llu %8llu %9.2f %9.2f\n", r.rank, r.host.c_str(),
                r.rank == 0 ? "master" : "worker", r.kernel.c_str(),
                static_cast<unsigned long long>(r.rows), static_cast<unsigned long long>(r.batches),
                r.busy_seconds, r.idle_seconds);
  }
}

// --in/--out: over MPI ranks under a launcher, else in one process, saying which.
int ProcessFile(const FileScoreArgs& file, bool threads_given, size_t batch_rows) {
  if (Status st = CheckFileScoreArgs(file); !st.ok()) return Fail("process", st);
  const dist::Launcher launcher = dist::DetectLauncher();
  if (!launcher.present) {
    std::fprintf(
        stderr, "vigil process: not started by an MPI launcher (mpirun): scoring in one process\n");
    return ScoreFile("process", file);
  }
  // Rank 0 answers SIGINT and SIGTERM on a thread of its own (WatchForTermination: here, or in
  // ScoreFile when it scores alone); the other ranks keep the default and end at once. Blocked
  // before MPI starts its threads, which inherit the mask, so that only that thread takes them.
  const sigset_t signals = BlockTerminationSignals();
  auto unblock = [&signals] { pthread_sigmask(SIG_UNBLOCK, &signals, nullptr); };
  auto mpi = dist::Mpi::Init();
  if (!mpi.ok()) {
    if (launcher.rank > 0) {
      unblock();
      std::fprintf(stderr, "vigil process (rank %d): %s: rank 0 scores alone, this rank ends\n",
                   launcher.rank, mpi.status().message().c_str());
      return 0;
    }
    std::fprintf(stderr, "vigil process: %s (launcher: %s): scoring in one process\n",
                 mpi.status().message().c_str(), launcher.variable.c_str());
    return ScoreFile("process", file);
  }
  dist::Mpi& m = **mpi;
  if (m.rank() != 0) unblock();  // rank 0 takes them, scoring alone (ScoreFile) or as the master
  if (m.size() == 1) {
    std::fprintf(stderr,
                 "vigil process: one MPI rank: scoring in it alone (workers need -n 2 or more)\n");
    return ScoreFile("process", file);
  }
  dist::ScoreJobOptions o;
  o.model_path = file.model;
  o.in_path = file.in;
  o.out_path = file.out;
  o.kernel = file.kernel;
  o.explain = file.explain;
  o.exact_reasons = file.exact_reasons;
  o.top_reasons = file.top_reasons;
  o.threads = threads_given ? file.threads : 1;
  o.batch_rows = batch_rows;
  auto job = std::make_shared<FileJobProgress>();
  Progress features("process: features", file.quiet || m.rank() != 0);
  Progress scoring("process: score", file.quiet || m.rank() != 0);
  if (m.rank() == 0) {
    std::fprintf(stderr, "vigil process: %d ranks (%s): rank 0 on %s is the master, %d score\n",
                 m.size(), m.library_version().c_str(), m.host().c_str(), m.size() - 1);
    WatchForTermination(signals, "process", file.out, job,
                        "a launcher sends it to every rank when one fails: see its message");
    o.job = job.get();
    o.progress = [&](const char* phase, double f) {
      if (std::strcmp(phase, "features") == 0) {
        f < 1.0 ? features.Update(f) : features.Done();
      } else {
        scoring.Update(f);
      }
    };
  }
  auto result = dist::RunScoreJob(m, o);
  if (!result.ok() && m.rank() == 0) {
    // A worker that died can reach the master as an MPI error before the launcher's SIGTERM
    // does: the same account of what was done either way.
    std::fprintf(stderr, "vigil process: error: %s; stopped with %s\n",
                 result.status().message().c_str(), job->StoppedAccount(file.out).c_str());
    return 1;
  }
  if (!result.ok()) return Fail("process", result.status());
  if (m.rank() != 0) return 0;
  scoring.Done();
  std::printf(
      "%llu transactions scored with %s by %d workers: %llu declined, %llu to review; written to "
      "%s\n",
      static_cast<unsigned long long>(result->rows), file.model.c_str(), m.size() - 1,
      static_cast<unsigned long long>(result->declined),
      static_cast<unsigned long long>(result->reviewed), file.out.c_str());
  PrintRankTable(result->ranks);
  return 0;
}

// The reference processor's summary.
void PrintSummary(const ProcessorStats& st, double seconds, bool show) {
  if (!show) return;
  std::printf("\nSummary: %llu fraudulent transactions detected out of %llu\n",
              static_cast<unsigned long long>(st.flagged),
              static_cast<unsigned long long>(st.processed));
  std::printf("Average confidence: %.2f\n",
              st.processed == 0 ? 0.0 : st.confidence_sum / st.processed);
  std::printf("Processing time: %.3f seconds\n", seconds);
  if (st.errors > 0) {
    std::printf("Errors: %llu messages were not transactions (dead-lettered)\n",
                static_cast<unsigned long long>(st.errors));
  }
}

struct ProcessorRun {
  ProcessorStats stats;
  double seconds = 0;
  std::vector<dist::RankSummary> ranks;  // under MPI: every rank's, the master first
};

// Runs the processor until it ends: by itself (--mock), or on SIGINT/SIGTERM, when the batches
// in hand finish. SIGHUP reloads the model from its file; under MPI it reaches each worker with
// its next batch. With `ranks` (rank 0 of the MPI processor), this thread, the one that started
// MPI, hands the engine's batches to the workers meanwhile; on a stop, what a worker cannot
// answer (a dead rank's, when the launcher ends the job) fails after 5 s and goes back to its
// queue unacknowledged.
StatusOr<ProcessorRun> RunProcessor(const std::shared_ptr<Engine>& engine,
                                    const std::shared_ptr<Processor>& processor,
                                    const std::shared_ptr<dist::RankPredictor>& ranks,
                                    sigset_t signals) {
  const auto start = std::chrono::steady_clock::now();
  // The signal thread shares what it uses: it outlives this call, waiting.
  std::thread([signals, engine, processor, ranks] {
    for (;;) {
      int sig = 0;
      sigwait(&signals, &sig);
      if (sig == SIGHUP) {
        (void)engine->Reload();  // logged either way
        continue;
      }
      std::fprintf(stderr,
                   "vigil process: stopping on %s with %llu transactions processed and "
                   "acknowledged; the batches in hand finish or go back to their queues\n",
                   sig == SIGINT ? "SIGINT" : "SIGTERM",
                   static_cast<unsigned long long>(processor->stats().processed));
      if (ranks != nullptr) {
        ranks->Close(/*fail=*/false);
        std::thread([ranks] {
          std::this_thread::sleep_for(std::chrono::seconds(5));
          ranks->Close(/*fail=*/true);
        }).detach();
      }
      processor->Stop();
      return;
    }
  }).detach();
  ProcessorRun out;
  if (ranks != nullptr) {
    std::thread control([ranks, processor] {
      processor->Wait();
      ranks->Close(/*fail=*/false);
    });
    auto served = ranks->Serve();
    if (!served.ok()) processor->Stop();  // its batches fail now: given back
    control.join();
    if (!served.ok()) return served.status();
    out.ranks = std::move(*served);
  } else {
    processor->Wait();
  }
  out.stats = processor->stats();
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

}  // namespace

void AddProcessCommand(CLI::App& app, int* exit_code) {
  auto* cmd = app.add_subcommand(
      "process",
      "Score the transactions of the input queues (TQ1, TQ2) into the prediction queue (PQ1)");
  struct Args {
    EngineOptions engine;
    ProcessorOptions processor;
    std::string queue = "embedded", queue_url, token, inputs = "TQ1,TQ2", record = "sync",
                sync = "normal", kernel = "auto";
    double lease_seconds = 30;
    int mock = -1;
    bool verbose = false;
    FileScoreArgs file;  // --in/--out
    size_t rank_batch = 1024;
  };
  auto args = std::make_shared<Args>();
  EngineOptions& e = args->engine;
  cmd->add_option("--model", e.model_path, "Model file")
      ->capture_default_str()
      ->envname("VIGIL_MODEL");
  cmd->add_option("--data-dir", e.data_dir,
                  "Folder of this processor's store (and of an embedded queue)")
      ->capture_default_str()
      ->envname("VIGIL_DATA_DIR");
  cmd->add_option("--queue-url", args->queue_url,
                  "A Vigil queue service (vigil serve), http://host:port")
      ->envname("QUEUE_SERVICE_URL");
  cmd->add_option("--queue", args->queue,
                  "Without --queue-url: embedded (in --data-dir) or nats://host:port")
      ->capture_default_str()
      ->envname("VIGIL_QUEUE");
  cmd->add_option("--token", args->token,
                  "Sent as 'Authorization: Bearer TOKEN' to the queue service")
      ->envname("VIGIL_QUEUE_TOKEN");
  cmd->add_option("--transaction-queue", args->inputs, "Input queues, comma-separated")
      ->capture_default_str()
      ->envname("TRANSACTION_QUEUE");
  cmd->add_option("--prediction-queue", args->processor.output_queue, "Output queue")
      ->capture_default_str()
      ->envname("PREDICTION_QUEUE");
  cmd->add_option("--threads", args->processor.threads,
                  "Queues: worker threads. --in: scoring threads (in one process, one per core "
                  "unless given; under mpirun, in each worker rank)")
      ->capture_default_str()
      ->envname("VIGIL_PROCESS_THREADS")
      ->check(CLI::Range(1, 256));
  cmd->add_option("--batch", args->processor.batch, "Messages per pull")
      ->capture_default_str()
      ->envname("VIGIL_PROCESS_BATCH")
      ->check(CLI::Range(1, 1000));
  cmd->add_option("--lease-seconds", args->lease_seconds, "How long a pulled batch is leased")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 43200.0));
  cmd->add_option("--rank", args->processor.rank, "processor_rank in the records")
      ->capture_default_str();
  cmd->add_option("--record", args->record, "sync or async (as vigil serve)")
      ->capture_default_str()
      ->check(CLI::IsMember({"sync", "async"}));
  cmd->add_option("--sync", args->sync, "normal or full (as vigil serve)")
      ->capture_default_str()
      ->check(CLI::IsMember({"normal", "full"}));
  cmd->add_option("--in", args->file.in,
                  "Score this transactions CSV (in time order) into --out instead of processing "
                  "queues: over MPI ranks under mpirun, else in one process");
  cmd->add_option("--out", args->file.out,
                  "With --in: the predictions CSV, exactly as vigil score writes it");
  AddFileScoreOptions(*cmd, &args->file);
  cmd->add_option("--reasons", e.explain_top_k, "Queues: reasons per record (0: none)")
      ->capture_default_str();
  cmd->add_option("--rank-batch", args->rank_batch,
                  "With --in under mpirun: rows in each batch a rank scores")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--mock", args->mock,
                  "First push N simulated transactions to the first input queue, process until the "
                  "queues are empty, print the summary and exit")
      ->check(CLI::Range(0, 10000000));
  cmd->add_flag("--verbose", args->verbose, "One line per transaction, and the summary");
  AddKernelOption(*cmd, &args->kernel);
  cmd->callback([args, cmd, exit_code] {
    // --threads has a default that depends on the mode (see its help) unless it was given.
    const bool threads_given =
        cmd->count("--threads") > 0 || std::getenv("VIGIL_PROCESS_THREADS") != nullptr;
    if (!args->file.in.empty() || !args->file.out.empty()) {
      if (args->file.in.empty() || args->file.out.empty()) {
        *exit_code = Fail("process", InvalidArgument("--in and --out go together"));
      } else if (args->mock >= 0 || !args->queue_url.empty()) {
        *exit_code =
            Fail("process",
                 InvalidArgument("--in/--out score a file: no --mock or --queue-url with them"));
      } else {
        FileScoreArgs file = args->file;
        file.model = args->engine.model_path;
        file.kernel = args->kernel;
        file.threads = threads_given ? args->processor.threads : 0;
        *exit_code = ProcessFile(file, threads_given, args->rank_batch);
      }
      return;
    }
    // Under a launcher: rank 0 runs the processor and the workers run the model
    // (dist/rank_predictor.h); without MPI, or alone, one process, saying so.
    // Before MPI starts its threads.
    const sigset_t signals = BlockTerminationSignals(/*and_hangup=*/true);
    std::unique_ptr<dist::Mpi> mpi;
    if (const dist::Launcher l = dist::DetectLauncher(); l.present && l.size != 1) {
      auto started = dist::Mpi::Init();
      if (!started.ok()) {
        if (l.rank > 0) {
          std::fprintf(stderr,
                       "vigil process (rank %d): %s: rank 0 processes alone, this rank ends\n",
                       l.rank, started.status().message().c_str());
          *exit_code = 0;
          return;
        }
        std::fprintf(stderr, "vigil process: %s (launcher: %s): processing in one process\n",
                     started.status().message().c_str(), l.variable.c_str());
      } else if ((*started)->size() == 1) {
        std::fprintf(stderr, "vigil process: one MPI rank: processing in it alone (workers need "
                             "-n 2 or more)\n");
      } else if ((*started)->rank() != 0) {
        pthread_sigmask(SIG_UNBLOCK, &signals, nullptr);  // a worker ends at once
        const Status st = dist::RunRankWorker(**started);
        *exit_code = st.ok() ? 0 : Fail("process", st);
        return;
      } else {
        mpi = std::move(*started);
      }
    }
    EngineOptions eo = args->engine;
    if (cmd->count("--top-reasons") > 0) eo.explain_top_k = args->file.top_reasons;  // as --reasons
    eo.exact_reasons = args->file.exact_reasons;
    eo.record = args->record == "async" ? RecordMode::kAsync : RecordMode::kSync;
    eo.durability = args->sync == "full" ? Durability::kPowerLoss : Durability::kProcessCrash;
    auto kernel = ParseKernel(args->kernel);
    if (!kernel.ok()) {
      *exit_code = Fail("process", kernel.status().WithContext("--kernel / VIGIL_KERNEL"));
      return;
    }
    eo.kernel = *kernel;
    ProcessorOptions po = args->processor;
    std::shared_ptr<dist::RankPredictor> ranks;
    // However rank 0 ends (a bad queue URL, say), its workers are stopped first: MPI_Finalize
    // waits for every rank.
    struct StopWorkers {
      std::shared_ptr<dist::RankPredictor> ranks;
      ~StopWorkers() {
        if (ranks == nullptr) return;
        ranks->Close(/*fail=*/true);
        (void)ranks->Serve();
      }
    } stop_workers;
    if (mpi != nullptr) {
      dist::RankPredictorOptions ro;
      ro.kernel = args->kernel;
      ro.exact_reasons = eo.exact_reasons;
      ro.threads = threads_given ? args->processor.threads : 1;
      ranks = std::make_shared<dist::RankPredictor>(*mpi, ro);
      stop_workers.ranks = ranks;
      eo.predictor = ranks;
      // Batches in flight: two per worker (one scored, one waiting), each a processor thread.
      po.threads = 2 * (mpi->size() - 1);
      std::fprintf(stderr,
                   "vigil process: %d ranks (%s): rank 0 on %s runs the processor, %d score\n",
                   mpi->size(), mpi->library_version().c_str(), mpi->host().c_str(),
                   mpi->size() - 1);
    }
    po.input_queues = SplitList(args->inputs);
    po.lease = std::chrono::milliseconds(static_cast<int64_t>(args->lease_seconds * 1000));
    po.flush_before_ack = eo.record == RecordMode::kAsync;
    po.exit_when_idle = args->mock >= 0;

    StatusOr<std::unique_ptr<Queue>> queue = InvalidArgument("no queue");
    if (!args->queue_url.empty()) {
      queue = OpenHttpQueue(args->queue_url, args->token);
    } else {
      QueueOptions qo;
      qo.url = args->queue;
      qo.data_dir = eo.data_dir;
      qo.durability = eo.durability;
      queue = Queue::Open(qo);
    }
    if (!queue.ok()) {
      *exit_code = Fail("process", queue.status());
      return;
    }
    auto engine = Engine::Open(eo);
    if (!engine.ok()) {
      *exit_code = Fail("process", engine.status());
      return;
    }
    if (args->mock > 0) {
      auto mock = MockTransactions(args->mock);
      if (!mock.ok()) {
        *exit_code = Fail("process", mock.status());
        return;
      }
      for (size_t i = 0; i < mock->size(); i += 1000) {
        std::vector<PushItem> items;
        for (size_t k = i; k < std::min(mock->size(), i + 1000); ++k)
          items.push_back({(*mock)[k], "transaction"});
        if (auto pushed = (*queue)->PushAndWait(po.input_queues.front(), items); !pushed.ok()) {
          *exit_code = Fail("process", pushed.status().WithContext("--mock"));
          return;
        }
      }
      if (args->verbose) std::printf("Processing %d test transactions...\n\n", args->mock);
    }
    std::mutex print_mu;
    if (args->verbose) {
      po.on_processed = [&print_mu](const ProcessedMessage& m) {
        std::lock_guard lock(print_mu);
        if (m.tx == nullptr) {
          std::printf("Message %.*s: error: %s\n", static_cast<int>(m.message_id.size()),
                      m.message_id.data(), m.error.message().c_str());
        } else {
          std::printf("Transaction %s: Fraud=%s, Confidence=%.2f, Amount=$%.2f\n",
                      m.tx->customer_id.c_str(), m.flagged ? "True" : "False", m.confidence,
                      m.tx->amount);
        }
      };
    }
    auto processor = Processor::Start(**engine, **queue, po);
    if (!processor.ok()) {
      *exit_code = Fail("process", processor.status());
      return;
    }
    if (!po.exit_when_idle) {
      std::fprintf(stderr,
                   "vigil process: processing %s into %s (Ctrl-C stops, SIGHUP reloads the "
                   "model)\n",
                   args->inputs.c_str(), po.output_queue.c_str());
    }
    const std::shared_ptr<Engine> shared_engine(std::move(*engine));
    auto run = RunProcessor(shared_engine, std::shared_ptr<Processor>(std::move(*processor)), ranks,
                            signals);
    (*queue)->Stop();
    shared_engine->Stop();  // its snapshot and last records (the signal thread keeps a reference)
    if (!run.ok()) {
      *exit_code = Fail("process", run.status());
      return;
    }
    PrintSummary(run->stats, run->seconds, args->verbose || args->mock >= 0);
    if (!run->ranks.empty()) PrintRankTable(run->ranks);
    *exit_code = 0;
  });
}

}  // namespace vigil::cli
