// The scoring engine: a Transaction in, a Prediction out, the same way for every front end.
//
// The engine owns the path of one transaction past its front end's parsing: idempotency (a
// repeated transaction id or Idempotency-Key gets the first reply and counts once), the online
// features, the models (hot-swappable), the decision and its reasons, and the durable record. It
// knows nothing of HTTP, queues or MPI: `vigil serve`, the queue processor, the MPI ranks and
// `vigil score` parse their wire format, call it, and render what it returns with one codec
// (src/engine/prediction_json.h).
//
// The online state changes only for a transaction known to be new: a repeat never reaches the
// features, and a transaction whose record cannot be committed is taken out of them again
// before anyone is told, so the state after a restart (rebuilt from the records) equals the live
// one. Transactions of one customer that are in flight together see each other (a burst from one
// card is the card-testing pattern a fraud model must see).
#ifndef VIGIL_ENGINE_H_
#define VIGIL_ENGINE_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vigil/dataset.h"
#include "vigil/decision.h"
#include "vigil/model.h"
#include "vigil/scorer.h"
#include "vigil/status.h"
#include "vigil/store.h"
#include "vigil/transaction.h"

namespace vigil {

class MetricsRegistry;

// What the engine concluded about one transaction.
struct Prediction {
  std::string transaction_id;
  double score = 0;          // fraud probability 0..1
  Decision decision = Decision::kApprove;
  double anomaly_score = 0;  // NaN when the model has no anomaly forest
  std::vector<Reason> reasons;  // strongest first
  std::string model_name, model_version;
  Algorithm algorithm = Algorithm::kGbdt;
  int64_t latency_us = 0;  // from the engine's first look at it to the prediction
};

// The model the engine scores with: its name (the file's stem), version (a hash of its bytes)
// and algorithm.
struct ModelInfo {
  std::string name, version;
  Algorithm algorithm = Algorithm::kGbdt;
  std::string reasons_method;  // Scorer::reasons_method()
  Kernel kernel = Kernel::kScalar;  // the kernel scoring its forest (Forest::kernel(), never kAuto)
};

// The model of a batch, as a RowPredictor sees it: the compiled scorer, its name and version,
// and the file's bytes (for a predictor that scores elsewhere and must send the model there).
struct PredictModel {
  const Scorer& scorer;
  const ModelInfo& info;
  const std::string& bytes;
};

// Runs the model on the feature rows of a batch (ScoreBatch's new transactions, after their
// features were counted in order): in this process when EngineOptions::predictor is null; the
// MPI processor's rank 0 sends them to its worker ranks (src/dist/rank_predictor.h). Called from
// every thread that calls ScoreBatch, several at a time.
class RowPredictor {
 public:
  virtual ~RowPredictor() = default;
  // out[i] = Predict(model.scorer, row i, explain_top_k) for rows rows of features (row-major,
  // Features(FeatureSet::kAll).size() a row); *scored_by says who ran them (processor_rank).
  // An error means nothing of the batch is counted or recorded: its callers retry.
  virtual Status Predict(const PredictModel& model, std::span<const float> features, size_t rows,
                         int explain_top_k, std::span<Prediction> out, int* scored_by) = 0;
};

enum class RecordMode {
  kSync,   // the outcome is given once the record is committed: a kill -9 loses nothing given
  kAsync,  // the outcome is given first, the record written right after it: with
           // Durability::kPowerLoss the reply does not wait for the disk; a crash may lose the
           // records of the replies given last
};

struct EngineOptions {
  std::string model_path = "models/gbdt.model";
  // Reload(name) loads <models_dir>/<name>.model; empty: the folder of model_path.
  std::string models_dir;
  // Model files are regular files of at most this many bytes; anything else is refused unread.
  size_t max_model_bytes = size_t{512} << 20;
  std::string data_dir = "data";  // the store's folder (vigil/store.h)
  RecordMode record = RecordMode::kSync;
  // What a record must survive before its outcome is given (--record sync) or counted.
  Durability durability = Durability::kProcessCrash;
  // How long an index write waits for a lock another process holds on the index file.
  int store_busy_timeout_ms = 5000;
  // The tree kernel of every model loaded (vigil/forest.h): kAuto times the kernels the CPU has
  // on each model as it loads; another forces one (a kernel the CPU lacks fails the load).
  Kernel kernel = Kernel::kAuto;
  int explain_top_k = 3;       // reasons per prediction (0: none)
  bool exact_reasons = false;  // ReasonsMethod::kExact rather than kFast (vigil/scorer.h)
  // The online state is saved to <data_dir>/snapshots every this many records, or this often
  // when fewer came, and when the engine stops; start-up loads the newest and replays only the
  // records after it. REQUIRES: >= 1.
  int64_t snapshot_every_records = 1000000;
  std::chrono::seconds snapshot_interval{300};
  // Records older than this are dropped from the journal and the index, a journal segment
  // (64 MiB) at a time, once a minute; 0 keeps everything. Ids older than this are no longer
  // recognised as repeats.
  std::chrono::seconds retain{std::chrono::hours(24 * 90)};
  // Replies kept in memory for repeats (about 1 KB each); older ones are read from the store.
  // REQUIRES: >= 1.
  size_t recent_replies = 50000;
  // A front end that works through bursts of requests (an HTTP I/O thread handling the requests
  // that were ready together) gives a way to run a task once the burst is handled: the records
  // of the burst are then committed in one write, and their outcomes given together, instead of
  // one write and one wake-up of the client per request. Empty: each record at once.
  std::function<void(std::function<void()>)> after_burst;
  // Where ScoreBatch runs the model (above); null: in this process. Score always runs it here.
  std::shared_ptr<RowPredictor> predictor;
};

// How one Score call ended.
struct ScoreOutcome {
  // Ok; Unavailable: nothing was recorded or counted (the store refused the write), retry;
  // AlreadyExists: the Idempotency-Key was first used for another request, nothing done.
  Status status;
  bool replay = false;  // the reply first given to this transaction id or key
  // The reply, rendered once (RenderPrediction) and given byte for byte to every replay. Set
  // when status is Ok.
  std::shared_ptr<const std::string> reply;
  // Who ran the model, as RowPredictor::Predict said; -1: this process, or a replay.
  int scored_by = -1;
};

// How the engine rebuilt its online state when it opened.
struct StartupInfo {
  int64_t snapshot_through = 0;  // the snapshot loaded held the state up to this record (0: none)
  int64_t replayed = 0;          // records replayed from the journal after it
  double seconds = 0;            // the two together
};

// A stored transaction with its prediction and the features the model saw.
struct TransactionDetail {
  TransactionRecord record;
  std::vector<std::string> feature_names;  // beside record.features; empty when it is
};

// An Engine scores transactions online, records them and answers for them later.
// Thread-safe: every method may be called from any thread.
class Engine {
 public:
  // Loads the model, opens the store and rebuilds the online features from its records.
  static StatusOr<std::unique_ptr<Engine>> Open(const EngineOptions& options);
  // Flushes the store.
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  using Done = std::function<void(ScoreOutcome)>;

  // Scores `tx` and calls `done` exactly once, on this thread or on the thread that commits its
  // record, possibly before Score returns. `idempotency_key` may be empty; a repeat of a key with
  // another transaction (its JSON differs) is refused with AlreadyExists.
  // REQUIRES: tx passed TransactionParser's validation (ids non-empty, amount finite).
  void Score(Transaction tx, std::string idempotency_key, Done done);

  // Scores several transactions whose records are committed together; `done` gets one outcome
  // per transaction, in order. A transaction id repeated inside the batch is scored once; its
  // repeats are replays. The features are counted in order, then the model runs on the new ones
  // together (EngineOptions::predictor).
  void ScoreBatch(std::vector<Transaction> txs, std::function<void(std::vector<ScoreOutcome>)> done);

  // Loads <models_dir>/<name>.model and swaps it in; scoring in flight finishes on the old model.
  // `name` is a model name ([A-Za-z0-9][A-Za-z0-9._-]*, at most 128 characters; ".model" may be
  // given or not), never a path; empty reloads the current file. Errors name the model, never
  // the file's content: InvalidArgument (bad name, not a regular file, over max_model_bytes,
  // not a valid model, another label delay), NotFound; details go to the log. Blocks while it
  // reads and compiles the model: call it off any thread that serves requests.
  StatusOr<ModelInfo> Reload(std::string_view name = "");

  ModelInfo model() const;

  // The stored transaction with this id, or nullopt.
  StatusOr<std::optional<TransactionDetail>> Find(std::string_view transaction_id);

  // A fraud label for an earlier transaction (analyst feedback, a chargeback): from now on it
  // counts in its terminal's risk windows. NotFound when the transaction is unknown to the
  // online features or older than their horizon.
  Status AddLabel(std::string_view transaction_id, bool fraud);

  // The features a transaction would get now, without scoring or counting it.
  // REQUIRES: out.size() == Features(FeatureSet::kAll).size()
  void PeekFeatures(const Transaction& tx, std::span<float> out) const;

  // Ok when the store takes writes now and the engine is not stopping.
  Status Ready();

  // Waits until every record of an outcome already given is committed (or failed).
  Status Flush();
  // Refuses new work (Score answers Unavailable) and flushes. Idempotent.
  void Stop();

  StartupInfo startup() const;
  // The record the newest snapshot written holds the state through (0: none yet).
  int64_t snapshot_through() const;

  // Records committed; records still queued for the store.
  int64_t committed() const;
  size_t backlog() const;

  // The engine's metrics (predictions by model and decision, scores, store, reloads); a front
  // end adds its own families to the same registry.
  MetricsRegistry& metrics();

  // Use Open().
  struct Impl;
  explicit Engine(std::unique_ptr<Impl> impl);

 private:
  std::unique_ptr<Impl> impl_;
};

// Offline scoring of a whole data set with the same pipeline (vigil score, and the MPI
// processor's file mode): features replayed in time order with each label arriving its delay
// after its transaction, then the model on every row, in parallel. `sink` receives every
// prediction in row order with its row index.
struct BatchScoreOptions {
  int explain_top_k = 0;
  int threads = 0;  // 0: one per core
  std::function<void(double)> progress;  // fraction done, now and then
};
Status ScoreDataset(const Scorer& scorer, const Dataset& data, const BatchScoreOptions& options,
                    const std::function<void(size_t row, const Prediction&)>& sink);

// The model on `rows` rows of features (row-major, Features(FeatureSet::kAll).size() a row)
// into out[0..rows), on `threads` threads (at least 1): ScoreDataset's second half, and an MPI
// worker's batch. The results do not depend on the thread count.
void PredictRows(const Scorer& scorer, std::span<const float> features, size_t rows,
                 int explain_top_k, int threads, std::span<Prediction> out);

// The prediction of one row of features: the one step every path shares.
// REQUIRES: features.size() == Features(FeatureSet::kAll).size()
Prediction Predict(const Scorer& scorer, std::span<const float> features, int explain_top_k);

}  // namespace vigil

#endif  // VIGIL_ENGINE_H_
