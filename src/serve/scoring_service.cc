#include "serve/scoring_service.h"

#include <atomic>
#include <deque>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/error_json.h"
#include "core/json_text.h"
#include "core/log.h"
#include "core/mutex.h"
#include "core/transaction_json.h"
#include "engine/prediction_json.h"
#include "monitor/metrics.h"
#include "serve/http_server.h"
#include "serve/key_routes.h"
#include "serve/queue_routes.h"
#include "serve/router.h"
#include "serve/worker_pool.h"

namespace vigil {
namespace {

constexpr size_t kMaxIdempotencyKeyLength = 255;
// Pulls that may wait on the queue at once (each on a thread of its own); more answer at once.
constexpr int kMaxWaitingPulls = 64;

// The Idempotency-Key header: absent (""), or 1..255 visible ASCII characters, sent once.
StatusOr<std::string> IdempotencyKey(const HttpRequest& req) {
  int count = 0;
  std::string_view value;
  for (const auto& [name, v] : req.headers) {
    if (name == "idempotency-key") {
      ++count;
      value = v;
    }
  }
  if (count == 0) return std::string();
  if (count > 1) return InvalidArgument("Idempotency-Key must be sent once, not " + std::to_string(count) + " times");
  bool visible = !value.empty() && value.size() <= kMaxIdempotencyKeyLength;
  for (char c : value) visible = visible && c > 0x20 && c < 0x7f;
  if (!visible) {
    return InvalidArgument("Idempotency-Key must be 1 to 255 visible ASCII characters");
  }
  return std::string(value);
}

HttpResponse OutcomeResponse(const ScoreOutcome& o) {
  if (!o.status.ok()) return ErrorResponse(o.status);
  return JsonResponse(200, *o.reply);
}

std::string ModelJson(const ModelInfo& m) {
  std::string b = "{\"name\":";
  AppendJsonString(&b, m.name);
  b += ",\"version\":";
  AppendJsonString(&b, m.version);
  b += ",\"algorithm\":";
  AppendJsonString(&b, AlgorithmName(m.algorithm));
  b += ",\"kernel\":";
  AppendJsonString(&b, KernelName(m.kernel));
  return b + "}";
}

}  // namespace

namespace {

std::string RoutesJson(const std::vector<const Route*>& routes) {
  std::string b = "{\"routes\":[";
  for (size_t i = 0; i < routes.size(); ++i) {
    const Route& r = *routes[i];
    b += i == 0 ? "{\"method\":" : ",{\"method\":";
    AppendJsonString(&b, r.method);
    b += ",\"pattern\":";
    AppendJsonString(&b, r.pattern);
    b += ",\"roles\":[";
    bool first = true;
    auto name = [&](Role role) {
      if (!r.roles.Has(role)) return;
      if (!first) b += ',';
      first = false;
      AppendJsonString(&b, RoleName(role));
    };
    name(Role::kPublic);
    for (Role role : kCallerRoles) name(role);
    b += "]}";
  }
  return b + "]}";
}

}  // namespace

struct ScoringService::Impl {
  ServeOptions options;
  std::unique_ptr<Engine> engine;
  std::unique_ptr<Queue> queue;
  std::unique_ptr<Processor> processor;
  std::unique_ptr<auth::Authenticator> auth;  // null when authentication is off
  std::unique_ptr<auth::RateLimiter> limiter;  // with auth
  std::unique_ptr<auth::AuditLog> audit;
  std::string first_admin_key;
  std::unique_ptr<Router> router;
  std::unique_ptr<WorkerPool> admin;       // one thread: model reloads
  std::unique_ptr<WorkerPool> queue_pool;  // queue calls that wait on a server
  std::unique_ptr<WorkerPool> queue_wait_pool;  // pulls that wait for a message
  std::unique_ptr<HttpServer> server;
  std::atomic<bool> stopping{false};
  // The server, for the engine's after_burst: set once it has started (requests may arrive
  // before `server` is assigned), cleared before it stops.
  std::atomic<HttpServer*> http{nullptr};

  void Score(RouteRequest&& req, Respond respond) {
    auto key = IdempotencyKey(req.http);
    if (!key.ok()) return respond(ErrorResponse(key.status(), {{"Idempotency-Key", key.status().message()}}));
    thread_local TransactionParser parser;
    Transaction tx;
    std::vector<FieldProblem> problems;
    Status s = parser.Parse(req.http.body, &tx, &problems);
    if (!s.ok()) return respond(ErrorResponse(s, problems));
    engine->Score(std::move(tx), std::move(*key),
                  [respond = std::move(respond)](const ScoreOutcome& o) { respond(OutcomeResponse(o)); });
  }

  void ScoreBatch(RouteRequest&& req, Respond respond) {
    if (!req.http.Header("idempotency-key").empty()) {
      return respond(ErrorResponse(InvalidArgument(
          "Idempotency-Key is not taken on /v1/score/batch: each transaction's transaction_id is "
          "its idempotency key (a repeated id gets its first reply)")));
    }
    thread_local TransactionParser parser;
    std::vector<Transaction> txs;
    std::vector<FieldProblem> problems;
    Status s = parser.ParseBatch(req.http.body, options.max_batch, &txs, &problems);
    if (!s.ok()) return respond(ErrorResponse(s, problems));
    engine->ScoreBatch(std::move(txs), [respond = std::move(respond)](std::vector<ScoreOutcome> outs) {
      std::string body = "{\"results\":[";
      for (size_t i = 0; i < outs.size(); ++i) {
        if (!outs[i].status.ok()) {
          // The batch's records are committed together: when one fails they all do. Its
          // repeats of earlier transactions keep their first replies on a retry.
          return respond(ErrorResponse(outs[i].status.WithContext(
              "transactions[" + std::to_string(i) + "]: the batch was not recorded")));
        }
        if (i > 0) body += ',';
        body += *outs[i].reply;
      }
      respond(JsonResponse(200, body + "]}"));
    });
  }

  void GetTransaction(RouteRequest&& req, const Respond& respond) {
    const std::string_view id = req.Param("id");
    if (id.size() > 4 * kMaxIdLength) return respond(ErrorResponse(NotFound("no such transaction")));
    auto found = engine->Find(id);
    if (!found.ok()) return respond(ErrorResponse(found.status()));
    if (!found->has_value()) {
      std::string m = "no transaction '";
      m += id;
      return respond(ErrorResponse(NotFound(m + "'")));
    }
    respond(JsonResponse(200, RenderTransactionDetail(**found)));
  }

  void Ready(const Respond& respond) {
    Status s = stopping.load() ? Unavailable("stopping") : engine->Ready();
    if (!s.ok()) return respond(ErrorResponse(Unavailable("not ready: " + s.message())));
    respond(JsonResponse(200, "{\"status\":\"ready\",\"model\":" + ModelJson(engine->model()) + "}"));
  }

  // {"model": "name"} or no body (the current file again), on the admin thread.
  void ReloadModel(RouteRequest&& req, const Respond& respond) {
    std::string name;
    if (!req.http.body.empty()) {
      auto j = nlohmann::json::parse(req.http.body, nullptr, /*allow_exceptions=*/false);
      if (!j.is_object() || (j.contains("model") && !j["model"].is_string())) {
        return respond(ErrorResponse(
            InvalidArgument("the body must be a JSON object like {\"model\": \"gbdt\"}"),
            {{"model", "must be a model name (a string)"}}));
      }
      name = j.value("model", "");
    }
    Engine* e = engine.get();
    auth::AuditLog* log = audit.get();
    const std::string by = req.principal.id, from = req.http.remote;
    const bool posted = admin->Post([e, log, name, by, from, respond] {
      auto info = e->Reload(name);
      log->Record({by, "model.reload", info.ok() ? info->name + " " + info->version : name,
                   info.ok() ? "ok" : "failed", from, info.ok() ? "" : info.status().message()});
      (void)log->Flush();
      if (!info.ok()) return respond(ErrorResponse(info.status()));
      respond(JsonResponse(200, "{\"status\":\"reloaded\",\"model\":" + ModelJson(*info) + "}"));
    });
    if (!posted) respond(ErrorResponse(Unavailable("stopping")));
  }

  // Per-queue series read from the queue's stats at each scrape, and the processor's counters.
  void AddQueueMetrics() {
    MetricsRegistry& m = engine->metrics();
    Queue* q = queue.get();
    auto add = [&](const char* name, const char* help, bool counter, double (*read)(const QueueStats&)) {
      m.AddSeries(name, help, counter, [q, read] {
        std::vector<std::pair<Labels, double>> out;
        for (const QueueStats& s : q->List()) out.push_back({{{"queue", s.name}}, read(s)});
        return out;
      });
    };
    add("vigil_queue_depth", "Messages waiting to be delivered", false,
        [](const QueueStats& s) { return static_cast<double>(s.depth); });
    add("vigil_queue_in_flight", "Messages leased and not yet acknowledged", false,
        [](const QueueStats& s) { return static_cast<double>(s.in_flight); });
    add("vigil_queue_dead_letters", "Messages in the dead letters", false,
        [](const QueueStats& s) { return static_cast<double>(s.dead_letters); });
    add("vigil_queue_oldest_age_seconds", "Age of the oldest message waiting", false,
        [](const QueueStats& s) { return s.oldest_age_seconds; });
    add("vigil_queue_pushed_total", "Messages pushed since the start", true,
        [](const QueueStats& s) { return static_cast<double>(s.pushed); });
    add("vigil_queue_delivered_total", "Deliveries by pulls since the start", true,
        [](const QueueStats& s) { return static_cast<double>(s.delivered); });
    add("vigil_queue_acked_total", "Messages acknowledged since the start", true,
        [](const QueueStats& s) { return static_cast<double>(s.acked); });
    add("vigil_queue_dead_lettered_total", "Messages sent to the dead letters since the start", true,
        [](const QueueStats& s) { return static_cast<double>(s.dead_lettered); });
    add("vigil_queue_expired_total", "Leases that ran out since the start", true,
        [](const QueueStats& s) { return static_cast<double>(s.expired); });
    if (!options.process) return;
    // Started before the server is, and kept until the service goes.
    const Processor* p = processor.get();
    auto stat = [&](const char* name, const char* help, uint64_t ProcessorStats::*field) {
      m.AddSeries(name, help, true, [p, field] {
        return std::vector<std::pair<Labels, double>>{{{}, static_cast<double>(p->stats().*field)}};
      });
    };
    stat("vigil_processor_processed_total", "Queue transactions scored and acknowledged", &ProcessorStats::processed);
    stat("vigil_processor_flagged_total", "Of those, decided review or decline", &ProcessorStats::flagged);
    stat("vigil_processor_errors_total", "Queue messages that were not transactions (dead-lettered)",
         &ProcessorStats::errors);
    stat("vigil_processor_retried_total", "Messages given back after the engine or the output queue refused",
         &ProcessorStats::retried);
  }

  void AddRoutes() {
    Router& r = *router;
    r.Add({"POST", "/v1/score", Role::kScorer, Reach::kAnywhere, BodyKind::kJson,
           [this](RouteRequest&& q, Respond p) { Score(std::move(q), std::move(p)); }});
    r.Add({"POST", "/v1/score/batch", Role::kScorer, Reach::kAnywhere, BodyKind::kJson,
           [this](RouteRequest&& q, Respond p) { ScoreBatch(std::move(q), std::move(p)); }});
    r.Add({"GET", "/v1/transactions/{id}", Role::kAnalyst, Reach::kAnywhere, BodyKind::kNone,
           [this](RouteRequest&& q, const Respond& p) { GetTransaction(std::move(q), p); }});
    r.Add({"GET", "/healthz", Role::kPublic, Reach::kAnywhere, BodyKind::kNone,
           [](RouteRequest&&, const Respond& p) { p(JsonResponse(200, "{\"status\":\"ok\"}")); }});
    r.Add({"GET", "/readyz", Role::kPublic, Reach::kAnywhere, BodyKind::kNone,
           [this](RouteRequest&&, const Respond& p) { Ready(p); }});
    r.Add({"GET", "/metrics", options.metrics_public ? Role::kPublic : Role::kViewer, Reach::kAnywhere, BodyKind::kNone,
           [this](RouteRequest&&, const Respond& p) {
             HttpResponse m;
             m.content_type = "text/plain; version=0.0.4";
             m.body = engine->metrics().Render();
             p(std::move(m));
           }});
    r.Add({"POST", "/v1/admin/reload", Role::kAdmin, Reach::kLoopback, BodyKind::kOptionalJson,
           [this](RouteRequest&& q, const Respond& p) { ReloadModel(std::move(q), p); }});
    // The route table itself: who may call what (an admin is admitted everywhere, every caller
    // on a viewer route).
    r.Add({"GET", "/v1/admin/routes", Role::kAdmin, Reach::kLoopback, BodyKind::kNone,
           [this](RouteRequest&&, const Respond& p) { p(JsonResponse(200, RoutesJson(router->routes()))); }});
  }
};

ScoringService::ScoringService(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ScoringService::~ScoringService() { Stop(); }

StatusOr<std::unique_ptr<ScoringService>> ScoringService::Start(const ServeOptions& options) {
  HttpServerOptions ho;
  ho.address = options.address;
  ho.port = options.port;
  ho.threads = options.threads;
  ho.max_body_bytes = options.max_body_bytes;
  ho.tls_cert_file = options.tls_cert_file;
  ho.tls_key_file = options.tls_key_file;
  // A start that fails changes nothing: a bad certificate is found before any store is opened
  // or any key created.
  VIGIL_RETURN_IF_ERROR(HttpServer::CheckOptions(ho));
  auto impl = std::make_unique<Impl>();
  Impl* raw = impl.get();
  impl->options = options;
  EngineOptions eo = options.engine;
  // The records of a burst of requests are committed together once the I/O thread has read them
  // all: the task runs behind the requests already waiting on that thread.
  eo.after_burst = [raw](std::function<void()> task) {
    HttpServer* h = raw->http.load(std::memory_order_acquire);
    if (h == nullptr) return task();
    h->Post(std::move(task));
  };
  VIGIL_ASSIGN_OR_RETURN(impl->engine, Engine::Open(eo));
  QueueOptions qo = options.queue;
  qo.data_dir = options.engine.data_dir;
  qo.durability = options.engine.durability;
  VIGIL_ASSIGN_OR_RETURN(impl->queue, Queue::Open(qo));
  impl->router = std::make_unique<Router>(impl->engine->metrics());
  impl->router->SetCorsOrigins(options.cors_origins);
  impl->admin = std::make_unique<WorkerPool>(1);
  VIGIL_ASSIGN_OR_RETURN(impl->audit, auth::AuditLog::Open(options.engine.data_dir));
  if (options.auth) {
    VIGIL_ASSIGN_OR_RETURN(impl->auth,
                           auth::Authenticator::Open(options.engine.data_dir,
                                                     options.jwt ? &*options.jwt : nullptr));
    VIGIL_ASSIGN_OR_RETURN(impl->first_admin_key, impl->auth->EnsureAdminKey());
    impl->router->SetAuthenticator(impl->auth.get());
    impl->limiter = std::make_unique<auth::RateLimiter>(options.limits);
    impl->router->SetRateLimiter(impl->limiter.get());
    impl->router->SetAuditLog(impl->audit.get());
    AddKeyRoutes(*impl->router, impl->auth->keys(), *impl->admin, *impl->audit);
  }
  impl->AddRoutes();
  // A backend that waits on a server (NATS) is called from a pool, so that the two I/O threads
  // keep serving while up to 32 queue calls wait for their round trips.
  if (impl->queue->calls_wait_on_network()) impl->queue_pool = std::make_unique<WorkerPool>(32);
  // Pulls that wait for a message (long polls) wait on threads of their own.
  impl->queue_wait_pool = std::make_unique<WorkerPool>(kMaxWaitingPulls);
  QueueRouteOptions ro;
  ro.max_message_bytes = qo.max_message_bytes;
  ro.max_batch = qo.max_batch;
  ro.max_wait = qo.max_wait;
  ro.pool = impl->queue_pool.get();
  ro.wait_pool = impl->queue_wait_pool.get();
  ro.max_waiting = kMaxWaitingPulls;
  ro.stopping = &impl->stopping;
  AddQueueRoutes(*impl->router, *impl->queue, ro);
  if (options.process) {
    ProcessorOptions po = options.processor;
    po.flush_before_ack = options.engine.record == RecordMode::kAsync;
    VIGIL_ASSIGN_OR_RETURN(impl->processor, Processor::Start(*impl->engine, *impl->queue, po));
  }
  impl->AddQueueMetrics();

  VIGIL_ASSIGN_OR_RETURN(impl->server,
                         HttpServer::Start(ho, [raw](HttpRequest&& req,
                                                     std::function<void(HttpResponse&&)> respond) {
                           raw->router->Handle(std::move(req), std::move(respond));
                         }));
  raw->http.store(raw->server.get(), std::memory_order_release);
  const ModelInfo m = raw->engine->model();
  Log(LogLevel::kInfo, "listening",
      {{"address", options.address},
       {"port", raw->server->port()},
       {"scheme", options.tls_cert_file.empty() ? "http" : "https"},
       {"model", m.name},
       {"version", m.version},
       {"record", options.engine.record == RecordMode::kSync ? "sync" : "async"},
       {"reasons", m.reasons_method},
       {"kernel", KernelName(m.kernel)},
       {"queue", raw->queue->backend()},
       {"process", options.process},
       {"auth", options.auth ? "api keys" : "off"}});
  return std::unique_ptr<ScoringService>(new ScoringService(std::move(impl)));
}

int ScoringService::port() const { return impl_->server->port(); }

const std::string& ScoringService::first_admin_key() const { return impl_->first_admin_key; }

StatusOr<ModelInfo> ScoringService::Reload(std::string_view model_name) {
  auto info = impl_->engine->Reload(model_name);
  impl_->audit->Record({"signal", "model.reload",
                        info.ok() ? info->name + " " + info->version : std::string(model_name),
                        info.ok() ? "ok" : "failed", "local",
                        info.ok() ? "" : info.status().message()});
  return info;
}

std::vector<const Route*> ScoringService::routes() const { return impl_->router->routes(); }

void ScoringService::Stop() {
  if (!impl_ || impl_->stopping.exchange(true)) return;
  Log(LogLevel::kInfo, "stopping: draining in-flight requests");
  if (impl_->admin) impl_->admin->Stop();
  if (impl_->server) impl_->server->Stop(std::chrono::seconds(10));
  impl_->http.store(nullptr);
  if (impl_->processor) impl_->processor->Stop();
  if (impl_->queue_pool) impl_->queue_pool->Stop();
  if (impl_->queue_wait_pool) impl_->queue_wait_pool->Stop();  // within a wait slice
  if (impl_->queue) impl_->queue->Stop();
  if (impl_->engine) impl_->engine->Stop();
  Log(LogLevel::kInfo, "stopped");
}

}  // namespace vigil
