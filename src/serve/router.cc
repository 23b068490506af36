#include "serve/router.h"

#include <algorithm>

#include "core/error_json.h"
#include "core/log.h"
#include "monitor/metrics.h"
#include "serve/http_util.h"

namespace vigil {
namespace {

using Clock = std::chrono::steady_clock;

// The segments of a path: "/a/b/" -> {"a", "b", ""}.
std::vector<std::string_view> Segments(std::string_view path) {
  std::vector<std::string_view> out;
  if (!path.empty() && path.front() == '/') path.remove_prefix(1);
  while (true) {
    const size_t slash = path.find('/');
    out.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return out;
}

bool IsParam(std::string_view segment) {
  return segment.size() > 2 && segment.front() == '{' && segment.back() == '}';
}

bool IsLoopback(std::string_view address) {
  if (address.starts_with("::ffff:")) address.remove_prefix(7);
  return address.starts_with("127.") || address == "::1";
}

}  // namespace


std::string_view RouteRequest::Param(std::string_view name) const {
  for (const auto& [k, v] : params) {
    if (k == name) return v;
  }
  return {};
}

HttpResponse JsonResponse(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

HttpResponse ErrorResponse(const Status& status, const std::vector<FieldProblem>& details) {
  return JsonResponse(HttpStatusFor(status.code()), ErrorJson(status, details));
}

// A route's series: its latency histogram, and its request counter per status, found in the
// registry on first use and then read without a lock.
struct Router::Series {
  std::string label;
  Histogram* latency = nullptr;
  std::array<std::atomic<Counter*>, 600> by_status{};
};

struct Router::Entry {
  Route route;
  std::vector<std::string> segments;  // of the pattern; "{name}" for a parameter
  Series series;
};

Router::Router(MetricsRegistry& metrics) : metrics_(metrics), unknown_(std::make_unique<Series>()) {
  unknown_->label = "unknown";
  unknown_->latency = &metrics_.GetHistogram(
      "vigil_http_request_duration_seconds", "HTTP request latency by route",
      {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1},
      {{"route", unknown_->label}});
}

Router::~Router() = default;

void Router::Add(Route route) {
  auto e = std::make_unique<Entry>();
  for (std::string_view s : Segments(route.pattern)) e->segments.emplace_back(s);
  e->series.label = route.pattern;
  e->series.latency = &metrics_.GetHistogram(
      "vigil_http_request_duration_seconds", "HTTP request latency by route",
      {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1},
      {{"route", route.pattern}});
  e->route = std::move(route);
  entries_.push_back(std::move(e));
}

std::vector<const Route*> Router::routes() const {
  std::vector<const Route*> out;
  for (const auto& e : entries_) out.push_back(&e->route);
  return out;
}

const Router::Entry* Router::Match(std::string_view method, std::string_view path,
                                   std::vector<std::pair<std::string, std::string>>* params,
                                   int* status, std::string* allow) const {
  const std::vector<std::string_view> segs = Segments(path);
  // HEAD is GET without the body (the server drops it).
  const std::string_view wanted = method == "HEAD" ? "GET" : method;
  const Entry* found = nullptr;
  for (const auto& e : entries_) {
    if (e->segments.size() != segs.size()) continue;
    bool same = true;
    for (size_t i = 0; i < segs.size() && same; ++i) {
      same = IsParam(e->segments[i]) ? !segs[i].empty() : e->segments[i] == segs[i];
    }
    if (!same) continue;
    if (e->route.method == wanted && found == nullptr) found = e.get();
    if (allow->find(e->route.method) == std::string::npos) {
      if (!allow->empty()) *allow += ", ";
      *allow += e->route.method;
      if (e->route.method == "GET") *allow += ", HEAD";
    }
  }
  if (found == nullptr) {
    *status = allow->empty() ? 404 : 405;
    return nullptr;
  }
  for (size_t i = 0; i < segs.size(); ++i) {
    const std::string& p = found->segments[i];
    if (!IsParam(p)) continue;
    std::optional<std::string> value = PercentDecode(segs[i]);
    if (!value) {
      *status = 400;
      return nullptr;
    }
    params->emplace_back(p.substr(1, p.size() - 2), std::move(*value));
  }
  return found;
}

void Router::Count(Series& series, int status, Clock::time_point start) {
  series.latency->Observe(std::chrono::duration<double>(Clock::now() - start).count());
  const size_t slot = status >= 100 && status < 600 ? static_cast<size_t>(status) : 0;
  Counter* c = series.by_status[slot].load(std::memory_order_acquire);
  if (c == nullptr) {
    // Two threads may both look it up: the registry returns the same series to both.
    c = &metrics_.GetCounter("vigil_http_requests_total", "HTTP requests by route and status",
                             {{"route", series.label}, {"status", std::to_string(status)}});
    series.by_status[slot].store(c, std::memory_order_release);
  }
  c->Add();
}

namespace {

// The IETF draft's RateLimit-* fields (draft-ietf-httpapi-ratelimit-headers), on every reply to
// a caller with a rate limit.
void AddRateHeaders(const auth::RateDecision& d, HttpResponse* r) {
  r->headers.emplace_back("RateLimit-Limit", std::to_string(static_cast<int64_t>(d.limit)));
  r->headers.emplace_back("RateLimit-Remaining", std::to_string(d.remaining));
  r->headers.emplace_back("RateLimit-Reset", std::to_string(d.reset_seconds));
}

}  // namespace

bool Router::CorsAllows(std::string_view origin) const {
  return std::find(cors_origins_.begin(), cors_origins_.end(), origin) != cors_origins_.end();
}

void Router::Handle(HttpRequest&& http, std::function<void(HttpResponse&&)> respond) {
  const Clock::time_point start = Clock::now();
  RouteRequest req;
  req.start = start;
  int status = 0;
  std::string allow;
  const std::string_view origin = cors_origins_.empty() ? "" : http.Header("origin");
  const bool cors = !origin.empty() && CorsAllows(origin);
  if (!origin.empty() && http.method == "OPTIONS" &&
      !http.Header("access-control-request-method").empty()) {
    // A browser's preflight, sent without credentials: the path's methods, if the origin may.
    HttpResponse r;
    Match("OPTIONS", http.path, &req.params, &status, &allow);
    if (status != 405) {
      r = ErrorResponse(NotFound("no route for " + http.path));
    } else if (!cors) {
      r = ErrorResponse(PermissionDenied("this origin may not call the API (--cors-origins)"));
    } else {
      r.status = 204;
      r.content_type.clear();
      r.headers = {{"Access-Control-Allow-Origin", std::string(origin)},
                   {"Access-Control-Allow-Methods", allow},
                   {"Access-Control-Allow-Headers", "Authorization, Content-Type, Idempotency-Key"},
                   {"Access-Control-Max-Age", "600"},
                   {"Vary", "Origin"}};
    }
    Count(*unknown_, r.status, start);
    return respond(std::move(r));
  }
  if (!cors_origins_.empty()) {
    // Every reply to an allowed origin says so, and shows the browser the limits' headers; every
    // reply varies by origin, so that a cache never gives one origin's to another.
    respond = [inner = std::move(respond), o = cors ? std::string(origin) : ""](HttpResponse&& r) {
      if (!o.empty()) {
        r.headers.emplace_back("Access-Control-Allow-Origin", o);
        r.headers.emplace_back("Access-Control-Expose-Headers",
                               "RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, Retry-After");
      }
      r.headers.emplace_back("Vary", "Origin");
      inner(std::move(r));
    };
  }
  const Entry* e = Match(http.method, http.path, &req.params, &status, &allow);
  if (e == nullptr) {
    HttpResponse r;
    if (status == 405) {
      r = JsonResponse(405, ErrorJson("method_not_allowed", http.method + " is not allowed on " +
                                                                http.path + " (use " + allow + ")"));
      r.headers.emplace_back("Allow", allow);
    } else if (status == 400) {
      r = ErrorResponse(InvalidArgument("the path has a malformed percent-escape, or one that "
                                        "decodes to a NUL byte or invalid UTF-8"));
    } else {
      r = ErrorResponse(NotFound("no route for " + http.path));
    }
    Count(*unknown_, r.status, start);
    return respond(std::move(r));
  }
  Series& series = const_cast<Entry*>(e)->series;
  auto counted = [this, &series, start, respond = std::move(respond)](HttpResponse&& r) {
    Count(series, r.status, start);
    respond(std::move(r));
  };
  if (auth_ == nullptr && e->route.reach == Reach::kLoopback && !IsLoopback(http.remote)) {
    return counted(ErrorResponse(PermissionDenied(
        "this route answers only on the server's own machine until authentication is "
        "configured")));
  }
  if (auth_ == nullptr) {
    req.principal = {"local", "", Role::kAdmin, "none"};
  } else if (!e->route.roles.IsPublic()) {
    const int64_t now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                               start.time_since_epoch()).count();
    const std::string_view credentials = http.Header("authorization");
    auto who = credentials.empty()
                   ? StatusOr<auth::Principal>(Unauthenticated(
                         "credentials are required: send 'Authorization: Bearer <API key>'"))
                   : auth_->Authenticate(credentials);
    if (!who.ok()) {
      // Valid credentials are never held up by others' failures from the same address (a NAT, a
      // load balancer); failed ones are, once that address has failed too often.
      int64_t retry_after = 0;
      if (limiter_ != nullptr && !limiter_->MayTry(http.remote, now_ns, &retry_after)) {
        HttpResponse r = ErrorResponse(ResourceExhausted(
            "too many failed authentications from this address: retry in " +
            std::to_string(retry_after) + " s"));
        r.headers.emplace_back("Retry-After", std::to_string(retry_after));
        return counted(std::move(r));
      }
      if (limiter_ != nullptr) limiter_->Failed(http.remote, now_ns);
      if (audit_ != nullptr) {
        audit_->Record({"-", "auth.failed", e->route.method + " " + e->route.pattern, "denied",
                        http.remote, who.status().message()});
      }
      Log(LogLevel::kWarn, "authentication failed",
          {{"remote", http.remote}, {"route", e->route.pattern}, {"error", who.status().message()}});
      HttpResponse r = ErrorResponse(who.status());
      r.headers.emplace_back("WWW-Authenticate", credentials.empty()
                                                     ? "Bearer realm=\"vigil\""
                                                     : "Bearer realm=\"vigil\", error=\"invalid_token\"");
      return counted(std::move(r));
    }
    // The rate limit counts every call of the caller's, refused ones included.
    auth::RateDecision d;
    if (limiter_ != nullptr) {
      d = limiter_->Admit(*who, now_ns);
      if (!d.allowed) {
        HttpResponse r = ErrorResponse(ResourceExhausted(d.why));
        AddRateHeaders(d, &r);
        r.headers.emplace_back("Retry-After", std::to_string(d.retry_after));
        return counted(std::move(r));
      }
    }
    if (!Admits(e->route.roles, who->roles)) {
      const std::string what = e->route.method + " " + e->route.pattern + " (it needs " +
                               e->route.roles.Names() + ")";
      if (audit_ != nullptr) {
        audit_->Record({who->id, "auth.denied", e->route.method + " " + e->route.pattern,
                        "denied", http.remote,
                        "role " + (who->roles.Empty() ? std::string("none") : who->roles.Names())});
      }
      HttpResponse r = ErrorResponse(PermissionDenied(
          who->roles.Empty() ? "the credentials grant no Vigil role, so they may not call " + what
                             : "the " + who->roles.Names() + " role may not call " + what));
      if (d.limited) AddRateHeaders(d, &r);
      return counted(std::move(r));
    }
    req.principal = std::move(*who);
    if (limiter_ != nullptr) {
      int concurrency = 0;
      if (!limiter_->Enter(req.principal, &concurrency)) {
        HttpResponse r = ErrorResponse(ResourceExhausted(
            std::to_string(concurrency) +
            " requests of these credentials are in flight already, the most allowed at once"));
        r.headers.emplace_back("Retry-After", "1");
        return counted(std::move(r));
      }
      if (d.limited || concurrency > 0) {
        // The slot is given back when the reply goes, or when the reply is dropped unsent (a
        // handler that failed): the guard goes with the last copy of the callback.
        std::shared_ptr<void> slot;
        if (concurrency > 0) {
          slot = std::shared_ptr<void>(nullptr, [this, who = req.principal](void*) {
            limiter_->Release(who);
          });
        }
        return Dispatch(*e, std::move(http), std::move(req),
                        [d, slot = std::move(slot),
                         inner = std::move(counted)](HttpResponse&& r) mutable {
                          slot.reset();
                          if (d.limited) AddRateHeaders(d, &r);
                          inner(std::move(r));
                        });
      }
    }
  }
  Dispatch(*e, std::move(http), std::move(req), std::move(counted));
}

template <typename Reply>
void Router::Dispatch(const Entry& e, HttpRequest&& http, RouteRequest&& req, Reply&& reply) {
  const bool json_required = e.route.body == BodyKind::kJson ||
                             (e.route.body == BodyKind::kOptionalJson && !http.body.empty());
  if (json_required && !IsJsonContentType(http.Header("content-type"))) {
    return reply(JsonResponse(
        415, ErrorJson("unsupported_media_type", "Content-Type must be application/json")));
  }
  req.http = std::move(http);
  e.route.handler(std::move(req), std::forward<Reply>(reply));
}

}  // namespace vigil
