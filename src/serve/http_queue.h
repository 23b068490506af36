// A Queue that is a client of a queue service over HTTP: Vigil's own (`vigil serve`'s
// /api/queues), or the reference queue service for what it offers (a plain push and pull). This
// is how `vigil process --queue-url http://host:8080` reaches the queues of another process.
//
// Each call is one HTTP/1.1 request on a kept-alive connection from a small pool (a connection
// per concurrent caller). A pull with `wait` polls every 50 ms until a message comes or the
// wait ends. Errors of the service come back with its message and the Status code of its HTTP
// status (404 NotFound, 400 / 413 InvalidArgument, 429 ResourceExhausted, 503 Unavailable, ...);
// a service that cannot be reached is Unavailable.
#ifndef VIGIL_SERVE_HTTP_QUEUE_H_
#define VIGIL_SERVE_HTTP_QUEUE_H_

#include <memory>
#include <string>

#include "vigil/queue.h"
#include "vigil/status.h"

namespace vigil {

// `url` is "http://host:port" (no path); `token` is sent as "Authorization: Bearer <token>"
// when not empty. Checks the URL only: the service is reached at the first call.
StatusOr<std::unique_ptr<Queue>> OpenHttpQueue(const std::string& url, const std::string& token);

}  // namespace vigil

#endif  // VIGIL_SERVE_HTTP_QUEUE_H_
