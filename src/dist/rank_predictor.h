// The queue processor over MPI ranks: `mpirun -n N vigil process --queue-url ...` (or --queue
// nats://..., or --mock K).
//
// Rank 0 (the master) runs the whole processor with its one engine: it pulls, parses, counts
// every transaction's features in the order it takes them (the online state lives there, as in
// one process), records, pushes the prediction records and acknowledges. The model, the costly
// part, runs on ranks 1..N-1 (the workers): the engine hands each batch's feature rows to a
// RankPredictor (vigil/engine.h's RowPredictor), which sends them to a worker and waits for its
// predictions. Each worker holds at most two batches, and a batch goes to the one with the
// fewest, so a slower rank gets fewer. A batch names the model's version; a worker that has
// another gets the model's bytes first, so a hot swap reaches every rank before its next batch
// and nothing assumes a shared file system. docs/distributed.md has the whole picture.
#ifndef VIGIL_DIST_RANK_PREDICTOR_H_
#define VIGIL_DIST_RANK_PREDICTOR_H_

#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "dist/mpi_runtime.h"
#include "dist/wire.h"
#include "vigil/engine.h"
#include "vigil/status.h"

namespace vigil::dist {

struct RankPredictorOptions {
  std::string kernel = "auto";  // each worker parses it and, for auto, picks its own CPU's fastest
  bool exact_reasons = false;
  int threads = 1;  // scoring threads in each worker rank
};

// Rank 0's side. Predict may be called from any thread; Serve runs on the thread that
// initialised MPI, which makes every MPI call.
class RankPredictor : public RowPredictor {
 public:
  // REQUIRES: mpi.rank() == 0, mpi.size() >= 2; mpi outlives this.
  RankPredictor(Mpi& mpi, RankPredictorOptions options);

  // Queues the batch for Serve and waits for a worker's predictions; Unavailable once Close(true)
  // was called. A worker that cannot load the batch's model takes no more batches of that
  // version (its batches go to another); when no worker can, every batch fails and Serve
  // returns why.
  Status Predict(const PredictModel& model, std::span<const float> features, size_t rows,
                 int explain_top_k, std::span<Prediction> out, int* scored_by) override;

  // Hands out the batches until Close, then stops every worker and returns every rank's
  // summary (the master first: its rows are those it handed out). An MPI failure is returned.
  // Once the workers are stopped, a call returns at once (Internal): rank 0 calls it
  // on every way out, since MPI_Finalize waits for every rank.
  StatusOr<std::vector<RankSummary>> Serve();

  // Ends Serve: once the batches queued are answered, or, with `fail`, at once (they and every
  // later one fail with Unavailable). Any thread; idempotent.
  void Close(bool fail);

 private:
  struct Job;
  struct Worker {
    int in_flight = 0;
    std::string version;  // of the model it has, or was sent
    std::string refused;  // == version when it could not load that model: it gets no batch
    std::string why;      // it could not
  };
  void Answer(Job& job, Status status, int worker);
  void FailAll(const Status& why);
  Status Dispatch();
  // Unavailable, naming every worker's reason, when none can score `version`; else Ok.
  Status CheckSomeWorkerCanScore(const std::string& version) const;
  Status Collect(const MpiMessage& m);

  Mpi& mpi_;
  const RankPredictorOptions options_;
  std::mutex mu_;
  std::condition_variable work_cv_;        // Serve's: a batch was queued, or Close
  std::condition_variable done_cv_;        // Predict's: a batch was answered
  std::deque<Job*> queued_;                // under mu_
  bool closed_ = false, failing_ = false;  // under mu_
  // Serve's own (its thread only).
  std::vector<Worker> workers_;
  std::unordered_map<uint64_t, Job*> in_flight_;  // by job id
  uint64_t next_id_ = 0;
  bool workers_stopped_ = false;
  RankSummary master_;
};

// A worker rank's side: models and batches from rank 0 until it says stop. Returns when it
// does; an MPI failure is returned.
Status RunRankWorker(Mpi& mpi);

}  // namespace vigil::dist

#endif  // VIGIL_DIST_RANK_PREDICTOR_H_
