#include "serve/queue_routes.h"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>

#include <nlohmann/json.hpp>

#include "core/error_json.h"
#include "core/json_text.h"
#include "core/transaction_json.h"
#include "serve/router.h"
#include "serve/worker_pool.h"
#include "vigil/time.h"

namespace vigil {
namespace {

using std::chrono::milliseconds;

HttpResponse TooLarge(size_t index, size_t bytes, size_t max) {
  const std::string field = index == SIZE_MAX ? "content" : "messages[" + std::to_string(index) + "].content";
  return JsonResponse(413, ErrorJson("payload_too_large",
                                     "a message's content is at most " + std::to_string(max) + " bytes",
                                     {{field, "content is " + std::to_string(bytes) + " bytes; at most " +
                                                  std::to_string(max) + " are accepted"}}));
}

// The optional JSON object body of pull, ack, nack and requeue; a problem names the field.
StatusOr<nlohmann::json> OptionalObject(const std::string& body, std::vector<FieldProblem>* problems) {
  if (body.find_first_not_of(" \t\r\n") == std::string::npos) return nlohmann::json::object();
  try {
    nlohmann::json j = nlohmann::json::parse(body);
    if (!j.is_object()) {
      problems->push_back({"", "the body must be a JSON object"});
      return InvalidArgument("the body must be a JSON object");
    }
    return j;
  } catch (const nlohmann::json::exception& e) {
    // nlohmann's message gives the line and column, and quotes nothing but the offending token.
    problems->push_back({"", std::string("malformed JSON: ") + e.what()});
    return InvalidArgument("the body is not valid JSON");
  }
}

// A number field in [lo, hi] (absent: `fallback`).
StatusOr<double> NumberField(const nlohmann::json& j, const char* name, double lo, double hi,
                             double fallback, std::vector<FieldProblem>* problems) {
  if (!j.contains(name) || j[name].is_null()) return fallback;
  const nlohmann::json& v = j[name];
  std::string what = std::string(name) + " must be a number from " + std::to_string(static_cast<int64_t>(lo)) +
                     " to " + std::to_string(static_cast<int64_t>(hi));
  if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() < lo || v.get<double>() > hi) {
    problems->push_back({name, what});
    return InvalidArgument(what);
  }
  return v.get<double>();
}

// "ids": a non-empty array of strings (or absent when `optional`).
StatusOr<std::vector<std::string>> IdsField(const nlohmann::json& j, size_t max, bool optional,
                                            std::vector<FieldProblem>* problems) {
  std::vector<std::string> ids;
  if (!j.contains("ids") && optional) return ids;
  const std::string what = "ids must be an array of 1 to " + std::to_string(max) + " message ids (strings)";
  if (!j.contains("ids") || !j["ids"].is_array() || j["ids"].size() > max ||
      (j["ids"].empty() && !optional)) {
    problems->push_back({"ids", what});
    return InvalidArgument(what);
  }
  for (const auto& v : j["ids"]) {
    if (!v.is_string()) {
      problems->push_back({"ids", what});
      return InvalidArgument(what);
    }
    ids.push_back(v.get<std::string>());
  }
  return ids;
}

// One settle result per id: the reply of an ack or nack.
HttpResponse SettleResponse(const StatusOr<std::vector<Status>>& r, const std::vector<std::string>& ids,
                            const char* verb) {
  if (!r.ok()) return ErrorResponse(r.status());
  std::vector<FieldProblem> problems;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (!(*r)[i].ok()) problems.push_back({"ids[" + std::to_string(i) + "]", (*r)[i].message()});
  }
  if (!problems.empty()) {
    return ErrorResponse(
        NotFound(std::to_string(problems.size()) + " of the ids are not leased (unknown, already settled, "
                 "or their lease ran out); none was " + verb),
        problems);
  }
  std::string body = "{\"";
  body += verb;
  body += "\":" + std::to_string(ids.size()) + "}";
  return JsonResponse(200, body);
}

// {"queue", "messages": [...]}: a batch pull's reply, and the dead letters'.
std::string MessagesJson(std::string_view queue, const std::vector<QueueMessage>& messages) {
  std::string body = "{\"queue\":";
  AppendJsonString(&body, queue);
  body += ",\"messages\":[";
  for (size_t i = 0; i < messages.size(); ++i) {
    if (i > 0) body += ',';
    body += RenderQueueMessage(queue, messages[i]);
  }
  return body + "]}";
}

std::string StatsJson(const QueueStats& s) {
  std::string b = "{\"name\":";
  AppendJsonString(&b, s.name);
  auto num = [&](const char* key, double v) {
    b += ",\"";
    b += key;
    b += "\":";
    AppendJsonNumber(&b, v);
  };
  num("depth", static_cast<double>(s.depth));
  num("in_flight", static_cast<double>(s.in_flight));
  num("dead_letters", static_cast<double>(s.dead_letters));
  num("oldest_age_seconds", s.oldest_age_seconds);
  b += ",\"totals\":{\"pushed\":" + std::to_string(s.pushed) + ",\"delivered\":" + std::to_string(s.delivered) +
       ",\"acked\":" + std::to_string(s.acked) + ",\"nacked\":" + std::to_string(s.nacked) +
       ",\"dead_lettered\":" + std::to_string(s.dead_lettered) + ",\"expired\":" + std::to_string(s.expired) + "}";
  b += ",\"rates_per_second\":{\"push\":";
  AppendJsonNumber(&b, s.push_rate);
  b += ",\"deliver\":";
  AppendJsonNumber(&b, s.deliver_rate);
  b += ",\"ack\":";
  AppendJsonNumber(&b, s.ack_rate);
  return b + "}}";
}

// A waiting pull asks the queue in slices of this much, so that a stopping server ends it soon.
constexpr milliseconds kWaitSlice{250};

class QueueRoutes : public std::enable_shared_from_this<QueueRoutes> {
 public:
  QueueRoutes(Queue& queue, const QueueRouteOptions& options)
      : queue_(queue),
        max_message_bytes_(options.max_message_bytes),
        max_batch_(options.max_batch),
        max_wait_(options.max_wait),
        wait_pool_(options.wait_pool),
        max_waiting_(options.max_waiting),
        stopping_(options.stopping) {}

  void Push(RouteRequest&& req, const Respond& respond) {
    thread_local TransactionParser parser;
    thread_local std::vector<MessageText> messages;
    std::vector<FieldProblem> problems;
    bool batch = false;  // the reference's single push answers with one id, a batch with all
    Status s = parser.ParseMessages(req.http.body, max_batch_, &messages, &problems, &batch);
    if (!s.ok()) return respond(ErrorResponse(s, problems));
    std::vector<PushItem> items;
    items.reserve(messages.size());
    for (size_t i = 0; i < messages.size(); ++i) {
      if (messages[i].content.size() > max_message_bytes_) {
        return respond(TooLarge(batch ? i : SIZE_MAX, messages[i].content.size(), max_message_bytes_));
      }
      items.push_back({messages[i].content, messages[i].message_type});
    }
    std::string name(req.Param("name"));
    queue_.Push(name, items, [name, batch, respond](StatusOr<std::vector<std::string>> ids) {
      if (!ids.ok()) return respond(ErrorResponse(ids.status()));
      std::string body = "{\"queue\":";
      AppendJsonString(&body, name);
      if (batch) {
        body += ",\"ids\":[";
        for (size_t i = 0; i < ids->size(); ++i) {
          if (i > 0) body += ',';
          AppendJsonString(&body, (*ids)[i]);
        }
        body += "]}";
      } else {
        body += ",\"id\":";
        AppendJsonString(&body, ids->front());
        body += ",\"status\":\"queued\"}";
      }
      respond(JsonResponse(201, std::move(body)));
    });
  }

  // No body (or no "lease_seconds" nor "max"): the reference's pull, one message taken off the
  // queue, 404 when empty. Otherwise {"messages": [...]} (200, empty when none waits).
  void Pull(RouteRequest&& req, const Respond& respond) {
    std::vector<FieldProblem> problems;
    auto j = OptionalObject(req.http.body, &problems);
    if (!j.ok()) return respond(ErrorResponse(j.status(), problems));
    const bool plain = !j->contains("lease_seconds") && !j->contains("max");
    auto lease = NumberField(*j, "lease_seconds", 0, 43200, 0, &problems);
    if (!lease.ok()) return respond(ErrorResponse(lease.status(), problems));
    auto max = NumberField(*j, "max", 1, static_cast<double>(max_batch_), 1, &problems);
    if (!max.ok()) return respond(ErrorResponse(max.status(), problems));
    if (*max != std::floor(*max)) {
      problems.push_back({"max", "max must be a whole number"});
      return respond(ErrorResponse(InvalidArgument("max must be a whole number"), problems));
    }
    const double max_wait_s = static_cast<double>(max_wait_.count()) / 1000.0;
    auto wait = NumberField(*j, "wait_seconds", 0, max_wait_s, 0, &problems);
    if (!wait.ok()) return respond(ErrorResponse(wait.status(), problems));
    PullOptions o;
    o.max = static_cast<size_t>(*max);
    o.lease = milliseconds(static_cast<int64_t>(std::llround(*lease * 1000)));
    const milliseconds wait_for(static_cast<int64_t>(std::llround(*wait * 1000)));
    std::string name(req.Param("name"));
    // A pull that may wait does so on a thread of the wait pool, never on an I/O thread; when
    // max_waiting pulls wait already, it answers at once (the wait is an upper bound).
    if (wait_for.count() > 0 && wait_pool_ != nullptr) {
      if (waiting_.fetch_add(1) < max_waiting_) {
        auto self = shared_from_this();
        const bool posted = wait_pool_->Post([self, name, o, wait_for, plain, respond] {
          auto got = self->PullWaiting(name, o, wait_for);
          --self->waiting_;
          RespondPull(name, plain, got, respond);
        });
        if (!posted) {
          --waiting_;
          respond(ErrorResponse(Unavailable("the server is stopping")));
        }
        return;
      }
      --waiting_;
    }
    RespondPull(name, plain, queue_.Pull(name, o), respond);
  }

  void Ack(RouteRequest&& req, const Respond& respond) {
    std::vector<FieldProblem> problems;
    auto j = OptionalObject(req.http.body, &problems);
    if (!j.ok()) return respond(ErrorResponse(j.status(), problems));
    auto ids = IdsField(*j, max_batch_, false, &problems);
    if (!ids.ok()) return respond(ErrorResponse(ids.status(), problems));
    respond(SettleResponse(queue_.Ack(req.Param("name"), *ids), *ids, "acked"));
  }

  void Nack(RouteRequest&& req, const Respond& respond) {
    std::vector<FieldProblem> problems;
    auto j = OptionalObject(req.http.body, &problems);
    if (!j.ok()) return respond(ErrorResponse(j.status(), problems));
    auto ids = IdsField(*j, max_batch_, false, &problems);
    if (!ids.ok()) return respond(ErrorResponse(ids.status(), problems));
    auto delay = NumberField(*j, "delay_seconds", 0, 43200, 0, &problems);
    if (!delay.ok()) return respond(ErrorResponse(delay.status(), problems));
    NackOptions o;
    o.delay = milliseconds(static_cast<int64_t>(std::llround(*delay * 1000)));
    if (j->contains("dead_letter")) {
      if (!(*j)["dead_letter"].is_boolean()) {
        problems.push_back({"dead_letter", "dead_letter must be true or false"});
        return respond(ErrorResponse(InvalidArgument("dead_letter must be true or false"), problems));
      }
      o.dead_letter = (*j)["dead_letter"].get<bool>();
    }
    if (j->contains("reason")) {
      if (!(*j)["reason"].is_string() || (*j)["reason"].get<std::string>().size() > 1024) {
        problems.push_back({"reason", "reason must be a string of at most 1024 bytes"});
        return respond(ErrorResponse(InvalidArgument("reason must be a string of at most 1024 bytes"), problems));
      }
      o.reason = (*j)["reason"].get<std::string>();
    }
    respond(SettleResponse(queue_.Nack(req.Param("name"), *ids, o), *ids, "nacked"));
  }

  void DeadLetters(RouteRequest&& req, const Respond& respond) {
    size_t limit = 100;
    const std::string_view q = req.http.query;
    if (q.starts_with("limit=")) {
      const std::string_view v = q.substr(6);
      auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), limit);
      if (ec != std::errc() || end != v.data() + v.size() || limit < 1 || limit > 10000) {
        return respond(ErrorResponse(InvalidArgument("limit must be a whole number from 1 to 10000"),
                                     {{"limit", "limit must be a whole number from 1 to 10000"}}));
      }
    } else if (!q.empty()) {
      return respond(ErrorResponse(InvalidArgument("the only query parameter is limit=N"),
                                   {{"", "the only query parameter is limit=N"}}));
    }
    const std::string_view name = req.Param("name");
    auto got = queue_.DeadLetters(name, limit);
    if (!got.ok()) return respond(ErrorResponse(got.status()));
    respond(JsonResponse(200, MessagesJson(name, *got)));
  }

  void Requeue(RouteRequest&& req, const Respond& respond) {
    std::vector<FieldProblem> problems;
    auto j = OptionalObject(req.http.body, &problems);
    if (!j.ok()) return respond(ErrorResponse(j.status(), problems));
    auto ids = IdsField(*j, max_batch_, true, &problems);
    if (!ids.ok()) return respond(ErrorResponse(ids.status(), problems));
    auto n = queue_.Requeue(req.Param("name"), *ids);
    if (!n.ok()) return respond(ErrorResponse(n.status()));
    respond(JsonResponse(200, "{\"requeued\":" + std::to_string(*n) + "}"));
  }

  void List(RouteRequest&& /*req*/, const Respond& respond) {
    std::string body = "{\"backend\":";
    AppendJsonString(&body, queue_.backend());
    body += ",\"queues\":[";
    bool first = true;
    for (const QueueStats& s : queue_.List()) {
      if (!first) body += ',';
      first = false;
      body += StatsJson(s);
    }
    respond(JsonResponse(200, body + "]}"));
  }

  void Stats(RouteRequest&& req, const Respond& respond) {
    auto s = queue_.Stats(req.Param("name"));
    if (!s.ok()) return respond(ErrorResponse(s.status()));
    respond(JsonResponse(200, StatsJson(*s)));
  }

 private:
  // Pulls until a message comes, `wait` ran out, or the server stops, a slice at a time.
  StatusOr<std::vector<QueueMessage>> PullWaiting(const std::string& name, PullOptions o,
                                                  milliseconds wait) {
    const auto deadline = std::chrono::steady_clock::now() + wait;
    for (;;) {
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
      o.wait = std::clamp(left, milliseconds(0), kWaitSlice);
      auto got = queue_.Pull(name, o);
      if (!got.ok() || !got->empty() || left <= kWaitSlice || (stopping_ != nullptr && stopping_->load())) {
        return got;
      }
    }
  }

  static void RespondPull(std::string_view name, bool plain, const StatusOr<std::vector<QueueMessage>>& got,
                          const Respond& respond) {
    if (!got.ok()) return respond(ErrorResponse(got.status()));
    if (plain) {
      if (got->empty()) return respond(ErrorResponse(NotFound("queue '" + std::string(name) + "' is empty")));
      return respond(JsonResponse(200, RenderQueueMessage(name, got->front())));
    }
    respond(JsonResponse(200, MessagesJson(name, *got)));
  }

  Queue& queue_;
  const size_t max_message_bytes_;
  const size_t max_batch_;
  const milliseconds max_wait_;
  WorkerPool* const wait_pool_;
  const int max_waiting_;
  const std::atomic<bool>* const stopping_;
  std::atomic<int> waiting_{0};  // pulls on the wait pool
};

}  // namespace

std::string RenderQueueMessage(std::string_view queue, const QueueMessage& m) {
  std::string b;
  b.reserve(m.content.size() + 200);
  b += "{\"id\":";
  AppendJsonString(&b, m.id);
  b += ",\"queue\":";
  AppendJsonString(&b, queue);
  b += ",\"content\":";
  b += m.content;
  b += ",\"message_type\":";
  AppendJsonString(&b, m.message_type);
  b += ",\"attempt\":" + std::to_string(m.attempt);
  b += ",\"enqueued_at\":\"" + FormatRfc3339Micros(m.enqueued_us) + "\"";
  if (m.lease_expires_us > 0) b += ",\"lease_expires_at\":\"" + FormatRfc3339Micros(m.lease_expires_us) + "\"";
  if (!m.last_error.empty()) {
    b += ",\"last_error\":";
    AppendJsonString(&b, m.last_error);
  }
  return b + "}";
}

void AddQueueRoutes(Router& r, Queue& queue, const QueueRouteOptions& options) {
  auto routes = std::make_shared<QueueRoutes>(queue, options);
  WorkerPool* const pool = options.pool;
  // Each handler on the I/O thread, or, for a backend whose calls wait on a server, on the pool.
  using Method = void (QueueRoutes::*)(RouteRequest&&, const Respond&);
  auto handler = [routes, pool](Method m) -> RouteHandler {
    return [routes, pool, m](RouteRequest&& q, const Respond& p) {
      if (pool == nullptr) return ((*routes).*m)(std::move(q), p);
      auto task = std::make_shared<std::pair<RouteRequest, Respond>>(std::move(q), p);
      const bool posted = pool->Post([routes, m, task] {
        ((*routes).*m)(std::move(task->first), task->second);
      });
      if (!posted) p(ErrorResponse(Unavailable("stopping")));
    };
  };
  r.Add({"GET", "/api/queues", Role::kViewer, Reach::kAnywhere, BodyKind::kNone, handler(&QueueRoutes::List)});
  r.Add({"GET", "/api/queues/{name}", Role::kViewer, Reach::kAnywhere, BodyKind::kNone,
         handler(&QueueRoutes::Stats)});
  // A push that answers asynchronously holds no thread: it stays on the I/O thread.
  RouteHandler push = handler(&QueueRoutes::Push);
  if (queue.push_is_asynchronous()) {
    push = [routes](RouteRequest&& q, const Respond& p) { routes->Push(std::move(q), p); };
  }
  // Scorers push transactions; processors push predictions (and, with --mock, transactions).
  r.Add({"POST", "/api/queues/{name}/push", Role::kScorer | Role::kProcessor, Reach::kAnywhere, BodyKind::kJson,
         std::move(push)});
  r.Add({"POST", "/api/queues/{name}/pull", Role::kProcessor, Reach::kAnywhere, BodyKind::kOptionalJson,
         handler(&QueueRoutes::Pull)});
  r.Add({"POST", "/api/queues/{name}/ack", Role::kProcessor, Reach::kAnywhere, BodyKind::kJson,
         handler(&QueueRoutes::Ack)});
  r.Add({"POST", "/api/queues/{name}/nack", Role::kProcessor, Reach::kAnywhere, BodyKind::kJson,
         handler(&QueueRoutes::Nack)});
  r.Add({"GET", "/api/queues/{name}/dead-letters", Role::kAnalyst, Reach::kAnywhere, BodyKind::kNone,
         handler(&QueueRoutes::DeadLetters)});
  r.Add({"POST", "/api/queues/{name}/dead-letters/requeue", Role::kAdmin, Reach::kAnywhere,
         BodyKind::kOptionalJson, handler(&QueueRoutes::Requeue)});
}

}  // namespace vigil
