#include "serve/http_queue.h"

#include <gtest/gtest.h>

namespace vigil {
namespace {

TEST(HttpQueueTest, RefusesUrlsThatAreNotHttpHostPort) {
  for (const char* bad : {"", "127.0.0.1:8080", "https://x:1", "http://", "http://h:port", "http://h:1/path",
                          "http://[::1", "http://[::1]x", "ftp://x"}) {
    auto q = OpenHttpQueue(bad, "");
    EXPECT_EQ(q.status().code(), StatusCode::kInvalidArgument) << bad;
  }
  for (const char* good : {"http://127.0.0.1:8080", "http://localhost", "http://[::1]:9/", "http://h:1//"}) {
    EXPECT_TRUE(OpenHttpQueue(good, "t").ok()) << good;
  }
}

TEST(HttpQueueTest, AServiceThatIsDownIsUnavailable) {
  // Port 1 on loopback: nothing listens there.
  auto q = OpenHttpQueue("http://127.0.0.1:1", "");
  ASSERT_TRUE(q.ok());
  auto pulled = (*q)->Pull("TQ1", PullOptions{});
  EXPECT_EQ(pulled.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(pulled.status().message().find("cannot be reached"), std::string::npos) << pulled.status().message();
  std::vector<PushItem> items = {{"{}", "t"}};
  Status pushed = Internal("not called");
  (*q)->Push("TQ1", items, [&](const StatusOr<std::vector<std::string>>& r) { pushed = r.status(); });
  EXPECT_EQ(pushed.code(), StatusCode::kUnavailable);
  EXPECT_EQ((*q)->Pull("bad name", PullOptions{}).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace vigil
