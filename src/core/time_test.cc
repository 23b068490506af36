#include "vigil/time.h"

#include <gtest/gtest.h>

namespace vigil {
namespace {

TEST(TimeTest, RoundTripsRfc3339) {
  auto t = ParseRfc3339("2018-04-01T00:00:31Z");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(*t, 1522540831);
  EXPECT_EQ(FormatRfc3339(*t), "2018-04-01T00:00:31Z");
}

TEST(TimeTest, FormatsMicroseconds) {
  EXPECT_EQ(FormatRfc3339Micros(1522540831000250), "2018-04-01T00:00:31.000250Z");
  EXPECT_EQ(FormatRfc3339Micros(0), "1970-01-01T00:00:00.000000Z");
  EXPECT_EQ(FormatRfc3339Micros(-1), "1969-12-31T23:59:59.999999Z");
}

TEST(TimeTest, AppliesOffsetsAndFractions) {
  EXPECT_EQ(*ParseRfc3339("2018-04-01T02:00:31.999+02:00"), 1522540831);
  EXPECT_EQ(*ParseRfc3339("2018-03-31T23:00:31-01:00"), 1522540831);
}

TEST(TimeTest, RejectsBadTimestamps) {
  for (const char* bad : {"", "2018-04-01", "2018-13-01T00:00:00Z", "2018-02-30T00:00:00Z",
                          "2018-04-01T25:00:00Z", "2018-04-01T00:00:00", "2018-04-01T00:00:00Zx",
                          "abcd-04-01T00:00:00Z"}) {
    EXPECT_FALSE(ParseRfc3339(bad).ok()) << bad;
  }
}

TEST(TimeTest, WeekdayAndHour) {
  int64_t sunday = *ParseDate("2018-04-01");
  EXPECT_EQ(Weekday(sunday), 6);
  EXPECT_EQ(Weekday(sunday + kSecondsPerDay), 0);
  EXPECT_EQ(HourOfDay(sunday + 6 * 3600 + 3599), 6);
  EXPECT_FALSE(ParseDate("2018-4-1").ok());
}

}  // namespace
}  // namespace vigil
