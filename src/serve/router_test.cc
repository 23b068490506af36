#include "serve/router.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "monitor/metrics.h"

namespace vigil {
namespace {

class RouterTest : public ::testing::Test {
 protected:
  RouterTest() : router_(metrics_) {
    auto echo = [](RouteRequest&& q, const Respond& p) {
      std::string body = "{\"method\":\"" + q.http.method + "\",\"id\":";
      nlohmann::json id = std::string(q.Param("id"));
      p(JsonResponse(200, body + id.dump() + "}"));
    };
    router_.Add(
        {"GET", "/v1/things/{id}", Role::kAnalyst, Reach::kAnywhere, BodyKind::kNone, echo});
    router_.Add(
        {"DELETE", "/v1/things/{id}", Role::kAdmin, Reach::kAnywhere, BodyKind::kNone, echo});
    router_.Add({"POST", "/v1/things", Role::kScorer, Reach::kAnywhere, BodyKind::kJson, echo});
    router_.Add(
        {"POST", "/v1/admin/x", Role::kAdmin, Reach::kLoopback, BodyKind::kOptionalJson, echo});
  }

  HttpResponse Call(const std::string& method, const std::string& path,
                    const std::string& remote = "127.0.0.1", const std::string& content_type = "",
                    const std::string& body = "") {
    HttpRequest req;
    req.method = method;
    req.path = path;
    req.remote = remote;
    req.body = body;
    if (!content_type.empty()) req.headers.emplace_back("content-type", content_type);
    HttpResponse got;
    bool called = false;
    router_.Handle(std::move(req), [&](HttpResponse&& r) {
      got = std::move(r);
      called = true;
    });
    EXPECT_TRUE(called);
    return got;
  }

  static std::string Header(const HttpResponse& r, const std::string& name) {
    for (const auto& [k, v] : r.headers) {
      if (k == name) return v;
    }
    return "";
  }

  MetricsRegistry metrics_;
  Router router_;
};

TEST_F(RouterTest, MatchesPatternsAndDecodesParameters) {
  HttpResponse r = Call("GET", "/v1/things/a%20b%3F%23%C3%A9");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(nlohmann::json::parse(r.body)["id"], "a b?#\xC3\xA9");
  EXPECT_EQ(Call("DELETE", "/v1/things/7").status, 200);
  EXPECT_EQ(Call("GET", "/v1/things/").status, 404);  // an empty parameter is no match
  EXPECT_EQ(Call("GET", "/v1/things/a/b").status, 404);
  EXPECT_EQ(Call("GET", "/v1/other").status, 404);
  for (const char* bad : {"/v1/things/a%zz", "/v1/things/%", "/v1/things/%00", "/v1/things/%ff"}) {
    HttpResponse b = Call("GET", bad);
    EXPECT_EQ(b.status, 400) << bad;
    EXPECT_EQ(nlohmann::json::parse(b.body)["error"]["code"], "invalid_argument");
  }
}

TEST_F(RouterTest, WrongMethodIs405WithAllow) {
  HttpResponse r = Call("PUT", "/v1/things/1");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(Header(r, "Allow"), "GET, HEAD, DELETE");
  EXPECT_EQ(nlohmann::json::parse(r.body)["error"]["code"], "method_not_allowed");
  EXPECT_EQ(Header(Call("GET", "/v1/things"), "Allow"), "POST");
}

TEST_F(RouterTest, HeadIsAnsweredByTheGetRoute) {
  HttpResponse r = Call("HEAD", "/v1/things/1");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(nlohmann::json::parse(r.body)["method"], "HEAD");  // the server drops the body
  EXPECT_EQ(Call("HEAD", "/v1/things").status, 405);
}

TEST_F(RouterTest, LoopbackOnlyRoutesRefuseOtherAddresses) {
  EXPECT_EQ(Call("POST", "/v1/admin/x", "127.0.0.1").status, 200);
  EXPECT_EQ(Call("POST", "/v1/admin/x", "::1").status, 200);
  EXPECT_EQ(Call("POST", "/v1/admin/x", "::ffff:127.0.0.2").status, 200);
  for (const char* remote : {"10.0.0.5", "192.168.1.1", "::ffff:10.0.0.1", "2001:db8::1", ""}) {
    HttpResponse r = Call("POST", "/v1/admin/x", remote);
    EXPECT_EQ(r.status, 403) << remote;
    EXPECT_EQ(nlohmann::json::parse(r.body)["error"]["code"], "permission_denied");
  }
}

TEST_F(RouterTest, JsonRoutesNeedTheJsonMediaType) {
  EXPECT_EQ(Call("POST", "/v1/things", "127.0.0.1", "application/json").status, 200);
  EXPECT_EQ(Call("POST", "/v1/things", "127.0.0.1", "Application/JSON; charset=utf-8").status, 200);
  EXPECT_EQ(Call("POST", "/v1/things", "127.0.0.1", "application/jsonp").status, 415);
  EXPECT_EQ(Call("POST", "/v1/things", "127.0.0.1", "text/plain").status, 415);
  EXPECT_EQ(Call("POST", "/v1/things").status, 415);
  // Optional JSON: no body needs no type; a body does.
  EXPECT_EQ(Call("POST", "/v1/admin/x").status, 200);
  EXPECT_EQ(Call("POST", "/v1/admin/x", "127.0.0.1", "", "{}").status, 415);
  EXPECT_EQ(Call("POST", "/v1/admin/x", "127.0.0.1", "application/json", "{}").status, 200);
}

TEST_F(RouterTest, CountsRequestsByRouteAndStatus) {
  Call("GET", "/v1/things/1");
  Call("GET", "/v1/things/2");
  Call("GET", "/nowhere");
  const std::string text = metrics_.Render();
  EXPECT_NE(text.find("vigil_http_requests_total{route=\"/v1/things/{id}\",status=\"200\"} 2"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("vigil_http_requests_total{route=\"unknown\",status=\"404\"} 1"),
            std::string::npos);
}

TEST_F(RouterTest, TheTableKeepsItsRoles) {
  auto routes = router_.routes();
  ASSERT_EQ(routes.size(), 4u);
  EXPECT_EQ(routes[0]->pattern, "/v1/things/{id}");
  EXPECT_TRUE(routes[0]->roles.Has(Role::kAnalyst));
  EXPECT_FALSE(routes[0]->roles.Has(Role::kScorer));
  EXPECT_EQ(routes[0]->roles.Names(), "analyst");
  EXPECT_EQ(routes[3]->reach, Reach::kLoopback);
}

// With an authenticator, a route needs a key of a role it admits; the handler sees who called.
TEST_F(RouterTest, CredentialsAreCheckedBeforeTheHandler) {
  const std::string dir = ::testing::TempDir() + "router_auth_" +
                          std::to_string(::testing::UnitTest::GetInstance()->random_seed());
  std::filesystem::remove_all(dir);
  auto auth = auth::Authenticator::Open(dir);
  ASSERT_TRUE(auth.ok()) << auth.status().ToString();
  auto scorer = (*auth)->keys().Create(Role::kScorer, "s", 0, auth::NowSeconds());
  auto analyst = (*auth)->keys().Create(Role::kAnalyst, "a", 0, auth::NowSeconds());
  ASSERT_TRUE(scorer.ok() && analyst.ok());
  router_.SetAuthenticator(auth->get());
  auto call = [&](const std::string& method, const std::string& path, const std::string& key,
                  const std::string& remote = "127.0.0.1") {
    HttpRequest req;
    req.method = method;
    req.path = path;
    req.remote = remote;
    if (!key.empty()) req.headers.emplace_back("authorization", "Bearer " + key);
    HttpResponse got;
    router_.Handle(std::move(req), [&](HttpResponse&& r) { got = std::move(r); });
    return got;
  };
  EXPECT_EQ(call("GET", "/v1/things/a", analyst->secret).status, 200);
  HttpResponse none = call("GET", "/v1/things/a", "");
  EXPECT_EQ(none.status, 401);
  ASSERT_FALSE(none.headers.empty());
  EXPECT_EQ(none.headers[0].first, "WWW-Authenticate");
  HttpResponse wrong = call("GET", "/v1/things/a", scorer->secret);
  EXPECT_EQ(wrong.status, 403);
  EXPECT_NE(wrong.body.find("the scorer role may not call GET /v1/things/{id} (it needs analyst)"),
            std::string::npos)
      << wrong.body;
  EXPECT_EQ(call("GET", "/v1/things/a", "vgk_notakey").status, 401);
  // No route still answers 404 before any credentials are asked for.
  EXPECT_EQ(call("GET", "/nowhere", "").status, 404);
  // With authentication on, an admin key reaches an admin route from another machine.
  auto admin = (*auth)->keys().Create(Role::kAdmin, "root", 0, auth::NowSeconds());
  ASSERT_TRUE(admin.ok());
  EXPECT_EQ(call("POST", "/v1/admin/x", admin->secret, "10.1.2.3").status, 200);
  EXPECT_EQ(call("POST", "/v1/admin/x", analyst->secret, "10.1.2.3").status, 403);
  router_.SetAuthenticator(nullptr);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace vigil
