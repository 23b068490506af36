#include "serve/scoring_service.h"

#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <deque>
#include <mutex>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "core/bloom_filter.h"
#include "core/file_util.h"
#include "monitor/metrics.h"
#include "serve/http_server.h"
#include "core/json_text.h"
#include "core/transaction_json.h"
#include "vigil/scorer.h"
#include "vigil/time.h"

namespace vigil {
namespace {

using Clock = std::chrono::steady_clock;

// --record async: how long the store writer gathers records before a commit.
constexpr std::chrono::microseconds kAsyncCommitDelay{2000};
// --record sync: the request's own thread commits its record while on average at most this many
// requests are in flight (1.5); past that, the writer thread (Store::CommitBy).
constexpr double kCallerCommitMaxInFlight = 1.5;
// Replies kept in memory for replays (two entries per reply with an Idempotency-Key); older
// ones are read from the store. About 1 KB each.
constexpr size_t kRecentReplies = 50000;
// The filter of ids seen: 32 MiB, 1% false positives (store lookups for nothing) at 28 million
// transactions; more past that, never a wrong answer.
constexpr size_t kSeenFilterBits = size_t{1} << 28;

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// {"error": {"code", "message", "details": [{"field", "problem"}]}} — DESIGN.md §3.
std::string ErrorBody(std::string_view code, std::string_view message,
                      const std::vector<FieldProblem>& details = {}) {
  std::string b = "{\"error\":{\"code\":";
  AppendJsonString(&b, code);
  b += ",\"message\":";
  AppendJsonString(&b, message);
  b += ",\"details\":[";
  for (size_t i = 0; i < details.size(); ++i) {
    if (i > 0) b += ',';
    b += "{\"field\":";
    AppendJsonString(&b, details[i].field);
    b += ",\"problem\":";
    AppendJsonString(&b, details[i].problem);
    b += '}';
  }
  return b + "]}}";
}

HttpResponse ErrorResponse(const Status& s, const std::vector<FieldProblem>& details = {}) {
  HttpResponse r;
  r.status = HttpStatusFor(s.code());
  r.body = ErrorBody(StatusCodeName(s.code()), s.message(), details);
  return r;
}

HttpResponse JsonResponse(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

std::string Stem(const std::string& path) {
  size_t slash = path.find_last_of('/');
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  size_t dot = base.find_last_of('.');
  return dot == std::string::npos || dot == 0 ? base : base.substr(0, dot);
}

std::string ContentVersion(const std::string& bytes) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return std::string(buf, 12);
}

}  // namespace

void LogJson(const char* level, const std::string& msg, const std::string& fields_json) {
  static std::mutex mu;
  std::string line = "{\"ts\":\"" + FormatRfc3339(static_cast<int64_t>(std::time(nullptr))) +
                     "\",\"level\":\"" + level + "\",\"msg\":";
  AppendJsonString(&line, msg);
  if (!fields_json.empty()) line += "," + fields_json;
  line += "}\n";
  std::lock_guard<std::mutex> lock(mu);
  std::fputs(line.c_str(), stderr);
}

// A model compiled for serving, with the name and version replies carry.
struct LoadedModel {
  std::unique_ptr<Scorer> scorer;
  std::string path, name, version;
  std::array<Counter*, 3> predictions{};  // vigil_predictions_total{model, decision}, by Decision
};

// The routes; each has its metric series resolved once (RouteMetrics).
enum Route : size_t {
  kScoreRoute,
  kBatchRoute,
  kTransactionRoute,
  kHealthRoute,
  kReadyRoute,
  kMetricsRoute,
  kReloadRoute,
  kUnknownRoute,
  kNumRoutes
};
constexpr std::array<const char*, kNumRoutes> kRouteLabels = {
    "/v1/score", "/v1/score/batch", "/v1/transactions/{id}", "/healthz", "/readyz",
    "/metrics",  "/v1/admin/reload", "unknown"};

// A route's series: its latency histogram, and its request counter per status, found in the
// registry on first use and then read without a lock.
struct RouteMetrics {
  Histogram* latency = nullptr;
  std::array<std::atomic<Counter*>, 600> by_status{};
};

struct ScoringService::Impl {
  ServeOptions options;
  std::unique_ptr<Store> store;
  std::unique_ptr<HttpServer> server;
  // The same server for the request path: set once it has started (requests may arrive before
  // `server` is assigned).
  std::atomic<const HttpServer*> http{nullptr};

  std::mutex model_mu;
  std::shared_ptr<const LoadedModel> model;  // GUARDED_BY(model_mu)
  std::mutex reload_mu;                      // one reload at a time

  // The online feature state: one engine, updated under its lock (about a microsecond).
  std::mutex features_mu;
  std::unique_ptr<FeatureEngine> engine;  // GUARDED_BY(features_mu)

  // Idempotency: a replayed transaction id (or Idempotency-Key) gets the first reply. It is
  // looked for among the recent replies in memory, then among the requests still being scored
  // (the replay waits for the first's reply), then in the store: memory stays bounded however
  // long the service runs. `recent_*` keep the last kRecentReplies replies, and every one whose
  // record is not committed yet (--record async), which the store could not find. `seen` holds
  // every id and key ever accepted, so that a new one (nearly every request) skips the store.
  using Waiter = std::function<void(int, const std::string&)>;
  struct Remembered {
    std::shared_ptr<const std::string> body;
    bool committed = false;
  };
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using ReplyMap = std::unordered_map<std::string, Remembered, StringHash, std::equal_to<>>;
  std::mutex idem_mu;
  ReplyMap recent_ids, recent_keys;                                // GUARDED_BY(idem_mu)
  std::deque<std::pair<ReplyMap*, std::string>> recent_order;     // GUARDED_BY(idem_mu)
  std::unordered_map<std::string, std::vector<Waiter>> in_flight;  // GUARDED_BY(idem_mu)
  BloomFilter seen{kSeenFilterBits};                               // GUARDED_BY(idem_mu)

  MetricsRegistry metrics;
  Histogram* score_hist = nullptr;
  std::array<RouteMetrics, kNumRoutes> route_metrics;
  std::atomic<bool> stopping{false};

  std::shared_ptr<const LoadedModel> CurrentModel() {
    std::lock_guard<std::mutex> lock(model_mu);
    return model;
  }

  StatusOr<std::shared_ptr<const LoadedModel>> LoadModelFile(const std::string& path) {
    VIGIL_ASSIGN_OR_RETURN(std::string bytes, ReadFile(path));
    auto m = std::make_shared<LoadedModel>();
    VIGIL_ASSIGN_OR_RETURN(m->scorer, Scorer::Load(path, Kernel::kAuto,
                                                   options.exact_reasons ? ReasonsMethod::kExact
                                                                         : ReasonsMethod::kFast));
    m->path = path;
    m->name = Stem(path);
    m->version = ContentVersion(bytes);
    for (Decision d : {Decision::kApprove, Decision::kReview, Decision::kDecline}) {
      m->predictions[static_cast<size_t>(d)] =
          &metrics.GetCounter("vigil_predictions_total", "Predictions by model and decision",
                              {{"model", m->name}, {"decision", std::string(DecisionName(d))}});
    }
    return std::shared_ptr<const LoadedModel>(std::move(m));
  }

  void Count(Route route, int status, Clock::time_point start) {
    RouteMetrics& rm = route_metrics[route];
    rm.latency->Observe(std::chrono::duration<double>(Clock::now() - start).count());
    const size_t slot = status >= 100 && status < 600 ? static_cast<size_t>(status) : 0;
    Counter* c = rm.by_status[slot].load(std::memory_order_acquire);
    if (c == nullptr) {
      // Two threads may both look it up: the registry returns the same series to both.
      c = &metrics.GetCounter("vigil_http_requests_total", "HTTP requests by route and status",
                              {{"route", kRouteLabels[route]}, {"status", std::to_string(status)}});
      rm.by_status[slot].store(c, std::memory_order_release);
    }
    c->Add();
  }

  // The ids a request is known by. `flight` keys in_flight: the idempotency key when the
  // client sent one, else the transaction id.
  struct RequestIds {
    std::string transaction_id;
    std::string idempotency_key;  // empty when none was sent
    const std::string& flight() const {
      return idempotency_key.empty() ? transaction_id : idempotency_key;
    }
  };

  // The remembered reply to `ids`, or null. REQUIRES: idem_mu held.
  const Remembered* FindRecent(const RequestIds& ids) const {
    auto it = recent_ids.find(std::string_view(ids.transaction_id));
    if (it != recent_ids.end()) return &it->second;
    if (ids.idempotency_key.empty()) return nullptr;
    it = recent_keys.find(std::string_view(ids.idempotency_key));
    return it == recent_keys.end() ? nullptr : &it->second;
  }

  // Remembers a reply; then forgets the oldest committed ones beyond kRecentReplies.
  // REQUIRES: idem_mu held.
  void Remember(const RequestIds& ids, const std::shared_ptr<const std::string>& body,
                bool committed) {
    for (auto [map, key] : {std::pair{&recent_ids, &ids.transaction_id},
                            std::pair{&recent_keys, &ids.idempotency_key}}) {
      if (key->empty()) continue;
      if (map->try_emplace(*key, Remembered{body, committed}).second) {
        recent_order.emplace_back(map, *key);
      }
    }
    while (recent_order.size() > kRecentReplies) {
      auto& [map, key] = recent_order.front();
      auto it = map->find(std::string_view(key));
      if (it != map->end() && !it->second.committed) break;  // the store cannot find it yet
      if (it != map->end()) map->erase(it);
      recent_order.pop_front();
    }
  }

  // Scores one parsed transaction and calls `done(status, body)` once its reply may be sent:
  // at once for a replayed id, after the commit in sync mode. The record goes to the store, or
  // to `writes` when given (a batch appends its records together).
  void ScoreOne(ParsedTransaction tx, RequestIds ids, Clock::time_point start, Waiter done,
                std::vector<Store::Write>* writes = nullptr) {
    bool maybe_seen = false;
    std::shared_ptr<const std::string> replay;
    {
      std::lock_guard<std::mutex> lock(idem_mu);
      if (const Remembered* r = FindRecent(ids)) {
        replay = r->body;
      } else {
        auto pending = in_flight.find(ids.flight());
        if (pending != in_flight.end()) {
          pending->second.push_back(std::move(done));
          return;
        }
        in_flight[ids.flight()].push_back(std::move(done));
        maybe_seen = seen.MayContain(ids.transaction_id) ||
                     (!ids.idempotency_key.empty() && seen.MayContain(ids.idempotency_key));
        seen.Add(ids.transaction_id);
        if (!ids.idempotency_key.empty()) seen.Add(ids.idempotency_key);
      }
    }
    // Outside the lock: replying writes to the socket. (`done` was moved only when `replay`
    // stayed empty.)
    if (replay) return done(200, *replay);  // NOLINT(bugprone-use-after-move)
    // Not in memory, but perhaps a replay of something older: the store has every committed
    // reply. (A false positive of `seen` costs one lookup that finds nothing.)
    if (maybe_seen) {
      auto stored = store->FindReply(ids.transaction_id, ids.idempotency_key);
      if (!stored.ok()) {
        LogJson("error", "idempotency lookup failed: " + stored.status().message());
        return Finish(ids, 503,
                      ErrorBody("unavailable", "the store could not be read: " + stored.status().message()),
                      /*remember=*/false, false);
      }
      if (stored->has_value()) return Finish(ids, 200, std::move(**stored), true, true);
    }

    const std::shared_ptr<const LoadedModel> m = CurrentModel();
    thread_local std::vector<float> row;
    row.resize(Features(FeatureSet::kAll).size());
    {
      std::lock_guard<std::mutex> lock(features_mu);
      engine->Update({0, tx.timestamp, tx.customer_key, tx.terminal_key, tx.amount}, row);
    }
    const ScoreResult r = m->scorer->Score(row, options.explain_top_k);
    const int64_t latency_us =
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count();

    std::string body;
    body.reserve(1024);
    body += "{\"transaction_id\":";
    AppendJsonString(&body, tx.transaction_id);
    body += ",\"score\":";
    AppendJsonNumber(&body, r.score);
    body += ",\"decision\":\"";
    body += DecisionName(r.decision);
    body += "\",\"reasons\":[";
    for (size_t i = 0; i < r.reasons.size(); ++i) {
      if (i > 0) body += ',';
      body += "{\"code\":";
      AppendJsonString(&body, r.reasons[i].code);
      body += ",\"text\":";
      AppendJsonString(&body, r.reasons[i].text);
      body += ",\"feature\":";
      AppendJsonString(&body, r.reasons[i].feature);
      body += ",\"value\":";
      AppendJsonNumber(&body, r.reasons[i].value);
      body += ",\"contribution\":";
      AppendJsonNumber(&body, r.reasons[i].contribution);
      body += '}';
    }
    body += "],\"anomaly_score\":";
    AppendJsonNumber(&body, r.anomaly_score);
    body += ",\"model\":{\"name\":";
    AppendJsonString(&body, m->name);
    body += ",\"version\":";
    AppendJsonString(&body, m->version);
    body += ",\"algorithm\":\"";
    body += AlgorithmName(m->scorer->model().algo);
    body += "\"},\"latency_us\":" + std::to_string(latency_us) + "}";

    score_hist->Observe(r.score);
    m->predictions[static_cast<size_t>(r.decision)]->Add();

    TransactionRecord rec;
    rec.transaction_id = tx.transaction_id;
    rec.customer_id = tx.customer_id;
    rec.terminal_id = tx.terminal_id;
    rec.amount = tx.amount;
    rec.timestamp = tx.timestamp;
    rec.transaction_json = std::move(tx.json);
    rec.score = r.score;
    rec.decision = DecisionName(r.decision);
    rec.anomaly_score = r.anomaly_score;
    rec.model_name = m->name;
    rec.model_version = m->version;
    rec.reply_json = body;
    rec.latency_us = latency_us;
    rec.recorded_at_us = NowMicros();
    rec.idempotency_key = ids.idempotency_key;
    std::function<void(const Status&)> on_commit;
    if (options.record == RecordMode::kAsync) {
      Finish(ids, 200, std::move(body), true, /*committed=*/false);
      on_commit = [this, ids = std::move(ids)](const Status& s) {
        if (!s.ok() && s.code() != StatusCode::kAlreadyExists) {
          LogJson("error", "record lost: " + s.message(), "\"transaction_id\":\"" + ids.transaction_id + "\"");
        }
        MarkCommitted(ids);
      };
    } else {
      on_commit = [this, ids = std::move(ids), body = std::move(body)](const Status& s) mutable {
        if (s.ok()) return Finish(ids, 200, std::move(body), true, true);
        if (s.code() == StatusCode::kAlreadyExists) {
          // A replay under another key raced the first past the checks above: reply the first's.
          auto first = store->FindReply(ids.transaction_id, ids.idempotency_key);
          if (first.ok() && first->has_value()) return Finish(ids, 200, std::move(**first), true, true);
        }
        LogJson("error", "store commit failed: " + s.message());
        Finish(ids, 503, ErrorBody("unavailable", "the transaction could not be recorded: " + s.message()),
               false, false);
      };
    }
    if (writes != nullptr) {
      writes->push_back({std::move(rec), std::move(on_commit)});
    } else {
      const Store::CommitBy by = CommitBy();
      store->Append(std::move(rec), std::move(on_commit), by);
      ScheduleKick(by);
    }
  }

  // Who commits a sync record: the request's own thread while the service is nearly idle (a
  // moving average of requests in flight at most kCallerCommitMaxInFlight), saving two thread
  // switches, about half the reply's latency at low load. Under load the writer thread, kicked
  // once the I/O thread has handled the requests already waiting (ScheduleKick), so that a
  // burst of requests makes one commit rather than the first alone and the rest after it. An
  // average, not the count of the moment: under load the count drops to 1 at each commit's end,
  // and a request that then committed alone would hold up its I/O thread's other connections.
  Store::CommitBy CommitBy() {
    const HttpServer* h = http.load(std::memory_order_acquire);
    if (options.record != RecordMode::kSync || h == nullptr) return Store::CommitBy::kWriter;
    // Fixed point, 1/16 units; updates from both I/O threads may race, which only blurs it.
    const int now = static_cast<int>(std::min<size_t>(h->in_flight(), 1 << 20)) * 16;
    int avg = in_flight_avg16.load(std::memory_order_relaxed);
    avg += (now - avg) / 8;
    in_flight_avg16.store(avg, std::memory_order_relaxed);
    return avg <= static_cast<int>(kCallerCommitMaxInFlight * 16) ? Store::CommitBy::kCaller
                                                                  : Store::CommitBy::kLater;
  }

  // After an Append with CommitBy::kLater: kicks the store from the back of the I/O queue, once
  // per burst (a kick already queued will see this record too).
  void ScheduleKick(Store::CommitBy by) {
    if (by != Store::CommitBy::kLater || kick_queued.exchange(true)) return;
    server->Post([this] {
      kick_queued.store(false);
      store->Kick();
    });
  }
  std::atomic<bool> kick_queued{false};
  std::atomic<int> in_flight_avg16{0};

  // Sends `body` to the request and to every replay waiting on it; with `remember`, keeps it for
  // later replays.
  void Finish(const RequestIds& ids, int status, std::string body, bool remember, bool committed) {
    auto shared = std::make_shared<const std::string>(std::move(body));
    std::vector<Waiter> waiters;
    {
      std::lock_guard<std::mutex> lock(idem_mu);
      if (remember) Remember(ids, shared, committed);
      auto it = in_flight.find(ids.flight());
      if (it != in_flight.end()) {
        waiters = std::move(it->second);
        in_flight.erase(it);
      }
    }
    for (auto& w : waiters) w(status, *shared);
  }

  // --record async: the record of a reply already sent is committed (or failed), so the store
  // answers for it now and memory may forget it.
  void MarkCommitted(const RequestIds& ids) {
    std::lock_guard<std::mutex> lock(idem_mu);
    for (auto [map, key] : {std::pair{&recent_ids, &ids.transaction_id},
                            std::pair{&recent_keys, &ids.idempotency_key}}) {
      auto it = map->find(std::string_view(*key));
      if (it != map->end()) it->second.committed = true;
    }
  }

  static bool IsJson(const HttpRequest& req) {
    std::string_view ct = req.Header("content-type");
    return ct.substr(0, 16) == "application/json";
  }

  void Handle(HttpRequest&& req, std::function<void(HttpResponse&&)> respond) {
    const Clock::time_point start = Clock::now();
    auto reply = [this, start, respond = std::move(respond)](Route route, HttpResponse&& r) {
      Count(route, r.status, start);
      respond(std::move(r));
    };
    const std::string& p = req.path;
    Route route = kUnknownRoute;
    const char* allowed = nullptr;
    if (p == "/v1/score") route = kScoreRoute, allowed = "POST";
    else if (p == "/v1/score/batch") route = kBatchRoute, allowed = "POST";
    else if (p.rfind("/v1/transactions/", 0) == 0 && p.size() > 17) route = kTransactionRoute, allowed = "GET";
    else if (p == "/healthz") route = kHealthRoute, allowed = "GET";
    else if (p == "/readyz") route = kReadyRoute, allowed = "GET";
    else if (p == "/metrics") route = kMetricsRoute, allowed = "GET";
    else if (p == "/v1/admin/reload") route = kReloadRoute, allowed = "POST";
    if (allowed == nullptr) {
      return reply(route, ErrorResponse(NotFound("no route for " + p)));
    }
    if (req.method != allowed) {
      HttpResponse r;
      r.status = 405;
      r.body = ErrorBody("method_not_allowed", req.method + " is not allowed on " + p + " (use " + allowed + ")");
      r.headers.emplace_back("Allow", allowed);
      return reply(route, std::move(r));
    }
    if (std::string_view(allowed) == "POST" && route != kReloadRoute && !IsJson(req)) {
      HttpResponse r;
      r.status = 415;
      r.body = ErrorBody("unsupported_media_type", "Content-Type must be application/json, got '" +
                                                     std::string(req.Header("content-type")) + "'");
      return reply(route, std::move(r));
    }
    if (route == kScoreRoute) return HandleScore(std::move(req), start, reply);
    if (route == kBatchRoute) return HandleBatch(std::move(req), start, reply);
    if (route == kTransactionRoute) {
      auto rec = store->Get(p.substr(17));
      if (!rec.ok()) return reply(route, ErrorResponse(rec.status()));
      if (!rec->has_value()) {
        return reply(route, ErrorResponse(NotFound("no transaction '" + p.substr(17) + "'")));
      }
      const TransactionRecord& t = **rec;
      std::string body = "{\"transaction\":" + t.transaction_json + ",\"prediction\":" + t.reply_json +
                         ",\"recorded_at\":\"" + FormatRfc3339(t.recorded_at_us / 1000000) + "\"}";
      return reply(route, JsonResponse(200, std::move(body)));
    }
    if (route == kHealthRoute) return reply(route, JsonResponse(200, "{\"status\":\"ok\"}"));
    if (route == kReadyRoute) {
      Status writable = store->CheckWritable();
      if (stopping.load()) writable = Unavailable("stopping");
      if (!writable.ok()) return reply(route, ErrorResponse(Unavailable("not ready: " + writable.message())));
      auto m = CurrentModel();
      std::string body = "{\"status\":\"ready\",\"model\":{\"name\":";
      AppendJsonString(&body, m->name);
      body += ",\"version\":";
      AppendJsonString(&body, m->version);
      body += "}}";
      return reply(route, JsonResponse(200, std::move(body)));
    }
    if (route == kMetricsRoute) {
      HttpResponse r;
      r.content_type = "text/plain; version=0.0.4";
      r.body = metrics.Render();
      return reply(route, std::move(r));
    }
    // /v1/admin/reload: {"model": "path"}, or no body for the current path.
    std::string path;
    if (!req.body.empty()) {
      auto j = nlohmann::json::parse(req.body, nullptr, false);
      if (!j.is_object() || (j.contains("model") && !j["model"].is_string())) {
        return reply(route, ErrorResponse(InvalidArgument(
                                "body must be a JSON object like {\"model\": \"models/new.model\"}"),
                            {{"model", "must be a string path"}}));
      }
      path = j.value("model", "");
    }
    Status s = owner->Reload(path);
    if (!s.ok()) return reply(route, ErrorResponse(s));
    auto m = CurrentModel();
    return reply(route, JsonResponse(200, "{\"status\":\"reloaded\",\"model\":{\"name\":\"" + m->name +
                                              "\",\"version\":\"" + m->version + "\"}}"));
  }

  template <typename Reply>
  void HandleScore(HttpRequest&& req, Clock::time_point start, Reply reply) {
    thread_local TransactionParser parser;
    ParsedTransaction tx;
    std::vector<FieldProblem> problems;
    Status s = parser.Parse(req.body, &tx, &problems);
    if (!s.ok()) return reply(kScoreRoute, ErrorResponse(s, problems));
    RequestIds ids{tx.transaction_id, std::string(req.Header("idempotency-key"))};
    ScoreOne(std::move(tx), std::move(ids), start, [reply](int status, const std::string& body) {
      reply(kScoreRoute, JsonResponse(status, body));
    });
  }

  template <typename Reply>
  void HandleBatch(HttpRequest&& req, Clock::time_point start, Reply reply) {
    thread_local TransactionParser parser;
    std::vector<ParsedTransaction> txs;
    std::vector<FieldProblem> problems;
    Status s = parser.ParseBatch(req.body, options.max_batch, &txs, &problems);
    if (!s.ok()) return reply(kBatchRoute, ErrorResponse(s, problems));
    struct BatchState {
      std::mutex mu;
      std::vector<std::string> bodies;
      int worst = 200;
      size_t remaining;
    };
    auto state = std::make_shared<BatchState>();
    state->bodies.resize(txs.size());
    state->remaining = txs.size();
    if (txs.empty()) return reply(kBatchRoute, JsonResponse(200, "{\"results\":[]}"));
    std::vector<Store::Write> writes;
    writes.reserve(txs.size());
    for (size_t i = 0; i < txs.size(); ++i) {
      RequestIds ids{txs[i].transaction_id, {}};
      ScoreOne(std::move(txs[i]), std::move(ids), start,
               [state, i, reply](int status, const std::string& body) {
                 bool last;
                 {
                   std::lock_guard<std::mutex> lock(state->mu);
                   state->bodies[i] = body;
                   if (status != 200) state->worst = status;
                   last = --state->remaining == 0;
                 }
                 if (!last) return;
                 if (state->worst != 200) {
                   return reply(kBatchRoute,
                                JsonResponse(state->worst, ErrorBody("unavailable",
                                                                     "some transactions could not be recorded")));
                 }
                 std::string out = "{\"results\":[";
                 for (size_t k = 0; k < state->bodies.size(); ++k) {
                   if (k > 0) out += ',';
                   out += state->bodies[k];
                 }
                 reply(kBatchRoute, JsonResponse(200, out + "]}"));
               },
               &writes);
    }
    const Store::CommitBy by = CommitBy();
    store->AppendAll(std::move(writes), by);
    ScheduleKick(by);
  }

  ScoringService* owner = nullptr;
};

ScoringService::ScoringService(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {
  impl_->owner = this;
}

ScoringService::~ScoringService() { Stop(); }

StatusOr<std::unique_ptr<ScoringService>> ScoringService::Start(const ServeOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  for (size_t r = 0; r < kNumRoutes; ++r) {
    impl->route_metrics[r].latency = &impl->metrics.GetHistogram(
        "vigil_http_request_duration_seconds", "HTTP request latency by route",
        {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1},
        {{"route", kRouteLabels[r]}});
  }
  VIGIL_ASSIGN_OR_RETURN(impl->model, impl->LoadModelFile(options.model_path));
  StoreOptions so;
  so.path = options.data_dir + "/vigil.db";
  so.sync = options.sync;
  // No reply waits for an async commit: let the writer gather a few milliseconds of records.
  if (options.record == RecordMode::kAsync) so.commit_delay = kAsyncCommitDelay;
  VIGIL_ASSIGN_OR_RETURN(impl->store, Store::Open(so));
  impl->engine = std::make_unique<FeatureEngine>(FeatureSet::kAll,
                                                 impl->model->scorer->engine_options());

  // Rebuild the online state from what the store holds (replays find their replies there).
  TransactionParser parser;
  std::vector<float> row(impl->engine->num_features());
  int64_t replayed = 0;
  VIGIL_RETURN_IF_ERROR(impl->store->Scan([&](const TransactionRecord& rec) {
    ParsedTransaction tx;
    std::vector<FieldProblem> problems;
    if (parser.Parse(rec.transaction_json, &tx, &problems).ok()) {
      impl->engine->Update({0, tx.timestamp, tx.customer_key, tx.terminal_key, tx.amount}, row);
    }
    impl->seen.Add(rec.transaction_id);
    if (!rec.idempotency_key.empty()) impl->seen.Add(rec.idempotency_key);
    ++replayed;
  }));

  Impl* raw = impl.get();
  impl->score_hist = &impl->metrics.GetHistogram(
      "vigil_score", "Fraud scores returned",
      {0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 0.95, 0.99});
  impl->metrics.AddGauge("vigil_store_backlog", "Records queued for the store writer, not yet committed",
                         [raw] { return static_cast<double>(raw->store->backlog()); });
  impl->metrics.AddGauge("vigil_store_committed_records", "Records committed since start",
                         [raw] { return static_cast<double>(raw->store->committed()); });
  impl->metrics.AddGauge("vigil_store_commits", "Write transactions committed since start",
                         [raw] { return static_cast<double>(raw->store->commits()); });

  auto service = std::unique_ptr<ScoringService>(new ScoringService(std::move(impl)));
  HttpServerOptions ho;
  ho.address = options.address;
  ho.port = options.port;
  ho.threads = options.threads;
  ho.max_body_bytes = options.max_body_bytes;
  VIGIL_ASSIGN_OR_RETURN(service->impl_->server,
                         HttpServer::Start(ho, [raw](HttpRequest&& req,
                                                     std::function<void(HttpResponse&&)> respond) {
                           raw->Handle(std::move(req), std::move(respond));
                         }));
  raw->http.store(raw->server.get(), std::memory_order_release);
  LogJson("info", "listening",
          "\"port\":" + std::to_string(service->port()) + ",\"model\":\"" + raw->model->name +
              "\",\"version\":\"" + raw->model->version + "\",\"replayed\":" +
              std::to_string(replayed) + ",\"record\":\"" +
              (options.record == RecordMode::kSync ? "sync" : "async") + "\",\"reasons\":\"" +
              std::string(raw->model->scorer->reasons_method()) + "\"");
  return service;
}

int ScoringService::port() const { return impl_->server->port(); }

Status ScoringService::Reload(const std::string& path) {
  std::lock_guard<std::mutex> reload_lock(impl_->reload_mu);
  const std::string p = path.empty() ? impl_->CurrentModel()->path : path;
  auto loaded = impl_->LoadModelFile(p);
  auto& counter = [&]() -> Counter& {
    return impl_->metrics.GetCounter("vigil_model_reloads_total", "Model reloads by result",
                                     {{"result", loaded.ok() ? "ok" : "failed"}});
  }();
  counter.Add();
  if (!loaded.ok()) {
    LogJson("error", "reload failed: " + loaded.status().message());
    return loaded.status();
  }
  if ((*loaded)->scorer->engine_options().label_delay_days !=
      impl_->CurrentModel()->scorer->engine_options().label_delay_days) {
    return InvalidArgument("the new model's label_delay_days differs from the serving feature state's");
  }
  {
    std::lock_guard<std::mutex> lock(impl_->model_mu);
    impl_->model = std::move(*loaded);
  }
  LogJson("info", "model reloaded",
          "\"model\":\"" + impl_->CurrentModel()->name + "\",\"version\":\"" +
              impl_->CurrentModel()->version + "\",\"reasons\":\"" +
              std::string(impl_->CurrentModel()->scorer->reasons_method()) + "\"");
  return Status::Ok();
}

void ScoringService::Stop() {
  if (!impl_ || impl_->stopping.exchange(true)) return;
  LogJson("info", "stopping: draining in-flight requests");
  if (impl_->server) impl_->server->Stop(std::chrono::seconds(10));
  if (impl_->store) {
    Status s = impl_->store->Flush();
    if (!s.ok()) LogJson("error", "store flush failed: " + s.message());
  }
  LogJson("info", "stopped");
}

}  // namespace vigil
