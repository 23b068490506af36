// A generic asynchronous HTTP/1.1 server on Boost.Beast, knowing nothing of Vigil's routes: the
// scoring service hands it one HttpHandler and does its own routing.
//
// What it does for every connection (DESIGN.md §6: "Beast needs our own router, timeouts and
// graceful drain"; this is the timeouts and the drain):
// - HTTP/1.1 keep-alive and HTTP/1.0 (closed after the response unless it asked for keep-alive);
//   `Connection: close` honoured; pipelined requests answered in order, because the next request
//   is parsed only once the current response is written.
// - TCP_NODELAY; every response carries `Server: vigil` and a Content-Length (except 1xx, 204 and
//   304, which have no body by definition); `Expect: 100-continue` is answered.
// - HEAD is passed to the handler as "HEAD" (the router answers it with its GET route); the
//   response carries the Content-Length of the body the handler produced, and none of its bytes.
//   The server's own error responses to a HEAD have no body either.
// - Errors the server produces itself have the JSON body of DESIGN.md §3,
//   {"error": {"code": "...", "message": "...", "details": []}}, with a message of the server's
//   own: what the parser or the handler said (Beast's error text, an exception's what()) goes to
//   the log (core/log.h), never to the client.
//   - 400 "invalid_argument", and close: malformed HTTP or a header block over 16 KiB; an HTTP/1.1
//     request without a Host header, or any request with more than one (RFC 9112 §3.2); and
//     framing that a proxy in front could read differently from us, i.e. request smuggling
//     (RFC 9112 §6.1, §6.3): Transfer-Encoding with Content-Length, Transfer-Encoding in HTTP/1.0,
//     or a Transfer-Encoding that is not exactly one `chunked` (the final coding must be chunked,
//     and chunked is the only coding decoded). The handler is not called, no 100 Continue is sent,
//     and nothing after the header is ever read as a request.
//   - 413 "payload_too_large", and close: a body over max_body_bytes (the handler is not called).
//   - 500 "internal", message "internal error": a handler that throws; the exception's text is
//     logged with the request line. The connection stays open: the request was well framed.
// - With TLS (tls_cert_file, tls_key_file): the handshake, too, must end within
//   header_timeout_ms; a connection closed by the server sends TLS's close_notify first.
// - A request not received within header_timeout_ms of its first byte, or a keep-alive connection
//   idle for idle_timeout_ms, is closed without a response.
// - Stop() closes at once every connection still receiving a request (see Stop()).
#ifndef VIGIL_SERVE_HTTP_SERVER_H_
#define VIGIL_SERVE_HTTP_SERVER_H_

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "vigil/status.h"

namespace vigil {

struct HttpRequest {
  std::string method;  // "GET", "POST", ... as sent (any token is accepted)
  std::string path;    // the request target up to '?', not percent-decoded
  std::string query;   // after '?', not percent-decoded; may be empty
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased, in order sent
  std::string remote;  // the peer's IP address, e.g. "127.0.0.1"

  // The value of the first header named `lower_name`, or "" when absent. Linear in the number of
  // headers, which is small.
  // REQUIRES: lower_name is lower-case.
  std::string_view Header(std::string_view lower_name) const;
};

struct HttpResponse {
  int status = 200;  // outside 100..599 is a handler bug and is sent as 500
  std::string content_type = "application/json";  // no Content-Type header when empty
  std::string body;
  // Extra headers, sent as given (repeats allowed). Content-Length, Connection and Server are the
  // server's: values given here for them are replaced.
  std::vector<std::pair<std::string, std::string>> headers;
};

// Called on an I/O thread for each request. The handler MUST call `respond` exactly once, from any
// thread, possibly later (e.g. after a database commit); calling it on the I/O thread before
// returning is the fast path. A handler should not block: while it runs, its I/O thread serves no
// other connection. `respond` is cheap to copy (no allocation) and keeps the connection object
// alive until it is called, so a late call (after Stop's drain closed the connection, or after the
// server is gone) is safe and its response is dropped. Calling it twice is a bug: the second call
// is ignored while the connection object lives, undefined behaviour after. A handler that never
// responds holds its connection open until Stop's drain ends, and leaks it.
using HttpHandler =
    std::function<void(HttpRequest&& request, std::function<void(HttpResponse&&)> respond)>;

struct HttpServerOptions {
  std::string address = "0.0.0.0";  // IPv4 or IPv6 literal to listen on
  int port = 8080;                  // 0: an ephemeral port, see HttpServer::port() (tests)
  int threads = 0;                  // I/O threads; 0 = one per core
  size_t max_body_bytes = 1 << 20;  // larger bodies get 413 without calling the handler
  int header_timeout_ms = 10000;    // to receive a request's header and body once its first
                                    // byte has arrived; also bounds writing one response
  int idle_timeout_ms = 60000;      // a keep-alive connection waiting for its next request
  size_t max_connections = 10000;   // connections beyond this are closed as soon as accepted
  // HTTPS when both are set: a PEM certificate chain (the server's certificate first) and its
  // unencrypted PEM private key. TLS 1.2 and 1.3 only; in TLS 1.2, forward-secret AEAD cipher
  // suites only; no renegotiation. A plain HTTP request to the port gets a 400 that says to use
  // https, then the connection closes.
  std::string tls_cert_file, tls_key_file;
};

namespace http_internal {
class ServerCore;
}  // namespace http_internal

// An HttpServer accepts connections on its own I/O threads (one io_context run by `threads`
// threads, a strand per connection) and passes each request to the handler.
// Thread-safe: every method may be called from any thread, except that Stop() and the destructor
// must not be called from an I/O thread (i.e. from inside the handler: hand it to another thread).
class HttpServer {
 public:
  // Binds, listens and starts the I/O threads. Errors: InvalidArgument for bad options or an
  // address that is not an IP literal, or a certificate or key that does not load (naming the
  // file and why); Unavailable when the port is taken ("port 8080 is in use")
  // or the address cannot be bound; PermissionDenied for a privileged port.
  static StatusOr<std::unique_ptr<HttpServer>> Start(const HttpServerOptions& options,
                                                     HttpHandler handler);
  // Start()'s checks of `options` (the certificate and key loaded too) without binding: for a
  // caller that must not change anything (create files, open stores) before a start that fails.
  static Status CheckOptions(const HttpServerOptions& options);

  // Stop() with its default drain, then joins the I/O threads.
  ~HttpServer();  // NOLINT(bugprone-exception-escape): Stop throws only on a broken std::mutex

  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // The bound port (the ephemeral one when options.port was 0).
  int port() const { return port_; }

  // Graceful stop: stops accepting (new connections are refused once this returns or, seen from
  // another thread, soon after it is called); closes at once the connections still receiving a
  // request, whether idle between requests or part-way through a header or body (nothing they
  // sent has been acknowledged, and a client that sent half a request would otherwise hold the
  // drain); lets requests already handed to the handler finish and their responses be written
  // with `Connection: close` (a response already being written goes out as it is, then the
  // connection closes), for up to `drain`; then closes whatever is left (a handler that has not
  // responded by then has its connection closed and its late response dropped) and joins the I/O
  // threads. Returns when all of that is done. Idempotent: a second call returns at once, or once
  // the first has finished.
  void Stop(std::chrono::milliseconds drain = std::chrono::seconds(10));

  // Blocks until the server has stopped (some thread's Stop() has returned).
  void Wait();

  // Requests handed to the handler and not yet responded to.
  size_t in_flight() const;

  // Runs `fn` on an I/O thread after the work already queued there (the requests already read
  // and waiting their turn): "once this burst is handled". Dropped, never run, once the server
  // has stopped.
  void Post(std::function<void()> fn);

  // Use Start(). Public only for std::make_unique; Key is private.
  struct Key {
   private:
    friend class HttpServer;
    Key() = default;
  };
  HttpServer(Key, std::shared_ptr<http_internal::ServerCore> core, int port);

 private:
  std::shared_ptr<http_internal::ServerCore> core_;
  const int port_;
  std::vector<std::thread> threads_;

  std::mutex stop_mu_;  // held for the whole of Stop(), so that concurrent calls serialize
  std::mutex state_mu_;
  std::condition_variable stopped_cv_;
  bool stopped_ = false;  // GUARDED_BY(state_mu_)
};

}  // namespace vigil

#endif  // VIGIL_SERVE_HTTP_SERVER_H_
