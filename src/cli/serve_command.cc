#include <CLI/CLI.hpp>
#include <algorithm>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <pthread.h>
#include <unistd.h>

#include "cli/cli_util.h"
#include "core/file_util.h"
#include "serve/scoring_service.h"

namespace vigil::cli {

void AddServeCommand(CLI::App& app, int* exit_code) {
  auto* cmd = app.add_subcommand("serve", "Serve real-time scoring over HTTP");
  struct Args {
    ServeOptions serve;
    std::string record = "sync", sync = "normal", retain = "90d", kernel = "auto", auth = "on";
    std::string jwt_algorithms, jwt_secret_file, jwt_public_keys, jwt_audiences;
    std::vector<std::string> rate_limits, concurrency_limits;
    std::string failure_limit = "0.5/30", cors_origins;
    auth::JwtOptions jwt;
  };
  auto args = std::make_shared<Args>();
  ServeOptions& o = args->serve;
  EngineOptions& e = o.engine;
  cmd->add_option("--model", e.model_path, "Model file")->capture_default_str()->envname("VIGIL_MODEL");
  cmd->add_option("--models-dir", e.models_dir,
                  "Folder that POST /v1/admin/reload {\"model\": NAME} loads NAME.model from "
                  "(default: the folder of --model)")
      ->envname("VIGIL_MODELS_DIR");
  cmd->add_option("--max-model-bytes", e.max_model_bytes, "Largest model file loaded")
      ->capture_default_str()->envname("VIGIL_MAX_MODEL_BYTES");
  cmd->add_option("--port", o.port, "TCP port (0: any free port)")->capture_default_str()->envname("VIGIL_PORT");
  cmd->add_option("--address", o.address, "Address to listen on")->capture_default_str()->envname("VIGIL_ADDRESS");
  cmd->add_option("--data-dir", e.data_dir, "Folder of the embedded store (journal, index vigil.db, snapshots)")
      ->capture_default_str()->envname("VIGIL_DATA_DIR");
  cmd->add_option("--auth", args->auth,
                  "on: every route but /healthz and /readyz needs an API key (`vigil keys`; the "
                  "first start writes an admin key to DATA_DIR/admin.key); off: no credentials, "
                  "for local development only (listens on 127.0.0.1)")
      ->capture_default_str()->envname("VIGIL_AUTH")->check(CLI::IsMember({"on", "off"}));
  cmd->add_flag("--metrics-public", o.metrics_public,
                "Serve /metrics without credentials (for a scraper that has none)")
      ->envname("VIGIL_METRICS_PUBLIC");
  cmd->add_option("--jwt-algorithms", args->jwt_algorithms,
                  "Accept bearer JWTs signed with these (comma-separated: HS256, RS256, ES256); "
                  "none by default")
      ->envname("VIGIL_JWT_ALGORITHMS");
  cmd->add_option("--jwt-secret-file", args->jwt_secret_file,
                  "File holding the HS256 secret (at least 32 bytes)")
      ->envname("VIGIL_JWT_SECRET_FILE");
  cmd->add_option("--jwt-public-keys", args->jwt_public_keys,
                  "PEM (public keys or certificates) or JWKS file of the RS256 / ES256 keys")
      ->envname("VIGIL_JWT_PUBLIC_KEYS");
  cmd->add_option("--jwt-issuer", args->jwt.issuer, "The `iss` a token must have")
      ->envname("VIGIL_JWT_ISSUER");
  cmd->add_option("--jwt-audience", args->jwt_audiences,
                  "The `aud` a token must have one of (comma-separated)")
      ->envname("VIGIL_JWT_AUDIENCE");
  cmd->add_option("--jwt-role-claim", args->jwt.role_claim,
                  "The claim (or dotted path) holding the token's roles")
      ->capture_default_str()->envname("VIGIL_JWT_ROLE_CLAIM");
  cmd->add_option("--jwt-leeway", args->jwt.leeway_seconds,
                  "Clock skew allowed for exp, nbf and iat, in seconds")
      ->capture_default_str()->envname("VIGIL_JWT_LEEWAY")->check(CLI::Range(0, 86400));
  cmd->add_option("--rate-limit", args->rate_limits,
                  "NAME=RATE[/BURST]: requests per second of a role's keys and tokens, or of one "
                  "key (key_...); repeat for more (none by default)")
      ->envname("VIGIL_RATE_LIMIT")->delimiter(',');
  cmd->add_option("--concurrency-limit", args->concurrency_limits,
                  "NAME=N: requests at once of a role's callers or of one key; repeat for more")
      ->envname("VIGIL_CONCURRENCY_LIMIT")->delimiter(',');
  cmd->add_option("--auth-failure-limit", args->failure_limit,
                  "RATE[/BURST]: failed authentications per second from one address before its "
                  "requests get 429 (0: no limit)")
      ->capture_default_str()->envname("VIGIL_AUTH_FAILURE_LIMIT");
  cmd->add_option("--cors-origins", args->cors_origins,
                  "Browser origins that may call the API, comma-separated "
                  "(https://ui.example[:port]); none by default")
      ->envname("VIGIL_CORS_ORIGINS");
  auto* tls_cert = cmd->add_option("--tls-cert", o.tls_cert_file,
                                   "HTTPS: the server's certificate chain (PEM, its own first); "
                                   "TLS 1.2 and 1.3 only")
                       ->envname("VIGIL_TLS_CERT");
  auto* tls_key = cmd->add_option("--tls-key", o.tls_key_file,
                                  "HTTPS: the certificate's private key (PEM, unencrypted, "
                                  "readable by the server's user only)")
                      ->envname("VIGIL_TLS_KEY");
  tls_cert->needs(tls_key);
  tls_key->needs(tls_cert);
  cmd->add_option("--threads", o.threads, "HTTP I/O threads (0: one per core)")
      ->capture_default_str()->envname("VIGIL_THREADS");
  cmd->add_option("--record", args->record,
                  "sync: reply once the record is committed (nothing answered is lost on a crash); "
                  "async: reply first, commit in the background")
      ->capture_default_str()->envname("VIGIL_RECORD")->check(CLI::IsMember({"sync", "async"}));
  cmd->add_option("--sync", args->sync,
                  "normal: a record is committed once written to the OS (survives a process crash); full: once on disk (fdatasync; survives a power loss too)")
      ->capture_default_str()->envname("VIGIL_SYNC")->check(CLI::IsMember({"normal", "full"}));
  cmd->add_option("--retain", args->retain,
                  "Keep records this long (90d, 12h, ...; 0: forever); older journal segments and "
                  "index rows are dropped once a minute")
      ->capture_default_str()->envname("VIGIL_RETAIN");
  cmd->add_option("--max-batch", o.max_batch, "Transactions per /v1/score/batch call")
      ->capture_default_str()->envname("VIGIL_MAX_BATCH");
  cmd->add_option("--max-body-bytes", o.max_body_bytes, "Largest request body (413 above)")
      ->capture_default_str()->envname("VIGIL_MAX_BODY_BYTES");
  cmd->add_option("--reasons", e.explain_top_k, "Reasons per reply (0: none)")
      ->capture_default_str()->envname("VIGIL_REASONS");
  cmd->add_flag("--exact-reasons", e.exact_reasons,
                "Exact TreeSHAP also for trees too deep for its tables (deep random forests: "
                "milliseconds per request) instead of path attributions")
      ->envname("VIGIL_EXACT_REASONS");
  AddKernelOption(*cmd, &args->kernel);
  QueueOptions& q = o.queue;
  cmd->add_option("--queue", q.url,
                  "Queues served on /api/queues: embedded (in --data-dir) or nats://host:port")
      ->capture_default_str()->envname("VIGIL_QUEUE");
  q.url = "embedded";
  cmd->add_option("--queue-max-attempts", q.max_attempts,
                  "Deliveries of a leased message without an ack before it goes to the dead letters")
      ->capture_default_str()->envname("VIGIL_QUEUE_MAX_ATTEMPTS")->check(CLI::Range(1, 1000));
  cmd->add_option("--queue-max-message-bytes", q.max_message_bytes, "Largest message content (413 above)")
      ->capture_default_str()->envname("VIGIL_QUEUE_MAX_MESSAGE_BYTES");
  cmd->add_option("--queue-max-memory-bytes", q.max_memory_bytes,
                  "Embedded queue: content of unacknowledged messages held in memory before pushes "
                  "are refused (429)")
      ->capture_default_str()->envname("VIGIL_QUEUE_MAX_MEMORY_BYTES");
  cmd->add_flag("--process", o.process,
                "Run the processor in the server: score the transactions of TQ1 and TQ2, push the "
                "prediction records to PQ1")
      ->envname("VIGIL_PROCESS");
  cmd->add_option("--process-threads", o.processor.threads, "Processor worker threads")
      ->capture_default_str()->envname("VIGIL_PROCESS_THREADS")->check(CLI::Range(1, 256));
  cmd->add_option("--process-batch", o.processor.batch, "Messages per pull of a processor worker")
      ->capture_default_str()->envname("VIGIL_PROCESS_BATCH")->check(CLI::Range(1, 1000));
  cmd->callback([args, exit_code, cmd] {
    ServeOptions o = args->serve;
    o.engine.record = args->record == "async" ? RecordMode::kAsync : RecordMode::kSync;
    o.engine.durability =
        args->sync == "full" ? Durability::kPowerLoss : Durability::kProcessCrash;
    auto retain = ParseDuration(args->retain);
    if (!retain.ok()) {
      *exit_code = Fail("serve", retain.status().WithContext("--retain"));
      return;
    }
    o.engine.retain = *retain;
    auto kernel = ParseKernel(args->kernel);
    if (!kernel.ok()) {
      *exit_code = Fail("serve", kernel.status().WithContext("--kernel / VIGIL_KERNEL"));
      return;
    }
    o.engine.kernel = *kernel;
    if (o.port < 0 || o.port > 65535) {
      *exit_code = Fail("serve", InvalidArgument("--port must be 0..65535"));
      return;
    }
    o.auth = args->auth == "on";
    for (const std::string& origin : SplitList(args->cors_origins)) {
      const size_t scheme = origin.find("://");
      const std::string_view rest =
          scheme == std::string::npos ? "" : std::string_view(origin).substr(scheme + 3);
      if (!(origin.starts_with("https://") || origin.starts_with("http://")) || rest.empty() ||
          rest.find_first_of("/*?# ") != std::string_view::npos) {
        *exit_code = Fail("serve", InvalidArgument("--cors-origins: '" + origin +
                                                   "' is not an origin like https://ui.example "
                                                   "(a scheme and a host, an optional port, no "
                                                   "path, no wildcard)"));
        return;
      }
      o.cors_origins.push_back(origin);
    }
    for (const std::string& spec : args->rate_limits) {
      if (Status st = auth::AddRateLimit(spec, &o.limits); !st.ok()) {
        *exit_code = Fail("serve", st.WithContext("--rate-limit " + spec));
        return;
      }
    }
    for (const std::string& spec : args->concurrency_limits) {
      if (Status st = auth::AddConcurrencyLimit(spec, &o.limits); !st.ok()) {
        *exit_code = Fail("serve", st.WithContext("--concurrency-limit " + spec));
        return;
      }
    }
    if (args->failure_limit == "0") {
      o.limits.failures = {};
    } else {
      auto rate = auth::ParseRate(args->failure_limit);
      if (!rate.ok()) {
        *exit_code = Fail("serve", rate.status().WithContext("--auth-failure-limit"));
        return;
      }
      o.limits.failures = *rate;
    }
    if (!args->jwt_algorithms.empty()) {
      auth::JwtOptions jwt = args->jwt;
      jwt.algorithms = SplitList(args->jwt_algorithms);
      jwt.audiences = SplitList(args->jwt_audiences);
      // An identity provider's keys sign tokens for many applications: without an issuer and an
      // audience, a token minted for another one would be taken here (RFC 8725 §3.9).
      const bool asymmetric = std::any_of(jwt.algorithms.begin(), jwt.algorithms.end(),
                                          [](const std::string& a) { return a != "HS256"; });
      if (asymmetric && (jwt.issuer.empty() || jwt.audiences.empty())) {
        *exit_code = Fail("serve", InvalidArgument("RS256 and ES256 tokens need --jwt-issuer and "
                                                   "--jwt-audience: tokens an identity provider "
                                                   "signs for other applications must not pass"));
        return;
      }
      if (!args->jwt_secret_file.empty()) {
        auto secret = ReadFile(args->jwt_secret_file, 4096);
        if (!secret.ok()) {
          *exit_code = Fail("serve", secret.status().WithContext("--jwt-secret-file"));
          return;
        }
        while (!secret->empty() && (secret->back() == '\n' || secret->back() == '\r')) {
          secret->pop_back();
        }
        jwt.hs256_secret = std::move(*secret);
      }
      if (!args->jwt_public_keys.empty()) {
        auto keys = ReadFile(args->jwt_public_keys, 1 << 20);
        if (!keys.ok()) {
          *exit_code = Fail("serve", keys.status().WithContext("--jwt-public-keys"));
          return;
        }
        jwt.public_keys = std::move(*keys);
      }
      o.jwt = std::move(jwt);
    } else if (!args->jwt_secret_file.empty() || !args->jwt_public_keys.empty()) {
      *exit_code = Fail("serve", InvalidArgument("--jwt-secret-file and --jwt-public-keys need "
                                                 "--jwt-algorithms (the algorithms accepted)"));
      return;
    }
    if (!o.auth) {
      if (cmd->count("--address") > 0 && o.address != "127.0.0.1" && o.address != "::1" &&
          o.address != "localhost") {
        *exit_code = Fail("serve", InvalidArgument("--auth off listens on 127.0.0.1 only: "
                                                   "drop --address, or turn authentication on"));
        return;
      }
      o.address = "127.0.0.1";
      std::fprintf(stderr,
                   "vigil serve: WARNING: authentication is OFF (--auth off): anyone on this "
                   "machine may call every route, admin routes included; listening on 127.0.0.1 "
                   "only. Do not run it so in production.\n");
    }
    // Signals go to one waiting thread, not to whichever thread runs: block them everywhere first.
    const sigset_t signals = BlockTerminationSignals(/*and_hangup=*/true);
    auto service = ScoringService::Start(o);
    if (!service.ok()) {
      *exit_code = Fail("serve", service.status());
      return;
    }
    std::printf("vigil serve: listening on %s://%s:%d (model %s)\n",
                o.tls_cert_file.empty() ? "http" : "https",
                o.address == "0.0.0.0" ? "127.0.0.1" : o.address.c_str(), (*service)->port(),
                o.engine.model_path.c_str());
    if (!(*service)->first_admin_key().empty() && ::isatty(STDOUT_FILENO) == 0) {
      // Not a terminal: a journal or a log driver would keep the secret. The file has it.
      std::printf("vigil serve: first start: created an admin API key in %s (readable by its owner "
                  "only); `vigil keys create --role scorer --name NAME --data-dir %s` issues keys "
                  "for services.\n",
                  (std::filesystem::path(o.engine.data_dir) / "admin.key").c_str(),
                  o.engine.data_dir.c_str());
    } else if (!(*service)->first_admin_key().empty()) {
      std::printf(
          "vigil serve: first start: created an admin API key, shown this once and kept in %s "
          "(readable by its owner only):\n  %s\nUse it as 'Authorization: Bearer <key>'; `vigil "
          "keys create --role scorer --name NAME --data-dir %s` issues keys for services.\n",
          (std::filesystem::path(o.engine.data_dir) / "admin.key").c_str(),
          (*service)->first_admin_key().c_str(), o.engine.data_dir.c_str());
    }
    std::fflush(stdout);
    while (true) {
      int sig = 0;
      sigwait(&signals, &sig);
      if (sig == SIGHUP) {
        (void)(*service)->Reload();
        continue;
      }
      break;
    }
    (*service)->Stop();
    *exit_code = 0;
  });
}

}  // namespace vigil::cli
