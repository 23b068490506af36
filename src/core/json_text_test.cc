#include "core/json_text.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>

namespace vigil {
namespace {

std::string Quoted(std::string_view s) {
  std::string out;
  AppendJsonString(&out, s);
  return out;
}

TEST(JsonTextTest, EscapesWhatJsonRequiresAndNothingElse) {
  EXPECT_EQ(Quoted(""), "\"\"");
  EXPECT_EQ(Quoted("plain id-42"), "\"plain id-42\"");
  EXPECT_EQ(Quoted("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(Quoted("line\nnext\r\ttab"), "\"line\\nnext\\r\\ttab\"");
  EXPECT_EQ(Quoted(std::string("nul\0bell\x07", 9)), "\"nul\\u0000bell\\u0007\"");
  EXPECT_EQ(Quoted("caf\xc3\xa9 \xe2\x82\xac"), "\"caf\xc3\xa9 \xe2\x82\xac\"");  // UTF-8 as is
}

TEST(JsonTextTest, StringsReadBackThroughAJsonParser) {
  std::string all;
  for (int c = 1; c < 128; ++c) all.push_back(static_cast<char>(c));
  EXPECT_EQ(nlohmann::json::parse(Quoted(all)).get<std::string>(), all);
}

TEST(JsonTextTest, NumbersAreShortestRoundTripAndNonFiniteIsNull) {
  for (double v : {0.0, -0.0, 1.0, 0.1, 0.8123456789012345, 1e-300, -123456.75, 1e300}) {
    std::string out;
    AppendJsonNumber(&out, v);
    EXPECT_EQ(std::stod(out), v) << out;
  }
  std::string out;
  AppendJsonNumber(&out, 0.25);
  EXPECT_EQ(out, "0.25");
  for (double v : {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(),
                   -std::numeric_limits<double>::infinity()}) {
    std::string s;
    AppendJsonNumber(&s, v);
    EXPECT_EQ(s, "null");
  }
}

}  // namespace
}  // namespace vigil
