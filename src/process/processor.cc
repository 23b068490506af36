#include "process/processor.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <utility>

#include "core/log.h"
#include "core/mutex.h"
#include "core/transaction_json.h"
#include "engine/prediction_json.h"

namespace vigil {
namespace {

int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Waits for a callback that may run on another thread.
template <typename T>
class Rendezvous {
 public:
  void Set(T value) {
    {
      std::lock_guard lock(mu_);
      value_ = std::move(value);
      done_ = true;
    }
    cv_.notify_all();
  }
  T Take() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return done_; });
    return std::move(value_);
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  T value_{};
};

}  // namespace

struct Processor::Shared {
  Engine& engine;
  Queue& queue;
  ProcessorOptions options;
  std::atomic<bool> stopping{false};
  std::atomic<int> running{0};

  mutable Mutex mu;
  ProcessorStats stats GUARDED_BY(mu);

  Shared(Engine& e, Queue& q, ProcessorOptions o) : engine(e), queue(q), options(std::move(o)) {}

  void Worker(int index) {
    size_t next = static_cast<size_t>(index);  // workers start on different queues
    int empty_rounds = 0;
    const size_t n = options.input_queues.size();
    while (!stopping.load()) {
      const std::string& name = options.input_queues[next++ % n];
      PullOptions p;
      p.max = options.batch;
      p.lease = options.lease;
      // Once a whole round found nothing, wait on each queue in turn for a while.
      p.wait = empty_rounds >= static_cast<int>(n) && !options.exit_when_idle ? options.idle_wait
                                                                               : std::chrono::milliseconds(0);
      auto got = queue.Pull(name, p);
      if (!got.ok()) {
        if (stopping.load()) break;
        Log(LogLevel::kWarn, "processor: pull failed", {{"queue", name}, {"error", got.status().ToString()}});
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        continue;
      }
      if (got->empty()) {
        ++empty_rounds;
        if (options.exit_when_idle && empty_rounds >= static_cast<int>(n)) break;
        continue;
      }
      empty_rounds = 0;
      ProcessBatch(name, std::move(*got));
    }
  }

  void ProcessBatch(const std::string& queue_name, std::vector<QueueMessage> messages) {
    thread_local TransactionParser parser;
    std::vector<Transaction> txs;
    std::vector<size_t> tx_of;  // message index -> index in txs, or SIZE_MAX
    std::vector<std::string> errors(messages.size());
    txs.reserve(messages.size());
    tx_of.assign(messages.size(), SIZE_MAX);
    std::vector<FieldProblem> problems;
    for (size_t i = 0; i < messages.size(); ++i) {
      TransactionParseOptions po;
      po.zoneless_timestamps_are_utc = true;
      po.default_transaction_id = messages[i].id;
      Transaction tx;
      Status s = parser.Parse(messages[i].content, &tx, &problems, po);
      if (!s.ok()) {
        // Every problem, each naming its field, not just the summary's first.
        errors[i] = "invalid transaction: ";
        for (size_t k = 0; k < problems.size(); ++k) {
          if (k > 0) errors[i] += "; ";
          errors[i] += problems[k].problem;
        }
        if (problems.empty()) errors[i] = s.message();
        continue;
      }
      tx_of[i] = txs.size();
      txs.push_back(std::move(tx));
    }
    // The engine takes the transactions; keep what the records need (not the JSON text).
    std::vector<Transaction> kept(txs.size());
    for (size_t k = 0; k < txs.size(); ++k) {
      kept[k].customer_id = txs[k].customer_id;
      kept[k].terminal_id = txs[k].terminal_id;
      kept[k].amount = txs[k].amount;
      kept[k].status = txs[k].status;
    }
    Rendezvous<std::vector<ScoreOutcome>> scored;
    engine.ScoreBatch(std::move(txs), [&scored](std::vector<ScoreOutcome> o) { scored.Set(std::move(o)); });
    std::vector<ScoreOutcome> outcomes = scored.Take();
    for (const ScoreOutcome& o : outcomes) {
      if (!o.status.ok()) return GiveBack(queue_name, messages, o.status);
    }
    if (options.flush_before_ack && !kept.empty()) {
      Status s = engine.Flush();
      if (!s.ok()) return GiveBack(queue_name, messages, s);
    }

    const int64_t now = NowUs();
    std::vector<std::string> records(messages.size());
    for (size_t i = 0; i < messages.size(); ++i) {
      // The rank that ran the model (the MPI processor's workers), else this processor's.
      const int rank = tx_of[i] != SIZE_MAX && outcomes[tx_of[i]].scored_by >= 0
                           ? outcomes[tx_of[i]].scored_by
                           : options.rank;
      PredictionRecordSource src{messages[i].id, queue_name, rank, now};
      records[i] = tx_of[i] == SIZE_MAX
                       ? RenderPredictionError(messages[i].content, errors[i], src)
                       : RenderPredictionRecord(*outcomes[tx_of[i]].reply, kept[tx_of[i]], src);
    }
    std::vector<PushItem> items;
    items.reserve(records.size());
    for (const std::string& r : records) items.push_back({r, "prediction"});
    if (auto pushed = queue.PushAndWait(options.output_queue, items); !pushed.ok()) {
      return GiveBack(queue_name, messages, pushed.status());
    }

    std::vector<std::string> good;
    for (size_t i = 0; i < messages.size(); ++i) {
      if (tx_of[i] != SIZE_MAX) good.push_back(messages[i].id);
    }
    if (!good.empty()) Settle(queue_name, good, nullptr);
    // One nack per bad message: each keeps its own reason.
    for (size_t i = 0; i < messages.size(); ++i) {
      if (tx_of[i] != SIZE_MAX) continue;
      NackOptions dead;
      dead.dead_letter = true;
      dead.reason = errors[i];
      std::vector<std::string> one = {messages[i].id};
      Settle(queue_name, one, &dead);
    }

    ProcessorStats add;
    for (size_t i = 0; i < messages.size(); ++i) {
      ProcessedMessage pm;
      pm.message_id = messages[i].id;
      if (tx_of[i] == SIZE_MAX) {
        pm.error = InvalidArgument(errors[i]);
        ++add.errors;
      } else {
        const ReplyVerdict v = ReadVerdict(*outcomes[tx_of[i]].reply);
        pm.tx = &kept[tx_of[i]];
        pm.score = v.score;
        pm.flagged = v.flagged;
        pm.confidence = std::max(v.score, 1 - v.score);
        ++add.processed;
        add.flagged += v.flagged;
        add.confidence_sum += pm.confidence;
      }
      if (options.on_processed) options.on_processed(pm);
    }
    MutexLock lock(&mu);
    stats.processed += add.processed;
    stats.flagged += add.flagged;
    stats.errors += add.errors;
    stats.confidence_sum += add.confidence_sum;
  }

  // Ack (nack == null) or nack; a failure only logs: the lease runs out and the messages come
  // again, which the engine's idempotency absorbs.
  void Settle(const std::string& queue_name, const std::vector<std::string>& ids, const NackOptions* nack) {
    auto r = nack == nullptr ? queue.Ack(queue_name, ids) : queue.Nack(queue_name, ids, *nack);
    Status s = r.ok() ? Status::Ok() : r.status();
    if (r.ok()) {
      for (const Status& each : *r) {
        if (!each.ok()) s = each;
      }
    }
    if (!s.ok()) {
      Log(LogLevel::kWarn, nack == nullptr ? "processor: ack failed" : "processor: nack failed",
          {{"queue", queue_name}, {"messages", static_cast<int64_t>(ids.size())}, {"error", s.ToString()}});
    }
  }

  void GiveBack(const std::string& queue_name, const std::vector<QueueMessage>& messages, const Status& why) {
    Log(LogLevel::kWarn, "processor: batch given back for a retry",
        {{"queue", queue_name}, {"messages", static_cast<int64_t>(messages.size())}, {"error", why.ToString()}});
    std::vector<std::string> ids;
    ids.reserve(messages.size());
    for (const QueueMessage& m : messages) ids.push_back(m.id);
    NackOptions later;
    later.delay = std::chrono::seconds(1);
    Settle(queue_name, ids, &later);
    {
      MutexLock lock(&mu);
      stats.retried += messages.size();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
};

StatusOr<std::unique_ptr<Processor>> Processor::Start(Engine& engine, Queue& queue,
                                                      const ProcessorOptions& options) {
  if (options.threads < 1 || options.threads > 256) {
    return InvalidArgument("processor threads must be 1 to 256");
  }
  if (options.batch < 1) return InvalidArgument("processor batch must be at least 1");
  if (options.input_queues.empty()) return InvalidArgument("the processor needs an input queue");
  for (const std::string& q : options.input_queues) VIGIL_RETURN_IF_ERROR(ValidateQueueName(q));
  VIGIL_RETURN_IF_ERROR(ValidateQueueName(options.output_queue));
  if (std::find(options.input_queues.begin(), options.input_queues.end(), options.output_queue) !=
      options.input_queues.end()) {
    return InvalidArgument("the output queue '" + options.output_queue + "' cannot also be an input");
  }
  auto shared = std::make_shared<Shared>(engine, queue, options);
  std::vector<std::thread> workers;
  workers.reserve(static_cast<size_t>(options.threads));
  shared->running = options.threads;
  for (int i = 0; i < options.threads; ++i) {
    workers.emplace_back([shared, i] {
      shared->Worker(i);
      --shared->running;
    });
  }
  Log(LogLevel::kInfo, "processor started",
      {{"threads", options.threads},
       {"batch", static_cast<int64_t>(options.batch)},
       {"output", options.output_queue}});
  return std::unique_ptr<Processor>(new Processor(std::move(shared), std::move(workers)));
}

Processor::Processor(std::shared_ptr<Shared> shared, std::vector<std::thread> workers)
    : shared_(std::move(shared)), workers_(std::move(workers)) {}

Processor::~Processor() { Stop(); }

void Processor::Stop() {
  shared_->stopping = true;
  Wait();
}

void Processor::Wait() {
  // Stop and Wait may be called from two threads at once (a signal's and the one waiting for
  // the end): one joins, the other waits for it.
  std::lock_guard lock(join_mu_);
  for (std::thread& t : workers_) {
    if (t.joinable()) t.join();
  }
}

ProcessorStats Processor::stats() const {
  MutexLock lock(&shared_->mu);
  return shared_->stats;
}

}  // namespace vigil
