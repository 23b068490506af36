// The server is three objects:
// - ServerCore: the io_context, the acceptor (on its own strand) and the registry of live
//   connections. Shared: every Connection holds a reference, so the io_context outlives any
//   connection that a late `respond` keeps alive after the server object is gone.
// - Connection: one socket and its strand (and, with TLS, the TLS stream over it); reads a
//   request, hands it to the handler, writes the response, then reads the next one. Its state is touched only on its strand, except
//   pending_seq_/pending_self_, which pass to whichever thread calls `respond`.
// - HttpServer: the public face; owns the I/O threads and runs Stop().
//
// Shutdown is by running out of work, never io_context::stop(): once every socket is closed and the
// work guard is dropped, the queued handlers complete and release their connections, and run()
// returns; nothing is left in the queue to form a cycle (handler -> connection -> core -> queue).
#include "serve/http_server.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/basic_stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <cassert>
#include <cstdint>
#include <exception>
#include <future>
#include <list>
#include <optional>

#include "core/error_json.h"
#include "core/log.h"

namespace vigil {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace net = boost::asio;
using tcp = boost::asio::ip::tcp;

namespace {

using Clock = std::chrono::steady_clock;
using Strand = net::strand<net::io_context::executor_type>;
// A connection's socket and stream name their strand's type: the default, type-erased
// any_io_executor holds a strand (too large for its inline buffer) on the heap, and every
// asynchronous operation copies it several times (measured: about a third of the server's
// allocations per request).
using Socket = net::basic_stream_socket<tcp, Strand>;
using Stream = beast::basic_stream<tcp, Strand>;
// TLS over the connection's Stream (a reference: the timeouts and close stay the Stream's).
using TlsStream = beast::ssl_stream<Stream&>;

constexpr size_t kMaxHeaderBytes = 16 * 1024;
constexpr size_t kReadChunk = 16 * 1024;
// After a response that closes the connection: how long to keep reading (and discarding) what the
// client still sends, so that closing with unread data does not reset the connection before the
// client has read the response (a 413 sent while the body is still arriving, pipelined requests).
constexpr auto kMaxLinger = std::chrono::seconds(1);
// After a failed accept (e.g. EMFILE): wait before the next, rather than spin.
constexpr auto kAcceptRetry = std::chrono::milliseconds(50);
// Connections accepted in one turn of the accept handler, beyond the one that woke it.
constexpr int kMaxAcceptsPerTurn = 64;

HttpResponse ErrorResponse(int status, std::string_view code, std::string_view message) {
  HttpResponse r;
  r.status = status;
  r.body = ErrorJson(code, message);
  return r;
}

std::string ToString(beast::string_view s) { return std::string(s.data(), s.size()); }
std::string_view View(beast::string_view s) { return {s.data(), s.size()}; }

bool IsOws(char c) { return c == ' ' || c == '\t'; }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    const char x = (a[i] >= 'A' && a[i] <= 'Z') ? static_cast<char>(a[i] - 'A' + 'a') : a[i];
    if (x != b[i]) return false;
  }
  return true;
}

// What a request's Transfer-Encoding fields say, all of them taken as one list (RFC 9110 §5.3).
struct TransferCodings {
  int count = 0;  // non-empty list elements
  bool last_chunked = false;
};

void AddTransferCodings(std::string_view value, TransferCodings* codings) {
  while (!value.empty()) {
    const size_t comma = value.find(',');
    std::string_view element = value.substr(0, comma);
    value = comma == std::string_view::npos ? std::string_view() : value.substr(comma + 1);
    while (!element.empty() && IsOws(element.front())) element.remove_prefix(1);
    while (!element.empty() && IsOws(element.back())) element.remove_suffix(1);
    if (element.empty()) continue;  // empty list elements do not count (RFC 9110 §5.6.1)
    ++codings->count;
    codings->last_chunked = EqualsIgnoreCase(element, "chunked");
  }
}

// Why a request whose header is complete must not be served, or "" when it may be. These are the
// requests whose framing a proxy in front could read differently from us (request smuggling), and
// those without the one Host that HTTP/1.1 requires. `parser_chunked`: Beast frames the body as
// chunked. One pass over the fields, no allocation.
std::string_view HeaderProblem(const http::request_header<>& header, bool parser_chunked) {
  int hosts = 0;
  bool has_transfer_encoding = false;
  bool has_content_length = false;
  TransferCodings codings;
  for (const auto& field : header) {
    switch (field.name()) {
      case http::field::host:
        ++hosts;
        break;
      case http::field::transfer_encoding:
        has_transfer_encoding = true;
        AddTransferCodings(View(field.value()), &codings);
        break;
      case http::field::content_length:
        has_content_length = true;
        break;
      default:
        break;
    }
  }
  if (hosts > 1) return "more than one Host header";
  if (hosts == 0 && header.version() >= 11) return "HTTP/1.1 request without a Host header";
  if (!has_transfer_encoding) return {};
  // RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 means faulty framing; with Content-Length, it
  // is a smuggling attempt or a broken intermediary.
  if (header.version() < 11) return "Transfer-Encoding in an HTTP/1.0 request";
  if (has_content_length) return "a request may not have both Transfer-Encoding and Content-Length";
  // RFC 9112 §6.3: unless chunked is the final coding, the body length cannot be determined.
  // Beast's view is checked too, so that we never serve a body it frames another way.
  if (!codings.last_chunked || !parser_chunked) return "Transfer-Encoding must end in chunked";
  // Chunked is the one coding the server decodes: the handler would get gzip, say, still encoded.
  if (codings.count > 1) return "transfer codings other than a single chunked are not supported";
  return {};
}

bool HasNoBody(int status) {
  return (status >= 100 && status < 200) || status == 204 || status == 304;
}

// The server's TLS context: TLS 1.2 and 1.3 only (Mozilla's "intermediate" profile), in TLS 1.2
// forward-secret AEAD suites only, no renegotiation, no compression. InvalidArgument naming the
// file and why when the certificate or key does not load or they do not match. With `warn`, logs
// a warning when others than its owner may read the key.
StatusOr<std::unique_ptr<net::ssl::context>> LoadTls(const std::string& cert_file,
                                                     const std::string& key_file, bool warn) {
  if (cert_file.empty() != key_file.empty()) {
    return InvalidArgument("http server: TLS needs both a certificate and its private key");
  }
  auto ctx = std::make_unique<net::ssl::context>(net::ssl::context::tls_server);
  ctx->set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                   net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 |
                   net::ssl::context::no_tlsv1_1 | net::ssl::context::no_compression);
  SSL_CTX* native = ctx->native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_cipher_list(native,
                          "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                          "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                          "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305");
  // An encrypted key would make OpenSSL prompt on the terminal: refuse it instead.
  ctx->set_password_callback([](size_t, net::ssl::context::password_purpose) { return ""; });
  auto why = [](const beast::error_code& ec) {
    const unsigned long e = ERR_get_error();  // NOLINT(google-runtime-int): OpenSSL's type
    ERR_clear_error();
    return e != 0 ? std::string(ERR_reason_error_string(e) ? ERR_reason_error_string(e) : "")
                  : ec.message();
  };
  beast::error_code ec;
  ERR_clear_error();
  ctx->use_certificate_chain_file(cert_file, ec);
  if (ec) {
    return InvalidArgument("cannot load the TLS certificate " + cert_file +
                           " (a PEM certificate chain, the server's first): " + why(ec));
  }
  ctx->use_private_key_file(key_file, net::ssl::context::pem, ec);
  // Asio's SSL errors are OpenSSL's packed error codes.
  const auto code = static_cast<unsigned long>(ec.value());  // NOLINT(google-runtime-int)
  if (ec && ec.category() == net::error::get_ssl_category() && ERR_GET_LIB(code) == ERR_LIB_X509 &&
      ERR_GET_REASON(code) == X509_R_KEY_VALUES_MISMATCH) {
    ERR_clear_error();
    return InvalidArgument("the TLS private key " + key_file +
                           " does not belong to the certificate " + cert_file);
  }
  if (ec) {
    return InvalidArgument("cannot load the TLS private key " + key_file +
                           " (an unencrypted PEM key): " + why(ec));
  }
  if (SSL_CTX_check_private_key(native) != 1) {
    ERR_clear_error();
    return InvalidArgument("the TLS private key " + key_file +
                           " does not belong to the certificate " + cert_file);
  }
  struct stat st {};
  if (warn && ::stat(key_file.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
    Log(LogLevel::kWarn, "tls: the private key can be read by others than its owner",
        {{"file", key_file}, {"fix", "chmod 600"}});
  }
  return ctx;
}

}  // namespace

std::string_view HttpRequest::Header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) return value;
  }
  return {};
}

namespace http_internal {

class Connection;

class ServerCore : public std::enable_shared_from_this<ServerCore> {
 public:
  ServerCore(const HttpServerOptions& options, HttpHandler handler, int threads)
      : options(options),
        handler(std::move(handler)),
        ioc(threads),
        work(net::make_work_guard(ioc)),
        accept_strand(net::make_strand(ioc)),
        acceptor(accept_strand),
        accept_retry(accept_strand) {}

  Status Listen(const tcp::endpoint& endpoint);
  int LocalPort() const {
    beast::error_code ec;
    return acceptor.local_endpoint(ec).port();
  }
  // Starts the accept loop. Called once, before the I/O threads start.
  void Accept();
  // Closes the acceptor on its strand and returns once it is closed.
  // REQUIRES: the I/O threads are running and this is not one of them.
  void CloseAcceptor();
  // Runs the io_context on the calling thread until it runs out of work.
  void Run();

  // Adds `c` to the registry; false (and `c` is to be dropped) when stopping or full.
  bool Register(Connection* c);
  void Unregister(Connection* c);
  // Strong references to the registered connections; with `stop_accepting`, also refuses any
  // later Register; with `close_responses`, also makes late responses be dropped, not posted.
  std::vector<std::shared_ptr<Connection>> Snapshot(bool stop_accepting, bool close_responses);
  // Waits until no connection is left or `deadline` passes; true if none is left.
  bool WaitAllClosed(Clock::time_point deadline);
  // Posts `fn` to the connection's strand unless responses are closed; under the lock, so that
  // nothing is posted after the final phase of Stop has begun.
  template <typename Fn>
  bool PostIfOpen(const Strand& strand, Fn&& fn);

  const HttpServerOptions options;
  const HttpHandler handler;
  std::unique_ptr<net::ssl::context> tls;  // set before Accept(), when the server speaks TLS
  net::io_context ioc;  // declared first of the Asio objects: destroyed last
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;  // Stop() resets
  std::atomic<size_t> in_flight{0};

 private:
  void OnAccept(beast::error_code ec, Socket socket);
  void StartConnection(Socket socket);

  Strand accept_strand;
  tcp::acceptor acceptor;          // on accept_strand
  net::steady_timer accept_retry;  // on accept_strand

  std::mutex mu_;
  std::condition_variable all_closed_;
  bool accepting_ = true;               // GUARDED_BY(mu_)
  bool responses_open_ = true;          // GUARDED_BY(mu_)
  std::list<Connection*> connections_;  // GUARDED_BY(mu_)
};

// One client connection. Not thread-safe: all of it runs on strand_, except Respond().
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(std::shared_ptr<ServerCore> core, Socket&& socket)
      : core_(std::move(core)), strand_(socket.get_executor()), stream_(std::move(socket)) {
    beast::error_code ec;
    auto endpoint = stream_.socket().remote_endpoint(ec);
    if (!ec) remote_ = endpoint.address().to_string();
  }

  ~Connection() {
    if (registered_) core_->Unregister(this);
  }

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  const Strand& strand() const { return strand_; }

  void Start() {
    net::dispatch(strand_, [self = shared_from_this()] {
      if (self->core_->tls) {
        self->ReadClientHello();
      } else {
        self->StartRequest();
      }
    });
  }

  // On strand_: Stop() has begun. A connection still receiving its request (idle, or with part of
  // a header or body sent) closes now: it would otherwise hold Stop for the whole drain, and
  // nothing it sent has been acknowledged. One whose request is in the handler, or whose response
  // is being written, closes after that response.
  void BeginDrain() {
    draining_ = true;
    if (receiving_) Close();
  }

  // On strand_: Stop()'s drain is over.
  void ForceClose() {
    draining_ = true;
    Close();
  }

  // Any thread: the handler's answer to request `seq`.
  void Respond(uint64_t seq, HttpResponse&& response);

  // Registry bookkeeping, GUARDED_BY(core_->mu_).
  std::list<Connection*>::iterator registry_pos;
  bool registered_ = false;

 private:
  // TLS: the first bytes say whether the client speaks TLS; then the handshake.
  void ReadClientHello();
  void Handshake();
  void OnHandshake(beast::error_code ec, size_t used);
  void StartRequest();
  void ReadMore();
  void OnRead(beast::error_code ec, size_t n);
  void Parse();
  void SendContinue();
  bool CheckHeader();
  void OnParseError(beast::error_code ec);
  void WriteError(HttpResponse&& response);
  void Dispatch();
  void Write(HttpResponse&& response);
  void OnWrite(beast::error_code ec);
  void LingerClose();
  void Linger();
  void Close() { stream_.close(); }
  // Calls fn(stream) with the stream requests and responses go through: the TLS one once the
  // handshake has begun, else the TCP one.
  template <typename Fn>
  void WithStream(Fn&& fn) {
    if (tls_) {
      fn(*tls_);
    } else {
      fn(stream_);
    }
  }

  std::shared_ptr<ServerCore> core_;  // first: destroyed after the socket
  Strand strand_;
  Stream stream_;
  std::optional<TlsStream> tls_;  // over stream_: declared after it, destroyed before
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> res_;
  std::string remote_;
  Clock::time_point deadline_;  // of the request being received, or of the lingering close

  // What the response to the current request must do.
  unsigned version_ = 11;
  bool keep_alive_ = false;
  bool head_ = false;

  // Between the end of one response and the moment the next request is complete: the client has
  // had nothing acknowledged, so Stop() may close the connection at once.
  bool receiving_ = true;
  bool reading_idle_ = false;  // waiting for the first byte of a request
  bool draining_ = false;
  bool continue_sent_ = false;
  bool header_checked_ = false;  // CheckHeader() has run for the current request

  uint64_t last_seq_ = 0;
  // The request being handled (0: none), and the reference that keeps this connection alive while
  // the handler holds `respond`. Set on strand_ before the handler is called; taken by the thread
  // whose Respond() wins the compare-exchange on pending_seq_.
  std::atomic<uint64_t> pending_seq_{0};
  std::shared_ptr<Connection> pending_self_;
};

// --- ServerCore ---------------------------------------------------------------------------------

Status ServerCore::Listen(const tcp::endpoint& endpoint) {
  const std::string where =
      "cannot listen on " + endpoint.address().to_string() + ":" + std::to_string(endpoint.port());
  beast::error_code ec;
  acceptor.open(endpoint.protocol(), ec);
  if (ec) return Unavailable(where + ": " + ec.message());
  // Lets a restarted server bind while old connections sit in TIME_WAIT; a live listener on the
  // port still makes bind fail.
  acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec == net::error::address_in_use) {
    return Unavailable(where + ": port " + std::to_string(endpoint.port()) + " is in use");
  }
  if (ec == net::error::access_denied) {
    return PermissionDenied(where + ": permission denied (ports below 1024 need privileges)");
  }
  if (ec == boost::system::errc::address_not_available) {
    return InvalidArgument(where + ": " + endpoint.address().to_string() +
                           " is not an address of this machine");
  }
  if (ec) return Unavailable(where + ": " + ec.message());
  return Status::Ok();
}

void ServerCore::Accept() {
  acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, Socket socket) {
    OnAccept(ec, std::move(socket));
  });
}

void ServerCore::OnAccept(beast::error_code ec, Socket socket) {
  if (!acceptor.is_open()) return;  // closed by Stop()
  if (ec) {
    accept_retry.expires_after(kAcceptRetry);
    accept_retry.async_wait([this](beast::error_code ec) {
      if (!ec && acceptor.is_open()) Accept();
    });
    return;
  }
  StartConnection(std::move(socket));
  // Take every other connection already waiting too: under load this handler's next turn comes
  // only after every queued request handler has run, so accepting one connection per turn would
  // leave a burst of new clients waiting (seconds, with hundreds connecting at once).
  acceptor.non_blocking(true, ec);
  for (int i = 0; !ec && i < kMaxAcceptsPerTurn; ++i) {
    Socket next(net::make_strand(ioc));
    acceptor.accept(next, ec);
    if (!ec) StartConnection(std::move(next));
  }
  Accept();
}

void ServerCore::StartConnection(Socket socket) {
  beast::error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);
  auto connection = std::make_shared<Connection>(shared_from_this(), std::move(socket));
  if (Register(connection.get())) connection->Start();
  // Otherwise `connection` dies here and closes its socket.
}

void ServerCore::CloseAcceptor() {
  std::promise<void> closed;
  net::post(accept_strand, [this, &closed] {
    beast::error_code ignored;
    acceptor.close(ignored);
    accept_retry.cancel();
    closed.set_value();
  });
  closed.get_future().wait();
}

void ServerCore::Run() {
  for (;;) {
    try {
      ioc.run();
      return;
    } catch (const std::exception& e) {
      // Handlers catch what they expect; reaching here is a bug, but one connection's bug must not
      // take the server down. run() may be called again without restart().
      Log(LogLevel::kError, "http: unexpected exception on an I/O thread", {{"error", e.what()}});
    }
  }
}

bool ServerCore::Register(Connection* c) {
  std::lock_guard lock(mu_);
  if (!accepting_ || connections_.size() >= options.max_connections) return false;
  c->registry_pos = connections_.insert(connections_.end(), c);
  c->registered_ = true;
  return true;
}

void ServerCore::Unregister(Connection* c) {
  std::lock_guard lock(mu_);
  connections_.erase(c->registry_pos);
  if (connections_.empty()) all_closed_.notify_all();
}

std::vector<std::shared_ptr<Connection>> ServerCore::Snapshot(bool stop_accepting,
                                                              bool close_responses) {
  std::vector<std::shared_ptr<Connection>> live;
  std::lock_guard lock(mu_);
  if (stop_accepting) accepting_ = false;
  if (close_responses) responses_open_ = false;
  live.reserve(connections_.size());
  for (Connection* c : connections_) {
    // Empty when `c` is being destroyed and waits for mu_ in Unregister.
    if (auto sp = c->weak_from_this().lock()) live.push_back(std::move(sp));
  }
  return live;  // the caller drops these references outside mu_
}

bool ServerCore::WaitAllClosed(Clock::time_point deadline) {
  std::unique_lock lock(mu_);
  return all_closed_.wait_until(lock, deadline, [this] { return connections_.empty(); });
}

template <typename Fn>
bool ServerCore::PostIfOpen(const Strand& strand, Fn&& fn) {
  std::lock_guard lock(mu_);
  if (!responses_open_) return false;
  net::post(strand, std::forward<Fn>(fn));
  return true;
}

// --- Connection: reading ------------------------------------------------------------------------

void Connection::ReadClientHello() {
  deadline_ = Clock::now() + std::chrono::milliseconds(core_->options.header_timeout_ms);
  stream_.expires_at(deadline_);
  stream_.async_read_some(
      buffer_.prepare(kReadChunk), [self = shared_from_this()](beast::error_code ec, size_t n) {
        if (ec) {
          self->Close();
          return;
        }
        self->buffer_.commit(n);
        // A TLS connection starts with a handshake record (content type 22); anything else is most
        // likely plain HTTP sent to the HTTPS port: say so, in plain HTTP, and close.
        const auto* first = static_cast<const unsigned char*>(self->buffer_.data().data());
        if (first[0] != 0x16) {
          self->parser_.emplace();
          self->WriteError(ErrorResponse(400, "invalid_argument",
                                         "this port speaks HTTPS: send the request with https://"));
          return;
        }
        self->Handshake();
      });
}

void Connection::Handshake() {
  tls_.emplace(stream_, *core_->tls);
  stream_.expires_at(deadline_);
  tls_->async_handshake(net::ssl::stream_base::server, buffer_.data(),
                        [self = shared_from_this()](beast::error_code ec, size_t used) {
                          self->OnHandshake(ec, used);
                        });
}

void Connection::OnHandshake(beast::error_code ec, size_t used) {
  if (ec) {
    // Scanners and clients that distrust the certificate end here every day: not a warning.
    Log(LogLevel::kDebug, "tls: handshake failed", {{"error", ec.message()}, {"remote", remote_}});
    Close();
    return;
  }
  buffer_.consume(used);
  // A client sends nothing between its hello and the server's answer: whatever else was read
  // with the hello is not ours to parse.
  if (buffer_.size() > 0) {
    Close();
    return;
  }
  StartRequest();
}

void Connection::StartRequest() {
  parser_.emplace();
  parser_->header_limit(kMaxHeaderBytes);
  parser_->body_limit(core_->options.max_body_bytes);
  parser_->eager(true);  // parse the body in the same put() as the header when it is there
  continue_sent_ = false;
  header_checked_ = false;
  receiving_ = true;
  if (buffer_.size() == 0) {
    ReadMore();
    return;
  }
  // A pipelined request already (partly) in the buffer.
  deadline_ = Clock::now() + std::chrono::milliseconds(core_->options.header_timeout_ms);
  Parse();
}

void Connection::ReadMore() {
  if (draining_) {
    Close();
    return;
  }
  reading_idle_ = !parser_->got_some();
  if (reading_idle_) {
    stream_.expires_after(std::chrono::milliseconds(core_->options.idle_timeout_ms));
  } else {
    stream_.expires_at(deadline_);
  }
  WithStream([this](auto& stream) {
    stream.async_read_some(
        buffer_.prepare(kReadChunk),
        [self = shared_from_this()](beast::error_code ec, size_t n) { self->OnRead(ec, n); });
  });
}

void Connection::OnRead(beast::error_code ec, size_t n) {
  if (ec) {
    // EOF between requests is the client's normal goodbye; EOF inside one, a timeout, a reset or
    // our own Close() all end the connection without a response.
    Close();
    return;
  }
  buffer_.commit(n);
  if (reading_idle_) {
    reading_idle_ = false;
    deadline_ = Clock::now() + std::chrono::milliseconds(core_->options.header_timeout_ms);
  }
  Parse();
}

void Connection::Parse() {
  beast::error_code ec;
  while (!parser_->is_done()) {
    if (buffer_.size() > 0) {
      const size_t used = parser_->put(buffer_.data(), ec);
      buffer_.consume(used);
      if (ec && ec != http::error::need_more) {
        OnParseError(ec);
        return;
      }
      // Before anything else is done for the request: no 100 Continue, no handler.
      if (!header_checked_ && parser_->is_header_done() && !CheckHeader()) return;
      if (!ec && used > 0) continue;
      ec = {};
    }
    // Need more bytes.
    if (parser_->is_header_done() && !continue_sent_) {
      const auto& header = parser_->get();
      auto expect = header[http::field::expect];
      if (header.version() >= 11 && beast::iequals(expect, "100-continue")) {
        SendContinue();
        return;
      }
    }
    ReadMore();
    return;
  }
  Dispatch();
}

void Connection::SendContinue() {
  static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
  continue_sent_ = true;
  stream_.expires_at(deadline_);
  WithStream([this](auto& stream) {
    net::async_write(stream, net::buffer(kContinue.data(), kContinue.size()),
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       if (ec) {
                         self->Close();
                         return;
                       }
                       self->ReadMore();
                     });
  });
}

bool Connection::CheckHeader() {
  header_checked_ = true;
  const std::string_view problem = HeaderProblem(parser_->get(), parser_->chunked());
  if (problem.empty()) return true;
  Log(LogLevel::kWarn, "http: request refused", {{"reason", problem}, {"remote", remote_}});
  WriteError(ErrorResponse(400, "invalid_argument", problem));
  return false;
}

void Connection::OnParseError(beast::error_code ec) {
  if (ec == http::error::body_limit) {
    WriteError(ErrorResponse(413, "payload_too_large",
                             "request body exceeds the limit of " +
                                 std::to_string(core_->options.max_body_bytes) + " bytes"));
  } else if (ec == http::error::header_limit) {
    WriteError(ErrorResponse(
        431, "header_too_large",
        "request header exceeds the limit of " + std::to_string(kMaxHeaderBytes) + " bytes"));
  } else {
    // Beast's words ("bad version", ...) describe its parser, not the client's mistake: they go to
    // the log and the client gets ours.
    Log(LogLevel::kWarn, "http: malformed request", {{"error", ec.message()}, {"remote", remote_}});
    std::string_view message = "malformed HTTP request";
    if (ec == http::error::bad_content_length) {
      message = "invalid Content-Length, or one with Transfer-Encoding";
    } else if (ec == http::error::bad_transfer_encoding) {
      message = "invalid Transfer-Encoding, or one with Content-Length";
    }
    WriteError(ErrorResponse(400, "invalid_argument", message));
  }
}

void Connection::WriteError(HttpResponse&& response) {
  receiving_ = false;  // answered; Stop() lets the answer go out
  version_ = 11;
  keep_alive_ = false;  // the rest of the stream cannot be trusted to frame requests
  // verb::unknown until the request line has been parsed. A client that sent HEAD reads no body
  // whatever the status, so sending one would put it out of step.
  head_ = parser_->get().method() == http::verb::head;
  Write(std::move(response));
}

// --- Connection: the handler --------------------------------------------------------------------

void Connection::Dispatch() {
  auto& msg = parser_->get();
  version_ = msg.version();
  keep_alive_ = msg.keep_alive();
  head_ = msg.method() == http::verb::head;

  receiving_ = false;

  HttpRequest request;
  request.method = ToString(msg.method_string());
  const beast::string_view target = msg.target();
  const size_t q = target.find('?');
  if (q == beast::string_view::npos) {
    request.path = ToString(target);
  } else {
    request.path = ToString(target.substr(0, q));
    request.query = ToString(target.substr(q + 1));
  }
  request.headers.reserve(static_cast<size_t>(std::distance(msg.begin(), msg.end())));
  for (const auto& field : msg) {
    std::string name = ToString(field.name_string());
    for (char& c : name) {
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    request.headers.emplace_back(std::move(name), ToString(field.value()));
  }
  request.body = std::move(msg.body());
  request.remote = remote_;

  const uint64_t seq = ++last_seq_;
  pending_self_ = shared_from_this();
  core_->in_flight.fetch_add(1, std::memory_order_relaxed);
  pending_seq_.store(seq, std::memory_order_release);
  // Captures are a raw pointer and an integer: trivially copyable and 16 bytes, so std::function
  // stores them inline without allocating. pending_self_ keeps `this` alive until Respond().
  std::function<void(HttpResponse &&)> respond = [conn = this, seq](HttpResponse&& response) {
    conn->Respond(seq, std::move(response));
  };
  // The exception's text may quote anything (paths, queries, a library's internals): the log gets
  // it, the client a fixed message. `msg` still holds the request line: the parser is reset only
  // when the next request starts, which cannot happen while this runs on the strand.
  try {
    core_->handler(std::move(request), std::move(respond));
  } catch (const std::exception& e) {
    Log(LogLevel::kError, "http: handler threw",
        {{"error", e.what()},
         {"method", View(msg.method_string())},
         {"target", View(msg.target())},
         {"remote", remote_}});
    Respond(seq, ErrorResponse(500, "internal", "internal error"));
  } catch (...) {
    Log(LogLevel::kError, "http: handler threw",
        {{"error", "an exception not derived from std::exception"},
         {"method", View(msg.method_string())},
         {"target", View(msg.target())},
         {"remote", remote_}});
    Respond(seq, ErrorResponse(500, "internal", "internal error"));
  }
}

void Connection::Respond(uint64_t seq, HttpResponse&& response) {
  uint64_t expected = seq;
  if (!pending_seq_.compare_exchange_strong(expected, 0, std::memory_order_acq_rel)) return;
  core_->in_flight.fetch_sub(1, std::memory_order_relaxed);
  std::shared_ptr<Connection> self = std::move(pending_self_);
  if (strand_.running_in_this_thread()) {
    // The handler answered before returning: no need to go through the queue.
    Write(std::move(response));
    return;
  }
  core_->PostIfOpen(strand_, [self, response = std::move(response)]() mutable {
    self->Write(std::move(response));
  });
  // When Stop() is over, the response is dropped and `self` may be the last reference: the
  // connection is destroyed here, on the caller's thread, with the io_context still alive.
}

// --- Connection: writing ------------------------------------------------------------------------

void Connection::Write(HttpResponse&& response) {
  int status = response.status;
  if (status < 100 || status > 599) status = 500;
  res_.result(static_cast<unsigned>(status));
  res_.version(version_);
  for (const auto& [name, value] : response.headers) res_.insert(name, value);
  res_.set(http::field::server, "vigil");
  if (!response.content_type.empty()) res_.set(http::field::content_type, response.content_type);
  res_.keep_alive(keep_alive_ && !draining_);
  if (HasNoBody(status)) {
    res_.content_length(boost::none);
  } else if (head_) {
    res_.content_length(response.body.size());  // what a GET would send, without the bytes
  } else {
    res_.body() = std::move(response.body);
    res_.prepare_payload();
  }
  stream_.expires_after(std::chrono::milliseconds(core_->options.header_timeout_ms));
  WithStream([this](auto& stream) {
    http::async_write(stream, res_, [self = shared_from_this()](beast::error_code ec, size_t) {
      self->OnWrite(ec);
    });
  });
}

void Connection::OnWrite(beast::error_code ec) {
  if (ec) {
    Close();
    return;
  }
  // Stop() may have begun while this response was written, too late for its `Connection: close`:
  // close anyway, without reading a pipelined request that nobody would answer within the drain.
  const bool keep_alive = res_.keep_alive() && !draining_;
  res_ = {};  // frees the body now rather than at the next response
  if (!keep_alive) {
    LingerClose();
    return;
  }
  StartRequest();
}

void Connection::LingerClose() {
  deadline_ =
      Clock::now() + std::min<Clock::duration>(
                         kMaxLinger, std::chrono::milliseconds(core_->options.header_timeout_ms));
  if (tls_) {
    // close_notify, then the client's (or its EOF, or the deadline): TLS's own orderly close.
    stream_.expires_at(deadline_);
    tls_->async_shutdown([self = shared_from_this()](beast::error_code) { self->Close(); });
    return;
  }
  beast::error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  if (ec) {
    Close();
    return;
  }
  buffer_.clear();
  Linger();
}

void Connection::Linger() {
  stream_.expires_at(deadline_);
  stream_.async_read_some(buffer_.prepare(kReadChunk),
                          [self = shared_from_this()](beast::error_code ec, size_t) {
                            if (ec) {
                              self->Close();  // EOF: the client has read the response and left
                              return;
                            }
                            self->Linger();  // discard what was read
                          });
}

}  // namespace http_internal

// --- HttpServer ---------------------------------------------------------------------------------

HttpServer::HttpServer(Key, std::shared_ptr<http_internal::ServerCore> core, int port)
    : core_(std::move(core)), port_(port) {}

Status HttpServer::CheckOptions(const HttpServerOptions& options) {
  if (options.port < 0 || options.port > 65535) {
    return InvalidArgument("http server: port " + std::to_string(options.port) +
                           " is not in 0..65535");
  }
  if (options.threads < 0) return InvalidArgument("http server: threads must be >= 0");
  if (options.header_timeout_ms <= 0 || options.idle_timeout_ms <= 0) {
    return InvalidArgument("http server: header_timeout_ms and idle_timeout_ms must be > 0");
  }
  if (options.max_connections == 0) {
    return InvalidArgument("http server: max_connections must be > 0");
  }
  beast::error_code ec;
  (void)net::ip::make_address(options.address, ec);
  if (ec) {
    return InvalidArgument("http server: '" + options.address + "' is not an IP address");
  }
  if (!options.tls_cert_file.empty() || !options.tls_key_file.empty()) {
    VIGIL_RETURN_IF_ERROR(
        LoadTls(options.tls_cert_file, options.tls_key_file, /*warn=*/false).status());
  }
  return Status::Ok();
}

StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpServerOptions& options,
                                                        HttpHandler handler) {
  if (!handler) return InvalidArgument("http server: no handler");
  VIGIL_RETURN_IF_ERROR(CheckOptions(options));
  const net::ip::address address = net::ip::make_address(options.address);
  int threads = options.threads;
  if (threads == 0) threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));

  auto core = std::make_shared<http_internal::ServerCore>(options, std::move(handler), threads);
  if (!options.tls_cert_file.empty() || !options.tls_key_file.empty()) {
    VIGIL_ASSIGN_OR_RETURN(core->tls,
                           LoadTls(options.tls_cert_file, options.tls_key_file, /*warn=*/true));
  }
  VIGIL_RETURN_IF_ERROR(
      core->Listen(tcp::endpoint(address, static_cast<unsigned short>(options.port))));
  const int port = core->LocalPort();
  core->Accept();
  auto server = std::make_unique<HttpServer>(Key(), core, port);
  server->threads_.reserve(threads);
  for (int i = 0; i < threads; ++i) {
    server->threads_.emplace_back([raw = core.get()] { raw->Run(); });
  }
  return server;
}

HttpServer::~HttpServer() { Stop(); }  // NOLINT(bugprone-exception-escape): see the header

void HttpServer::Stop(std::chrono::milliseconds drain) {
  std::lock_guard stop_lock(stop_mu_);
  {
    std::lock_guard lock(state_mu_);
    if (stopped_) return;
  }
  http_internal::ServerCore& core = *core_;
  assert(!core.ioc.get_executor().running_in_this_thread() &&
         "HttpServer::Stop called from an I/O thread");
  const Clock::time_point deadline = Clock::now() + drain;

  // 1. Refuse new connections.
  core.CloseAcceptor();
  // 2. Close the idle ones; the busy ones close after their response.
  for (auto& c : core.Snapshot(/*stop_accepting=*/true, /*close_responses=*/false)) {
    net::post(c->strand(), [c] { c->BeginDrain(); });
  }
  // 3. Drain.
  if (!core.WaitAllClosed(deadline)) {
    // 4. Close the rest; from now on late responses are dropped.
    for (auto& c : core.Snapshot(/*stop_accepting=*/true, /*close_responses=*/true)) {
      net::post(c->strand(), [c] { c->ForceClose(); });
    }
  } else {
    (void)core.Snapshot(/*stop_accepting=*/true, /*close_responses=*/true);
  }
  // 5. With every socket closed and the guard gone, run() returns once the queue is empty.
  core.work.reset();
  for (std::thread& t : threads_) t.join();
  threads_.clear();

  std::lock_guard lock(state_mu_);
  stopped_ = true;
  stopped_cv_.notify_all();
}

void HttpServer::Wait() {
  std::unique_lock lock(state_mu_);
  stopped_cv_.wait(lock, [this] { return stopped_; });
}

void HttpServer::Post(std::function<void()> fn) { net::post(core_->ioc, std::move(fn)); }

size_t HttpServer::in_flight() const { return core_->in_flight.load(std::memory_order_relaxed); }


}  // namespace vigil
