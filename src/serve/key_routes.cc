#include "serve/key_routes.h"

#include <nlohmann/json.hpp>

#include "auth/authenticator.h"
#include "core/json_text.h"
#include "core/log.h"
#include "serve/http_util.h"
#include "vigil/time.h"

namespace vigil {
namespace {

constexpr int64_t kDefaultOldKeySeconds = 24 * 3600;
constexpr int64_t kMaxOldKeySeconds = 90 * 24 * 3600;

void AppendTime(std::string* b, const char* key, int64_t t) {
  *b += ",\"";
  *b += key;
  *b += "\":";
  if (t == 0) {
    *b += "null";
  } else {
    AppendJsonString(b, FormatRfc3339(t));
  }
}

HttpResponse IssuedResponse(int status, const auth::KeyStore::Issued& issued, int64_t now) {
  std::string body = "{\"key\":" + KeyJson(issued.record, now) + ",\"secret\":";
  AppendJsonString(&body, issued.secret);
  body += ",\"note\":\"the secret is shown once: store it now\"}";
  HttpResponse r = JsonResponse(status, std::move(body));
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

// An admin action is in the audit log before it is answered.
void Audited(auth::AuditLog& log, auth::AuditEvent event) {
  log.Record(std::move(event));
  if (Status st = log.Flush(); !st.ok()) {
    Log(LogLevel::kError, "cannot write the audit log", {{"error", st.message()}});
  }
}

void Run(WorkerPool& pool, const Respond& respond, std::function<void()> task) {
  if (!pool.Post(std::move(task))) respond(ErrorResponse(Unavailable("the server is stopping")));
}

}  // namespace

std::string KeyJson(const auth::KeyRecord& k, int64_t now) {
  std::string b = "{\"id\":";
  AppendJsonString(&b, k.id);
  b += ",\"name\":";
  AppendJsonString(&b, k.name);
  b += ",\"role\":";
  AppendJsonString(&b, RoleName(k.role));
  b += ",\"hint\":";
  AppendJsonString(&b, std::string(auth::kKeyPrefix) + "..." + k.hint);
  b += ",\"active\":";
  b += k.ActiveAt(now) ? "true" : "false";
  AppendTime(&b, "created_at", k.created_at);
  AppendTime(&b, "last_used_at", k.last_used_at);
  AppendTime(&b, "expires_at", k.expires_at);
  AppendTime(&b, "revoked_at", k.revoked_at);
  b += ",\"rolled_to\":";
  if (k.rolled_to.empty()) {
    b += "null";
  } else {
    AppendJsonString(&b, k.rolled_to);
  }
  return b + "}";
}

void AddKeyRoutes(Router& router, auth::KeyStore& keys, WorkerPool& pool, auth::AuditLog& audit) {
  auth::KeyStore* store = &keys;
  WorkerPool* p = &pool;
  auth::AuditLog* log = &audit;
  router.Add({"POST", "/v1/admin/keys", Role::kAdmin, Reach::kAnywhere, BodyKind::kJson,
              [store, p, log](RouteRequest&& req, const Respond& respond) {
                auto j = nlohmann::json::parse(req.http.body, nullptr, false);
                std::vector<FieldProblem> problems;
                if (!j.is_object()) {
                  return respond(ErrorResponse(InvalidArgument(
                      "the body must be a JSON object like {\"role\": \"scorer\", \"name\": "
                      "\"checkout\"}")));
                }
                Role role = Role::kViewer;
                if (!j.contains("role") || !j["role"].is_string()) {
                  problems.push_back({"role",
                                      "is required: admin, analyst, scorer, processor "
                                      "or viewer"});
                } else if (auto r = ParseRole(j["role"].get<std::string>()); !r.ok()) {
                  problems.push_back({"role", r.status().message()});
                } else {
                  role = *r;
                }
                std::string name;
                if (!j.contains("name") || !j["name"].is_string()) {
                  problems.push_back({"name", "is required: a string naming the key's user"});
                } else {
                  name = j["name"].get<std::string>();
                  if (name.empty() || name.size() > 200) {
                    problems.push_back({"name", "must have 1 to 200 characters"});
                  }
                }
                int64_t expires_at = 0;
                if (j.contains("expires_at") && !j["expires_at"].is_null()) {
                  auto t = j["expires_at"].is_string()
                               ? ParseRfc3339(j["expires_at"].get<std::string>())
                               : StatusOr<int64_t>(InvalidArgument("not a string"));
                  if (t.ok() && *t <= auth::NowSeconds()) {
                    problems.push_back({"expires_at", "must be in the future"});
                  } else if (t.ok()) {
                    expires_at = *t;
                  } else {
                    problems.push_back({"expires_at", "must be an RFC 3339 time, or null"});
                  }
                }
                if (!problems.empty()) {
                  return respond(ErrorResponse(InvalidArgument("the key is not valid"), problems));
                }
                const std::string by = req.principal.id, from = req.http.remote;
                Run(*p, respond, [store, log, role, name, expires_at, by, from, respond] {
                  const int64_t now = auth::NowSeconds();
                  auto issued = store->Create(role, name, expires_at, now);
                  Audited(*log,
                          {by, "key.create", issued.ok() ? issued->record.id : name,
                           issued.ok() ? "ok" : "failed", from,
                           issued.ok() ? "role " + std::string(RoleName(role)) + ", name " + name
                                       : issued.status().message()});
                  if (!issued.ok()) return respond(ErrorResponse(issued.status()));
                  Log(LogLevel::kInfo, "API key created",
                      {{"id", issued->record.id}, {"role", RoleName(role)}, {"by", by}});
                  respond(IssuedResponse(201, *issued, now));
                });
              }});
  router.Add({"GET", "/v1/admin/audit", Role::kAdmin, Reach::kAnywhere, BodyKind::kNone,
              [p, log](RouteRequest&& req, const Respond& respond) {
                uint64_t after = 0;
                size_t limit = 100;
                const std::string a = QueryParam(req.http.query, "after");
                const std::string l = QueryParam(req.http.query, "limit");
                char* end = nullptr;
                if (!a.empty()) {
                  after = std::strtoull(a.c_str(), &end, 10);
                  if (*end != '\0' || a[0] == '-') {
                    return respond(ErrorResponse(InvalidArgument("after must be a sequence number"),
                                                 {{"after", "must be a whole number"}}));
                  }
                }
                if (!l.empty()) {
                  limit = std::strtoull(l.c_str(), &end, 10);
                  if (*end != '\0' || l[0] == '-' || limit < 1 || limit > 1000) {
                    return respond(ErrorResponse(InvalidArgument("limit must be 1 to 1000"),
                                                 {{"limit", "must be a whole number, 1 to 1000"}}));
                  }
                }
                Run(*p, respond, [log, after, limit, respond] {
                  (void)log->Flush();
                  auto lines = log->Read(after, limit);
                  if (!lines.ok()) return respond(ErrorResponse(lines.status()));
                  std::string body = "{\"entries\":[";
                  for (size_t i = 0; i < lines->size(); ++i) {
                    if (i > 0) body += ',';
                    body += (*lines)[i];
                  }
                  respond(JsonResponse(200, body + "]}"));
                });
              }});
  router.Add({"GET", "/v1/admin/keys", Role::kAdmin, Reach::kAnywhere, BodyKind::kNone,
              [store, p](RouteRequest&&, const Respond& respond) {
                Run(*p, respond, [store, respond] {
                  auto list = store->List();
                  if (!list.ok()) return respond(ErrorResponse(list.status()));
                  const int64_t now = auth::NowSeconds();
                  std::string body = "{\"keys\":[";
                  for (size_t i = 0; i < list->size(); ++i) {
                    if (i > 0) body += ',';
                    body += KeyJson((*list)[i], now);
                  }
                  respond(JsonResponse(200, body + "]}"));
                });
              }});
  router.Add({"DELETE", "/v1/admin/keys/{id}", Role::kAdmin, Reach::kAnywhere, BodyKind::kNone,
              [store, p, log](RouteRequest&& req, const Respond& respond) {
                std::string id(req.Param("id"));
                const std::string by = req.principal.id, from = req.http.remote;
                Run(*p, respond, [store, log, id, by, from, respond] {
                  const int64_t now = auth::NowSeconds();
                  auto key = store->Revoke(id, now);
                  Audited(*log, {by, "key.revoke", id, key.ok() ? "ok" : "failed", from,
                                 key.ok() ? "" : key.status().message()});
                  if (!key.ok()) return respond(ErrorResponse(key.status()));
                  Log(LogLevel::kInfo, "API key revoked", {{"id", id}, {"by", by}});
                  respond(JsonResponse(200, "{\"key\":" + KeyJson(*key, now) + "}"));
                });
              }});
  router.Add({"POST", "/v1/admin/keys/{id}/roll", Role::kAdmin, Reach::kAnywhere,
              BodyKind::kOptionalJson, [store, p, log](RouteRequest&& req, const Respond& respond) {
                int64_t keep = kDefaultOldKeySeconds;
                if (!req.http.body.empty()) {
                  auto j = nlohmann::json::parse(req.http.body, nullptr, false);
                  const bool given = j.is_object() && j.contains("old_key_valid_seconds");
                  if (!j.is_object() ||
                      (given && (!j["old_key_valid_seconds"].is_number_integer() ||
                                 j["old_key_valid_seconds"].get<int64_t>() < 0 ||
                                 j["old_key_valid_seconds"].get<int64_t>() > kMaxOldKeySeconds))) {
                    return respond(ErrorResponse(
                        InvalidArgument("the body must be like {\"old_key_valid_seconds\": 3600}"),
                        {{"old_key_valid_seconds", "must be a whole number of seconds, 0 to " +
                                                       std::to_string(kMaxOldKeySeconds)}}));
                  }
                  if (given) keep = j["old_key_valid_seconds"].get<int64_t>();
                }
                std::string id(req.Param("id"));
                const std::string by = req.principal.id, from = req.http.remote;
                Run(*p, respond, [store, log, id, keep, by, from, respond] {
                  const int64_t now = auth::NowSeconds();
                  auto issued = store->Roll(id, now + keep, now);
                  Audited(*log, {by, "key.roll", id, issued.ok() ? "ok" : "failed", from,
                                 issued.ok() ? "replaced by " + issued->record.id + ", valid " +
                                                   std::to_string(keep) + " s more"
                                             : issued.status().message()});
                  if (!issued.ok()) return respond(ErrorResponse(issued.status()));
                  Log(LogLevel::kInfo, "API key rolled",
                      {{"id", id}, {"new_id", issued->record.id}, {"by", by}});
                  respond(IssuedResponse(201, *issued, now));
                });
              }});
}

}  // namespace vigil
