#include "core/log.h"

#include <atomic>
#include <chrono>
#include <cstdio>

#include "core/json_text.h"
#include "core/mutex.h"
#include "vigil/time.h"

namespace vigil {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
Mutex g_mu;
std::function<void(std::string_view)> g_sink GUARDED_BY(g_mu);

// Appends `s` as a JSON string, each byte sequence that is not valid UTF-8 as U+FFFD.
void AppendSafeString(std::string* out, std::string_view s) {
  std::string clean;
  clean.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    bool valid = len > 0 && i + len <= s.size() && !(len == 2 && c < 0xC2);
    for (size_t k = 1; valid && k < len; ++k) {
      valid = (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
    }
    if (valid && len == 3) {
      const unsigned c1 = static_cast<unsigned char>(s[i + 1]);
      valid = !(c == 0xE0 && c1 < 0xA0) && !(c == 0xED && c1 >= 0xA0);  // overlong, surrogate
    }
    if (valid && len == 4) {
      const unsigned c1 = static_cast<unsigned char>(s[i + 1]);
      valid = !(c == 0xF0 && c1 < 0x90) && !(c == 0xF4 && c1 >= 0x90) && c <= 0xF4;
    }
    if (valid) {
      clean.append(s.data() + i, len);
      i += len;
    } else {
      clean += "\xEF\xBF\xBD";
      ++i;
    }
  }
  AppendJsonString(out, clean);
}

}  // namespace

std::string_view LogLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
  }
  return "error";
}

void LogField::AppendTo(std::string* out) const {
  AppendSafeString(out, key_);
  out->push_back(':');
  switch (kind_) {
    case Kind::kString: AppendSafeString(out, s_); break;
    case Kind::kBool: *out += i_ ? "true" : "false"; break;
    case Kind::kInt: *out += std::to_string(i_); break;
    case Kind::kDouble: AppendJsonNumber(out, d_); break;
  }
}

std::string FormatLogLine(LogLevel level, std::string_view msg,
                          std::initializer_list<LogField> fields) {
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  std::string ts = FormatRfc3339(now_ms / 1000);
  char frac[8];
  std::snprintf(frac, sizeof frac, ".%03dZ", static_cast<int>(now_ms % 1000));
  if (!ts.empty() && ts.back() == 'Z') ts.pop_back();
  std::string line = "{\"ts\":\"" + ts + frac + "\",\"level\":\"";
  line += LogLevelName(level);
  line += "\",\"msg\":";
  AppendSafeString(&line, msg);
  for (const LogField& f : fields) {
    line.push_back(',');
    f.AppendTo(&line);
  }
  line.push_back('}');
  return line;
}

void Log(LogLevel level, std::string_view msg, std::initializer_list<LogField> fields) {
  if (static_cast<int>(level) < g_level.load(std::memory_order_relaxed)) return;
  std::string line = FormatLogLine(level, msg, fields);
  MutexLock lock(&g_mu);
  if (g_sink) return g_sink(line);
  line.push_back('\n');
  std::fwrite(line.data(), 1, line.size(), stderr);
}

void SetLogLevel(LogLevel level) { g_level.store(static_cast<int>(level)); }

void SetLogSink(std::function<void(std::string_view line)> sink) {
  MutexLock lock(&g_mu);
  g_sink = std::move(sink);
}

}  // namespace vigil
