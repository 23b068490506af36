// The one log facility: structured JSON lines on stderr, one per event, used by every component.
//
//   Log(LogLevel::kInfo, "listening", {{"port", 8080}, {"model", name}});
// writes
//   {"ts":"2026-12-01T19:00:00.123Z","level":"info","msg":"listening","port":8080,"model":"gbdt"}
//
// Every string (message, keys, values) is JSON-escaped, and bytes that are not valid UTF-8 are
// written as U+FFFD, so a line is valid JSON whatever it quotes (a file's content, a client's
// id). Replies to clients never carry such details: they go here.
#ifndef VIGIL_CORE_LOG_H_
#define VIGIL_CORE_LOG_H_

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>

namespace vigil {

enum class LogLevel { kDebug, kInfo, kWarn, kError };

std::string_view LogLevelName(LogLevel level);

// One key and its value in a log line.
class LogField {
 public:
  LogField(std::string_view key, std::string_view v) : key_(key), kind_(Kind::kString), s_(v) {}
  LogField(std::string_view key, const char* v) : LogField(key, std::string_view(v)) {}
  LogField(std::string_view key, const std::string& v) : LogField(key, std::string_view(v)) {}
  LogField(std::string_view key, bool v) : key_(key), kind_(Kind::kBool), i_(v) {}
  LogField(std::string_view key, int v) : key_(key), kind_(Kind::kInt), i_(v) {}
  LogField(std::string_view key, long v) : key_(key), kind_(Kind::kInt), i_(v) {}
  LogField(std::string_view key, long long v) : key_(key), kind_(Kind::kInt), i_(v) {}
  LogField(std::string_view key, unsigned v) : key_(key), kind_(Kind::kInt), i_(v) {}
  LogField(std::string_view key, unsigned long v)
      : key_(key), kind_(Kind::kInt), i_(static_cast<int64_t>(v)) {}
  LogField(std::string_view key, unsigned long long v)
      : key_(key), kind_(Kind::kInt), i_(static_cast<int64_t>(v)) {}
  LogField(std::string_view key, double v) : key_(key), kind_(Kind::kDouble), d_(v) {}

  // Appends `"key":value` to `out`.
  void AppendTo(std::string* out) const;

 private:
  enum class Kind { kString, kBool, kInt, kDouble };
  std::string_view key_;
  Kind kind_;
  std::string_view s_;
  int64_t i_ = 0;
  double d_ = 0;
};

// Writes one line when `level` is at or above the threshold (kInfo unless set). Thread-safe;
// lines from concurrent calls never interleave.
void Log(LogLevel level, std::string_view msg, std::initializer_list<LogField> fields = {});

// The line Log would write, without its newline (tests; other sinks).
std::string FormatLogLine(LogLevel level, std::string_view msg,
                          std::initializer_list<LogField> fields);

// Lines below `level` are dropped.
void SetLogLevel(LogLevel level);

// Sends lines to `sink` instead of stderr (an empty function restores stderr). For tests.
void SetLogSink(std::function<void(std::string_view line)> sink);

}  // namespace vigil

#endif  // VIGIL_CORE_LOG_H_
