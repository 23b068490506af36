#include "serve/http_queue.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/json_text.h"
#include "core/log.h"
#include "core/mutex.h"

namespace vigil {
namespace {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

constexpr auto kRequestTimeout = std::chrono::seconds(30);

struct Reply {
  int status = 0;
  std::string body;
};

Status StatusOfReply(const Reply& r) {
  if (r.status >= 200 && r.status < 300) return Status::Ok();
  std::string message = "HTTP " + std::to_string(r.status);
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  if (j.is_object() && j.contains("error") && j["error"].is_object() && j["error"].contains("message") &&
      j["error"]["message"].is_string()) {
    message = j["error"]["message"].get<std::string>();
  }
  message = "queue service: " + message;
  switch (r.status) {
    case 400:
    case 413:
    case 415: return InvalidArgument(message);
    case 401: return {StatusCode::kUnauthenticated, message};
    case 403: return PermissionDenied(message);
    case 404: return NotFound(message);
    case 409: return AlreadyExists(message);
    case 429: return ResourceExhausted(message);
    default: return Unavailable(message);
  }
}

// One kept-alive connection.
struct Connection {
  net::io_context io;
  beast::tcp_stream stream{io};
  bool open = false;
};

class HttpQueue final : public Queue {
 public:
  HttpQueue(std::string host, std::string port, std::string token)
      : host_(std::move(host)), port_(std::move(port)), token_(std::move(token)) {}

  std::string_view backend() const override { return "http"; }
  bool calls_wait_on_network() const override { return true; }

  void Push(std::string_view queue, std::span<const PushItem> items, PushDone done) override {
    if (Status s = ValidateQueueName(queue); !s.ok()) return done(s);
    if (items.empty()) return done(InvalidArgument("a push needs at least one message"));
    std::string body;
    auto one = [&body](const PushItem& item) {
      body += "{\"content\":";
      body += item.content;
      body += ",\"message_type\":";
      AppendJsonString(&body, item.message_type);
      body += '}';
    };
    if (items.size() == 1) {
      one(items[0]);
    } else {
      body = "{\"messages\":[";
      for (size_t i = 0; i < items.size(); ++i) {
        if (i > 0) body += ',';
        one(items[i]);
      }
      body += "]}";
    }
    auto r = Call(http::verb::post, Path(queue, "/push"), body);
    if (!r.ok()) return done(r.status());
    if (Status st = StatusOfReply(*r); !st.ok()) return done(st);
    auto j = nlohmann::json::parse(r->body, nullptr, false);
    std::vector<std::string> ids;
    if (j.is_object() && j.contains("ids") && j["ids"].is_array()) {
      for (const auto& id : j["ids"]) ids.push_back(id.is_string() ? id.get<std::string>() : id.dump());
    } else if (j.is_object() && j.contains("id")) {
      ids.push_back(j["id"].is_string() ? j["id"].get<std::string>() : j["id"].dump());
    }
    if (ids.size() != items.size()) return done(Unavailable("queue service: its push reply has no ids"));
    done(std::move(ids));
  }

  StatusOr<std::vector<QueueMessage>> Pull(std::string_view queue, const PullOptions& options) override {
    VIGIL_RETURN_IF_ERROR(ValidateQueueName(queue));
    // The reference's plain pull when that is all that is asked: it works against its service.
    const bool plain = options.lease.count() == 0 && options.max == 1;
    std::string body;
    if (!plain) {
      body = "{\"max\":" + std::to_string(options.max);
      if (options.lease.count() > 0) body += ",\"lease_seconds\":" + std::to_string(options.lease.count() / 1000.0);
      // A Vigil queue service waits on its side (a long poll); the polling below is for others.
      if (options.wait.count() > 0) body += ",\"wait_seconds\":" + std::to_string(options.wait.count() / 1000.0);
      body += "}";
    }
    const auto deadline = std::chrono::steady_clock::now() + options.wait;
    while (true) {
      auto r = Call(http::verb::post, Path(queue, "/pull"), body);
      if (!r.ok()) return r.status();
      std::vector<QueueMessage> out;
      if (plain && r->status == 404) {
        // Empty, or no such queue: the reference says both with a 404.
        auto j = nlohmann::json::parse(r->body, nullptr, false);
        const bool empty = !j.is_object() || !j.contains("error") ||
                           j["error"].value("message", "").find("is empty") != std::string::npos;
        if (!empty) return StatusOfReply(*r);
      } else {
        VIGIL_RETURN_IF_ERROR(StatusOfReply(*r));
        auto j = nlohmann::json::parse(r->body, nullptr, false);
        if (!j.is_object()) return Unavailable("queue service: its pull reply is not a JSON object");
        if (plain) {
          out.push_back(MessageOf(j));
        } else if (j.contains("messages") && j["messages"].is_array()) {
          for (const auto& m : j["messages"]) out.push_back(MessageOf(m));
        }
      }
      if (!out.empty() || std::chrono::steady_clock::now() >= deadline) return out;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  StatusOr<std::vector<Status>> Ack(std::string_view queue, std::span<const std::string> ids) override {
    return Settle(queue, ids, "/ack", "");
  }

  StatusOr<std::vector<Status>> Nack(std::string_view queue, std::span<const std::string> ids,
                                     const NackOptions& options) override {
    std::string extra = ",\"delay_seconds\":" + std::to_string(options.delay.count() / 1000.0);
    if (options.dead_letter) extra += ",\"dead_letter\":true";
    if (!options.reason.empty()) {
      extra += ",\"reason\":";
      AppendJsonString(&extra, options.reason);
    }
    return Settle(queue, ids, "/nack", extra);
  }

  StatusOr<std::vector<QueueMessage>> DeadLetters(std::string_view queue, size_t limit) override {
    VIGIL_RETURN_IF_ERROR(ValidateQueueName(queue));
    VIGIL_ASSIGN_OR_RETURN(Reply r, Call(http::verb::get, Path(queue, "/dead-letters?limit=" + std::to_string(limit)), ""));
    VIGIL_RETURN_IF_ERROR(StatusOfReply(r));
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    std::vector<QueueMessage> out;
    if (j.is_object() && j.contains("messages") && j["messages"].is_array()) {
      for (const auto& m : j["messages"]) out.push_back(MessageOf(m));
    }
    return out;
  }

  StatusOr<size_t> Requeue(std::string_view queue, std::span<const std::string> ids) override {
    VIGIL_RETURN_IF_ERROR(ValidateQueueName(queue));
    std::string body = ids.empty() ? "{}" : "{\"ids\":" + IdsJson(ids) + "}";
    VIGIL_ASSIGN_OR_RETURN(Reply r, Call(http::verb::post, Path(queue, "/dead-letters/requeue"), body));
    VIGIL_RETURN_IF_ERROR(StatusOfReply(r));
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    return j.is_object() && j.contains("requeued") && j["requeued"].is_number_unsigned()
               ? j["requeued"].get<size_t>()
               : size_t{0};
  }

  std::vector<QueueStats> List() override {
    std::vector<QueueStats> out;
    auto r = Call(http::verb::get, "/api/queues", "");
    if (!r.ok() || !StatusOfReply(*r).ok()) return out;
    auto j = nlohmann::json::parse(r->body, nullptr, false);
    if (j.is_object() && j.contains("queues") && j["queues"].is_array()) {
      for (const auto& q : j["queues"]) out.push_back(StatsOf(q));
    }
    return out;
  }

  StatusOr<QueueStats> Stats(std::string_view queue) override {
    VIGIL_RETURN_IF_ERROR(ValidateQueueName(queue));
    VIGIL_ASSIGN_OR_RETURN(Reply r, Call(http::verb::get, Path(queue, ""), ""));
    VIGIL_RETURN_IF_ERROR(StatusOfReply(r));
    return StatsOf(nlohmann::json::parse(r.body, nullptr, false));
  }

  void Stop() override { stopping_ = true; }

 private:
  static std::string Path(std::string_view queue, std::string_view rest) {
    std::string p = "/api/queues/";
    p += queue;
    p += rest;
    return p;
  }

  static std::string IdsJson(std::span<const std::string> ids) {
    std::string b = "[";
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i > 0) b += ',';
      AppendJsonString(&b, ids[i]);
    }
    return b + "]";
  }

  static QueueMessage MessageOf(const nlohmann::json& j) {
    QueueMessage m;
    if (!j.is_object()) return m;
    if (j.contains("id")) m.id = j["id"].is_string() ? j["id"].get<std::string>() : j["id"].dump();
    m.content = j.contains("content") ? j["content"].dump() : "null";
    m.message_type = j.value("message_type", "");
    m.attempt = j.value("attempt", 1);
    m.last_error = j.value("last_error", "");
    return m;
  }

  static QueueStats StatsOf(const nlohmann::json& j) {
    QueueStats s;
    if (!j.is_object()) return s;
    s.name = j.value("name", "");
    s.depth = j.value("depth", uint64_t{0});
    s.in_flight = j.value("in_flight", uint64_t{0});
    s.dead_letters = j.value("dead_letters", uint64_t{0});
    s.oldest_age_seconds = j.value("oldest_age_seconds", 0.0);
    return s;
  }

  StatusOr<std::vector<Status>> Settle(std::string_view queue, std::span<const std::string> ids,
                                       std::string_view what, const std::string& extra) {
    VIGIL_RETURN_IF_ERROR(ValidateQueueName(queue));
    std::string body = "{\"ids\":" + IdsJson(ids) + extra + "}";
    VIGIL_ASSIGN_OR_RETURN(Reply r, Call(http::verb::post, Path(queue, what), body));
    std::vector<Status> out(ids.size());
    if (r.status == 404) {
      // Per-id problems come as details "ids[i]"; a missing queue has none.
      auto j = nlohmann::json::parse(r.body, nullptr, false);
      bool any = false;
      if (j.is_object() && j.contains("error") && j["error"].contains("details")) {
        for (const auto& d : j["error"]["details"]) {
          const std::string field = d.value("field", "");
          if (!field.starts_with("ids[")) continue;
          const size_t i = std::strtoull(field.c_str() + 4, nullptr, 10);
          if (i < out.size()) {
            out[i] = NotFound(d.value("problem", "not leased"));
            any = true;
          }
        }
      }
      if (any) return out;
    }
    VIGIL_RETURN_IF_ERROR(StatusOfReply(r));
    return out;
  }

  StatusOr<Reply> Call(http::verb verb, const std::string& target, const std::string& body) {
    if (stopping_.load()) return Unavailable("the queue client is stopping");
    std::unique_ptr<Connection> c = Take();
    // A kept-alive connection the service has closed fails at once: try again on a new one.
    for (int attempt = 0; attempt < 2; ++attempt) {
      const bool reused = c->open;
      auto r = Exchange(*c, verb, target, body);
      if (r.ok()) {
        Give(std::move(c));
        return r;
      }
      c = std::make_unique<Connection>();
      if (!reused) return r;
    }
    return Unavailable("queue service: unreachable");
  }

  StatusOr<Reply> Exchange(Connection& c, http::verb verb, const std::string& target, const std::string& body) {
    beast::error_code ec;
    if (!c.open) {
      tcp::resolver resolver(c.io);
      auto endpoints = resolver.resolve(host_, port_, ec);
      if (ec) return Unavailable("queue service " + host_ + ":" + port_ + " cannot be resolved: " + ec.message());
      c.stream.expires_after(kRequestTimeout);
      c.stream.connect(endpoints, ec);
      if (ec) return Unavailable("queue service " + host_ + ":" + port_ + " cannot be reached: " + ec.message());
      c.stream.socket().set_option(tcp::no_delay(true), ec);
      c.open = true;
    }
    http::request<http::string_body> req{verb, target, 11};
    req.set(http::field::host, host_);
    req.set(http::field::user_agent, "vigil-process");
    if (!token_.empty()) req.set(http::field::authorization, "Bearer " + token_);
    if (!body.empty()) {
      req.set(http::field::content_type, "application/json");
      req.body() = body;
    }
    req.keep_alive(true);
    req.prepare_payload();
    c.stream.expires_after(kRequestTimeout);
    http::write(c.stream, req, ec);
    if (ec) {
      c.open = false;
      return Unavailable("queue service: cannot send: " + ec.message());
    }
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    http::read(c.stream, buffer, res, ec);
    if (ec) {
      c.open = false;
      return Unavailable("queue service: no reply: " + ec.message());
    }
    if (!res.keep_alive()) {
      c.stream.socket().close(ec);
      c.open = false;
    }
    return Reply{static_cast<int>(res.result_int()), std::move(res.body())};
  }

  std::unique_ptr<Connection> Take() EXCLUDES(mu_) {
    MutexLock lock(&mu_);
    if (idle_.empty()) return std::make_unique<Connection>();
    auto c = std::move(idle_.back());
    idle_.pop_back();
    return c;
  }
  void Give(std::unique_ptr<Connection> c) EXCLUDES(mu_) {
    MutexLock lock(&mu_);
    if (idle_.size() < 64) idle_.push_back(std::move(c));
  }

  const std::string host_, port_, token_;
  std::atomic<bool> stopping_{false};
  Mutex mu_;
  std::vector<std::unique_ptr<Connection>> idle_ GUARDED_BY(mu_);
};

}  // namespace

StatusOr<std::unique_ptr<Queue>> OpenHttpQueue(const std::string& url, const std::string& token) {
  constexpr std::string_view kScheme = "http://";
  const std::string bad = "the queue service URL must look like http://host:port";
  if (!url.starts_with(kScheme)) return InvalidArgument(bad + " (https is not supported here)");
  std::string rest = url.substr(kScheme.size());
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  if (rest.empty() || rest.find('/') != std::string::npos) return InvalidArgument(bad);
  std::string host = rest, port = "80";
  const size_t bracket = rest.find(']');
  const size_t colon = rest.rfind(':');
  if (rest.front() == '[') {  // [::1]:8080
    if (bracket == std::string::npos) return InvalidArgument(bad);
    host = rest.substr(1, bracket - 1);
    if (bracket + 1 < rest.size()) {
      if (rest[bracket + 1] != ':') return InvalidArgument(bad);
      port = rest.substr(bracket + 2);
    }
  } else if (colon != std::string::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  if (host.empty() || port.empty() || port.find_first_not_of("0123456789") != std::string::npos) {
    return InvalidArgument(bad);
  }
  return std::unique_ptr<Queue>(std::make_unique<HttpQueue>(host, port, token));
}

}  // namespace vigil
