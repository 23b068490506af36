#include "serve/router.h"

#include <gtest/gtest.h>
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
    router_.Add({"GET", "/v1/things/{id}", Role::kAnalyst, Reach::kAnywhere, BodyKind::kNone, echo});
    router_.Add({"DELETE", "/v1/things/{id}", Role::kAdmin, Reach::kAnywhere, BodyKind::kNone, echo});
    router_.Add({"POST", "/v1/things", Role::kScorer, Reach::kAnywhere, BodyKind::kJson, echo});
    router_.Add({"POST", "/v1/admin/x", Role::kAdmin, Reach::kLoopback, BodyKind::kOptionalJson, echo});
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
  EXPECT_EQ(RoleName(routes[0]->role), "analyst");
  EXPECT_EQ(routes[3]->reach, Reach::kLoopback);
}

}  // namespace
}  // namespace vigil
