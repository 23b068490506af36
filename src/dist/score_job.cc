#include "dist/score_job.h"

#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>

#include "core/coding.h"
#include "core/file_util.h"
#include "engine/prediction_csv.h"
#include "vigil/dataset.h"
#include "vigil/engine.h"
#include "vigil/features.h"
#include "vigil/scorer.h"

namespace vigil::dist {
namespace {

// Message tags. Master to worker: kModel once, then kWork until kStop (or kQuit when the job
// failed). Worker to master: kReady or kError after the model, kResult per batch, kSummary
// after kStop.
enum Tag : int { kModel = 1, kReady, kWork, kResult, kStop, kSummary, kError, kQuit };

constexpr size_t kMaxModelBytes = size_t{512} << 20;
constexpr int kBatchesAhead = 2;  // batches a worker holds: one it scores, one that waits

using Clock = std::chrono::steady_clock;
double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::string RankName(const std::vector<RankSummary>& ranks, int rank) {
  std::string s = "rank " + std::to_string(rank);
  if (rank < static_cast<int>(ranks.size()) && !ranks[rank].host.empty())
    s += " (" + ranks[rank].host + ")";
  return s;
}

// A batch of work: its index, then each row's transaction id and features.
std::string EncodeWork(uint64_t batch, const Dataset& data, const FeatureMatrix& m, size_t lo,
                       size_t rows) {
  std::string out;
  out.reserve(24 + rows * (8 + 4 * m.cols()));
  PutFixed(batch, &out);
  PutFixed(static_cast<uint32_t>(rows), &out);
  PutFixed(static_cast<uint32_t>(m.cols()), &out);
  out.append(reinterpret_cast<const char*>(data.transaction_id.data() + lo),
             rows * sizeof(int64_t));
  out.append(reinterpret_cast<const char*>(m.row(lo)), rows * m.cols() * sizeof(float));
  return out;
}

// A batch's result: its index, counts, the worker's busy time so far, and its CSV rows.
struct ResultHeader {
  uint64_t batch = 0;
  uint32_t rows = 0, declined = 0, reviewed = 0;
};

// ---------------------------------------------------------------------------------------------
// Worker

Status RunWorker(Mpi& mpi) {
  RankSummary me;
  me.rank = mpi.rank();
  me.host = mpi.host();
  // The last word to the master, after its kStop or kQuit: the summary, which the master waits
  // for before it ends (so nothing a worker sent is left unreceived).
  auto finish = [&]() -> Status {
    VIGIL_RETURN_IF_ERROR(mpi.Send(0, kSummary, EncodeSummary(me)));
    return mpi.FlushSends();
  };
  Clock::time_point wait_start = Clock::now();
  VIGIL_ASSIGN_OR_RETURN(MpiMessage first, mpi.Receive(0));
  if (first.tag == kQuit) return finish();
  if (first.tag != kModel)
    return Internal("rank " + std::to_string(me.rank) + ": expected the model first");
  auto fail = [&](const Status& st) -> Status {
    // Tell the master, which ends the job; drop the work in hand until it does.
    std::string error;
    PutString(me.host, &error);
    PutString(st.message(), &error);
    VIGIL_RETURN_IF_ERROR(mpi.Send(0, kError, std::move(error)));
    for (;;) {
      VIGIL_ASSIGN_OR_RETURN(MpiMessage m, mpi.Receive(0));
      if (m.tag == kQuit || m.tag == kStop) return finish();
    }
  };
  auto model = DecodeModel(first.bytes);
  if (!model.ok()) return fail(model.status());
  first.bytes.clear();
  auto scorer = BuildScorer(*model);
  if (!scorer.ok()) return fail(scorer.status());
  me.kernel = std::string(KernelName((*scorer)->forest().kernel()));
  VIGIL_RETURN_IF_ERROR(mpi.Send(0, kReady, EncodeSummary(me)));
  const int top = model->explain ? model->top_reasons : 0;
  const size_t cols = Features(FeatureSet::kAll).size();
  std::vector<Prediction> predictions;
  std::string out;
  for (;;) {
    wait_start = Clock::now();
    VIGIL_ASSIGN_OR_RETURN(MpiMessage m, mpi.Receive(0));
    me.idle_seconds += Since(wait_start);
    if (m.tag == kQuit || m.tag == kStop) return finish();
    if (m.tag != kWork)
      return fail(Internal("unexpected message " + std::to_string(m.tag) + " from rank 0"));
    const Clock::time_point busy_start = Clock::now();
    ByteReader r(m.bytes);
    ResultHeader h;
    h.batch = r.Fixed<uint64_t>();
    h.rows = r.Fixed<uint32_t>();
    const uint32_t wire_cols = r.Fixed<uint32_t>();
    if (!r.ok() || wire_cols != cols || r.remaining() != h.rows * (8 + cols * 4)) {
      return fail(InvalidArgument("a malformed batch from rank 0"));
    }
    const char* ids = m.bytes.data() + (m.bytes.size() - r.remaining());
    std::vector<float> features(static_cast<size_t>(h.rows) * cols);
    std::memcpy(features.data(), ids + size_t{h.rows} * 8, features.size() * sizeof(float));
    predictions.resize(h.rows);
    PredictRows(**scorer, features, h.rows, top, model->threads, predictions);
    out.clear();
    PutFixed(h.batch, &out);
    PutFixed(h.rows, &out);
    const size_t counts_at = out.size();
    PutFixed(uint32_t{0}, &out);
    PutFixed(uint32_t{0}, &out);
    for (uint32_t i = 0; i < h.rows; ++i) {
      int64_t id;
      std::memcpy(&id, ids + size_t{i} * 8, 8);
      AppendPredictionCsvRow(&out, id, predictions[i], model->explain);
      h.declined += predictions[i].decision == Decision::kDecline;
      h.reviewed += predictions[i].decision == Decision::kReview;
    }
    std::memcpy(out.data() + counts_at, &h.declined, 4);
    std::memcpy(out.data() + counts_at + 4, &h.reviewed, 4);
    me.rows += h.rows;
    me.batches += 1;
    me.busy_seconds += Since(busy_start);
    VIGIL_RETURN_IF_ERROR(mpi.Send(0, kResult, std::move(out)));
    out = std::string();
  }
}

// ---------------------------------------------------------------------------------------------
// Master

class Master {
 public:
  Master(Mpi& mpi, const ScoreJobOptions& o) : mpi_(mpi), o_(o) {
    ranks_.resize(mpi.size());
    stopped_.assign(mpi.size(), false);
    for (int r = 0; r < mpi.size(); ++r) ranks_[r].rank = r;
    ranks_[0].host = mpi.host();
    ranks_[0].kernel = "-";
  }

  StatusOr<ScoreJobResult> Run() {
    Status st = RunInner();
    if (!st.ok()) {
      if (Status quit = Quit(); !quit.ok()) {
        FileJobProgress none;
        std::fprintf(stderr, "vigil process: error: %s; ending every rank (%s); stopped with %s\n",
                     st.message().c_str(), quit.message().c_str(),
                     (o_.job != nullptr ? *o_.job : none).StoppedAccount(o_.out_path).c_str());
        mpi_.Abort(1);
      }
      return st;
    }
    ScoreJobResult result;
    result.rows = rows_;
    result.declined = declined_;
    result.reviewed = reviewed_;
    result.ranks = ranks_;
    return result;
  }

 private:
  Status RunInner() {
    Clock::time_point t = Clock::now();
    VIGIL_ASSIGN_OR_RETURN(std::string bytes, ReadFile(o_.model_path, kMaxModelBytes));
    VIGIL_ASSIGN_OR_RETURN(ModelFile file, ParseModel(bytes, o_.model_path));
    VIGIL_ASSIGN_OR_RETURN(Kernel kernel, ParseKernel(o_.kernel));
    // The master's scorer checks the model and gives the feature options; workers score.
    VIGIL_ASSIGN_OR_RETURN(
        std::unique_ptr<Scorer> scorer,
        Scorer::Create(std::move(file), kernel == Kernel::kAuto ? Kernel::kScalar : kernel));
    ModelMessage mm;
    mm.kernel = o_.kernel;
    mm.exact_reasons = o_.exact_reasons;
    mm.explain = o_.explain;
    mm.top_reasons = o_.top_reasons;
    mm.threads = o_.threads;
    mm.model = std::move(bytes);
    const std::string model_message = EncodeModel(mm);
    for (int w = 1; w < mpi_.size(); ++w)
      VIGIL_RETURN_IF_ERROR(mpi_.Send(w, kModel, model_message));

    VIGIL_ASSIGN_OR_RETURN(Dataset data, ReadTransactionsCsv(o_.in_path));
    if (o_.job != nullptr) o_.job->rows_total.store(data.size());
    VIGIL_ASSIGN_OR_RETURN(std::unique_ptr<AtomicFile> out, AtomicFile::Create(o_.out_path));
    if (o_.job != nullptr) o_.job->SetTempPath(out->temp_path());
    const FeatureMatrix m =
        ComputeFeatures(data, scorer->engine_set(), scorer->engine_options(), [&](double f) {
          if (o_.progress) o_.progress("features", f);
        });
    if (o_.progress) o_.progress("features", 1.0);
    scorer.reset();
    ranks_[0].busy_seconds += Since(t);

    // Every worker has its model (or says why not) before any work goes out.
    for (int ready = 1; ready < mpi_.size(); ++ready) {
      VIGIL_ASSIGN_OR_RETURN(MpiMessage msg, Wait());
      if (msg.tag == kError) return WorkerError(msg);
      if (msg.tag != kReady) {
        return Internal(RankName(ranks_, msg.source) + " answered the model with " +
                        std::to_string(msg.tag));
      }
      ranks_[msg.source] = DecodeSummary(msg.source, msg.bytes);
    }

    out->Write(PredictionCsvHeader(o_.explain));
    const size_t n = data.size();
    const size_t batch = o_.batch_rows;
    const uint64_t batches = (n + batch - 1) / batch;
    uint64_t next_send = 0, next_write = 0;
    std::map<uint64_t, std::string> done;  // results that came before an earlier batch's
    auto send_next = [&](int worker) -> Status {
      if (next_send == batches) return Status::Ok();
      const size_t lo = next_send * batch;
      VIGIL_RETURN_IF_ERROR(
          mpi_.Send(worker, kWork, EncodeWork(next_send, data, m, lo, std::min(batch, n - lo))));
      ++next_send;
      return Status::Ok();
    };
    for (int ahead = 0; ahead < kBatchesAhead; ++ahead) {
      for (int w = 1; w < mpi_.size(); ++w) VIGIL_RETURN_IF_ERROR(send_next(w));
    }
    while (next_write < batches) {
      VIGIL_ASSIGN_OR_RETURN(MpiMessage msg, Wait());
      t = Clock::now();
      if (msg.tag == kError) return WorkerError(msg);
      if (msg.tag != kResult)
        return Internal(RankName(ranks_, msg.source) + " sent message " + std::to_string(msg.tag));
      ByteReader r(msg.bytes);
      ResultHeader h;
      h.batch = r.Fixed<uint64_t>();
      h.rows = r.Fixed<uint32_t>();
      h.declined = r.Fixed<uint32_t>();
      h.reviewed = r.Fixed<uint32_t>();
      if (!r.ok() || h.batch >= next_send || h.batch < next_write || done.count(h.batch) != 0) {
        return Internal(RankName(ranks_, msg.source) + " returned a batch that was not its own");
      }
      RankSummary& s = ranks_[msg.source];
      s.rows += h.rows;
      s.batches += 1;
      rows_ += h.rows;
      declined_ += h.declined;
      reviewed_ += h.reviewed;
      VIGIL_RETURN_IF_ERROR(send_next(msg.source));
      msg.bytes.erase(0, msg.bytes.size() - r.remaining());
      done.emplace(h.batch, std::move(msg.bytes));
      for (auto it = done.begin(); it != done.end() && it->first == next_write;
           it = done.erase(it)) {
        out->Write(it->second);
        ++next_write;
        if (o_.job != nullptr) o_.job->rows_done.store(std::min<uint64_t>(n, next_write * batch));
      }
      if (o_.progress) o_.progress("score", static_cast<double>(rows_) / static_cast<double>(n));
      ranks_[0].busy_seconds += Since(t);
    }
    for (int w = 1; w < mpi_.size(); ++w) VIGIL_RETURN_IF_ERROR(mpi_.Send(w, kStop, ""));
    for (int left = 1; left < mpi_.size(); ++left) {
      VIGIL_ASSIGN_OR_RETURN(MpiMessage msg, Wait());
      if (msg.tag != kSummary) return Internal(RankName(ranks_, msg.source) + " did not stop");
    }
    t = Clock::now();
    VIGIL_RETURN_IF_ERROR(out->Commit());
    if (o_.job != nullptr) {
      o_.job->committed.store(true);
      o_.job->SetTempPath("");
    }
    ranks_[0].busy_seconds += Since(t);
    ranks_[0].rows = rows_;
    ranks_[0].batches = batches;
    return Status::Ok();
  }

  // The next message from any worker; notes the summaries, a worker's last message.
  StatusOr<MpiMessage> Wait() {
    const Clock::time_point t = Clock::now();
    auto m = mpi_.Receive(kAnySource);
    ranks_[0].idle_seconds += Since(t);
    if (m.ok() && m->tag == kSummary && m->source > 0 && m->source < mpi_.size()) {
      stopped_[m->source] = true;
      ranks_[m->source] = DecodeSummary(m->source, m->bytes);
    }
    return m;
  }

  // A worker's kError: its host and what went wrong, for the job's error.
  Status WorkerError(const MpiMessage& msg) {
    ByteReader r(msg.bytes);
    std::string host, message;
    r.String(&host);
    r.String(&message);
    return Internal("rank " + std::to_string(msg.source) + " (" + host + "): " + message);
  }

  // Ends the workers after a failure: each gets kQuit, drops the work in hand and answers with
  // its summary; what they sent before it is received and dropped.
  Status Quit() {
    for (int w = 1; w < mpi_.size(); ++w) {
      if (!stopped_[w]) VIGIL_RETURN_IF_ERROR(mpi_.Send(w, kQuit, ""));
    }
    for (int w = 1; w < mpi_.size(); ++w) {
      while (!stopped_[w]) VIGIL_RETURN_IF_ERROR(Wait().status());
    }
    return mpi_.FlushSends();
  }

  Mpi& mpi_;
  const ScoreJobOptions& o_;
  std::vector<RankSummary> ranks_;
  std::vector<bool> stopped_;  // the worker sent its summary: it sends nothing more
  uint64_t rows_ = 0, declined_ = 0, reviewed_ = 0;
};

}  // namespace

StatusOr<ScoreJobResult> RunScoreJob(Mpi& mpi, const ScoreJobOptions& options) {
  if (options.batch_rows < 1) return InvalidArgument("a batch needs at least one row");
  if (mpi.rank() != 0) {
    VIGIL_RETURN_IF_ERROR(RunWorker(mpi));
    return ScoreJobResult{};
  }
  Master master(mpi, options);
  return master.Run();
}

}  // namespace vigil::dist
