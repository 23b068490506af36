// `vigil process`: the streaming processor in its own process (src/process/processor.h), against
// a queue service over HTTP (--queue-url, or the reference's QUEUE_SERVICE_URL), NATS JetStream
// (--queue nats://...), or the embedded queue of its data folder.
#include <CLI/CLI.hpp>
#include <pthread.h>

#include <csignal>
#include <cstdio>
#include <mutex>
#include <thread>

#include "cli/cli_util.h"
#include "core/json_text.h"
#include "process/processor.h"
#include "serve/http_queue.h"
#include "vigil/engine.h"
#include "vigil/queue.h"
#include "vigil/simulator.h"
#include "vigil/time.h"

namespace vigil::cli {
namespace {

// Splits "TQ1,TQ2" into names.
std::vector<std::string> SplitNames(const std::string& list) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= list.size()) {
    const size_t comma = std::min(list.find(',', start), list.size());
    if (comma > start) out.push_back(list.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

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
    std::snprintf(customer, sizeof customer, "cust_%03lld", static_cast<long long>(d.customer_id[i]));
    std::string iso = FormatRfc3339Micros(d.timestamp[i] * 1000000 + static_cast<int64_t>(i % 1000000));
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

}  // namespace

void AddProcessCommand(CLI::App& app, int* exit_code) {
  auto* cmd = app.add_subcommand(
      "process", "Score the transactions of the input queues (TQ1, TQ2) into the prediction queue (PQ1)");
  struct Args {
    EngineOptions engine;
    ProcessorOptions processor;
    std::string queue = "embedded", queue_url, token, inputs = "TQ1,TQ2", record = "sync", sync = "normal",
                kernel = "auto";
    double lease_seconds = 30;
    int mock = -1;
    bool verbose = false;
  };
  auto args = std::make_shared<Args>();
  EngineOptions& e = args->engine;
  cmd->add_option("--model", e.model_path, "Model file")->capture_default_str()->envname("VIGIL_MODEL");
  cmd->add_option("--data-dir", e.data_dir, "Folder of this processor's store (and of an embedded queue)")
      ->capture_default_str()->envname("VIGIL_DATA_DIR");
  cmd->add_option("--queue-url", args->queue_url,
                  "A Vigil queue service (vigil serve), http://host:port")
      ->envname("QUEUE_SERVICE_URL");
  cmd->add_option("--queue", args->queue, "Without --queue-url: embedded (in --data-dir) or nats://host:port")
      ->capture_default_str()->envname("VIGIL_QUEUE");
  cmd->add_option("--token", args->token, "Sent as 'Authorization: Bearer TOKEN' to the queue service")
      ->envname("VIGIL_QUEUE_TOKEN");
  cmd->add_option("--transaction-queue", args->inputs, "Input queues, comma-separated")
      ->capture_default_str()->envname("TRANSACTION_QUEUE");
  cmd->add_option("--prediction-queue", args->processor.output_queue, "Output queue")
      ->capture_default_str()->envname("PREDICTION_QUEUE");
  cmd->add_option("--threads", args->processor.threads, "Worker threads")
      ->capture_default_str()->envname("VIGIL_PROCESS_THREADS")->check(CLI::Range(1, 256));
  cmd->add_option("--batch", args->processor.batch, "Messages per pull")
      ->capture_default_str()->envname("VIGIL_PROCESS_BATCH")->check(CLI::Range(1, 1000));
  cmd->add_option("--lease-seconds", args->lease_seconds, "How long a pulled batch is leased")
      ->capture_default_str()->check(CLI::Range(1.0, 43200.0));
  cmd->add_option("--rank", args->processor.rank, "processor_rank in the records")->capture_default_str();
  cmd->add_option("--record", args->record, "sync or async (as vigil serve)")
      ->capture_default_str()->check(CLI::IsMember({"sync", "async"}));
  cmd->add_option("--sync", args->sync, "normal or full (as vigil serve)")
      ->capture_default_str()->check(CLI::IsMember({"normal", "full"}));
  cmd->add_option("--reasons", e.explain_top_k, "Reasons per record (0: none)")->capture_default_str();
  cmd->add_option("--mock", args->mock,
                  "First push N simulated transactions to the first input queue, process until the "
                  "queues are empty, print the summary and exit")
      ->check(CLI::Range(0, 10000000));
  cmd->add_flag("--verbose", args->verbose, "One line per transaction, and the summary");
  AddKernelOption(*cmd, &args->kernel);
  cmd->callback([args, exit_code] {
    EngineOptions eo = args->engine;
    eo.record = args->record == "async" ? RecordMode::kAsync : RecordMode::kSync;
    eo.durability = args->sync == "full" ? Durability::kPowerLoss : Durability::kProcessCrash;
    auto kernel = ParseKernel(args->kernel);
    if (!kernel.ok()) {
      *exit_code = Fail("process", kernel.status().WithContext("--kernel / VIGIL_KERNEL"));
      return;
    }
    eo.kernel = *kernel;
    ProcessorOptions po = args->processor;
    po.input_queues = SplitNames(args->inputs);
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
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
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
        for (size_t k = i; k < std::min(mock->size(), i + 1000); ++k) items.push_back({(*mock)[k], "transaction"});
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
          std::printf("Message %.*s: error: %s\n", static_cast<int>(m.message_id.size()), m.message_id.data(),
                      m.error.message().c_str());
        } else {
          std::printf("Transaction %s: Fraud=%s, Confidence=%.2f, Amount=$%.2f\n", m.tx->customer_id.c_str(),
                      m.flagged ? "True" : "False", m.confidence, m.tx->amount);
        }
      };
    }
    const auto start = std::chrono::steady_clock::now();
    auto processor = Processor::Start(**engine, **queue, po);
    if (!processor.ok()) {
      *exit_code = Fail("process", processor.status());
      return;
    }
    if (!po.exit_when_idle) {
      // Until SIGINT or SIGTERM; the workers finish the batches in hand.
      std::fprintf(stderr, "vigil process: processing %s into %s (Ctrl-C stops)\n", args->inputs.c_str(),
                   po.output_queue.c_str());
      int sig = 0;
      sigwait(&signals, &sig);
      (*processor)->Stop();
    } else {
      (*processor)->Wait();
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const ProcessorStats st = (*processor)->stats();
    (*processor).reset();
    (*queue)->Stop();
    (*engine)->Stop();
    if (args->verbose || args->mock >= 0) {
      std::printf("\nSummary: %llu fraudulent transactions detected out of %llu\n",
                  static_cast<unsigned long long>(st.flagged), static_cast<unsigned long long>(st.processed));
      std::printf("Average confidence: %.2f\n", st.processed == 0 ? 0.0 : st.confidence_sum / st.processed);
      std::printf("Processing time: %.3f seconds\n", seconds);
      if (st.errors > 0) {
        std::printf("Errors: %llu messages were not transactions (dead-lettered)\n",
                    static_cast<unsigned long long>(st.errors));
      }
    }
    *exit_code = 0;
  });
}

}  // namespace vigil::cli
