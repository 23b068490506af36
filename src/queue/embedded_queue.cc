#include "queue/embedded_queue.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <set>
#include <shared_mutex>
#include <unordered_map>
#include <utility>

#include "core/coding.h"
#include "core/log.h"
#include "core/mutex.h"
#include "journal/journal.h"

namespace vigil {
namespace {

int64_t SystemNowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

enum class State : uint8_t { kReady = 0, kDelayed = 1, kLeased = 2, kDead = 3 };

// Bytes a message costs beside its strings (the map node, the set entries), for the memory cap.
constexpr size_t kMessageOverhead = 160;

struct Message {
  uint64_t seq = 0;
  int64_t enqueued_us = 0;
  int64_t due_us = 0;   // leased: when the lease runs out; delayed: when it is ready again
  uint64_t offset = 0;  // the journal offset of its newest P record
  int attempts = 0;
  State state = State::kReady;
  std::string message_type, content, last_error;

  size_t bytes() const {
    return content.size() + message_type.size() + last_error.size() + kMessageOverhead;
  }
};

// Events per second over the last minute, in one-second buckets.
class RateMeter {
 public:
  void Add(int64_t now_us, uint64_t n) {
    Bucket& b = Slot(now_us / 1000000);
    b.count += n;
  }
  double PerSecond(int64_t now_us) const {
    const int64_t now_s = now_us / 1000000;
    uint64_t total = 0;
    for (const Bucket& b : buckets_) {
      if (b.second > now_s - static_cast<int64_t>(kSeconds) && b.second <= now_s) total += b.count;
    }
    return static_cast<double>(total) / kSeconds;
  }

 private:
  static constexpr size_t kSeconds = 60;
  struct Bucket {
    int64_t second = -1;
    uint64_t count = 0;
  };
  Bucket& Slot(int64_t second) {
    Bucket& b = buckets_[static_cast<size_t>(second) % kSeconds];
    if (b.second != second) b = {second, 0};
    return b;
  }
  std::array<Bucket, kSeconds> buckets_{};
};

// The record kinds of a queue's journal (embedded_queue.h).
constexpr char kPush = 'P', kLease = 'L', kTake = 'T', kAck = 'A', kGiveBack = 'N', kDead = 'D',
               kRequeue = 'R';

void PutSeqs(std::span<const uint64_t> seqs, std::string* out) {
  PutVarint(seqs.size(), out);
  for (uint64_t s : seqs) PutVarint(s, out);
}

// A P record. seq 0 stands for "the offset of this record" (a new push, whose offset is known
// only once it is appended).
std::string PushRecord(uint64_t seq, const Message& m) {
  std::string r;
  r.reserve(m.content.size() + m.message_type.size() + m.last_error.size() + 32);
  r += kPush;
  PutVarint(seq, &r);
  PutSignedVarint(m.enqueued_us, &r);
  PutVarint(static_cast<uint64_t>(m.attempts), &r);
  r += static_cast<char>(m.state);
  PutSignedVarint(m.due_us, &r);
  PutString(m.message_type, &r);
  PutString(m.last_error, &r);
  PutString(m.content, &r);
  return r;
}

std::string SeqRecord(char kind, std::span<const uint64_t> seqs) {
  std::string r(1, kind);
  PutSeqs(seqs, &r);
  return r;
}

// One named queue: its journal and the state rebuilt from it.
struct NamedQueue {
  std::string name;
  std::unique_ptr<Journal> journal;

  Mutex mu;
  CondVar pushed_cv;  // a push made messages ready, or the queue is stopping
  std::unordered_map<uint64_t, Message> messages GUARDED_BY(mu);  // every live message
  std::set<uint64_t> ready GUARDED_BY(mu), delayed GUARDED_BY(mu), dead GUARDED_BY(mu);
  size_t leased GUARDED_BY(mu) = 0;
  std::set<std::pair<int64_t, uint64_t>> timers GUARDED_BY(mu);     // (due, seq): leased, delayed
  std::set<std::pair<uint64_t, uint64_t>> by_offset GUARDED_BY(mu);  // (offset, seq)
  size_t bytes GUARDED_BY(mu) = 0;
  size_t compact_segments GUARDED_BY(mu) = 0;  // segments when compaction last looked
  uint64_t second_segment GUARDED_BY(mu) = UINT64_MAX;  // the second segment's first offset then

  uint64_t pushed GUARDED_BY(mu) = 0, delivered GUARDED_BY(mu) = 0, acked GUARDED_BY(mu) = 0,
           nacked GUARDED_BY(mu) = 0, dead_lettered GUARDED_BY(mu) = 0,
           expired GUARDED_BY(mu) = 0;
  RateMeter push_rate GUARDED_BY(mu), deliver_rate GUARDED_BY(mu), ack_rate GUARDED_BY(mu);

  std::string Id(uint64_t seq) const { return name + "-" + std::to_string(seq); }

  // The sequence of an id of this queue, or 0.
  uint64_t SeqOf(std::string_view id) const {
    if (id.size() <= name.size() + 1 || id.compare(0, name.size(), name) != 0 ||
        id[name.size()] != '-') {
      return 0;
    }
    uint64_t v = 0;
    const std::string_view digits = id.substr(name.size() + 1);
    if (digits.size() > 19 || digits.front() == '0') return 0;
    for (char c : digits) {
      if (c < '0' || c > '9') return 0;
      v = v * 10 + static_cast<uint64_t>(c - '0');
    }
    return v;
  }

  // Takes `m` out of the set its state puts it in.
  void Unplace(const Message& m) REQUIRES(mu) {
    switch (m.state) {
      case State::kReady: ready.erase(m.seq); break;
      case State::kDelayed:
        delayed.erase(m.seq);
        timers.erase({m.due_us, m.seq});
        break;
      case State::kLeased:
        --leased;
        timers.erase({m.due_us, m.seq});
        break;
      case State::kDead: dead.erase(m.seq); break;
    }
  }
  void Place(const Message& m) REQUIRES(mu) {
    switch (m.state) {
      case State::kReady: ready.insert(m.seq); break;
      case State::kDelayed:
        delayed.insert(m.seq);
        timers.insert({m.due_us, m.seq});
        break;
      case State::kLeased:
        ++leased;
        timers.insert({m.due_us, m.seq});
        break;
      case State::kDead: dead.insert(m.seq); break;
    }
  }
  void SetState(Message& m, State state, int64_t due_us) REQUIRES(mu) {
    Unplace(m);
    m.state = state;
    m.due_us = due_us;
    Place(m);
  }

  // Adds (or, for a P record of a sequence already held, replaces) a message.
  void Insert(Message m, std::atomic<size_t>* total_bytes) REQUIRES(mu) {
    auto it = messages.find(m.seq);
    if (it != messages.end()) Remove(it, total_bytes);
    const uint64_t seq = m.seq;
    bytes += m.bytes();
    total_bytes->fetch_add(m.bytes(), std::memory_order_relaxed);
    by_offset.insert({m.offset, seq});
    auto [pos, _] = messages.emplace(seq, std::move(m));
    Place(pos->second);
  }
  void Remove(std::unordered_map<uint64_t, Message>::iterator it, std::atomic<size_t>* total_bytes)
      REQUIRES(mu) {
    Unplace(it->second);
    by_offset.erase({it->second.offset, it->first});
    bytes -= it->second.bytes();
    total_bytes->fetch_sub(it->second.bytes(), std::memory_order_relaxed);
    messages.erase(it);
  }

  QueueMessage Render(const Message& m) const {
    QueueMessage q;
    q.id = Id(m.seq);
    q.content = m.content;
    q.message_type = m.message_type;
    q.attempt = m.attempts;
    q.enqueued_us = m.enqueued_us;
    q.lease_expires_us = m.state == State::kLeased ? m.due_us : 0;
    q.last_error = m.last_error;
    return q;
  }
};

class EmbeddedQueue final : public Queue {
 public:
  EmbeddedQueue(const QueueOptions& options, uint64_t segment_bytes)
      : options_(options), segment_bytes_(segment_bytes) {
    if (!options_.clock_us) options_.clock_us = SystemNowUs;
  }
  ~EmbeddedQueue() override { Stop(); }

  Status Init() {
    root_ = std::filesystem::path(options_.data_dir) / "queues";
    std::error_code ec;
    std::filesystem::create_directories(root_, ec);
    if (ec) return Unavailable("queue: cannot create the folder of the queues: " + ec.message());
    std::vector<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(root_, ec)) {
      if (!entry.is_directory()) continue;
      std::string name = entry.path().filename().string();
      if (!ValidateQueueName(name).ok()) {
        Log(LogLevel::kWarn, "queue: ignoring a folder that is not a queue", {{"folder", name}});
        continue;
      }
      names.push_back(std::move(name));
    }
    if (ec) return Unavailable("queue: cannot list the queues: " + ec.message());
    for (const std::string& name : options_.default_queues) names.push_back(name);
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());
    for (const std::string& name : names) {
      VIGIL_RETURN_IF_ERROR(ValidateQueueName(name));
      auto q = OpenOne(name);
      if (!q.ok()) return q.status();
    }
    return Status::Ok();
  }

  std::string_view backend() const override { return "embedded"; }
  bool calls_wait_on_network() const override { return false; }

  void Push(std::string_view name, std::span<const PushItem> items, PushDone done) override {
    Status s = CheckPush(name, items);
    if (!s.ok()) return done(s);
    auto found = GetOrCreate(name);
    if (!found.ok()) return done(found.status());
    NamedQueue& q = **found;
    const int64_t now = options_.clock_us();
    std::vector<Message> messages(items.size());
    std::vector<std::string> records;
    records.reserve(items.size());
    size_t batch_bytes = 0;
    for (size_t i = 0; i < items.size(); ++i) {
      Message& m = messages[i];
      m.enqueued_us = now;
      m.message_type.assign(items[i].message_type);
      m.content.assign(items[i].content);
      records.push_back(PushRecord(0, m));
      batch_bytes += m.bytes();
    }
    if (total_bytes_.load(std::memory_order_relaxed) + batch_bytes > options_.max_memory_bytes) {
      return done(ResourceExhausted(
          "the queues hold as many unacknowledged messages as they may (" +
          std::to_string(options_.max_memory_bytes >> 20) + " MiB): pull and acknowledge, then push again"));
    }
    const std::vector<std::string_view> views(records.begin(), records.end());
    std::vector<std::string> ids;
    uint64_t last = 0;
    Status failed;
    {
      MutexLock lock(&q.mu);
      auto first = stopping_.load() ? StatusOr<uint64_t>(Unavailable("the queue is stopping"))
                                    : q.journal->Append(views, now);
      if (first.ok()) {
        ids.reserve(items.size());
        for (size_t i = 0; i < messages.size(); ++i) {
          messages[i].seq = messages[i].offset = *first + i;
          ids.push_back(q.Id(messages[i].seq));
          q.Insert(std::move(messages[i]), &total_bytes_);
        }
        last = *first + items.size() - 1;
        q.pushed += items.size();
        q.push_rate.Add(now, items.size());
        Compact(q);
      } else if (stopping_.load()) {
        failed = first.status();
      } else {
        Log(LogLevel::kError, "queue: push not written", {{"queue", q.name}, {"error", first.status().message()}});
        failed = Unavailable("the push to '" + q.name + "' could not be written: " +
                             std::string(StatusCodeName(first.status().code())));
      }
    }
    if (!failed.ok()) return done(failed);
    q.pushed_cv.SignalAll();
    if (options_.durability == Durability::kProcessCrash) return done(std::move(ids));
    q.journal->AfterSync(last, [ids = std::move(ids), done = std::move(done)](const Status& s) mutable {
      if (!s.ok()) return done(Unavailable("the push was written but not made durable: " + s.message()));
      done(std::move(ids));
    });
  }

  StatusOr<std::vector<QueueMessage>> Pull(std::string_view name,
                                           const PullOptions& options) override {
    if (options.max < 1 || options.max > options_.max_batch) {
      return InvalidArgument("max must be 1 to " + std::to_string(options_.max_batch));
    }
    if (options.lease.count() < 0 || options.lease > options_.max_lease) {
      return InvalidArgument("lease must be 0 to " + std::to_string(options_.max_lease.count() / 1000) + " seconds");
    }
    if (options.wait.count() < 0 || options.wait > options_.max_wait) {
      return InvalidArgument("wait must be 0 to " + std::to_string(options_.max_wait.count() / 1000) + " seconds");
    }
    VIGIL_ASSIGN_OR_RETURN(NamedQueue * qp, Find(name));
    NamedQueue& q = *qp;
    const auto deadline = std::chrono::steady_clock::now() + options.wait;
    MutexLock lock(&q.mu);
    int64_t now = options_.clock_us();
    Expire(q, now);
    while (q.ready.empty() && !stopping_.load()) {
      auto left = deadline - std::chrono::steady_clock::now();
      if (left <= std::chrono::steady_clock::duration::zero()) break;
      // Wake for a timer too: a lease running out makes a message ready without a push.
      if (!q.timers.empty()) {
        const auto until = std::chrono::microseconds(std::max<int64_t>(q.timers.begin()->first - now, 1000));
        left = std::min<std::chrono::steady_clock::duration>(left, until);
      }
      q.pushed_cv.WaitFor(&q.mu, left);
      now = options_.clock_us();
      Expire(q, now);
    }
    if (stopping_.load()) return Unavailable("the queue is stopping");
    std::vector<uint64_t> seqs;
    for (auto it = q.ready.begin(); it != q.ready.end() && seqs.size() < options.max; ++it) {
      seqs.push_back(*it);
    }
    std::vector<QueueMessage> out;
    if (seqs.empty()) return out;
    const bool lease = options.lease.count() > 0;
    const int64_t until = now + options.lease.count() * 1000;
    std::string record;
    if (lease) {
      record += kLease;
      PutSignedVarint(until, &record);
      PutSeqs(seqs, &record);
    } else {
      record = SeqRecord(kTake, seqs);
    }
    VIGIL_RETURN_IF_ERROR(AppendOne(q, record, now));
    out.reserve(seqs.size());
    for (uint64_t seq : seqs) {
      auto it = q.messages.find(seq);
      Message& m = it->second;
      ++m.attempts;
      if (lease) {
        q.SetState(m, State::kLeased, until);
        out.push_back(q.Render(m));
      } else {
        out.push_back(q.Render(m));
        out.back().content = std::move(m.content);
        m.content.clear();
        q.Remove(it, &total_bytes_);
      }
    }
    q.delivered += seqs.size();
    q.deliver_rate.Add(now, seqs.size());
    Compact(q);
    return out;
  }

  StatusOr<std::vector<Status>> Ack(std::string_view name,
                                    std::span<const std::string> ids) override {
    return Settle(name, ids, nullptr);
  }

  StatusOr<std::vector<Status>> Nack(std::string_view name, std::span<const std::string> ids,
                                     const NackOptions& options) override {
    if (options.delay.count() < 0 || options.delay > options_.max_lease) {
      return InvalidArgument("delay must be 0 to " + std::to_string(options_.max_lease.count() / 1000) + " seconds");
    }
    return Settle(name, ids, &options);
  }

  StatusOr<std::vector<QueueMessage>> DeadLetters(std::string_view name, size_t limit) override {
    VIGIL_ASSIGN_OR_RETURN(NamedQueue * qp, Find(name));
    NamedQueue& q = *qp;
    MutexLock lock(&q.mu);
    Expire(q, options_.clock_us());
    std::vector<QueueMessage> out;
    for (auto it = q.dead.begin(); it != q.dead.end() && out.size() < limit; ++it) {
      out.push_back(q.Render(q.messages.at(*it)));
    }
    return out;
  }

  StatusOr<size_t> Requeue(std::string_view name, std::span<const std::string> ids) override {
    VIGIL_ASSIGN_OR_RETURN(NamedQueue * qp, Find(name));
    NamedQueue& q = *qp;
    MutexLock lock(&q.mu);
    const int64_t now = options_.clock_us();
    Expire(q, now);
    std::vector<uint64_t> seqs;
    if (ids.empty()) {
      seqs.assign(q.dead.begin(), q.dead.end());
    } else {
      std::set<uint64_t> seen;
      for (const std::string& id : ids) {
        const uint64_t seq = q.SeqOf(id);
        if (q.dead.contains(seq) && seen.insert(seq).second) seqs.push_back(seq);
      }
    }
    if (seqs.empty()) return size_t{0};
    VIGIL_RETURN_IF_ERROR(AppendOne(q, SeqRecord(kRequeue, seqs), now));
    for (uint64_t seq : seqs) ApplyRequeue(q, q.messages.at(seq));
    q.pushed_cv.SignalAll();
    return seqs.size();
  }

  std::vector<QueueStats> List() override {
    std::vector<NamedQueue*> all;
    {
      std::shared_lock lock(registry_mu_);
      for (const auto& [name, q] : queues_) all.push_back(q.get());
    }
    std::vector<QueueStats> out;
    out.reserve(all.size());
    for (NamedQueue* q : all) out.push_back(StatsOf(*q));
    return out;
  }

  StatusOr<QueueStats> Stats(std::string_view name) override {
    VIGIL_ASSIGN_OR_RETURN(NamedQueue * q, Find(name));
    return StatsOf(*q);
  }

  void Stop() override {
    if (stopping_.exchange(true)) return;
    std::shared_lock lock(registry_mu_);
    for (const auto& [name, q] : queues_) {
      { MutexLock l(&q->mu); }  // a waiting pull is between its check and its wait, or asleep
      q->pushed_cv.SignalAll();
      (void)q->journal->Sync();
    }
  }

 private:
  Status CheckPush(std::string_view name, std::span<const PushItem> items) const {
    VIGIL_RETURN_IF_ERROR(ValidateQueueName(name));
    if (items.empty()) return InvalidArgument("a push needs at least one message");
    if (items.size() > options_.max_batch) {
      return InvalidArgument("a push takes at most " + std::to_string(options_.max_batch) +
                             " messages, not " + std::to_string(items.size()));
    }
    for (size_t i = 0; i < items.size(); ++i) {
      if (items[i].content.size() > options_.max_message_bytes) {
        return InvalidArgument("message " + std::to_string(i) + " is " +
                               std::to_string(items[i].content.size()) +
                               " bytes; a message's content is at most " +
                               std::to_string(options_.max_message_bytes) + " bytes");
      }
    }
    if (stopping_.load()) return Unavailable("the queue is stopping");
    return Status::Ok();
  }

  StatusOr<NamedQueue*> Find(std::string_view name) {
    VIGIL_RETURN_IF_ERROR(ValidateQueueName(name));
    if (stopping_.load()) return Unavailable("the queue is stopping");
    std::shared_lock lock(registry_mu_);
    auto it = queues_.find(name);
    if (it == queues_.end()) return NotFound("no queue '" + std::string(name) + "'");
    return it->second.get();
  }

  StatusOr<NamedQueue*> GetOrCreate(std::string_view name) {
    {
      std::shared_lock lock(registry_mu_);
      auto it = queues_.find(name);
      if (it != queues_.end()) return it->second.get();
    }
    return OpenOne(std::string(name));
  }

  // Opens (creating) the queue `name` and replays its journal; the queue if it is already open.
  StatusOr<NamedQueue*> OpenOne(const std::string& name) {
    std::unique_lock lock(registry_mu_);
    auto it = queues_.find(name);
    if (it != queues_.end()) return it->second.get();
    if (queues_.size() >= options_.max_queues) {
      return ResourceExhausted("there are " + std::to_string(queues_.size()) +
                               " queues, as many as allowed: push to an existing one");
    }
    auto q = std::make_unique<NamedQueue>();
    q->name = name;
    JournalOptions jo;
    jo.dir = (root_ / name).string();
    jo.segment_bytes = segment_bytes_;
    jo.max_record_bytes = static_cast<uint32_t>(
        std::max<size_t>(options_.max_message_bytes + 4096, 1 << 16));
    auto journal = Journal::Open(jo);
    if (!journal.ok()) {
      Log(LogLevel::kError, "queue: cannot open", {{"queue", name}, {"error", journal.status().message()}});
      return Unavailable("queue '" + name + "' cannot be opened: " + journal.status().message());
    }
    q->journal = std::move(*journal);
    VIGIL_RETURN_IF_ERROR(Replay(*q));
    NamedQueue* raw = q.get();
    queues_.emplace(name, std::move(q));
    return raw;
  }

  Status Replay(NamedQueue& q) NO_THREAD_SAFETY_ANALYSIS {  // not shared yet
    VIGIL_ASSIGN_OR_RETURN(auto reader, q.journal->Read(q.journal->first_offset()));
    JournalEntry e;
    uint64_t records = 0;
    while (true) {
      VIGIL_ASSIGN_OR_RETURN(bool more, reader->Next(&e));
      if (!more) break;
      ++records;
      if (!ApplyRecord(q, e)) {
        return Internal("queue '" + q.name + "': the journal record at offset " +
                        std::to_string(e.offset) + " is not a queue record this version reads");
      }
    }
    Expire(q, options_.clock_us());
    q.compact_segments = 0;
    Compact(q);
    if (records > 0) {
      Log(LogLevel::kInfo, "queue: opened",
          {{"queue", q.name},
           {"records", static_cast<int64_t>(records)},
           {"waiting", static_cast<int64_t>(q.ready.size() + q.delayed.size())},
           {"in_flight", static_cast<int64_t>(q.leased)},
           {"dead_letters", static_cast<int64_t>(q.dead.size())}});
    }
    return Status::Ok();
  }

  // Applies one journal record to the state; false when it cannot be decoded.
  bool ApplyRecord(NamedQueue& q, const JournalEntry& e) REQUIRES(q.mu) {
    ByteReader in(e.payload);
    const char kind = static_cast<char>(in.Byte());
    if (kind == kPush) {
      Message m;
      m.seq = in.Varint();
      if (m.seq == 0) m.seq = e.offset;
      m.offset = e.offset;
      m.enqueued_us = in.SignedVarint();
      m.attempts = static_cast<int>(in.Varint());
      const uint8_t state = in.Byte();
      m.due_us = in.SignedVarint();
      in.String(&m.message_type);
      in.String(&m.last_error);
      in.String(&m.content);
      if (!in.ok() || state > 3 || in.remaining() != 0) return false;
      m.state = static_cast<State>(state);
      q.Insert(std::move(m), &total_bytes_);
      return true;
    }
    int64_t until = 0;
    std::string reason;
    if (kind == kLease || kind == kGiveBack) until = in.SignedVarint();
    if (kind == kDead) in.String(&reason);
    const size_t n = in.Count(1);
    std::vector<uint64_t> seqs(n);
    for (uint64_t& s : seqs) s = in.Varint();
    if (!in.ok() || in.remaining() != 0) return false;
    for (uint64_t seq : seqs) {
      auto it = q.messages.find(seq);
      if (it == q.messages.end()) continue;  // settled in a segment already dropped
      Message& m = it->second;
      switch (kind) {
        case kLease:
          ++m.attempts;
          q.SetState(m, State::kLeased, until);
          break;
        case kTake:
        case kAck: q.Remove(it, &total_bytes_); break;
        case kGiveBack: q.SetState(m, until > 0 ? State::kDelayed : State::kReady, until); break;
        case kDead:
          m.last_error = reason;
          q.SetState(m, State::kDead, 0);
          break;
        case kRequeue: ApplyRequeue(q, m); break;
        default: return false;
      }
    }
    return true;
  }

  void ApplyRequeue(NamedQueue& q, Message& m) REQUIRES(q.mu) {
    m.attempts = 0;
    m.last_error.clear();
    q.SetState(m, State::kReady, 0);
  }

  Status AppendOne(NamedQueue& q, const std::string& record, int64_t now) REQUIRES(q.mu) {
    std::string_view view = record;
    auto r = q.journal->Append(std::span<const std::string_view>(&view, 1), now);
    if (r.ok()) return Status::Ok();
    Log(LogLevel::kError, "queue: state change not written", {{"queue", q.name}, {"error", r.status().message()}});
    return Unavailable("queue '" + q.name + "' could not record the change; nothing was changed");
  }

  // Leases that ran out and delays that ended: back to ready, or to the dead letters when the
  // last attempt is used.
  void Expire(NamedQueue& q, int64_t now) REQUIRES(q.mu) {
    std::vector<uint64_t> to_dead;
    bool woke = false;
    while (!q.timers.empty() && q.timers.begin()->first <= now) {
      const uint64_t seq = q.timers.begin()->second;
      Message& m = q.messages.at(seq);
      if (m.state == State::kLeased) {
        ++q.expired;
        if (m.attempts >= options_.max_attempts) {
          to_dead.push_back(seq);
          q.SetState(m, State::kDead, 0);  // the record follows below
          continue;
        }
      }
      q.SetState(m, State::kReady, 0);
      woke = true;
    }
    if (!to_dead.empty()) {
      const std::string reason = "lease ran out on its attempt " + std::to_string(options_.max_attempts) +
                                 " (max attempts " + std::to_string(options_.max_attempts) + ")";
      std::string record(1, kDead);
      PutString(reason, &record);
      PutSeqs(to_dead, &record);
      // When this cannot be written the next open dead-letters them again by the same rule.
      (void)AppendOne(q, record, now);
      for (uint64_t seq : to_dead) q.messages.at(seq).last_error = reason;
      q.dead_lettered += to_dead.size();
    }
    if (woke) q.pushed_cv.SignalAll();
  }

  StatusOr<std::vector<Status>> Settle(std::string_view name, std::span<const std::string> ids,
                                       const NackOptions* nack) {
    if (ids.empty()) return InvalidArgument("ids must list at least one message id");
    if (ids.size() > options_.max_batch) {
      return InvalidArgument("at most " + std::to_string(options_.max_batch) + " ids at a time, not " +
                             std::to_string(ids.size()));
    }
    VIGIL_ASSIGN_OR_RETURN(NamedQueue * qp, Find(name));
    NamedQueue& q = *qp;
    MutexLock lock(&q.mu);
    const int64_t now = options_.clock_us();
    Expire(q, now);
    std::vector<Status> results(ids.size());
    std::vector<uint64_t> settled, back, dead;
    std::set<uint64_t> seen;
    for (size_t i = 0; i < ids.size(); ++i) {
      const uint64_t seq = q.SeqOf(ids[i]);
      auto it = q.messages.find(seq);
      if (it == q.messages.end() || it->second.state != State::kLeased || !seen.insert(seq).second) {
        results[i] = NotFound("message '" + ids[i] + "' is not leased: unknown, already settled, or its lease ran out");
        continue;
      }
      settled.push_back(seq);
      if (nack == nullptr) continue;
      (nack->dead_letter || it->second.attempts >= options_.max_attempts ? dead : back).push_back(seq);
    }
    if (settled.size() != ids.size()) return results;  // all or nothing
    const int64_t due = nack != nullptr && nack->delay.count() > 0 ? now + nack->delay.count() * 1000 : 0;
    std::string reason;
    if (nack != nullptr) {
      reason = nack->dead_letter
                   ? (nack->reason.empty() ? std::string("rejected by its consumer") : nack->reason)
                   : "given back on its attempt " + std::to_string(options_.max_attempts) +
                         " (max attempts " + std::to_string(options_.max_attempts) + ")";
    }
    std::vector<std::string> records;
    if (nack == nullptr) {
      records.push_back(SeqRecord(kAck, settled));
    } else {
      if (!back.empty()) {
        std::string r(1, kGiveBack);
        PutSignedVarint(due, &r);
        PutSeqs(back, &r);
        records.push_back(std::move(r));
      }
      if (!dead.empty()) {
        std::string r(1, kDead);
        PutString(reason, &r);
        PutSeqs(dead, &r);
        records.push_back(std::move(r));
      }
    }
    std::vector<std::string_view> views(records.begin(), records.end());
    auto r = q.journal->Append(views, now);
    if (!r.ok()) {
      Log(LogLevel::kError, "queue: state change not written", {{"queue", q.name}, {"error", r.status().message()}});
      return Unavailable("queue '" + q.name + "' could not record the change; nothing was changed");
    }
    if (nack == nullptr) {
      for (uint64_t seq : settled) q.Remove(q.messages.find(seq), &total_bytes_);
      q.acked += settled.size();
      q.ack_rate.Add(now, settled.size());
    } else {
      for (uint64_t seq : back) q.SetState(q.messages.at(seq), due > 0 ? State::kDelayed : State::kReady, due);
      for (uint64_t seq : dead) {
        Message& m = q.messages.at(seq);
        m.last_error = reason;
        q.SetState(m, State::kDead, 0);
      }
      q.nacked += settled.size();
      q.dead_lettered += dead.size();
      if (!back.empty() && due == 0) q.pushed_cv.SignalAll();
    }
    Compact(q);
    return results;
  }

  // Drops the oldest journal segments that no live message needs, first writing again the few
  // live messages that pin one (embedded_queue.h, "Compaction"). Looks only when the number of
  // segments changed since it last did.
  void Compact(NamedQueue& q) REQUIRES(q.mu) {
    const size_t segments = q.journal->segments();
    const uint64_t low = q.by_offset.empty() ? UINT64_MAX : q.by_offset.begin()->first;
    if (segments < 2) return;
    if (segments == q.compact_segments && low < q.second_segment) return;
    const std::vector<uint64_t> starts = q.journal->segment_first_offsets();
    // Segments before the newest two whose few live messages pin them: write those again.
    for (size_t s = 1; s + 1 < starts.size(); ++s) {
      std::vector<uint64_t> pinning;
      size_t bytes = 0;
      for (auto it = q.by_offset.begin(); it != q.by_offset.end() && it->first < starts[s]; ++it) {
        pinning.push_back(it->second);
        bytes += q.messages.at(it->second).bytes();
        if (bytes > segment_bytes_ / 4) break;
      }
      if (bytes > segment_bytes_ / 4) break;  // a real backlog: keep it where it is
      if (!pinning.empty() && !Rewrite(q, pinning)) break;
    }
    auto dropped = q.journal->DropBefore(q.by_offset.empty() ? q.journal->next_offset()
                                                             : q.by_offset.begin()->first);
    if (!dropped.ok()) {
      Log(LogLevel::kWarn, "queue: cannot drop a segment", {{"queue", q.name}, {"error", dropped.status().message()}});
    }
    const std::vector<uint64_t> left = q.journal->segment_first_offsets();
    q.compact_segments = left.size();
    q.second_segment = left.size() >= 2 ? left[1] : UINT64_MAX;
  }

  // Writes the messages `seqs` again at the end of the journal, as they stand.
  bool Rewrite(NamedQueue& q, const std::vector<uint64_t>& seqs) REQUIRES(q.mu) {
    std::vector<std::string> records;
    records.reserve(seqs.size());
    for (uint64_t seq : seqs) records.push_back(PushRecord(seq, q.messages.at(seq)));
    std::vector<std::string_view> views(records.begin(), records.end());
    auto first = q.journal->Append(views, options_.clock_us());
    if (first.ok() && options_.durability == Durability::kPowerLoss) {
      // The segment about to be dropped must not outlive its copy on the disk.
      Status s = q.journal->Sync();
      if (!s.ok()) first = s;
    }
    if (!first.ok()) {
      Log(LogLevel::kWarn, "queue: compaction could not rewrite", {{"queue", q.name}, {"error", first.status().message()}});
      return false;
    }
    for (size_t i = 0; i < seqs.size(); ++i) {
      Message& m = q.messages.at(seqs[i]);
      q.by_offset.erase({m.offset, m.seq});
      m.offset = *first + i;
      q.by_offset.insert({m.offset, m.seq});
    }
    return true;
  }

  QueueStats StatsOf(NamedQueue& q) {
    MutexLock lock(&q.mu);
    const int64_t now = options_.clock_us();
    Expire(q, now);
    QueueStats s;
    s.name = q.name;
    s.depth = q.ready.size() + q.delayed.size();
    s.in_flight = q.leased;
    s.dead_letters = q.dead.size();
    uint64_t oldest = UINT64_MAX;
    if (!q.ready.empty()) oldest = *q.ready.begin();
    if (!q.delayed.empty()) oldest = std::min(oldest, *q.delayed.begin());
    if (oldest != UINT64_MAX) {
      s.oldest_age_seconds = std::max<double>(0, static_cast<double>(now - q.messages.at(oldest).enqueued_us) / 1e6);
    }
    s.pushed = q.pushed;
    s.delivered = q.delivered;
    s.acked = q.acked;
    s.nacked = q.nacked;
    s.dead_lettered = q.dead_lettered;
    s.expired = q.expired;
    s.push_rate = q.push_rate.PerSecond(now);
    s.deliver_rate = q.deliver_rate.PerSecond(now);
    s.ack_rate = q.ack_rate.PerSecond(now);
    return s;
  }

  QueueOptions options_;
  const uint64_t segment_bytes_;
  std::filesystem::path root_;
  std::atomic<bool> stopping_{false};
  std::atomic<size_t> total_bytes_{0};
  std::shared_mutex registry_mu_;  // guards queues_ (the map; each queue has its own lock)
  std::map<std::string, std::unique_ptr<NamedQueue>, std::less<>> queues_;
};

}  // namespace

StatusOr<std::unique_ptr<Queue>> OpenEmbeddedQueue(const QueueOptions& options,
                                                   uint64_t segment_bytes) {
  auto q = std::make_unique<EmbeddedQueue>(options, segment_bytes);
  VIGIL_RETURN_IF_ERROR(q->Init());
  return std::unique_ptr<Queue>(std::move(q));
}

}  // namespace vigil
