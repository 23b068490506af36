#include "vigil/time.h"

#include <cstdio>

namespace vigil {
namespace {

bool Digits(std::string_view s, size_t pos, size_t n, int* out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

bool IsLeap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int DaysInMonth(int y, int m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeap(y) ? 29 : kDays[m - 1];
}

// Parses "YYYY-MM-DD" at the start of `s`; returns days since the epoch.
StatusOr<int64_t> ParseDay(std::string_view s) {
  int y, mo, d;
  if (!Digits(s, 0, 4, &y) || s.size() < 10 || s[4] != '-' || !Digits(s, 5, 2, &mo) ||
      s[7] != '-' || !Digits(s, 8, 2, &d)) {
    return InvalidArgument("'" + std::string(s) + "' is not a date (expected YYYY-MM-DD)");
  }
  if (mo < 1 || mo > 12 || d < 1 || d > DaysInMonth(y, mo)) {
    return InvalidArgument("'" + std::string(s.substr(0, 10)) + "' is not a valid calendar date");
  }
  return DaysFromCivil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
}

}  // namespace

int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

StatusOr<int64_t> ParseDate(std::string_view text) {
  if (text.size() != 10) {
    return InvalidArgument("'" + std::string(text) + "' is not a date (expected YYYY-MM-DD)");
  }
  VIGIL_ASSIGN_OR_RETURN(int64_t days, ParseDay(text));
  return days * kSecondsPerDay;
}

StatusOr<int64_t> ParseRfc3339(std::string_view s) {
  auto bad = [&](const char* why) {
    return InvalidArgument("'" + std::string(s) + "' is not an RFC 3339 timestamp (" + why + ")");
  };
  if (s.size() < 20) return bad("expected YYYY-MM-DDTHH:MM:SSZ");
  auto day = ParseDay(s.substr(0, 10));
  if (!day.ok()) return bad("bad date");
  if (s[10] != 'T' && s[10] != 't' && s[10] != ' ') return bad("expected 'T' after the date");
  int hh, mm, ss;
  if (!Digits(s, 11, 2, &hh) || s[13] != ':' || !Digits(s, 14, 2, &mm) || s[16] != ':' ||
      !Digits(s, 17, 2, &ss)) {
    return bad("bad time of day");
  }
  if (hh > 23 || mm > 59 || ss > 60) return bad("time of day out of range");
  if (ss == 60) ss = 59;  // A leap second maps onto the second before it.
  size_t pos = 19;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    size_t start = pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos;
    if (pos == start) return bad("empty fraction of a second");
  }
  if (pos >= s.size()) return bad("missing time zone ('Z' or +HH:MM)");
  int64_t offset = 0;
  if (s[pos] == 'Z' || s[pos] == 'z') {
    ++pos;
  } else if (s[pos] == '+' || s[pos] == '-') {
    int oh, om;
    if (!Digits(s, pos + 1, 2, &oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !Digits(s, pos + 4, 2, &om) || oh > 23 || om > 59) {
      return bad("bad time zone offset");
    }
    offset = (oh * 3600 + om * 60) * (s[pos] == '-' ? -1 : 1);
    pos += 6;
  } else {
    return bad("bad time zone");
  }
  if (pos != s.size()) return bad("trailing characters");
  return *day * kSecondsPerDay + hh * 3600 + mm * 60 + ss - offset;
}

std::string FormatRfc3339(int64_t t) {
  int64_t days = t / kSecondsPerDay;
  int64_t secs = t % kSecondsPerDay;
  if (secs < 0) {
    secs += kSecondsPerDay;
    --days;
  }
  // civil_from_days (Howard Hinnant).
  int64_t z = days + 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t y = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  y += m <= 2;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02d:%02d:%02dZ", static_cast<long long>(y), m,
                d, static_cast<int>(secs / 3600), static_cast<int>(secs / 60 % 60),
                static_cast<int>(secs % 60));
  return buf;
}

std::string FormatRfc3339Micros(int64_t us) {
  int64_t secs = us / 1000000, frac = us % 1000000;
  if (frac < 0) {
    frac += 1000000;
    --secs;
  }
  std::string s = FormatRfc3339(secs);
  char buf[8];
  std::snprintf(buf, sizeof buf, ".%06d", static_cast<int>(frac));
  s.insert(s.size() - 1, buf);
  return s;
}

std::string FormatDate(int64_t t) { return FormatRfc3339(t).substr(0, 10); }

int Weekday(int64_t t) {
  int64_t days = t / kSecondsPerDay;
  if (t % kSecondsPerDay < 0) --days;
  // 1970-01-01 was a Thursday (3 when Monday is 0).
  int64_t w = (days + 3) % 7;
  return static_cast<int>(w < 0 ? w + 7 : w);
}

}  // namespace vigil
