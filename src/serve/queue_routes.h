// The queue service's routes on `vigil serve`: the reference queue service's contract
// (POST /api/queues/{name}/push and .../pull) and what a production queue needs beside it
// (leases, ack / nack, dead letters, batches, stats). docs/queues.md documents every route.
#ifndef VIGIL_SERVE_QUEUE_ROUTES_H_
#define VIGIL_SERVE_QUEUE_ROUTES_H_

#include <atomic>
#include <chrono>
#include <cstddef>
#include <string>

#include "vigil/queue.h"

namespace vigil {

class Router;
class WorkerPool;

// Renders one message as the pull replies do: {"id", "queue", "content" (its JSON as pushed),
// "message_type", "attempt", "enqueued_at", and "lease_expires_at" or "last_error" when set}.
std::string RenderQueueMessage(std::string_view queue, const QueueMessage& m);

struct QueueRouteOptions {
  size_t max_message_bytes = 1 << 20;  // the largest content a push takes (413 above)
  size_t max_batch = 1000;             // messages per push or pull
  // The longest `wait_seconds` a pull may ask (QueueOptions::max_wait).
  std::chrono::milliseconds max_wait = std::chrono::seconds(20);
  // With a `pool`, the queue is called from its threads rather than from the I/O thread (for a
  // backend whose calls wait on a server: Queue::calls_wait_on_network).
  WorkerPool* pool = nullptr;
  // Pulls that may wait (`wait_seconds`) wait on the `wait_pool`'s threads, at most
  // `max_waiting` at once (the pool's size); beyond, and without a wait pool, a pull answers at
  // once. They ask the queue a slice of 250 ms at a time and stop waiting once `stopping`.
  WorkerPool* wait_pool = nullptr;
  int max_waiting = 0;
  const std::atomic<bool>* stopping = nullptr;
};

// Adds the queue routes to `router`, serving `queue`. The pools must stop before the queue.
void AddQueueRoutes(Router& router, Queue& queue, const QueueRouteOptions& options);

}  // namespace vigil

#endif  // VIGIL_SERVE_QUEUE_ROUTES_H_
