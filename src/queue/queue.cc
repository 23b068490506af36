#include "vigil/queue.h"

#include <optional>

#include "core/mutex.h"
#include "queue/embedded_queue.h"
#include "queue/nats_queue.h"

namespace vigil {

StatusOr<std::unique_ptr<Queue>> Queue::Open(const QueueOptions& options) {
  if (options.url.empty() || options.url == "embedded") return OpenEmbeddedQueue(options);
  if (options.url.starts_with("nats://")) return OpenNatsQueue(options);
  return InvalidArgument("queue '" + options.url +
                         "' is not a queue this build knows: use 'embedded' or nats://host:port");
}

StatusOr<std::vector<std::string>> Queue::PushAndWait(std::string_view queue,
                                                      std::span<const PushItem> items) {
  Mutex mu;
  CondVar cv;
  std::optional<StatusOr<std::vector<std::string>>> result;
  Push(queue, items, [&](StatusOr<std::vector<std::string>> r) {
    MutexLock lock(&mu);
    result = std::move(r);
    cv.SignalAll();
  });
  MutexLock lock(&mu);
  while (!result) cv.Wait(&mu);
  return std::move(*result);
}

}  // namespace vigil
