#include "serve/http_util.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>

namespace vigil {
namespace {

using std::string_literals::operator""s;

TEST(HttpUtilTest, PercentDecodeDecodesEscapes) {
  EXPECT_EQ(PercentDecode(""), "");
  EXPECT_EQ(PercentDecode("cust-42"), "cust-42");
  EXPECT_EQ(PercentDecode("a%20b"), "a b");
  EXPECT_EQ(PercentDecode("%41%4a%4A"), "AJJ");  // hex digits in either case
  EXPECT_EQ(PercentDecode("a+b"), "a+b");        // '+' is not a space in a path
  EXPECT_EQ(PercentDecode("%2B"), "+");
  EXPECT_EQ(PercentDecode("a%2Fb"), "a/b");  // inside one segment
  EXPECT_EQ(PercentDecode("%25"), "%");
  EXPECT_EQ(PercentDecode("%2541"), "%41");  // decoded once, not twice
  EXPECT_EQ(PercentDecode("caf%C3%A9"), "caf\xC3\xA9");
  EXPECT_EQ(PercentDecode("caf\xC3\xA9"), "caf\xC3\xA9");        // raw UTF-8 passes
  EXPECT_EQ(PercentDecode("%E2%82%AC"), "\xE2\x82\xAC");         // U+20AC, 3 bytes
  EXPECT_EQ(PercentDecode("%F0%9F%98%80"), "\xF0\x9F\x98\x80");  // U+1F600, 4 bytes
  EXPECT_EQ(PercentDecode("%F4%8F%BF%BF"), "\xF4\x8F\xBF\xBF");  // U+10FFFF, the last
}

TEST(HttpUtilTest, PercentDecodeRejectsMalformedEscapes) {
  for (const char* bad : {"%", "%4", "%zz", "%g1", "%1g", "abc%", "abc%4", "%%41", "% 41"}) {
    EXPECT_EQ(PercentDecode(bad), std::nullopt) << bad;
  }
}

TEST(HttpUtilTest, PercentDecodeRejectsNul) {
  EXPECT_EQ(PercentDecode("a%00b"), std::nullopt);
  EXPECT_EQ(PercentDecode("%00"), std::nullopt);
  EXPECT_EQ(PercentDecode("a\0b"s), std::nullopt);  // sent raw
}

TEST(HttpUtilTest, PercentDecodeRejectsInvalidUtf8) {
  for (const std::string& bad : {
           "%FF"s, "%FE"s,
           "%80"s,           // a continuation byte alone
           "%C3"s,           // truncated 2-byte sequence
           "%C3%28"s,        // bad continuation
           "%C0%AF"s,        // overlong '/'
           "%C1%BF"s,        // overlong
           "%E0%80%AF"s,     // overlong, 3 bytes
           "%ED%A0%80"s,     // surrogate U+D800
           "%F0%8F%BF%BF"s,  // overlong, 4 bytes
           "%F4%90%80%80"s,  // U+110000, above the last code point
           "%F5%80%80%80"s,
           "%E2%82"s,   // truncated 3-byte sequence
           "caf\xE9"s,  // raw Latin-1
       }) {
    EXPECT_EQ(PercentDecode(bad), std::nullopt) << bad;
  }
}

TEST(HttpUtilTest, IsJsonContentTypeAcceptsApplicationJson) {
  for (const char* good : {"application/json", "Application/JSON", "APPLICATION/JSON",
                           "application/json; charset=utf-8", "application/json ;charset=UTF-8",
                           "application/json;charset=utf-8", " application/json ",
                           "\tapplication/json\t; charset=utf-8", "application/json;"}) {
    EXPECT_TRUE(IsJsonContentType(good)) << good;
  }
}

TEST(HttpUtilTest, IsJsonContentTypeRejectsOtherTypes) {
  for (const char* bad :
       {"", " ", ";", "application/jsonp", "application/json-seq", "text/json", "application/*",
        "*/*", "application", "application/", "/json", "application/ json", "application /json",
        "application/json, text/plain", "application/problem+json", "xapplication/json",
        "text/plain; x=application/json"}) {
    EXPECT_FALSE(IsJsonContentType(bad)) << bad;
  }
}

}  // namespace
}  // namespace vigil
