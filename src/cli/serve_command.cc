#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <pthread.h>

#include "cli/cli_util.h"
#include "serve/scoring_service.h"

namespace vigil::cli {

void AddServeCommand(CLI::App& app, int* exit_code) {
  auto* cmd = app.add_subcommand("serve", "Serve real-time scoring over HTTP");
  struct Args {
    ServeOptions serve;
    std::string record = "sync", sync = "normal", retain = "90d", kernel = "auto";
  };
  auto args = std::make_shared<Args>();
  ServeOptions& o = args->serve;
  EngineOptions& e = o.engine;
  cmd->add_option("--model", e.model_path, "Model file")->capture_default_str()->envname("VIGIL_MODEL");
  cmd->add_option("--models-dir", e.models_dir,
                  "Folder that POST /v1/admin/reload {\"model\": NAME} loads NAME.model from "
                  "(default: the folder of --model)")
      ->envname("VIGIL_MODELS_DIR");
  cmd->add_option("--max-model-bytes", e.max_model_bytes, "Largest model file loaded")
      ->capture_default_str()->envname("VIGIL_MAX_MODEL_BYTES");
  cmd->add_option("--port", o.port, "TCP port (0: any free port)")->capture_default_str()->envname("VIGIL_PORT");
  cmd->add_option("--address", o.address, "Address to listen on")->capture_default_str()->envname("VIGIL_ADDRESS");
  cmd->add_option("--data-dir", e.data_dir, "Folder of the embedded store (journal, index vigil.db, snapshots)")
      ->capture_default_str()->envname("VIGIL_DATA_DIR");
  cmd->add_option("--threads", o.threads, "HTTP I/O threads (0: one per core)")
      ->capture_default_str()->envname("VIGIL_THREADS");
  cmd->add_option("--record", args->record,
                  "sync: reply once the record is committed (nothing answered is lost on a crash); "
                  "async: reply first, commit in the background")
      ->capture_default_str()->envname("VIGIL_RECORD")->check(CLI::IsMember({"sync", "async"}));
  cmd->add_option("--sync", args->sync,
                  "normal: a record is committed once written to the OS (survives a process crash); full: once on disk (fdatasync; survives a power loss too)")
      ->capture_default_str()->envname("VIGIL_SYNC")->check(CLI::IsMember({"normal", "full"}));
  cmd->add_option("--retain", args->retain,
                  "Keep records this long (90d, 12h, ...; 0: forever); older journal segments and "
                  "index rows are dropped once a minute")
      ->capture_default_str()->envname("VIGIL_RETAIN");
  cmd->add_option("--max-batch", o.max_batch, "Transactions per /v1/score/batch call")
      ->capture_default_str()->envname("VIGIL_MAX_BATCH");
  cmd->add_option("--max-body-bytes", o.max_body_bytes, "Largest request body (413 above)")
      ->capture_default_str()->envname("VIGIL_MAX_BODY_BYTES");
  cmd->add_option("--reasons", e.explain_top_k, "Reasons per reply (0: none)")
      ->capture_default_str()->envname("VIGIL_REASONS");
  cmd->add_flag("--exact-reasons", e.exact_reasons,
                "Exact TreeSHAP also for trees too deep for its tables (deep random forests: "
                "milliseconds per request) instead of path attributions")
      ->envname("VIGIL_EXACT_REASONS");
  AddKernelOption(*cmd, &args->kernel);
  QueueOptions& q = o.queue;
  cmd->add_option("--queue", q.url,
                  "Queues served on /api/queues: embedded (in --data-dir) or nats://host:port")
      ->capture_default_str()->envname("VIGIL_QUEUE");
  q.url = "embedded";
  cmd->add_option("--queue-max-attempts", q.max_attempts,
                  "Deliveries of a leased message without an ack before it goes to the dead letters")
      ->capture_default_str()->envname("VIGIL_QUEUE_MAX_ATTEMPTS")->check(CLI::Range(1, 1000));
  cmd->add_option("--queue-max-message-bytes", q.max_message_bytes, "Largest message content (413 above)")
      ->capture_default_str()->envname("VIGIL_QUEUE_MAX_MESSAGE_BYTES");
  cmd->add_option("--queue-max-memory-bytes", q.max_memory_bytes,
                  "Embedded queue: content of unacknowledged messages held in memory before pushes "
                  "are refused (429)")
      ->capture_default_str()->envname("VIGIL_QUEUE_MAX_MEMORY_BYTES");
  cmd->add_flag("--process", o.process,
                "Run the processor in the server: score the transactions of TQ1 and TQ2, push the "
                "prediction records to PQ1")
      ->envname("VIGIL_PROCESS");
  cmd->add_option("--process-threads", o.processor.threads, "Processor worker threads")
      ->capture_default_str()->envname("VIGIL_PROCESS_THREADS")->check(CLI::Range(1, 256));
  cmd->add_option("--process-batch", o.processor.batch, "Messages per pull of a processor worker")
      ->capture_default_str()->envname("VIGIL_PROCESS_BATCH")->check(CLI::Range(1, 1000));
  cmd->callback([args, exit_code] {
    ServeOptions o = args->serve;
    o.engine.record = args->record == "async" ? RecordMode::kAsync : RecordMode::kSync;
    o.engine.durability =
        args->sync == "full" ? Durability::kPowerLoss : Durability::kProcessCrash;
    auto retain = ParseDuration(args->retain);
    if (!retain.ok()) {
      *exit_code = Fail("serve", retain.status().WithContext("--retain"));
      return;
    }
    o.engine.retain = *retain;
    auto kernel = ParseKernel(args->kernel);
    if (!kernel.ok()) {
      *exit_code = Fail("serve", kernel.status().WithContext("--kernel / VIGIL_KERNEL"));
      return;
    }
    o.engine.kernel = *kernel;
    if (o.port < 0 || o.port > 65535) {
      *exit_code = Fail("serve", InvalidArgument("--port must be 0..65535"));
      return;
    }
    // Signals go to one waiting thread, not to whichever thread runs: block them everywhere first.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    auto service = ScoringService::Start(o);
    if (!service.ok()) {
      *exit_code = Fail("serve", service.status());
      return;
    }
    std::printf("vigil serve: listening on http://%s:%d (model %s)\n",
                o.address == "0.0.0.0" ? "127.0.0.1" : o.address.c_str(), (*service)->port(),
                o.engine.model_path.c_str());
    std::fflush(stdout);
    while (true) {
      int sig = 0;
      sigwait(&signals, &sig);
      if (sig == SIGHUP) {
        (void)(*service)->Reload();
        continue;
      }
      break;
    }
    (*service)->Stop();
    *exit_code = 0;
  });
}

}  // namespace vigil::cli
