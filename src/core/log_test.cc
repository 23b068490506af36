#include "core/log.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace vigil {
namespace {

TEST(LogTest, LineIsJsonWithEscapedFields) {
  const std::string line =
      FormatLogLine(LogLevel::kWarn, "model \"evil\"\nname",
                    {{"name", "a\"b\\c"}, {"n", 42}, {"ok", true}, {"x", 0.5}});
  auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j["level"], "warn");
  EXPECT_EQ(j["msg"], "model \"evil\"\nname");
  EXPECT_EQ(j["name"], "a\"b\\c");
  EXPECT_EQ(j["n"], 42);
  EXPECT_EQ(j["ok"], true);
  EXPECT_EQ(j["x"], 0.5);
  EXPECT_EQ(j["ts"].get<std::string>().back(), 'Z');
}

TEST(LogTest, InvalidUtf8BecomesReplacementCharacter) {
  const std::string bytes = std::string("root:\xff\xfe:x\xc3", 10) + "\xe2\x82\xac";  // ends with €
  const std::string line = FormatLogLine(LogLevel::kError, bytes, {{"content", bytes}});
  auto j = nlohmann::json::parse(line);  // throws on invalid UTF-8
  EXPECT_EQ(j["msg"], "root:\xEF\xBF\xBD\xEF\xBF\xBD:x\xEF\xBF\xBD\xe2\x82\xac");
}

TEST(LogTest, SinkAndLevelFilter) {
  std::vector<std::string> lines;
  SetLogSink([&](std::string_view l) { lines.emplace_back(l); });
  SetLogLevel(LogLevel::kWarn);
  Log(LogLevel::kInfo, "dropped");
  Log(LogLevel::kError, "kept", {{"k", "v"}});
  SetLogLevel(LogLevel::kInfo);
  SetLogSink({});
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(nlohmann::json::parse(lines[0])["msg"], "kept");
}

}  // namespace
}  // namespace vigil
