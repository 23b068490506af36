// The route table of `vigil serve`: every route declared once — method, path pattern, required
// role, who may reach it, body kind, handler — and the steps every request goes through applied
// here, never inside a handler:
//   match the path (literal segments and `{name}` parameters, percent-decoded; a malformed escape
//   is a 400) -> 404 for no route, 405 with `Allow` for a known path and another method (HEAD is
//   answered for every GET route, without a body) -> 403 for a loopback-only route reached from
//   another machine -> 429 for an address that failed to authenticate too often -> 401 without
//   valid credentials, 403 for a role the route does not admit (auth/role.h) -> 429 for a caller
//   over its rate or concurrency limit -> 415 for a JSON route without a JSON Content-Type -> the handler -> the
//   request counted and timed by route and status (vigil_http_requests_total,
//   vigil_http_request_duration_seconds).
// Errors become bodies in one place (core/error_json.h) and HTTP statuses in one place
// (HttpStatusFor).
#ifndef VIGIL_SERVE_ROUTER_H_
#define VIGIL_SERVE_ROUTER_H_

#include <array>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "auth/audit_log.h"
#include "auth/authenticator.h"
#include "auth/rate_limiter.h"
#include "auth/role.h"
#include "core/transaction_json.h"
#include "serve/http_server.h"
#include "vigil/status.h"

namespace vigil {

class Counter;
class Histogram;
class MetricsRegistry;

// Where a route may be reached from.
enum class Reach {
  kAnywhere,
  kLoopback,  // the server's own machine only while authentication is off
};

enum class BodyKind {
  kNone,
  kJson,          // Content-Type must be JSON (415 otherwise)
  kOptionalJson,  // no body, or a JSON one
};

// A request matched to its route.
struct RouteRequest {
  HttpRequest http;
  std::vector<std::pair<std::string, std::string>> params;  // {name} -> decoded value
  std::chrono::steady_clock::time_point start;
  // Who is calling (authenticated before the handler runs); with authentication off, a local
  // admin.
  auth::Principal principal;

  // The decoded value of path parameter `name`, or "" when the route has none of that name.
  std::string_view Param(std::string_view name) const;
};

// Sends the response; callable once, from any thread, possibly later.
using Respond = std::function<void(HttpResponse&&)>;
using RouteHandler = std::function<void(RouteRequest&& request, Respond respond)>;

struct Route {
  std::string method;   // "GET", "POST", "DELETE", ...
  std::string pattern;  // "/v1/transactions/{id}"; also the route's metrics label
  RoleSet roles = Role::kPublic;  // who may call it: auth/role.h's Admits
  Reach reach = Reach::kAnywhere;
  BodyKind body = BodyKind::kNone;
  RouteHandler handler;
};

HttpResponse JsonResponse(int status, std::string body);
// The response for a failed Status: HttpStatusFor(code) with ErrorJson's body.
HttpResponse ErrorResponse(const Status& status, const std::vector<FieldProblem>& details = {});

// A Router holds the route table and dispatches requests to it. Add every route before the
// first Handle; Handle is then thread-safe.
class Router {
 public:
  explicit Router(MetricsRegistry& metrics);
  ~Router();
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  // REQUIRES: no route with the same method and pattern was added; pattern starts with '/'.
  void Add(Route route);
  // Every route that is not public then needs credentials whose role it admits (401 without
  // valid ones, 403 for another role). Null (the default) turns authentication off: every
  // caller is a local admin. Set before the first Handle; `auth` outlives the router.
  void SetAuthenticator(const auth::Authenticator* auth) { auth_ = auth; }
  // With authentication on: the rate and concurrency limits of each caller, and of failed
  // authentications per source address (429 with Retry-After; the RateLimit-* headers on every
  // reply to a limited caller). Set before the first Handle; `limiter` outlives the router.
  void SetRateLimiter(const auth::RateLimiter* limiter) { limiter_ = limiter; }
  // Failed authentications (401) and refused roles (403) go to `audit`. Set before the first
  // Handle; `audit` outlives the router.
  void SetAuditLog(auth::AuditLog* audit) { audit_ = audit; }
  // Browsers on these origins ("https://ui.example", scheme://host[:port]) may call the API: their
  // preflights (OPTIONS with Access-Control-Request-Method) are answered before authentication,
  // and replies to them carry Access-Control-Allow-Origin. None by default: a browser on another
  // origin is refused by its own same-origin rule. Set before the first Handle.
  void SetCorsOrigins(std::vector<std::string> origins) { cors_origins_ = std::move(origins); }

  // The table, in the order added (for docs and tests).
  std::vector<const Route*> routes() const;

  void Handle(HttpRequest&& request, std::function<void(HttpResponse&&)> respond);

 private:
  struct Entry;
  struct Series;
  // Finds the route for `method` and `path`: the entry, or null with *status 404 or 405 (and
  // *allow the methods the path has) or 400 (a malformed escape).
  const Entry* Match(std::string_view method, std::string_view path,
                     std::vector<std::pair<std::string, std::string>>* params, int* status,
                     std::string* allow) const;
  void Count(Series& series, int status, std::chrono::steady_clock::time_point start);
  // The steps after authentication: the media type, then the handler, answering through `reply`.
  template <typename Reply>
  void Dispatch(const Entry& e, HttpRequest&& http, RouteRequest&& req, Reply&& reply);

  MetricsRegistry& metrics_;
  const auth::Authenticator* auth_ = nullptr;
  const auth::RateLimiter* limiter_ = nullptr;
  auth::AuditLog* audit_ = nullptr;
  std::vector<std::string> cors_origins_;
  // Whether `origin` is on the allow-list.
  bool CorsAllows(std::string_view origin) const;
  std::vector<std::unique_ptr<Entry>> entries_;
  std::unique_ptr<Series> unknown_;  // requests that matched no route
};

}  // namespace vigil

#endif  // VIGIL_SERVE_ROUTER_H_
