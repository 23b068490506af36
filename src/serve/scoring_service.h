// `vigil serve`: the HTTP front end of the scoring engine. It parses requests, calls the engine
// and renders its results; routing, errors and metrics are the router's (serve/router.h), the
// pipeline is the engine's (vigil/engine.h).
#ifndef VIGIL_SERVE_SCORING_SERVICE_H_
#define VIGIL_SERVE_SCORING_SERVICE_H_

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "auth/jwt.h"
#include "auth/rate_limiter.h"
#include "process/processor.h"
#include "vigil/engine.h"
#include "vigil/queue.h"
#include "vigil/status.h"

namespace vigil {

struct Route;

struct ServeOptions {
  EngineOptions engine;
  std::string address = "0.0.0.0";
  int port = 8080;                // 0: any free port
  int threads = 0;                // HTTP I/O threads; 0 = one per core
  size_t max_batch = 1000;        // transactions per /v1/score/batch call
  size_t max_body_bytes = 1 << 20;
  // The queues served on /api/queues (vigil/queue.h). Their data_dir and durability are the
  // engine's.
  QueueOptions queue;
  // `--process`: run the processor's workers in the server, from the queues above.
  bool process = false;
  ProcessorOptions processor;
  // Credentials on every route but /healthz and /readyz (API keys in the data dir's auth.db).
  // Off: every caller is an admin; `vigil serve` then listens on loopback only.
  bool auth = true;
  bool metrics_public = false;  // /metrics without credentials (for a scraper that has none)
  // Bearer JWTs accepted besides the API keys (people, and an identity provider's tokens).
  std::optional<auth::JwtOptions> jwt;
  // Per-caller rate and concurrency limits, and failed authentications per address.
  auth::RateLimitOptions limits;
  // Browser origins allowed to call the API (CORS), exactly as a browser sends them.
  std::vector<std::string> cors_origins;
  // HTTPS: a PEM certificate chain and its private key (HttpServerOptions); both or neither.
  std::string tls_cert_file, tls_key_file;
};

// A ScoringService owns the engine, the queues, the processor (when asked for), the HTTP server
// and the route table. Thread-safe.
class ScoringService {
 public:
  ~ScoringService();
  ScoringService(const ScoringService&) = delete;
  ScoringService& operator=(const ScoringService&) = delete;

  // Opens the engine (model, store, online state rebuilt from the records) and starts
  // listening.
  static StatusOr<std::unique_ptr<ScoringService>> Start(const ServeOptions& options);

  int port() const;
  // The admin key created on this start (no admin key was valid), to be shown once; else "".
  const std::string& first_admin_key() const;
  // Engine::Reload: a model name in the models folder; empty reloads the current file. (SIGHUP's:
  // audited as the signal's.)
  StatusOr<ModelInfo> Reload(std::string_view model_name = "");
  // Graceful stop: stop accepting, finish in-flight requests, flush the store.
  void Stop();

  // The route table (method, pattern, role, reach), in the order declared.
  std::vector<const Route*> routes() const;

 private:
  struct Impl;
  explicit ScoringService(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace vigil

#endif  // VIGIL_SERVE_SCORING_SERVICE_H_
