// Durable message queues: what the asynchronous path stands on (DESIGN.md §1). Transactions are
// pushed to TQ1 / TQ2, the processor pulls them, scores them through the engine and pushes a
// prediction record to PQ1; `vigil serve` offers the same operations over HTTP, in the reference
// queue service's contract (docs/queues.md).
//
// One interface, two backends behind Queue::Open:
//   - the embedded queue (default): one journal per queue under <data_dir>/queues (src/journal),
//     its state in memory, rebuilt from the journal at start-up;
//   - NATS JetStream (`nats://host:port`): a stream per queue and a durable pull consumer.
// Both give the same guarantees:
//   - A push whose `done` got Ok survives kill -9 of Vigil (and, with Durability::kPowerLoss on
//     the embedded queue, a power loss).
//   - Messages of one queue are delivered in push order (a message given back, by a nack or an
//     expired lease, is delivered again before those pushed after it).
//   - A pull with a lease (at-least-once): the messages stay invisible to other pulls until they
//     are acknowledged, given back (Nack), or the lease runs out; then they are delivered again,
//     with `attempt` one higher. After QueueOptions::max_attempts deliveries without an ack a
//     message goes to the queue's dead letters instead, where it can be read and requeued. While
//     a lease holds, no other pull gets its message, also across a restart of Vigil.
//   - A pull without a lease (the reference's plain pull, at-most-once): the messages are taken
//     off the queue as they are handed out and never delivered again.
//
// Queue names: 1 to 64 characters from [A-Za-z0-9_-]. Message ids: "<queue>-<sequence>",
// unique per queue for the life of its data, so they also serve as transaction ids.
#ifndef VIGIL_QUEUE_H_
#define VIGIL_QUEUE_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vigil/durability.h"
#include "vigil/status.h"

namespace vigil {

inline constexpr size_t kMaxQueueNameLength = 64;

// Ok, or InvalidArgument naming the rule: 1 to 64 characters from [A-Za-z0-9_-].
Status ValidateQueueName(std::string_view name);

// One message to push.
struct PushItem {
  std::string_view content;       // JSON text; the backend does not parse it
  std::string_view message_type;  // free text, may be empty
};

// One message as a pull, or a look at the dead letters, returns it.
struct QueueMessage {
  std::string id;            // "<queue>-<sequence>"
  std::string content;       // the JSON text pushed, byte for byte
  std::string message_type;  // as pushed
  int attempt = 0;           // this delivery's number: 1 on the first
  int64_t enqueued_us = 0;   // when the push was accepted (µs since the epoch, UTC)
  int64_t lease_expires_us = 0;  // a leased pull: when the lease runs out; 0 otherwise
  std::string last_error;    // a dead letter: why it was dead-lettered
};

struct PullOptions {
  size_t max = 1;  // at most this many messages. REQUIRES: 1 <= max <= QueueOptions::max_batch
  // 0: take the messages off the queue (never delivered again). Otherwise the lease.
  // REQUIRES: <= QueueOptions::max_lease
  std::chrono::milliseconds lease{0};
  // When the queue has nothing ready: wait up to this long for a push (long polling); 0 returns
  // at once. REQUIRES: <= QueueOptions::max_wait
  std::chrono::milliseconds wait{0};
};

struct NackOptions {
  std::chrono::milliseconds delay{0};  // delivered again no sooner than this
  bool dead_letter = false;            // straight to the dead letters (e.g. it cannot be parsed)
  std::string reason;                  // kept with a dead letter (QueueMessage::last_error)
};

// The state of one queue.
struct QueueStats {
  std::string name;
  uint64_t depth = 0;         // waiting to be delivered (ready or delayed by a nack)
  uint64_t in_flight = 0;     // leased and not yet acknowledged
  uint64_t dead_letters = 0;
  double oldest_age_seconds = 0;  // of the oldest message waiting; 0 when none waits
  // Since the process started.
  uint64_t pushed = 0, delivered = 0, acked = 0, nacked = 0, dead_lettered = 0, expired = 0;
  // Messages per second over the last minute.
  double push_rate = 0, deliver_rate = 0, ack_rate = 0;
};

struct QueueOptions {
  // Queue::Open's `url`: "" or "embedded" for the embedded queue, "nats://host:port" for NATS
  // JetStream (when built with it).
  std::string url;
  std::string data_dir = "data";  // the embedded queue's journals: <data_dir>/queues/<name>/
  Durability durability = Durability::kProcessCrash;  // what an acknowledged push survives
  // Created at open, so that pulls from them are answered even before their first push.
  std::vector<std::string> default_queues = {"TQ1", "TQ2", "PQ1"};
  int max_attempts = 5;                 // deliveries without an ack before the dead letters
  size_t max_message_bytes = 1 << 20;   // content larger than this is refused
  size_t max_batch = 1000;              // messages per push or pull
  std::chrono::milliseconds max_lease = std::chrono::hours(12);
  std::chrono::milliseconds max_wait = std::chrono::seconds(20);
  size_t max_queues = 1000;  // a push to a new name past this many queues is refused
  // Content held by the embedded queue in memory (every message not yet acknowledged); a push
  // past it is refused with ResourceExhausted until consumers catch up.
  size_t max_memory_bytes = size_t{1} << 30;
  // The clock (µs since the epoch); empty: the system clock. Tests drive leases with it.
  std::function<int64_t()> clock_us;
};

// A Queue holds named FIFO queues of JSON messages.
// Thread-safe: every method may be called from any thread.
class Queue {
 public:
  // Opens the backend named by options.url. The default queues exist once it returns.
  // InvalidArgument for a URL it does not know (or a backend this build lacks); Unavailable when
  // the backend cannot be reached or its files opened.
  static StatusOr<std::unique_ptr<Queue>> Open(const QueueOptions& options);

  virtual ~Queue() = default;
  Queue(const Queue&) = delete;
  Queue& operator=(const Queue&) = delete;

  // "embedded" or "nats".
  virtual std::string_view backend() const = 0;
  // Whether a call waits on the network (a round trip to a server) rather than only on a local
  // write: a front end that serves many callers from a few threads then calls from a pool.
  virtual bool calls_wait_on_network() const = 0;
  // Whether Push answers through `done` without holding the calling thread on the network, so
  // that a front end may call it from an I/O thread even when calls_wait_on_network() (only the
  // first push to a queue this process has not opened yet waits on the server).
  virtual bool push_is_asynchronous() const { return false; }

  using PushDone = std::function<void(StatusOr<std::vector<std::string>>)>;
  // Pushes `items` in order, creating the queue on its first push, and calls `done` once, with
  // their ids, when they are durable (QueueOptions::durability), possibly before Push returns
  // and possibly on another thread; with the failure otherwise, in which case none of them was
  // pushed. `items` need only live until Push returns. Errors: InvalidArgument (bad name, empty
  // batch, over max_batch, content over max_message_bytes), ResourceExhausted (too many queues,
  // memory full), Unavailable (the disk or the server refused).
  virtual void Push(std::string_view queue, std::span<const PushItem> items, PushDone done) = 0;
  // Push, waiting for `done`: the ids, or the failure.
  StatusOr<std::vector<std::string>> PushAndWait(std::string_view queue,
                                                 std::span<const PushItem> items);

  // Up to options.max messages, oldest first; none when the queue is empty (after waiting up
  // to options.wait). NotFound for a queue that does not exist; InvalidArgument for options out
  // of range.
  virtual StatusOr<std::vector<QueueMessage>> Pull(std::string_view queue,
                                                   const PullOptions& options) = 0;

  // Acknowledges leased messages: they are done, never delivered again. All or nothing: one
  // status per id, in order, and when any is NotFound (the id is unknown, already settled, named
  // twice, or its lease ran out, so that it may be with another consumer now) none of them is
  // acknowledged and the call changed nothing. NotFound as the whole result for a queue that
  // does not exist; InvalidArgument for no ids or more than max_batch.
  virtual StatusOr<std::vector<Status>> Ack(std::string_view queue,
                                            std::span<const std::string> ids) = 0;
  // Gives leased messages back: delivered again after options.delay, or dead-lettered (also
  // when it was their last attempt). All or nothing, as Ack.
  virtual StatusOr<std::vector<Status>> Nack(std::string_view queue,
                                             std::span<const std::string> ids,
                                             const NackOptions& options) = 0;

  // The queue's dead letters, oldest first, at most `limit`.
  virtual StatusOr<std::vector<QueueMessage>> DeadLetters(std::string_view queue,
                                                          size_t limit) = 0;
  // Puts dead letters back in their queue (in their first order, before the messages pushed
  // after them), their attempts counted from 0 again: the ones named, or all when `ids` is empty. Returns how many were requeued (ids that are not
  // dead letters are skipped).
  virtual StatusOr<size_t> Requeue(std::string_view queue, std::span<const std::string> ids) = 0;

  virtual std::vector<QueueStats> List() = 0;
  virtual StatusOr<QueueStats> Stats(std::string_view queue) = 0;

  // Wakes the pulls that wait and refuses new calls (Unavailable); waits for pushes in flight.
  // Idempotent.
  virtual void Stop() = 0;

 protected:
  Queue() = default;
};

}  // namespace vigil

#endif  // VIGIL_QUEUE_H_
