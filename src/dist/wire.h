// What both MPI jobs (the file job, dist/score_job.h, and the queue processor's ranks,
// dist/rank_predictor.h) send the same way: the model a worker builds, and a rank's summary.
#ifndef VIGIL_DIST_WIRE_H_
#define VIGIL_DIST_WIRE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "vigil/scorer.h"
#include "vigil/status.h"

namespace vigil::dist {

// A model for the workers: the file's bytes and how to build it.
struct ModelMessage {
  std::string version;          // the engine's ModelInfo::version (the queue processor's)
  std::string kernel = "auto";  // each worker parses it and, for auto, picks its own CPU's fastest
  bool exact_reasons = false;
  bool explain = false;  // the file job's reasons column
  int top_reasons = 3, threads = 1;
  std::string model;  // the file's bytes
};
std::string EncodeModel(const ModelMessage& m);
// InvalidArgument for another version of Vigil or a malformed message.
StatusOr<ModelMessage> DecodeModel(std::string_view bytes);
// The scorer a worker runs: the model validated as a load from disk would, with its kernel.
StatusOr<std::unique_ptr<Scorer>> BuildScorer(const ModelMessage& m);

// What one rank did.
struct RankSummary {
  int rank = 0;
  std::string host, kernel;  // kernel: "-" for the master
  uint64_t rows = 0, batches = 0;
  double busy_seconds = 0;  // the master: reading, features, writing; a worker: scoring
  double idle_seconds = 0;  // waiting for a message
};
// On the wire: every field but the rank, which the receiver knows.
std::string EncodeSummary(const RankSummary& s);
RankSummary DecodeSummary(int rank, std::string_view bytes);

}  // namespace vigil::dist

#endif  // VIGIL_DIST_WIRE_H_
