// The real-time scoring service behind `vigil serve`: HTTP routes over the scoring core, the
// feature engine, the store and the metrics.
#ifndef VIGIL_SERVE_SCORING_SERVICE_H_
#define VIGIL_SERVE_SCORING_SERVICE_H_

#include <chrono>
#include <memory>
#include <string>

#include "vigil/status.h"
#include "vigil/store.h"

namespace vigil {

enum class RecordMode {
  kSync,   // reply once the record is committed: a kill -9 loses no answered transaction
  kAsync,  // reply at once, commit in the background: lower latency, a crash may lose the last
};

struct ServeOptions {
  std::string model_path = "models/gbdt.model";
  std::string data_dir = "data";  // the store lives at <data_dir>/vigil.db
  std::string address = "0.0.0.0";
  int port = 8080;                // 0: any free port
  int threads = 0;                // HTTP I/O threads; 0 = one per core
  RecordMode record = RecordMode::kSync;
  SyncMode sync = SyncMode::kNormal;
  size_t max_batch = 1000;        // transactions per /v1/score/batch call
  size_t max_body_bytes = 1 << 20;
  int explain_top_k = 3;          // reasons per reply
  bool exact_reasons = false;     // ReasonsMethod::kExact rather than kFast (vigil/scorer.h)
};

// A ScoringService owns the HTTP server and everything behind it. Thread-safe.
class ScoringService {
 public:
  ~ScoringService();
  ScoringService(const ScoringService&) = delete;
  ScoringService& operator=(const ScoringService&) = delete;

  // Loads the model, opens the store, rebuilds the online state from the store's records (so a
  // restart forgets nothing it answered), and starts listening.
  static StatusOr<std::unique_ptr<ScoringService>> Start(const ServeOptions& options);

  int port() const;
  // Loads a model file (the current path when empty) and swaps it in; requests in flight finish
  // on the old model, none fails.
  Status Reload(const std::string& path = "");
  // Graceful stop: stop accepting, finish in-flight requests, flush the store.
  void Stop();

 private:
  struct Impl;
  explicit ScoringService(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// One JSON log line on stderr: {"ts": "...", "level": "...", "msg": "...", <fields>}.
void LogJson(const char* level, const std::string& msg, const std::string& fields_json = "");

}  // namespace vigil

#endif  // VIGIL_SERVE_SCORING_SERVICE_H_
