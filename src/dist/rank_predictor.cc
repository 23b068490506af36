#include "dist/rank_predictor.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <utility>

#include "core/coding.h"
#include "core/log.h"
#include "vigil/features.h"
#include "vigil/scorer.h"

namespace vigil::dist {
namespace {

// Message tags. Master to worker: kModel (a model version's bytes) before the first batch of
// that version, kWork per batch, kStop at the end. Worker to master: kRefused when it cannot load
// a model it was sent, kResult or kError per batch, kSummary after kStop. (Their own numbers: a
// file job's tags are 1..8.)
enum Tag : int { kModel = 21, kWork, kResult, kError, kStop, kSummary, kRefused };

constexpr int kBatchesAhead = 2;  // batches a worker holds: one it scores, one that waits

using Clock = std::chrono::steady_clock;
double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::string RankName(int rank, const std::string& host) {
  std::string s = "rank " + std::to_string(rank);
  if (!host.empty()) s += " (" + host + ")";
  return s;
}

// A batch: its id, the reasons asked for, the model version, then the feature rows.
struct WorkHeader {
  uint64_t id = 0;
  uint32_t top_k = 0, rows = 0, cols = 0;
  std::string version;
};

std::string EncodeWork(const WorkHeader& h, std::span<const float> features) {
  std::string out;
  out.reserve(32 + h.version.size() + features.size_bytes());
  PutFixed(h.id, &out);
  PutFixed(h.top_k, &out);
  PutFixed(h.rows, &out);
  PutFixed(h.cols, &out);
  PutString(h.version, &out);
  out.append(reinterpret_cast<const char*>(features.data()), features.size_bytes());
  return out;
}

void PutPrediction(const Prediction& p, std::string* out) {
  PutFixed(p.score, out);
  out->push_back(static_cast<char>(p.decision));
  PutFixed(p.anomaly_score, out);
  PutVarint(p.reasons.size(), out);
  for (const Reason& r : p.reasons) {
    PutString(r.code, out);
    PutString(r.text, out);
    PutString(r.feature, out);
    PutFixed(r.value, out);
    PutFixed(r.contribution, out);
  }
}

bool GetPrediction(ByteReader& r, Prediction* p) {
  p->score = r.Fixed<double>();
  const uint8_t decision = r.Byte();
  if (decision > static_cast<uint8_t>(Decision::kDecline)) return false;
  p->decision = static_cast<Decision>(decision);
  p->anomaly_score = r.Fixed<double>();
  const uint64_t n = r.Varint();
  if (!r.ok() || n > 1024) return false;
  p->reasons.resize(static_cast<size_t>(n));
  for (Reason& reason : p->reasons) {
    r.String(&reason.code);
    r.String(&reason.text);
    r.String(&reason.feature);
    reason.value = r.Fixed<double>();
    reason.contribution = r.Fixed<double>();
  }
  return r.ok();
}

}  // namespace

// One batch, owned by the thread in Predict, which waits until `done`.
struct RankPredictor::Job {
  const PredictModel* model = nullptr;
  std::span<const float> features;
  size_t rows = 0;
  int top_k = 0;
  std::span<Prediction> out;
  int worker = -1;  // who scored it
  Status status;
  bool done = false;  // under mu_
};

RankPredictor::RankPredictor(Mpi& mpi, RankPredictorOptions options)
    : mpi_(mpi), options_(std::move(options)) {
  workers_.resize(static_cast<size_t>(mpi.size()));
  master_.rank = 0;
  master_.host = mpi.host();
  master_.kernel = "-";
}

Status RankPredictor::Predict(const PredictModel& model, std::span<const float> features,
                              size_t rows, int explain_top_k, std::span<Prediction> out,
                              int* scored_by) {
  Job job;
  job.model = &model;
  job.features = features;
  job.rows = rows;
  job.top_k = std::max(explain_top_k, 0);
  job.out = out;
  std::unique_lock lock(mu_);
  if (closed_ || failing_) return Unavailable("the MPI processor is stopping");
  queued_.push_back(&job);
  work_cv_.notify_one();
  done_cv_.wait(lock, [&job] { return job.done; });
  *scored_by = job.worker;
  return job.status;
}

void RankPredictor::Close(bool fail) {
  {
    std::lock_guard lock(mu_);
    closed_ = true;
    failing_ = failing_ || fail;
  }
  work_cv_.notify_all();
}

void RankPredictor::Answer(Job& job, Status status, int worker) {
  {
    std::lock_guard lock(mu_);
    job.status = std::move(status);
    job.worker = worker;
    job.done = true;
  }
  done_cv_.notify_all();
}

void RankPredictor::FailAll(const Status& why) {
  std::deque<Job*> queued;
  {
    std::lock_guard lock(mu_);
    queued.swap(queued_);
    failing_ = true;
    closed_ = true;
  }
  for (Job* job : queued) Answer(*job, why, -1);
  for (auto& [id, job] : in_flight_) Answer(*job, why, -1);
  in_flight_.clear();
}

Status RankPredictor::CheckSomeWorkerCanScore(const std::string& version) const {
  std::string why;
  for (size_t w = 1; w < workers_.size(); ++w) {
    if (workers_[w].refused != version) return Status::Ok();
    why += (why.empty() ? "" : "; ") + workers_[w].why;
  }
  return Unavailable("no worker rank could load model version " + version + ": " + why);
}

Status RankPredictor::Dispatch() {
  for (;;) {
    Job* job = nullptr;
    {
      std::lock_guard lock(mu_);
      if (queued_.empty() || failing_) return Status::Ok();
      job = queued_.front();
    }
    // The worker holding the fewest batches, of those that can load the model, if it has room.
    const ModelInfo& info = job->model->info;
    VIGIL_RETURN_IF_ERROR(CheckSomeWorkerCanScore(info.version));
    auto w = workers_.end();
    for (auto it = workers_.begin() + 1; it != workers_.end(); ++it) {
      if (it->refused == info.version) continue;
      if (w == workers_.end() || it->in_flight < w->in_flight) w = it;
    }
    if (w->in_flight >= kBatchesAhead) return Status::Ok();
    {
      std::lock_guard lock(mu_);
      queued_.pop_front();  // still `job`: only this thread takes from the front
    }
    const int rank = static_cast<int>(w - workers_.begin());
    if (w->version != info.version) {
      w->refused.clear();
      ModelMessage mm;
      mm.version = info.version;
      mm.kernel = options_.kernel;
      mm.exact_reasons = options_.exact_reasons;
      mm.threads = options_.threads;
      mm.model = job->model->bytes;
      VIGIL_RETURN_IF_ERROR(mpi_.Send(rank, kModel, EncodeModel(mm)));
      w->version = info.version;
    }
    WorkHeader h;
    h.id = next_id_++;
    h.top_k = static_cast<uint32_t>(job->top_k);
    h.rows = static_cast<uint32_t>(job->rows);
    h.cols = static_cast<uint32_t>(Features(FeatureSet::kAll).size());
    h.version = info.version;
    VIGIL_RETURN_IF_ERROR(mpi_.Send(rank, kWork, EncodeWork(h, job->features)));
    job->worker = rank;
    in_flight_.emplace(h.id, job);
    ++w->in_flight;
    master_.rows += job->rows;
    ++master_.batches;
  }
}

Status RankPredictor::Collect(const MpiMessage& m) {
  if (m.tag != kRefused && m.tag != kResult && m.tag != kError) return Status::Ok();
  ByteReader r(m.bytes);
  Worker& worker = workers_[m.source];
  if (m.tag == kRefused) {
    std::string version, host, message;
    r.String(&version);
    r.String(&host);
    r.String(&message);
    if (version != worker.version) return Status::Ok();  // sent another since
    worker.refused = version;
    worker.why = RankName(m.source, host) + ": " + message;
    Log(LogLevel::kError, "a worker rank cannot load the model; it takes no more of its batches",
        {{"rank", m.source}, {"host", host}, {"version", version}, {"error", message}});
    return CheckSomeWorkerCanScore(version);
  }
  const uint64_t id = r.Fixed<uint64_t>();
  const auto it = in_flight_.find(id);
  if (!r.ok() || it == in_flight_.end()) return Status::Ok();  // failed already (Close(true))
  Job& job = *it->second;
  in_flight_.erase(it);
  --worker.in_flight;
  if (m.tag == kError) {
    if (worker.refused == job.model->info.version) {
      // It never had the model: another worker scores the batch.
      master_.rows -= job.rows;
      --master_.batches;
      std::lock_guard lock(mu_);
      queued_.push_front(&job);
      return Status::Ok();
    }
    std::string host, message;
    r.String(&host);
    r.String(&message);
    Answer(job, Unavailable(RankName(m.source, host) + ": " + message), m.source);
    return Status::Ok();
  }
  const uint32_t rows = r.Fixed<uint32_t>();
  bool ok = r.ok() && rows == job.rows;
  for (size_t i = 0; ok && i < rows; ++i) {
    ok = GetPrediction(r, &job.out[i]);
    job.out[i].algorithm = job.model->scorer.model().algo;
  }
  if (!ok || r.remaining() != 0) {
    Answer(job, Internal("a malformed result from rank " + std::to_string(m.source)), m.source);
    return Status::Ok();
  }
  Answer(job, Status::Ok(), m.source);
  return Status::Ok();
}

StatusOr<std::vector<RankSummary>> RankPredictor::Serve() {
  if (workers_stopped_) return Internal("the workers were stopped already");
  auto sleep = std::chrono::microseconds(0);
  Clock::time_point idle_start = Clock::now();
  for (;;) {
    if (Status st = Dispatch(); !st.ok()) {
      FailAll(Unavailable("the MPI processor failed: " + st.message()));
      return st;
    }
    bool closed, failing, queued;
    {
      std::lock_guard lock(mu_);
      closed = closed_;
      failing = failing_;
      queued = !queued_.empty();
    }
    if (failing) {
      FailAll(Unavailable("the MPI processor is stopping"));
      break;
    }
    if (closed && !queued && in_flight_.empty()) break;
    auto m = mpi_.TryReceive(kAnySource);
    if (!m.ok()) {
      FailAll(Unavailable("the MPI processor failed: " + m.status().message()));
      return m.status();
    }
    if (m->has_value()) {
      master_.idle_seconds += Since(idle_start);
      const Clock::time_point busy_start = Clock::now();
      if (Status st = Collect(**m); !st.ok()) {
        FailAll(st);
        return st;
      }
      sleep = std::chrono::microseconds(0);
      master_.busy_seconds += Since(busy_start);
      idle_start = Clock::now();
      continue;
    }
    if (in_flight_.empty()) {
      // Nothing out: wait for a batch (Predict wakes this at once).
      std::unique_lock lock(mu_);
      work_cv_.wait_for(lock, std::chrono::milliseconds(1),
                        [this] { return !queued_.empty() || closed_ || failing_; });
      continue;
    }
    // Results due: poll, sleeping a little longer each time, up to 200 us.
    sleep = std::min(std::chrono::microseconds(200), sleep + std::chrono::microseconds(10));
    std::this_thread::sleep_for(sleep);
  }
  master_.idle_seconds += Since(idle_start);
  // Every worker's last word; a result that comes before it (a batch failed at Close) is dropped.
  std::vector<RankSummary> ranks(workers_.size());
  ranks[0] = master_;
  workers_stopped_ = true;
  for (int w = 1; w < mpi_.size(); ++w) VIGIL_RETURN_IF_ERROR(mpi_.Send(w, kStop, std::string()));
  for (int left = mpi_.size() - 1; left > 0;) {
    VIGIL_ASSIGN_OR_RETURN(MpiMessage m, mpi_.Receive(kAnySource));
    if (m.tag != kSummary) continue;
    ranks[m.source] = DecodeSummary(m.source, m.bytes);
    --left;
  }
  VIGIL_RETURN_IF_ERROR(mpi_.FlushSends());
  return ranks;
}

Status RunRankWorker(Mpi& mpi) {
  RankSummary me;
  me.rank = mpi.rank();
  me.host = mpi.host();
  me.kernel = "-";
  std::unique_ptr<Scorer> scorer;
  std::string version;  // of `scorer`, or of the model that failed to load
  Status model_error;   // why the last model sent could not be loaded
  int threads = 1;
  const size_t cols = Features(FeatureSet::kAll).size();
  std::vector<Prediction> predictions;
  std::vector<float> features;
  // Fault injection for tests (docs/distributed.md): a rank started with it set, under MPMD,
  // stands for one whose host cannot run the model.
  const char* refuse = std::getenv("VIGIL_FAULT_REFUSE_MODELS");
  auto load = [&](const MpiMessage& m) -> Status {
    VIGIL_ASSIGN_OR_RETURN(ModelMessage model, DecodeModel(m.bytes));
    version = model.version;
    scorer.reset();
    if (refuse != nullptr && *refuse != '\0') {
      return Internal("this rank refuses every model (VIGIL_FAULT_REFUSE_MODELS is set)");
    }
    VIGIL_ASSIGN_OR_RETURN(scorer, BuildScorer(model));
    threads = model.threads;
    me.kernel = std::string(KernelName(scorer->forest().kernel()));
    return Status::Ok();
  };
  for (;;) {
    const Clock::time_point wait_start = Clock::now();
    VIGIL_ASSIGN_OR_RETURN(MpiMessage m, mpi.Receive(0));
    me.idle_seconds += Since(wait_start);
    if (m.tag == kStop) {
      VIGIL_RETURN_IF_ERROR(mpi.Send(0, kSummary, EncodeSummary(me)));
      return mpi.FlushSends();
    }
    if (m.tag == kModel) {
      model_error = load(m);
      if (!model_error.ok()) {
        std::string out;
        PutString(version, &out);
        PutString(me.host, &out);
        PutString(model_error.message(), &out);
        VIGIL_RETURN_IF_ERROR(mpi.Send(0, kRefused, std::move(out)));
      }
      continue;
    }
    if (m.tag != kWork) continue;
    const Clock::time_point busy_start = Clock::now();
    ByteReader r(m.bytes);
    WorkHeader h;
    h.id = r.Fixed<uint64_t>();
    h.top_k = r.Fixed<uint32_t>();
    h.rows = r.Fixed<uint32_t>();
    h.cols = r.Fixed<uint32_t>();
    r.String(&h.version);
    std::string out;
    PutFixed(h.id, &out);
    Status problem;
    if (!r.ok() || h.cols != cols || r.remaining() != size_t{h.rows} * cols * sizeof(float)) {
      problem = InvalidArgument("a malformed batch from rank 0");
    } else if (scorer == nullptr || version != h.version) {
      problem = version == h.version && !model_error.ok()
                    ? model_error.WithContext("model version " + h.version)
                    : Internal("no model of version " + h.version + " was sent first");
    }
    if (!problem.ok()) {
      PutString(me.host, &out);
      PutString(problem.message(), &out);
      VIGIL_RETURN_IF_ERROR(mpi.Send(0, kError, std::move(out)));
      continue;
    }
    features.resize(size_t{h.rows} * cols);
    std::memcpy(features.data(), m.bytes.data() + (m.bytes.size() - r.remaining()),
                features.size() * sizeof(float));
    predictions.assign(h.rows, Prediction{});
    PredictRows(*scorer, features, h.rows, static_cast<int>(h.top_k), threads, predictions);
    PutFixed(h.rows, &out);
    for (const Prediction& p : predictions) PutPrediction(p, &out);
    VIGIL_RETURN_IF_ERROR(mpi.Send(0, kResult, std::move(out)));
    me.rows += h.rows;
    ++me.batches;
    me.busy_seconds += Since(busy_start);
  }
}

}  // namespace vigil::dist
