// Time in Vigil: int64 seconds since the Unix epoch, UTC. Days are UTC calendar days.
#ifndef VIGIL_TIME_H_
#define VIGIL_TIME_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "vigil/status.h"

namespace vigil {

inline constexpr int64_t kSecondsPerDay = 86400;

// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
int64_t DaysFromCivil(int64_t year, unsigned month, unsigned day);

// Parses "YYYY-MM-DD" into the epoch second of that day's midnight UTC.
StatusOr<int64_t> ParseDate(std::string_view text);

// Parses an RFC 3339 timestamp: "YYYY-MM-DDTHH:MM:SS[.fff](Z|+HH:MM|-HH:MM)", 'T' or ' ' as the
// separator. Fractional seconds are truncated. Returns the epoch second in UTC.
StatusOr<int64_t> ParseRfc3339(std::string_view text);

// "2018-04-01T00:00:31Z".
std::string FormatRfc3339(int64_t epoch_seconds);
// "2018-04-01T00:00:31.000250Z": microseconds since the epoch.
std::string FormatRfc3339Micros(int64_t epoch_us);
// "2018-04-01".
std::string FormatDate(int64_t epoch_seconds);

// Monday = 0 ... Sunday = 6, as Python's datetime.weekday().
int Weekday(int64_t epoch_seconds);
// 0..23
inline int HourOfDay(int64_t epoch_seconds) {
  int64_t s = epoch_seconds % kSecondsPerDay;
  if (s < 0) s += kSecondsPerDay;
  return static_cast<int>(s / 3600);
}

}  // namespace vigil

#endif  // VIGIL_TIME_H_
