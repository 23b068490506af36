// The NATS JetStream backend of Queue (vigil/queue.h); docs/queues-nats.md says how it maps
// the contract onto streams and consumers.
#ifndef VIGIL_QUEUE_NATS_QUEUE_H_
#define VIGIL_QUEUE_NATS_QUEUE_H_

#include <memory>

#include "vigil/queue.h"
#include "vigil/status.h"

namespace vigil {

// Connects to the NATS server at options.url ("nats://host:port", or several, comma-separated,
// of one cluster), makes sure the default queues exist, and returns the Queue over it.
// Unavailable when the server cannot be reached or has no JetStream; InvalidArgument for a URL
// that is not nats:// or when this build has no NATS support (VIGIL_HAS_NATS 0).
StatusOr<std::unique_ptr<Queue>> OpenNatsQueue(const QueueOptions& options);

}  // namespace vigil

#endif  // VIGIL_QUEUE_NATS_QUEUE_H_
