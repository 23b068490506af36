#include "serve/http_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <future>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace vigil {
namespace {

using std::chrono::milliseconds;

// --- A small blocking client on POSIX sockets ----------------------------------------------------

struct ClientResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
};

class Client {
 public:
  // Connects to 127.0.0.1:port; connected() is false (and error() the errno) on failure.
  explicit Client(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    timeval tv{3, 0};  // no test should hang on a read
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      error_ = errno;
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~Client() {
    if (fd_ >= 0) ::close(fd_);
  }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool connected() const { return fd_ >= 0; }
  int error() const { return error_; }

  bool Send(const std::string& data) {
    size_t sent = 0;
    while (sent < data.size()) {
      ssize_t n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<size_t>(n);
    }
    return true;
  }

  // Reads one response (Content-Length framed, no body after HEAD or a 1xx); status 0 when the
  // connection ended first.
  ClientResponse Read(bool no_body = false) {
    ClientResponse r;
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) return r;
    }
    const std::string head = buf_.substr(0, end);
    buf_.erase(0, end + 4);
    size_t line_end = head.find("\r\n");
    const std::string status_line = head.substr(0, line_end);
    r.status = std::stoi(status_line.substr(9, 3));
    while (line_end != std::string::npos) {
      const size_t start = line_end + 2;
      line_end = head.find("\r\n", start);
      const std::string line =
          head.substr(start, line_end == std::string::npos ? std::string::npos : line_end - start);
      const size_t colon = line.find(':');
      std::string name = line.substr(0, colon);
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      size_t v = colon + 1;
      while (v < line.size() && line[v] == ' ') ++v;
      r.headers[name] = line.substr(v);
    }
    size_t length = 0;
    if (no_body || r.status < 200) return r;
    if (auto it = r.headers.find("content-length"); it != r.headers.end()) {
      length = std::stoul(it->second);
    }
    while (buf_.size() < length) {
      if (!Fill()) {
        r.status = 0;
        return r;
      }
    }
    r.body = buf_.substr(0, length);
    buf_.erase(0, length);
    return r;
  }

  // True when the server closes the connection (EOF or reset) before the read timeout.
  bool Closed() {
    if (!buf_.empty()) return false;
    char c;
    ssize_t n = ::recv(fd_, &c, 1, 0);
    if (n == 0) return true;
    return n < 0 && errno == ECONNRESET;
  }

  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  bool Fill() {
    char chunk[4096];
    ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) return false;
    buf_.append(chunk, static_cast<size_t>(n));
    return true;
  }

  int fd_ = -1;
  int error_ = 0;
  std::string buf_;
};

std::string Get(const std::string& target, const std::string& extra_headers = "") {
  return "GET " + target + " HTTP/1.1\r\nHost: test\r\n" + extra_headers + "\r\n";
}

std::string Post(const std::string& target, const std::string& body) {
  return "POST " + target + " HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n" +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

// Answers at once with "<method> <path>?<query> remote=<remote> x=<x-test header>|<body>".
// NOLINTNEXTLINE(performance-unnecessary-value-param): the signature of an HttpHandler
void Echo(HttpRequest&& request, std::function<void(HttpResponse&&)> respond) {
  HttpResponse r;
  r.content_type = "text/plain";
  r.body = request.method + " " + request.path + "?" + request.query + " remote=" + request.remote +
           " x=" + std::string(request.Header("x-test")) + "|" + request.body;
  r.headers.emplace_back("X-Echo", "1");
  respond(std::move(r));
}

std::unique_ptr<HttpServer> StartOrDie(HttpServerOptions options, HttpHandler handler) {
  options.address = "127.0.0.1";
  options.port = 0;
  options.threads = 2;
  auto server = HttpServer::Start(options, std::move(handler));
  EXPECT_TRUE(server.ok()) << server.status().ToString();
  if (!server.ok()) return nullptr;
  return std::move(server).value();
}

// Handlers that answer from their own threads; joined before the test ends.
class Responders {
 public:
  ~Responders() { JoinAll(); }
  void Later(milliseconds delay, std::function<void(HttpResponse&&)> respond, HttpResponse r) {
    std::lock_guard lock(mu_);
    threads_.emplace_back([delay, respond = std::move(respond), r = std::move(r)]() mutable {
      std::this_thread::sleep_for(delay);
      respond(std::move(r));
    });
  }
  void JoinAll() {
    std::vector<std::thread> threads;
    {
      std::lock_guard lock(mu_);
      threads.swap(threads_);
    }
    for (auto& t : threads) t.join();
  }

 private:
  std::mutex mu_;
  std::vector<std::thread> threads_;
};

// --- Tests --------------------------------------------------------------------------------------

TEST(HttpServerTest, GetAndPostRoundTrip) {
  auto server = StartOrDie({}, Echo);
  ASSERT_NE(server, nullptr);
  Client c(server->port());
  ASSERT_TRUE(c.connected());

  ASSERT_TRUE(c.Send(Get("/v1/things?id=7&x=%20", "X-Test: hello\r\n")));
  ClientResponse r = c.Read();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "GET /v1/things?id=7&x=%20 remote=127.0.0.1 x=hello|");
  EXPECT_EQ(r.headers["server"], "vigil");
  EXPECT_EQ(r.headers["content-type"], "text/plain");
  EXPECT_EQ(r.headers["content-length"], std::to_string(r.body.size()));
  EXPECT_EQ(r.headers["x-echo"], "1");
  EXPECT_EQ(r.headers.count("connection"), 0u) << "HTTP/1.1 keeps alive by default";

  ASSERT_TRUE(c.Send(Post("/v1/score", R"({"amount": 12.5})")));
  r = c.Read();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, R"(POST /v1/score? remote=127.0.0.1 x=|{"amount": 12.5})");
  EXPECT_EQ(server->in_flight(), 0u);
}

TEST(HttpServerTest, HeaderNamesAreLowerCasedAndHeadSendsNoBody) {
  std::vector<std::pair<std::string, std::string>> seen;
  auto server = StartOrDie({}, [&](HttpRequest&& request, auto respond) {
    seen = request.headers;
    HttpResponse r;
    r.body = "0123456789";
    respond(std::move(r));
  });
  ASSERT_NE(server, nullptr);
  Client c(server->port());
  ASSERT_TRUE(c.Send("HEAD / HTTP/1.1\r\nHost: a\r\nX-MiXeD-Case: V\r\n\r\n"));
  ClientResponse r = c.Read(/*no_body=*/true);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.headers["content-length"], "10");
  EXPECT_EQ(r.body, "");
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[1].first, "x-mixed-case");
  EXPECT_EQ(seen[1].second, "V");
  // The connection is still in step: no body bytes were sent.
  ASSERT_TRUE(c.Send(Get("/")));
  r = c.Read();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "0123456789");
}

TEST(HttpServerTest, KeepAliveServesManyRequestsOnOneConnection) {
  std::atomic<int> calls{0};
  auto server = StartOrDie({}, [&](HttpRequest&& request, auto respond) {
    ++calls;
    Echo(std::move(request), std::move(respond));
  });
  ASSERT_NE(server, nullptr);
  Client c(server->port());
  for (int i = 0; i < 5; ++i) {
    const std::string body = "request " + std::to_string(i);
    ASSERT_TRUE(c.Send(Post("/n", body)));
    ClientResponse r = c.Read();
    ASSERT_EQ(r.status, 200) << i;
    EXPECT_EQ(r.body, "POST /n? remote=127.0.0.1 x=|" + body);
  }
  EXPECT_EQ(calls.load(), 5);
}

TEST(HttpServerTest, PipelinedRequestsAreAnsweredInOrder) {
  Responders responders;
  auto server = StartOrDie({}, [&](HttpRequest&& request, auto respond) {
    HttpResponse r;
    r.body = request.path;
    // The first answers last if the server let it: it responds from another thread, later.
    if (request.path == "/1") {
      responders.Later(milliseconds(50), std::move(respond), std::move(r));
    } else {
      respond(std::move(r));
    }
  });
  ASSERT_NE(server, nullptr);
  Client c(server->port());
  ASSERT_TRUE(c.Send(Get("/1") + Post("/2", "two") + Get("/3")));
  for (const char* want : {"/1", "/2", "/3"}) {
    ClientResponse r = c.Read();
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, want);
  }
}

TEST(HttpServerTest, Http10ClosesUnlessKeepAliveAsked) {
  auto server = StartOrDie({}, Echo);
  ASSERT_NE(server, nullptr);
  {
    Client c(server->port());
    ASSERT_TRUE(c.Send("GET /old HTTP/1.0\r\n\r\n"));
    ClientResponse r = c.Read();
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "GET /old? remote=127.0.0.1 x=|");
    EXPECT_EQ(r.headers["content-length"], std::to_string(r.body.size()));
    EXPECT_TRUE(c.Closed());
  }
  {
    Client c(server->port());
    ASSERT_TRUE(c.Send("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    ClientResponse r = c.Read();
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.headers["connection"], "keep-alive");
    ASSERT_TRUE(c.Send("GET /b HTTP/1.0\r\n\r\n"));
    r = c.Read();
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "GET /b? remote=127.0.0.1 x=|");
    EXPECT_TRUE(c.Closed());
  }
  {
    Client c(server->port());
    ASSERT_TRUE(c.Send(Get("/bye", "Connection: close\r\n")));
    ClientResponse r = c.Read();
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.headers["connection"], "close");
    EXPECT_TRUE(c.Closed());
  }
}

TEST(HttpServerTest, BodyOverTheLimitGets413WithoutCallingTheHandler) {
  std::atomic<int> calls{0};
  HttpServerOptions options;
  options.max_body_bytes = 1000;
  auto server = StartOrDie(options, [&](HttpRequest&& request, auto respond) {
    ++calls;
    Echo(std::move(request), std::move(respond));
  });
  ASSERT_NE(server, nullptr);
  {
    // At the limit: served.
    Client c(server->port());
    ASSERT_TRUE(c.Send(Post("/ok", std::string(1000, 'a'))));
    EXPECT_EQ(c.Read().status, 200);
  }
  EXPECT_EQ(calls.load(), 1);
  {
    // Over it, body sent in full: the 413 still reaches the client.
    Client c(server->port());
    ASSERT_TRUE(c.Send(Post("/big", std::string(200000, 'a'))));
    ClientResponse r = c.Read();
    EXPECT_EQ(r.status, 413);
    EXPECT_EQ(r.headers["content-type"], "application/json");
    EXPECT_EQ(r.headers["connection"], "close");
    EXPECT_EQ(r.body,
              R"({"error": {"code": "payload_too_large", "message": "request body exceeds the )"
              R"(limit of 1000 bytes", "details": []}})");
    EXPECT_TRUE(c.Closed());
  }
  {
    // Over it, chunked: found while reading the body.
    Client c(server->port());
    ASSERT_TRUE(
        c.Send("POST /chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
               "3e8\r\n" +
               std::string(1000, 'b') + "\r\n1\r\nc\r\n0\r\n\r\n"));
    ClientResponse r = c.Read();
    EXPECT_EQ(r.status, 413);
    EXPECT_NE(r.body.find("payload_too_large"), std::string::npos);
  }
  EXPECT_EQ(calls.load(), 1);
}

TEST(HttpServerTest, HandlerMayRespondLaterFromAnotherThread) {
  Responders responders;
  std::promise<void> called;
  std::atomic<int> calls{0};
  auto server = StartOrDie({}, [&](HttpRequest&& request, auto respond) {
    HttpResponse r;
    r.status = 201;
    r.body = R"({"late": true})";
    responders.Later(milliseconds(100), std::move(respond), std::move(r));
    if (++calls == 1) called.set_value();
  });
  ASSERT_NE(server, nullptr);
  Client c(server->port());
  ASSERT_TRUE(c.Send(Post("/slow", "{}")));
  called.get_future().wait();
  EXPECT_EQ(server->in_flight(), 1u);
  ClientResponse r = c.Read();
  EXPECT_EQ(r.status, 201);
  EXPECT_EQ(r.body, R"({"late": true})");
  EXPECT_EQ(r.headers["content-type"], "application/json");
  EXPECT_EQ(server->in_flight(), 0u);
  // The connection goes on as usual.
  ASSERT_TRUE(c.Send(Post("/slow", "{}")));
  EXPECT_EQ(c.Read().status, 201);
}

TEST(HttpServerTest, MalformedRequestsGet400) {
  std::atomic<int> calls{0};
  auto server = StartOrDie({}, [&](HttpRequest&& request, auto respond) {
    ++calls;
    Echo(std::move(request), std::move(respond));
  });
  ASSERT_NE(server, nullptr);
  for (const std::string& bad :
       {std::string("this is not http\r\n\r\n"), std::string("GET / HTTX/1.1\r\n\r\n"),
        std::string("GET / HTTP/1.1\r\nBad Header\r\n\r\n"),
        std::string("GET / HTTP/1.1\r\nX: ") + std::string(20000, 'x')}) {
    Client c(server->port());
    ASSERT_TRUE(c.Send(bad));
    ClientResponse r = c.Read();
    EXPECT_EQ(r.status, 400) << bad.substr(0, 40);
    EXPECT_EQ(r.headers["content-type"], "application/json");
    EXPECT_EQ(r.body.rfind(R"({"error": {"code": "invalid_argument", "message": ")", 0), 0u)
        << r.body;
    EXPECT_TRUE(c.Closed());
  }
  EXPECT_EQ(calls.load(), 0);
}

TEST(HttpServerTest, HandlerExceptionBecomes500) {
  auto server = StartOrDie({}, [](HttpRequest&&, auto) { throw std::runtime_error("boom"); });
  ASSERT_NE(server, nullptr);
  Client c(server->port());
  ASSERT_TRUE(c.Send(Get("/")));
  ClientResponse r = c.Read();
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.body, R"({"error": {"code": "internal", "message": "handler failed: boom", )"
                    R"("details": []}})");
  EXPECT_EQ(server->in_flight(), 0u);
}

TEST(HttpServerTest, ExpectContinueIsAnswered) {
  auto server = StartOrDie({}, Echo);
  ASSERT_NE(server, nullptr);
  Client c(server->port());
  ASSERT_TRUE(
      c.Send("POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"));
  EXPECT_EQ(c.Read().status, 100);
  ASSERT_TRUE(c.Send("hello"));
  ClientResponse r = c.Read();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "POST /up? remote=127.0.0.1 x=|hello");
}

TEST(HttpServerTest, SlowAndIdleConnectionsTimeOut) {
  HttpServerOptions options;
  options.header_timeout_ms = 150;
  options.idle_timeout_ms = 150;
  auto server = StartOrDie(options, Echo);
  ASSERT_NE(server, nullptr);
  {
    Client c(server->port());  // sends part of a request, then nothing
    ASSERT_TRUE(c.Send("GET / HTTP/1.1\r\nHost:"));
    EXPECT_TRUE(c.Closed());
  }
  {
    Client c(server->port());  // one request, then idle
    ASSERT_TRUE(c.Send(Get("/")));
    EXPECT_EQ(c.Read().status, 200);
    EXPECT_TRUE(c.Closed());
  }
}

TEST(HttpServerTest, ConnectionsBeyondTheLimitAreClosed) {
  HttpServerOptions options;
  options.max_connections = 1;
  auto server = StartOrDie(options, Echo);
  ASSERT_NE(server, nullptr);
  auto first = std::make_unique<Client>(server->port());
  ASSERT_TRUE(first->Send(Get("/")));
  ASSERT_EQ(first->Read().status, 200);  // registered
  {
    Client second(server->port());
    ASSERT_TRUE(second.connected());  // by the kernel's backlog
    EXPECT_TRUE(second.Closed());
  }
  first.reset();
  // Once the server has seen the first one go, there is room again.
  int status = 0;
  for (int i = 0; i < 100 && status != 200; ++i) {
    Client again(server->port());
    if (again.Send(Get("/"))) status = again.Read().status;
    if (status != 200) std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_EQ(status, 200);
}

// Connections that queue up while the I/O thread is busy are all taken at the accept handler's
// next turn (not one per turn), and every one is served.
TEST(HttpServerTest, ABurstOfWaitingConnectionsIsAcceptedAndServed) {
  HttpServerOptions options;
  options.threads = 1;
  std::atomic<bool> block_once{true};
  auto server = StartOrDie(options, [&](HttpRequest&& request,
                                        std::function<void(HttpResponse&&)> respond) {
    if (block_once.exchange(false)) std::this_thread::sleep_for(milliseconds(300));
    Echo(std::move(request), std::move(respond));
  });
  ASSERT_NE(server, nullptr);
  Client first(server->port());
  ASSERT_TRUE(first.Send(Get("/slow")));  // holds the only I/O thread for 300 ms
  std::this_thread::sleep_for(milliseconds(50));
  std::vector<std::unique_ptr<Client>> burst;
  for (int i = 0; i < 200; ++i) {
    burst.push_back(std::make_unique<Client>(server->port()));
    ASSERT_TRUE(burst.back()->connected()) << i;  // by the kernel's backlog
  }
  EXPECT_EQ(first.Read().status, 200);
  for (size_t i = 0; i < burst.size(); ++i) {
    ASSERT_TRUE(burst[i]->Send(Get("/n" + std::to_string(i)))) << i;
  }
  for (size_t i = 0; i < burst.size(); ++i) {
    ClientResponse r = burst[i]->Read();
    EXPECT_EQ(r.status, 200) << i;
  }
}

TEST(HttpServerTest, StopDeliversInFlightResponseAndRefusesNewConnections) {
  std::promise<std::function<void(HttpResponse &&)>> pending;
  auto server = StartOrDie({}, [&](HttpRequest&& request, auto respond) {
    if (request.path == "/slow") {
      pending.set_value(std::move(respond));
    } else {
      Echo(std::move(request), std::move(respond));
    }
  });
  ASSERT_NE(server, nullptr);
  const int port = server->port();
  Client idle(port);  // a keep-alive connection between requests
  ASSERT_TRUE(idle.Send(Get("/")));
  ASSERT_EQ(idle.Read().status, 200);
  Client slow(port);
  ASSERT_TRUE(slow.Send(Get("/slow")));
  std::function<void(HttpResponse &&)> respond = pending.get_future().get();
  EXPECT_EQ(server->in_flight(), 1u);

  std::thread stopper([&] { server->Stop(std::chrono::seconds(5)); });
  // New connections are refused once the acceptor is closed.
  bool refused = false;
  for (int i = 0; i < 200 && !refused; ++i) {
    Client probe(port);
    refused = !probe.connected() && probe.error() == ECONNREFUSED;
    if (!refused) std::this_thread::sleep_for(milliseconds(5));
  }
  EXPECT_TRUE(refused);
  EXPECT_TRUE(idle.Closed()) << "idle keep-alive connections are closed at once";

  HttpResponse r;
  r.body = R"({"done": true})";
  respond(std::move(r));
  ClientResponse got = slow.Read();
  EXPECT_EQ(got.status, 200);
  EXPECT_EQ(got.body, R"({"done": true})");
  EXPECT_EQ(got.headers["connection"], "close");
  EXPECT_TRUE(slow.Closed());
  slow.Close();  // the server waits (briefly) for the client to close after `Connection: close`
  stopper.join();
  EXPECT_EQ(server->in_flight(), 0u);
  server->Wait();  // returns: stopped
  server->Stop();  // idempotent
}

TEST(HttpServerTest, StopClosesConnectionsWhoseHandlerNeverResponds) {
  std::promise<std::function<void(HttpResponse &&)>> pending;
  auto server =
      StartOrDie({}, [&](HttpRequest&&, auto respond) { pending.set_value(std::move(respond)); });
  ASSERT_NE(server, nullptr);
  Client c(server->port());
  ASSERT_TRUE(c.Send(Get("/")));
  std::function<void(HttpResponse &&)> respond = pending.get_future().get();
  server->Stop(milliseconds(100));
  EXPECT_TRUE(c.Closed());
  server.reset();
  // A response after the server is gone is dropped, harmlessly.
  respond(HttpResponse{});
}

TEST(HttpServerTest, PortInUseIsAClearError) {
  auto first = StartOrDie({}, Echo);
  ASSERT_NE(first, nullptr);
  HttpServerOptions options;
  options.address = "127.0.0.1";
  options.port = first->port();
  auto second = HttpServer::Start(options, Echo);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(second.status().message().find("port " + std::to_string(first->port()) + " is in use"),
            std::string::npos)
      << second.status().message();
}

TEST(HttpServerTest, RejectsBadOptions) {
  HttpServerOptions options;
  options.address = "not-an-address";
  auto server = HttpServer::Start(options, Echo);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), StatusCode::kInvalidArgument);

  options = {};
  options.port = 70000;
  EXPECT_EQ(HttpServer::Start(options, Echo).status().code(), StatusCode::kInvalidArgument);
  options = {};
  EXPECT_EQ(HttpServer::Start(options, nullptr).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace vigil
