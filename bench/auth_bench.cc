// Authentication on the request path: what it costs to learn who is calling, per request, for
// each kind of credentials, and what it adds to the router's work.
//
//   ApiKey         Authenticator::Authenticate("Bearer vgk_...") of a valid key: the header
//                  checked, the secret's SHA-256 looked up in the in-memory snapshot (no lock,
//                  no I/O)
//   ApiKeyUnknown  a well-formed key (prefix and checksum right) that was never issued: what a
//                  guesser costs the server, the store's change check (at most every 100 ms)
//                  included. The same key each time; a new one would cost the same
//   JwtHs256       Authenticate("Bearer <token>") of a valid HS256 token with a role claim (and
//   JwtRs256       iss, aud, exp, nbf, iat, jti), signed with the secret, a 2048-bit RSA key, a
//   JwtEs256       P-256 key. The Authenticator caches a verified token (until it expires, at
//                  most 600 s), so these measure a caller that sends the same token again: the
//                  token's SHA-256 and a lookup, alike for the three
//   JwtVerifyHs256 JwtVerifier::Verify of the same tokens: what a token the cache has not seen
//   JwtVerifyRs256 costs (its first request, and one every 600 s after): decoding, two JSON
//   JwtVerifyEs256 parses, and the HMAC, RSA or ECDSA check
//   RouterNoAuth   Router::Handle of a GET route whose handler answers at once, authentication
//                  off, the request carrying an Authorization header all the same
//   RouterApiKey   the same with an Authenticator and a RateLimiter (default options: no rate
//                  or concurrency limit, failures counted per address) and a valid scorer key.
//                  Less RouterNoAuth: the router's per-request overhead of authentication
// items_per_second counts calls (one thread). The JWT verifier pins HS256, RS256 and ES256, with
// one key each, and checks an issuer and an audience. The Router benchmarks build
// the HttpRequest inside the loop (Handle consumes it), in both alike. The key store lives in a
// fresh folder under /tmp, removed at exit.
//
// Run: ./build/auth_bench [--benchmark_filter=...] [--benchmark_repetitions=3]
// Note: Debian's libbenchmark is a debug build ("***WARNING*** Library was built as DEBUG"):
// that slows the harness, not the code under test.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "auth/authenticator.h"
#include "auth/jwt.h"
#include "auth/jwt_signer_for_test.h"
#include "auth/key_store.h"
#include "auth/rate_limiter.h"
#include "auth/role.h"
#include "monitor/metrics.h"
#include "serve/http_server.h"
#include "serve/router.h"

namespace vigil {
namespace {

constexpr char kSecret[] = "0123456789abcdef0123456789abcdef";  // 32 bytes
constexpr char kIssuer[] = "https://issuer.example";
constexpr char kAudience[] = "vigil";

// What every benchmark shares, made once (RSA key generation takes a while): the data dir, an
// Authenticator that accepts API keys and JWTs, a scorer key, and a token of each algorithm.
struct Env {
  std::string dir;
  std::string error;  // why the setup failed, if it did
  std::unique_ptr<auth::Authenticator> auth;
  std::string api_key;              // "Bearer vgk_...", a scorer key
  std::string unknown_key;          // "Bearer vgk_...", well-formed, never issued
  std::string hs256, rs256, es256;  // "Bearer <token>"
  // A verifier configured as the Authenticator's, to measure a verification without its cache.
  std::unique_ptr<auth::JwtVerifier> verifier;
};
std::unique_ptr<Env> g_env;

std::string Claims() {
  const int64_t now = auth::NowSeconds();
  return std::string(R"({"sub":"user-1","iss":")") + kIssuer + R"(","aud":")" + kAudience +
         R"(","exp":)" + std::to_string(now + 3600) + R"(,"nbf":)" + std::to_string(now - 10) +
         R"(,"iat":)" + std::to_string(now - 10) + R"(,"jti":"token-id-1","role":"scorer"})";
}

// The token in an Authorization header's value.
std::string_view Token(std::string_view authorization) {
  return authorization.substr(std::string_view("Bearer ").size());
}

std::string MakeEnv(Env& env) {
  char dir[] = "/tmp/vigil_auth_bench.XXXXXX";
  if (::mkdtemp(dir) == nullptr) return "cannot make a data dir under /tmp";
  env.dir = dir;

  auth::TestKeyPtr rsa = auth::GenerateRsaKey(2048);
  auth::TestKeyPtr ec = auth::GenerateEcKey("P-256");
  if (rsa == nullptr || ec == nullptr) return "key generation failed";
  auth::JwtOptions jwt;
  jwt.algorithms = {"HS256", "RS256", "ES256"};
  jwt.hs256_secret = kSecret;
  jwt.public_keys = auth::PublicKeyPem(rsa.get()) + auth::PublicKeyPem(ec.get());
  jwt.issuer = kIssuer;
  jwt.audiences = {kAudience};
  auto verifier = auth::JwtVerifier::Create(jwt);
  if (!verifier.ok()) return verifier.status().ToString();
  env.verifier = std::move(verifier).value();
  auto opened = auth::Authenticator::Open(env.dir, &jwt);
  if (!opened.ok()) return opened.status().ToString();
  env.auth = std::move(opened).value();

  auto issued = env.auth->keys().Create(Role::kScorer, "bench", 0, auth::NowSeconds());
  if (!issued.ok()) return issued.status().ToString();
  env.api_key = "Bearer " + issued->secret;
  env.unknown_key = "Bearer " + auth::NewKeySecret();

  const std::string claims = Claims();
  const std::string hs256 =
      auth::SignJwt("HS256", R"({"alg":"HS256","typ":"JWT"})", claims, nullptr, kSecret);
  const std::string rs256 =
      auth::SignJwt("RS256", R"({"alg":"RS256","typ":"JWT"})", claims, rsa.get(), "");
  const std::string es256 =
      auth::SignJwt("ES256", R"({"alg":"ES256","typ":"JWT"})", claims, ec.get(), "");
  if (hs256.empty() || rs256.empty() || es256.empty()) return "signing a token failed";
  env.hs256 = "Bearer " + hs256;
  env.rs256 = "Bearer " + rs256;
  env.es256 = "Bearer " + es256;

  // Each credential is what its benchmark says: accepted as a scorer, or refused.
  for (const std::string* good : {&env.api_key, &env.hs256, &env.rs256, &env.es256}) {
    StatusOr<auth::Principal> who = env.auth->Authenticate(*good);
    if (!who.ok()) return who.status().ToString();
    if (!who->roles.Has(Role::kScorer)) return "a credential does not grant the scorer role";
  }
  if (env.auth->Authenticate(env.unknown_key).ok()) return "the unknown key was accepted";
  for (const std::string* token : {&env.hs256, &env.rs256, &env.es256}) {
    StatusOr<auth::JwtClaims> claims = env.verifier->Verify(Token(*token), auth::NowSeconds());
    if (!claims.ok()) return claims.status().ToString();
  }
  return "";
}

// The shared environment, made on first use (outside every timed loop).
const Env& Shared() {
  if (g_env == nullptr) {
    g_env = std::make_unique<Env>();
    g_env->error = MakeEnv(*g_env);
  }
  return *g_env;
}

// Stops the authenticator's refresher and removes the data dir.
void CloseEnv() {
  if (g_env == nullptr) return;
  g_env->auth.reset();
  if (!g_env->dir.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(g_env->dir, ignored);
  }
  g_env.reset();
}

void Authenticate(benchmark::State& state, const std::string Env::*credentials, bool accepted) {
  const Env& env = Shared();
  if (!env.error.empty()) {
    state.SkipWithError(env.error.c_str());
    return;
  }
  const std::string& header = env.*credentials;
  for (auto _ : state) {
    StatusOr<auth::Principal> who = env.auth->Authenticate(header);
    if (who.ok() != accepted) {
      state.SkipWithError("the credentials' verdict changed");
      break;
    }
    benchmark::DoNotOptimize(who);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}

void ApiKey(benchmark::State& state) { Authenticate(state, &Env::api_key, true); }
BENCHMARK(ApiKey);

void ApiKeyUnknown(benchmark::State& state) { Authenticate(state, &Env::unknown_key, false); }
BENCHMARK(ApiKeyUnknown);

void JwtHs256(benchmark::State& state) { Authenticate(state, &Env::hs256, true); }
BENCHMARK(JwtHs256);

void JwtRs256(benchmark::State& state) { Authenticate(state, &Env::rs256, true); }
BENCHMARK(JwtRs256);

void JwtEs256(benchmark::State& state) { Authenticate(state, &Env::es256, true); }
BENCHMARK(JwtEs256);

void Verify(benchmark::State& state, const std::string Env::*credentials) {
  const Env& env = Shared();
  if (!env.error.empty()) {
    state.SkipWithError(env.error.c_str());
    return;
  }
  const std::string_view token = Token(env.*credentials);
  const int64_t now = auth::NowSeconds();
  for (auto _ : state) {
    StatusOr<auth::JwtClaims> claims = env.verifier->Verify(token, now);
    if (!claims.ok()) {
      state.SkipWithError("the token stopped verifying");
      break;
    }
    benchmark::DoNotOptimize(claims);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}

void JwtVerifyHs256(benchmark::State& state) { Verify(state, &Env::hs256); }
BENCHMARK(JwtVerifyHs256);

void JwtVerifyRs256(benchmark::State& state) { Verify(state, &Env::rs256); }
BENCHMARK(JwtVerifyRs256);

void JwtVerifyEs256(benchmark::State& state) { Verify(state, &Env::es256); }
BENCHMARK(JwtVerifyEs256);

// Router::Handle of GET /v1/things/{id} (a scorer route whose handler answers at once), with
// authentication on when `with_auth`.
void RouteOne(benchmark::State& state, bool with_auth) {
  const Env& env = Shared();
  if (!env.error.empty()) {
    state.SkipWithError(env.error.c_str());
    return;
  }
  MetricsRegistry metrics;
  Router router(metrics);
  router.Add({"GET", "/v1/things/{id}", Role::kScorer, Reach::kAnywhere, BodyKind::kNone,
              [](RouteRequest&&, const Respond& respond) { respond(JsonResponse(200, "{}")); }});
  auth::RateLimiter limiter{auth::RateLimitOptions{}};
  if (with_auth) {
    router.SetAuthenticator(env.auth.get());
    router.SetRateLimiter(&limiter);
  }
  const std::string& authorization = env.api_key;
  int status = 0;
  auto call = [&] {
    HttpRequest req;
    req.method = "GET";
    req.path = "/v1/things/42";
    req.remote = "203.0.113.9";
    req.headers.emplace_back("authorization", authorization);
    router.Handle(std::move(req), [&status](HttpResponse&& r) { status = r.status; });
  };
  call();
  if (status != 200) {
    state.SkipWithError(("the route answered " + std::to_string(status)).c_str());
    return;
  }
  for (auto _ : state) {
    call();
    benchmark::DoNotOptimize(status);
  }
  if (status != 200) state.SkipWithError("the route stopped answering 200");
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}

void RouterNoAuth(benchmark::State& state) { RouteOne(state, false); }
BENCHMARK(RouterNoAuth);

void RouterApiKey(benchmark::State& state) { RouteOne(state, true); }
BENCHMARK(RouterApiKey);

}  // namespace
}  // namespace vigil

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  vigil::CloseEnv();
  return 0;
}
