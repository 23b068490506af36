// Scoring a transactions file over MPI ranks: `mpirun -n N vigil process --in F --out P`.
//
// Exact by construction: rank 0 (the master) reads the file and computes every row's features
// in time order with the one FeatureEngine (ComputeFeatures, labels arriving after their delay),
// where the customer and terminal windows live; ranks 1..N-1 (the workers) run the model, the
// costly part, on batches of feature rows and render their CSV rows with the function `vigil
// score` uses; the master writes the batches in order. The output is byte for byte `vigil
// score`'s whatever N is. Workers ask for work: each holds two batches (one being scored, one
// waiting), and gets the next when it returns one, so a slower rank gets fewer. The master
// sends the model file's bytes to the workers: nothing assumes a shared file system.
// docs/distributed.md has the whole picture.
#ifndef VIGIL_DIST_SCORE_JOB_H_
#define VIGIL_DIST_SCORE_JOB_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/file_util.h"
#include "dist/mpi_runtime.h"
#include "dist/wire.h"
#include "vigil/status.h"

namespace vigil::dist {

struct ScoreJobOptions {
  std::string model_path, in_path, out_path;  // read and written by rank 0 only
  std::string kernel = "auto";  // each rank parses it and, for auto, picks its own CPU's fastest
  bool explain = false;         // the reasons column
  bool exact_reasons = false;
  int top_reasons = 3;
  int threads = 1;           // scoring threads in each worker rank
  size_t batch_rows = 1024;  // rows a batch. REQUIRES: >= 1
  // Rank 0: called now and then with the phase ("features", "score") and its fraction done.
  std::function<void(const char* phase, double fraction)> progress;
  // Rank 0: where the output stands (its temporary file, the rows written to it), for a signal
  // handler's last word.
  FileJobProgress* job = nullptr;
};

struct ScoreJobResult {
  uint64_t rows = 0, declined = 0, reviewed = 0;
  std::vector<RankSummary> ranks;  // by rank, the master first
};

// Runs this rank's part. Rank 0 returns once the output is committed, with every rank's
// summary; a worker returns when the master ends the job (its result is empty). A failure on
// any rank (a bad model, an unreadable file, a worker's error) stops every rank, and rank 0
// returns it naming the rank; nothing is written then. REQUIRES: mpi.size() >= 2.
StatusOr<ScoreJobResult> RunScoreJob(Mpi& mpi, const ScoreJobOptions& options);

}  // namespace vigil::dist

#endif  // VIGIL_DIST_SCORE_JOB_H_
