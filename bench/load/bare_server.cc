// The ceiling Vigil's HTTP path is measured against (bench/load/run.sh, mode "bare"): the same
// HTTP server and router as `vigil serve`, the same JSON parsing and validation of the request,
// and a reply of the same shape and size (a fixed prediction with three reasons, rendered by the
// same codec), but no idempotency, features, model or record. Vigil's throughput as a fraction
// of this one's travels between machines better than either number alone.
//
// Usage: bare_json_server PORT [THREADS]   (stops on SIGINT or SIGTERM)
#include <pthread.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "core/transaction_json.h"
#include "engine/prediction_json.h"
#include "monitor/metrics.h"
#include "serve/http_server.h"
#include "serve/router.h"
#include "core/json_text.h"

namespace vigil {
namespace {

Prediction FixedPrediction() {
  Prediction p;
  p.score = 0.0123;
  p.decision = Decision::kApprove;
  p.anomaly_score = 0.41;
  p.model_name = "gbdt";
  p.model_version = "0123456789ab";
  p.latency_us = 9;
  p.reasons = {{"TERMINAL_RISK_7D", "terminal had no fraud in 7 days", "terminal_risk_7d", 0,
                -0.31},
               {"AMOUNT_VS_CUSTOMER_AVERAGE", "amount is 1.1x this customer's 30-day average",
                "amount_vs_customer_avg_30d", 1.1, 0.012},
               {"CUSTOMER_TX_COUNT_1D", "3 transactions by this customer in a day",
                "customer_nb_tx_1d", 3, 0.004}};
  return p;
}

int Run(int port, int threads) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  MetricsRegistry metrics;
  Router router(metrics);
  const Prediction fixed = FixedPrediction();
  router.Add({"POST", "/v1/score", Role::kScorer, Reach::kAnywhere, BodyKind::kJson,
              [&fixed](RouteRequest&& req, const Respond& respond) {
                thread_local TransactionParser parser;
                Transaction tx;
                std::vector<FieldProblem> problems;
                Status s = parser.Parse(req.http.body, &tx, &problems);
                if (!s.ok()) return respond(ErrorResponse(s, problems));
                Prediction p = fixed;
                p.transaction_id = std::move(tx.transaction_id);
                respond(JsonResponse(200, RenderPrediction(p)));
              }});
  // The queue push of `vigil serve` without the queue: the same body parsing, a reply of the
  // same shape (bench/load/queue.sh's ceiling).
  std::atomic<uint64_t> pushed{0};
  router.Add({"POST", "/api/queues/{name}/push", Role::kScorer, Reach::kAnywhere, BodyKind::kJson,
              [&pushed](RouteRequest&& req, const Respond& respond) {
                thread_local TransactionParser parser;
                thread_local std::vector<MessageText> messages;
                std::vector<FieldProblem> problems;
                Status s = parser.ParseMessages(req.http.body, 1000, &messages, &problems);
                if (!s.ok()) return respond(ErrorResponse(s, problems));
                std::string body = "{\"queue\":";
                AppendJsonString(&body, req.Param("name"));
                body += ",\"id\":";
                AppendJsonString(&body, std::string(req.Param("name")) + "-" + std::to_string(++pushed));
                respond(JsonResponse(201, body + ",\"status\":\"queued\"}"));
              }});
  HttpServerOptions ho;
  ho.address = "127.0.0.1";
  ho.port = port;
  ho.threads = threads;
  auto server = HttpServer::Start(ho, [&router](HttpRequest&& req, auto respond) {
    router.Handle(std::move(req), std::move(respond));
  });
  if (!server.ok()) {
    std::fprintf(stderr, "bare_json_server: %s\n", server.status().ToString().c_str());
    return 1;
  }
  int sig = 0;
  sigwait(&signals, &sig);
  (*server)->Stop();
  return 0;
}

}  // namespace
}  // namespace vigil

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: bare_json_server PORT [THREADS]\n");
    return 2;
  }
  return vigil::Run(std::atoi(argv[1]), argc > 2 ? std::atoi(argv[2]) : 0);
}
