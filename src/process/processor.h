// The streaming processor: transactions from the input queues (TQ1, TQ2) through the engine to
// the prediction queue (PQ1). It is a thin client of both: it parses a message's content as a
// transaction (the queue path's rules: a zone-less timestamp is UTC, a missing transaction_id
// is the message id), scores the batch with Engine::ScoreBatch exactly as /v1/score/batch does,
// pushes one prediction record per message to PQ1 (engine/prediction_json.h), and only then
// acknowledges the messages. So:
//   - a crash anywhere before the ack means a redelivery, never a lost transaction; the engine's
//     idempotency by transaction id keeps the redelivered one from counting twice in the online
//     features, and its record on PQ1 is the same reply again (PQ1 is at-least-once);
//   - a message that is not a valid transaction goes to PQ1 as a "status": "error" record and to
//     its queue's dead letters, with the problem as the reason; it never stops the processor;
//   - when the engine or PQ1 refuses (a full disk), the messages are given back and retried.
// Used by `vigil serve --process` (threads beside the HTTP server) and `vigil process` (its own
// process, against a queue service or NATS).
#ifndef VIGIL_PROCESS_PROCESSOR_H_
#define VIGIL_PROCESS_PROCESSOR_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "vigil/engine.h"
#include "vigil/queue.h"
#include "vigil/status.h"

namespace vigil {

struct ProcessorOptions {
  std::vector<std::string> input_queues = {"TQ1", "TQ2"};
  std::string output_queue = "PQ1";
  int threads = 1;     // workers, each pulling, scoring and pushing a batch at a time
  size_t batch = 100;  // messages per pull. REQUIRES: 1 <= batch <= the queue's max_batch
  std::chrono::milliseconds lease{30000};  // the time a batch has to be processed
  // How long a pull waits for messages once every input queue was found empty.
  std::chrono::milliseconds idle_wait{200};
  // "processor_rank" in the records, unless the engine's RowPredictor says which rank scored.
  int rank = 0;
  // Stop once every input queue was found empty (after at least one message, or at once when
  // there was none): `vigil process --mock N`.
  bool exit_when_idle = false;
  // Wait for the engine's records to be committed before acknowledging (RecordMode::kAsync
  // answers before they are).
  bool flush_before_ack = false;
  // Called for each message processed, on a worker thread (`--verbose`).
  std::function<void(const struct ProcessedMessage&)> on_processed;
};

// One message as the processor concluded it.
struct ProcessedMessage {
  std::string_view message_id;
  const Transaction* tx = nullptr;  // null when the content was not a transaction
  double score = 0, confidence = 0;
  bool flagged = false;  // decision review or decline
  Status error;          // why it is not a transaction (then dead-lettered)
};

struct ProcessorStats {
  uint64_t processed = 0;  // scored and acknowledged
  uint64_t flagged = 0;    // of those, decision review or decline
  uint64_t errors = 0;     // not transactions: dead-lettered
  uint64_t retried = 0;    // given back after a refusal of the engine or the output queue
  double confidence_sum = 0;
};

// A Processor runs worker threads that move transactions from the input queues to the output
// queue through the engine. Thread-safe.
class Processor {
 public:
  // Starts the workers. InvalidArgument for options out of range.
  static StatusOr<std::unique_ptr<Processor>> Start(Engine& engine, Queue& queue,
                                                    const ProcessorOptions& options);
  ~Processor();
  Processor(const Processor&) = delete;
  Processor& operator=(const Processor&) = delete;

  // Finishes the batches in hand and joins the workers. Idempotent.
  void Stop();
  // Blocks until the workers have stopped by themselves (exit_when_idle) or by Stop.
  void Wait();

  ProcessorStats stats() const;

 private:
  struct Shared;
  Processor(std::shared_ptr<Shared> shared, std::vector<std::thread> workers);
  std::shared_ptr<Shared> shared_;
  std::mutex join_mu_;
  std::vector<std::thread> workers_;
};

}  // namespace vigil

#endif  // VIGIL_PROCESS_PROCESSOR_H_
