#include "vigil/queue.h"

#include "queue/embedded_queue.h"
#include "queue/nats_queue.h"

namespace vigil {

StatusOr<std::unique_ptr<Queue>> Queue::Open(const QueueOptions& options) {
  if (options.url.empty() || options.url == "embedded") return OpenEmbeddedQueue(options);
  if (options.url.starts_with("nats://")) return OpenNatsQueue(options);
  return InvalidArgument("queue '" + options.url +
                         "' is not a queue this build knows: use 'embedded' or nats://host:port");
}

}  // namespace vigil
