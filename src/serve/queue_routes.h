// The queue service's routes on `vigil serve`: the reference queue service's contract
// (POST /api/queues/{name}/push and .../pull) and what a production queue needs beside it
// (leases, ack / nack, dead letters, batches, stats). docs/queues.md documents every route.
#ifndef VIGIL_SERVE_QUEUE_ROUTES_H_
#define VIGIL_SERVE_QUEUE_ROUTES_H_

#include <cstddef>
#include <string>

#include "vigil/queue.h"

namespace vigil {

class Router;
class WorkerPool;

// Renders one message as the pull replies do: {"id", "queue", "content" (its JSON as pushed),
// "message_type", "attempt", "enqueued_at", and "lease_expires_at" or "last_error" when set}.
std::string RenderQueueMessage(std::string_view queue, const QueueMessage& m);

// Adds the queue routes to `router`, serving `queue`. `max_message_bytes` is the largest
// content a push takes (413 above); `max_batch` the messages per push or pull. With a `pool`,
// the queue is called from its threads rather than from the I/O thread (for a backend whose
// calls wait on a server: Queue::calls_wait_on_network). The pool must stop before the queue.
void AddQueueRoutes(Router& router, Queue& queue, size_t max_message_bytes, size_t max_batch,
                    WorkerPool* pool = nullptr);

}  // namespace vigil

#endif  // VIGIL_SERVE_QUEUE_ROUTES_H_
