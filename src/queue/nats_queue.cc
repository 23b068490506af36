// The NATS JetStream backend of Queue (vigil/queue.h), over nats.c. docs/queues-nats.md is the
// operator's version of this comment.
//
// Mapping of the contract:
//   - A queue NAME is a stream VIGIL_Q_NAME (file storage, work-queue retention: a message is
//     removed once acknowledged or terminated) on the subject vigil.q.NAME, and one durable pull
//     consumer "vigil" on it (explicit ack, AckWait kServerAckWait, no MaxDeliver: Vigil counts
//     the attempts itself). Its dead letters are a second stream VIGIL_DLQ_NAME (file storage,
//     limits retention) on vigil.dlq.NAME.<n>, one subject per message, so a dead letter is
//     found by its id. The streams and the consumer are created on the first push (and for the
//     default queues at Open), and found again when they exist.
//   - Message ids are "NAME-<stream sequence>". A requeued dead letter keeps its id (carried in
//     the Vigil-Id header), since the id doubles as a transaction id; its first sequence is
//     gone from the stream, so the id stays unique.
//   - Push publishes the batch asynchronously (one jsCtx for every push) and returns; OnPubAck,
//     on nats.c's thread, settles each message, and the last one calls `done` with the ids:
//     the stream has stored them (see "Durability"). When some of the batch failed (or no
//     acknowledgement came within kApiTimeoutMs: the reaper's deadline), the reaper deletes
//     the ones stored again (best effort), so that "none of them was pushed" holds unless the
//     server went away in between.
//   - Pull sends JetStream pull requests itself ($JS.API.CONSUMER.MSG.NEXT, on a reply inbox
//     of its own, from a pool per queue, so that pulls run in parallel) instead of
//     natsSubscription_Fetch: a no_wait request answers at once with what is ready, and a long
//     poll asks for one message with `expires` = the wait, then takes the rest of the batch
//     without waiting, so a pull returns as soon as anything arrives (Fetch either waits for
//     the whole batch or returns before the server answered). The wait is watched in 100 ms
//     slices, so Stop wakes it. The consumer's max_ack_pending is kMaxAckPending: past it the
//     server answers no pull at all.
//   - Plain pull (lease 0): the messages are acknowledged (and the last acknowledgement
//     confirmed by the server, which handles one connection's acks in order) before Pull
//     returns, so they are never delivered again. If Vigil dies between fetch and ack, they
//     come back after the ack wait: they were not handed out.
//   - Leased pull: JetStream's ack wait is per consumer, not per pull, so the lease is kept by
//     Vigil: leased messages stay in a map id -> natsMsg (their ack subject) with the lease's
//     end. A reaper thread (every 100 ms, on QueueOptions::clock_us) gives back each expired
//     lease with a nak (redelivered at once, first in line, attempt + 1), and keeps longer
//     leases alive with "+WPI" (in progress) every third of the ack wait.
//   - Lease records, so that a lease holds across kill -9 of Vigil and of nats-server (whose
//     consumer state, what it delivered and what awaits an ack, is flushed asynchronously and
//     may lose its last moments, so that it delivers just-leased messages again as new): a
//     stream VIGIL_LEASES_NAME (file storage, subjects vigil.lease.NAME.<process>, one per
//     Vigil process, "p" + 16 random hex digits; max age max_lease + 1 h for what is left
//     behind). A leased pull publishes one record ("L <until_us>", then "<id> <seq> <attempt>
//     <ack subject>" per message) and waits for its acknowledgement before it returns the
//     messages; when that fails, they are given back and the pull fails. A Nack first
//     publishes a release ("R <until_us>", then the ids), confirmed, so that a message given
//     back is not held for its old lease. An Ack writes nothing (the message is gone).
//     Every process reads every record through a watcher (an ordered consumer of the lease
//     stream) and keeps the other processes' active leases in `recorded`; CatchUp (publish a
//     marker "M", wait until the watcher read it) makes it current at open, after a change of
//     server (the watcher starts again from the last record read), before a message is held
//     for another process's lease, and for an Ack / Nack of an id not known here. At open the
//     recorded deliveries of others are nak'ed with a delay to the lease's end, so that they
//     come back then and not only after the ack wait. A delivered message whose recorded
//     lease is active and held elsewhere is not handed out: it is nak'ed with a delay to the
//     lease's end (+50 ms); one this process holds itself (the server delivered it again after
//     a restart) keeps its lease, on the new delivery.
//     Purging: own_records counts each record's unsettled leases; once a second (and at
//     shutdown) the process's subject is purged below its first record that holds something,
//     and other processes' subjects whose records all ended are purged up to the last read.
//   - Ack / Nack find the message in the map, all or nothing: when one id is not there (never
//     leased, settled, named twice, expired: NotFound) none of them is settled. An id with an
//     active record but not in the map (leased by a Vigil process that has since restarted)
//     is settled too: an Ack deletes the message from the stream (work-queue retention: gone
//     for good), a Nack naks the recorded delivery (or dead-letters the stream's copy).
//   - Attempts: `attempt` is JetStream's delivery count. A lease that runs out, or a nack, on
//     the max_attempts-th delivery dead-letters the message instead of giving it back: it is
//     published to the DLQ stream (with its id, type, enqueue time, attempt and the reason as
//     headers) and then terminated (+TERM) in the queue. A message the server delivers with a
//     count above max_attempts (after a crash of Vigil) is dead-lettered when it is fetched.
//     A crash between the DLQ publish and the +TERM can leave a message in both (at-least-once).
//   - Requeue publishes each dead letter back to the queue (a new stream message: delivery
//     count 0) and then deletes it from the DLQ stream. Limit: a stream only appends, so a
//     requeued message goes to the END of its queue, after the messages pushed since, where the
//     contract asks for its first place; the requeued ones keep their order among themselves.
//   - Stats: depth = the consumer's pending messages + the ones given back here and not yet
//     delivered again; in_flight = the consumer's ack-pending ones (JetStream counts a message
//     given back by a nak as ack-pending until it is delivered again) less those given back;
//     dead_letters = the DLQ stream's messages; oldest_age_seconds = the age of the stream's
//     first message (the oldest not acknowledged, which may be in flight). With several Vigil
//     processes on one stream, each only knows what it gave back itself.
//   - Durability: JetStream acknowledges a publish once the message is in the stream's file
//     store, written to the operating system; nats-server 2.9 fsyncs its files every 2 minutes
//     (not configurable before 2.10). So an acknowledged push survives kill -9 of nats-server
//     and of Vigil, not a power loss (Durability::kPowerLoss cannot be honoured: Open logs it).
//   - A connection lost is retried for ever in the background; meanwhile every call fails at
//     once with Unavailable (the reconnect buffer is 1 byte, so nothing is buffered to be sent,
//     unknown to the caller, after we reported a failure).
//
// Thread-safe: every method may be called from any thread. Locks: mu_ (the queue table, the
// pushes in flight), create_mu_ (creating streams, held across server calls; taken before mu_),
// pub_mu_ (the pushes awaiting acknowledgements), and per queue inbox_mu (its free pull
// inboxes), server_mu (its watcher and the server it reads from; held across server calls,
// taken before mu) and mu (its leases, records and counters; never held across a server call).
#include "queue/nats_queue.h"

#include <string>
#include <string_view>

#if VIGIL_HAS_NATS

#include <nats/nats.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <functional>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "core/log.h"
#include "core/mutex.h"
#include "core/thread_annotations.h"

namespace vigil {
namespace {

using Clock = std::chrono::steady_clock;

constexpr char kConsumer[] = "vigil";
constexpr char kStreamPrefix[] = "VIGIL_Q_";
constexpr char kDlqStreamPrefix[] = "VIGIL_DLQ_";
constexpr char kLeaseStreamPrefix[] = "VIGIL_LEASES_";
// The consumer's ack wait: how long a delivery stays with Vigil when it does not keep it alive
// (a lease's record then holds it past that: see "Lease records").
constexpr std::chrono::seconds kServerAckWait{30};
// Deliveries awaiting an ack (leases) the consumer allows: when they are all taken, the server
// leaves pulls unanswered. nats-server takes -1 (no limit) as its default of 1000.
constexpr int64_t kMaxAckPending = 1 << 20;
// Pushed messages awaiting JetStream's acknowledgement, at most (a push past it waits).
constexpr int64_t kMaxPendingPublishes = 1 << 20;
// How long a call to the server may take before it is Unavailable.
constexpr int64_t kApiTimeoutMs = 5000;
constexpr int kConnectTimeoutMs = 2000;
constexpr auto kReapEvery = std::chrono::milliseconds(100);
constexpr int64_t kWaitSliceMs = 100;
// How long past a pull request's expiry its end (a 408, or silence) is awaited.
constexpr int64_t kExpiryGraceMs = 1000;
// Room for Vigil's headers in a message, besides the content and the type.
constexpr size_t kHeaderReserve = 512;
// A lease record outlives the longest lease by this much before the server drops it: the
// records a crash left behind (their leases ended) do not pile up.
constexpr std::chrono::hours kLeaseRecordSlack{1};
// A message held for a recorded lease is given back this long after the lease's end, so that
// the server's timer, which runs on its own clock, does not bring it back a moment too early.
constexpr int64_t kHoldSlackUs = 50000;
// What JetStream says when a message to delete is gone already.
constexpr char kNoMessageFoundText[] = "no message found";

constexpr char kHdrId[] = "Vigil-Id";
constexpr char kHdrType[] = "Vigil-Type";
constexpr char kHdrEnqueued[] = "Vigil-Enqueued-Us";
constexpr char kHdrAttempt[] = "Vigil-Attempt";
constexpr char kHdrReason[] = "Vigil-Reason";
// How often this process's lease records that hold nothing any more are purged.
constexpr auto kPurgeEvery = std::chrono::seconds(1);

struct NatsDeleter {
  void operator()(natsMsg* p) const { natsMsg_Destroy(p); }
  void operator()(natsConnection* p) const { natsConnection_Destroy(p); }
  void operator()(natsOptions* p) const { natsOptions_Destroy(p); }
  void operator()(natsSubscription* p) const { natsSubscription_Destroy(p); }
  void operator()(jsCtx* p) const { jsCtx_Destroy(p); }
  void operator()(jsStreamInfo* p) const { jsStreamInfo_Destroy(p); }
  void operator()(jsConsumerInfo* p) const { jsConsumerInfo_Destroy(p); }
  void operator()(jsPubAck* p) const { jsPubAck_Destroy(p); }
  void operator()(jsStreamNamesList* p) const { jsStreamNamesList_Destroy(p); }
};
template <class T>
using NatsPtr = std::unique_ptr<T, NatsDeleter>;
using MsgPtr = NatsPtr<natsMsg>;

// A nats.c failure as a Status. Connection trouble and timeouts are Unavailable; JetStream's
// "not found" codes NotFound; a full store ResourceExhausted; the rest Unavailable (the
// server refused).
Status NatsError(std::string_view what, natsStatus s, jsErrCode je = static_cast<jsErrCode>(0)) {
  std::string text = "nats: " + std::string(what) + ": " + natsStatus_GetText(s);
  const char* last = nats_GetLastError(nullptr);
  if (last != nullptr && *last != '\0' && std::strcmp(last, natsStatus_GetText(s)) != 0) {
    text += " (" + std::string(last) + ")";
  }
  if (je != 0) text += " [JetStream error " + std::to_string(static_cast<int>(je)) + "]";
  if (je == JSStreamNotFoundErr || je == JSConsumerNotFoundErr || je == JSNoMessageFoundErr) {
    return NotFound(std::move(text));
  }
  if (je == JSStorageResourcesExceededErr) return ResourceExhausted(std::move(text));
  switch (s) {
    case NATS_NOT_FOUND:
      return NotFound(std::move(text));
    case NATS_MAX_PAYLOAD:
      return InvalidArgument(std::move(text));
    case NATS_NO_RESPONDERS:
      return Unavailable(std::move(text) + "; is JetStream enabled on the server (-js)?");
    default:
      return Unavailable(std::move(text));
  }
}

bool IsNotFound(natsStatus s, jsErrCode je) {
  return s == NATS_NOT_FOUND || je == JSStreamNotFoundErr || je == JSConsumerNotFoundErr ||
         je == JSNoMessageFoundErr;
}

// A js_DeleteMsg that failed because the message was gone already: the server answers that
// with its generic "delete failed" code and the text "no message found".
bool DeletedNothing(natsStatus s, jsErrCode je) {
  if (IsNotFound(s, je)) return true;
  const char* last = nats_GetLastError(nullptr);
  return je == JSStreamMsgDeleteFailed && last != nullptr &&
         std::strstr(last, kNoMessageFoundText) != nullptr;
}

// Header values may not hold CR, LF or other control bytes: those (and '%') travel as %XX.
std::string EncodeHeader(std::string_view v) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || c == '%') {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 15];
    } else {
      out += c;
    }
  }
  return out;
}

std::string DecodeHeader(std::string_view v) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  std::string out;
  out.reserve(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] == '%' && i + 2 < v.size() && hex(v[i + 1]) >= 0 && hex(v[i + 2]) >= 0) {
      out += static_cast<char>(hex(v[i + 1]) * 16 + hex(v[i + 2]));
      i += 2;
    } else {
      out += v[i];
    }
  }
  return out;
}

std::string Header(natsMsg* m, const char* key) {
  const char* v = nullptr;
  if (natsMsgHeader_Get(m, key, &v) != NATS_OK || v == nullptr) return "";
  return v;
}

template <class T>
bool ParseNumber(std::string_view s, T* out) {
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && end == s.data() + s.size() && !s.empty();
}

// What a delivered message's ack subject tells: JetStream's reply subject is
//   $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time ns>.<pending>
// (servers 2.10+ may insert a domain and an account hash after ACK, and append a token).
struct Delivery {
  uint64_t stream_seq = 0;
  int64_t delivered = 0;
  int64_t timestamp_ns = 0;
};

std::optional<Delivery> ParseAckSubject(std::string_view reply) {
  std::vector<std::string_view> tokens;
  size_t start = 0;
  while (start <= reply.size()) {
    const size_t dot = reply.find('.', start);
    const size_t end = dot == std::string_view::npos ? reply.size() : dot;
    tokens.push_back(reply.substr(start, end - start));
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  if (tokens.size() < 9 || tokens[0] != "$JS" || tokens[1] != "ACK") return std::nullopt;
  const size_t base = tokens.size() == 9 ? 4 : 6;  // the index of <delivered>
  if (base + 3 >= tokens.size()) return std::nullopt;
  Delivery d;
  if (!ParseNumber(tokens[base], &d.delivered) || !ParseNumber(tokens[base + 1], &d.stream_seq) ||
      !ParseNumber(tokens[base + 3], &d.timestamp_ns)) {
    return std::nullopt;
  }
  return d;
}

// Counts per second over the last minute.
class RateWindow {
 public:
  void Add(int64_t now_s, uint64_t n) {
    Slot& s = slots_[static_cast<size_t>(((now_s % 60) + 60) % 60)];
    if (s.second != now_s) {
      s.second = now_s;
      s.count = 0;
    }
    s.count += n;
  }
  double PerSecond(int64_t now_s) const {
    uint64_t sum = 0;
    for (const Slot& s : slots_) {
      if (s.second > now_s - 60 && s.second <= now_s) sum += s.count;
    }
    return static_cast<double>(sum) / 60.0;
  }

 private:
  struct Slot {
    int64_t second = -1;
    uint64_t count = 0;
  };
  std::array<Slot, 60> slots_;
};

// QueueOptions::clock_us, or the system clock when it is not set.
int64_t ClockNowUs(const std::function<int64_t()>& clock_us) {
  if (clock_us) return clock_us();
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A name no other process writing lease records has: "p" and 16 random hex digits.
std::string NewOwnerName() {
  std::random_device rd;
  const uint64_t v = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  std::array<char, 17> hex{};
  std::snprintf(hex.data(), hex.size(), "%016llx", static_cast<unsigned long long>(v));
  return "p" + std::string(hex.data());
}

// The answers to JetStream API requests sent without waiting (purges of old lease records):
// only failures matter, and only for the log (the next purge, or the records' max age, removes
// what one left).
void OnApiReply(natsConnection* /*nc*/, natsSubscription* /*sub*/, natsMsg* msg,
                void* /*closure*/) {
  MsgPtr owned(msg);
  const char* data = natsMsg_GetData(msg);
  const std::string_view body(data == nullptr ? "" : data,
                              data == nullptr ? 0 : static_cast<size_t>(natsMsg_GetDataLength(msg)));
  if (body.find("\"error\"") != std::string_view::npos) {
    Log(LogLevel::kWarn, "nats: old lease records were not purged", {{"reply", std::string(body)}});
  }
}

void OnDisconnected(natsConnection* /*nc*/, void* /*closure*/) {
  Log(LogLevel::kWarn, "nats: disconnected; reconnecting");
}
void OnReconnected(natsConnection* /*nc*/, void* /*closure*/) {
  Log(LogLevel::kInfo, "nats: reconnected");
}

class NatsQueue final : public Queue {
 public:
  explicit NatsQueue(const QueueOptions& options) : options_(options), owner_(NewOwnerName()) {}
  ~NatsQueue() override;

  Status Start();

  std::string_view backend() const override { return "nats"; }
  bool calls_wait_on_network() const override { return true; }
  bool push_is_asynchronous() const override { return true; }
  void Push(std::string_view queue, std::span<const PushItem> items, PushDone done) override;
  StatusOr<std::vector<QueueMessage>> Pull(std::string_view queue,
                                           const PullOptions& options) override;
  StatusOr<std::vector<Status>> Ack(std::string_view queue,
                                    std::span<const std::string> ids) override;
  StatusOr<std::vector<Status>> Nack(std::string_view queue, std::span<const std::string> ids,
                                     const NackOptions& options) override;
  StatusOr<std::vector<QueueMessage>> DeadLetters(std::string_view queue, size_t limit) override;
  StatusOr<size_t> Requeue(std::string_view queue, std::span<const std::string> ids) override;
  std::vector<QueueStats> List() override;
  StatusOr<QueueStats> Stats(std::string_view queue) override;
  void Stop() override;

 private:
  // A leased message: the delivery Ack and Nack answer.
  struct Lease {
    MsgPtr msg;
    uint64_t seq = 0;
    int attempt = 0;
    int64_t expires_us = 0;
    Clock::time_point touched;  // delivered, or last kept alive
    uint64_t record_seq = 0;    // its pull's record in the lease stream (0: not recorded)
  };

  // A lease recorded in the lease stream by another process (one that restarted since, or runs
  // beside this one).
  struct Record {
    uint64_t record_seq = 0;  // in the lease stream
    uint64_t seq = 0;         // the leased message's, in the queue's stream
    int64_t until_us = 0;
    int attempt = 0;
    std::string ack_subject;  // of the delivery it was leased with (or held with, here)
  };

  // One of this process's records: it holds something while its leases run and some of them
  // are not settled (a lease record), or while the leases it ends would have run (a release).
  struct OwnRecord {
    int64_t until_us = 0;
    size_t open = 0;  // leases of the record not settled yet
    bool Holds(int64_t now_us) const { return until_us > now_us && open > 0; }
  };

  // A reply inbox for pull requests, used by one Pull at a time.
  struct Inbox {
    NatsPtr<natsSubscription> sub;
    std::string prefix;
    uint64_t request_id = 0;
    // A pull request that may still deliver here: the server neither ended it (a status) nor
    // filled it. Such an inbox is not reused: a message arriving late could sit in it past the
    // consumer's ack wait, be delivered again elsewhere, and then be handed out twice.
    bool open = false;
  };

  // One queue: its names on the server, its pull inboxes, its leases and lease records.
  struct QueueState : std::enable_shared_from_this<QueueState> {
    QueueState(const std::string& n, const std::string& owner,
               std::function<int64_t()> clock)
        : clock_us(std::move(clock)),
          name(n),
          stream(kStreamPrefix + n),
          dlq_stream(kDlqStreamPrefix + n),
          subject("vigil.q." + n),
          dlq_subjects("vigil.dlq." + n + ".>"),
          next_subject("$JS.API.CONSUMER.MSG.NEXT." + stream + "." + kConsumer),
          lease_stream(kLeaseStreamPrefix + n),
          lease_subjects("vigil.lease." + n + ".*"),
          own_subject("vigil.lease." + n + "." + owner) {}

    const std::function<int64_t()> clock_us;  // QueueOptions::clock_us
    const std::string name, stream, dlq_stream, subject, dlq_subjects, next_subject;
    // The lease stream, its subjects (one per process) and this process's.
    const std::string lease_stream, lease_subjects, own_subject;
    Clock::duration keep_alive_every{kServerAckWait / 3};

    Mutex inbox_mu;
    std::vector<std::unique_ptr<Inbox>> inboxes GUARDED_BY(inbox_mu);  // free ones

    // The watcher of the lease stream, and the server it reads from: another one (a restart of
    // nats-server, which may have lost its consumer's recent state) and it is started again.
    Mutex server_mu ACQUIRED_BEFORE(mu);
    natsSubscription* watcher GUARDED_BY(server_mu) = nullptr;
    std::string records_server_id GUARDED_BY(server_mu);

    Mutex mu;
    CondVar cv;  // watched_seq rose, or the watcher finished
    std::unordered_map<std::string, Lease> leases GUARDED_BY(mu);
    // Active leases recorded by other processes, by id; the ones this process holds are in
    // `leases`.
    std::unordered_map<std::string, Record> recorded GUARDED_BY(mu);
    std::unordered_set<uint64_t> given_back GUARDED_BY(mu);  // nacked, not delivered again yet
    // The earliest end of a lease in `leases` or `recorded` (a bound: it may be earlier).
    int64_t next_end_us GUARDED_BY(mu) = INT64_MAX;
    // The last record the watcher applied, and which watcher applies records (a stopped one's
    // late callbacks are ignored).
    uint64_t watched_seq GUARDED_BY(mu) = 0;
    uint64_t watcher_generation GUARDED_BY(mu) = 0;
    // This process's records by sequence, from the first that holds something; the stream is
    // purged below it (purge_floor: purged below that already).
    std::map<uint64_t, OwnRecord> own_records GUARDED_BY(mu);
    uint64_t last_own_seq GUARDED_BY(mu) = 0, purge_floor GUARDED_BY(mu) = 0;
    // Records that hold leases, published but not yet in own_records: their sequence is not
    // known yet, so the own subject is not purged while any is in flight.
    int holding_in_flight GUARDED_BY(mu) = 0;
    // Other processes' records by subject: the last one read, and when the last of their leases
    // ends. Once all have ended (a process that stopped, or was killed), they are purged here.
    struct Foreign {
      uint64_t last_seq = 0;
      int64_t until_us = 0;
    };
    std::unordered_map<std::string, Foreign> foreign GUARDED_BY(mu);
    Clock::time_point last_purge GUARDED_BY(mu);
    uint64_t pushed GUARDED_BY(mu) = 0, delivered GUARDED_BY(mu) = 0, acked GUARDED_BY(mu) = 0,
                    nacked GUARDED_BY(mu) = 0,
                    dead_lettered GUARDED_BY(mu) = 0, expired GUARDED_BY(mu) = 0;
    RateWindow push_rate GUARDED_BY(mu), deliver_rate GUARDED_BY(mu), ack_rate GUARDED_BY(mu);

    std::string DlqSubject(std::string_view id) const {
      // The id's number: "<name>-<n>".
      std::string_view n = id;
      if (n.size() > name.size() + 1 && n.substr(0, name.size()) == name && n[name.size()] == '-') {
        n.remove_prefix(name.size() + 1);
      }
      return "vigil.dlq." + name + "." + std::string(n);
    }
    // Whether `id` has the shape of this queue's ids ("<name>-<n>"), the only ones a lease
    // record names (a Vigil-Id header from elsewhere could hold anything).
    bool IsOwnId(std::string_view id) const {
      if (id.size() <= name.size() + 1 || id.substr(0, name.size()) != name ||
          id[name.size()] != '-') {
        return false;
      }
      const std::string_view n = id.substr(name.size() + 1);
      return n.size() <= 20 &&
             std::all_of(n.begin(), n.end(), [](char c) { return c >= '0' && c <= '9'; });
    }
    int64_t NowUs() const { return ClockNowUs(clock_us); }
  };

  int64_t NowUs() const { return ClockNowUs(options_.clock_us); }
  Status CheckRunning() const {
    if (stopped_.load()) return Unavailable("the queue is stopped");
    return Status::Ok();
  }

  jsOptions ApiOptions() const {
    jsOptions o;
    jsOptions_Init(&o);
    o.Wait = kApiTimeoutMs;
    return o;
  }

  // The queue named `name`: opened here already, found on the server, or (`create`) created.
  StatusOr<std::shared_ptr<QueueState>> GetQueue(std::string_view name, bool create)
      EXCLUDES(mu_, create_mu_);
  Status EnsureStreams(const std::string& name, bool create) REQUIRES(create_mu_);
  // A push waiting for JetStream's acknowledgements: settled one message at a time by
  // OnPubAck (on nats.c's thread), or by the reaper when they do not come in time. All but
  // `q`, `done` and `deadline` are guarded by pub_mu_ until the push is complete.
  struct PendingPush {
    std::shared_ptr<QueueState> q;
    PushDone done;
    Clock::time_point deadline;
    std::vector<const natsMsg*> msgs;  // keys of pub_pending_; null once settled
    std::vector<uint64_t> seqs;        // stream sequences, 0 when not stored
    std::vector<Status> errors;
    size_t settled = 0;
  };
  static void OnPubAck(jsCtx* js, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure);
  // Settles message i of `p` (once); returns `p` when that completed it.
  std::shared_ptr<PendingPush> SettlePush(PendingPush& p, size_t i, uint64_t seq, Status error)
      REQUIRES(pub_mu_);
  // Answers a complete push: at once when every message was stored; otherwise the reaper takes
  // back the part that was stored first (FailPushes).
  void FinishPush(const std::shared_ptr<PendingPush>& p) EXCLUDES(pub_mu_, mu_);
  // On the reaper's thread: settles the pushes past their deadline, and answers the failed ones.
  void ExpirePushes() EXCLUDES(pub_mu_);
  void FailPushes() EXCLUDES(mu_);
  void EndPush() EXCLUDES(mu_);

  // Lease records (see "Lease records" at the top). The watcher: an ordered consumer of the
  // lease stream from record `from_seq` on, which applies the other processes' records to
  // q.recorded.
  Status StartWatcher(QueueState& q, uint64_t from_seq) REQUIRES(q.server_mu) EXCLUDES(q.mu);
  void StopWatcher(QueueState& q) REQUIRES(q.server_mu) EXCLUDES(q.mu);
  static void OnRecord(natsConnection* nc, natsSubscription* sub, natsMsg* msg, void* closure);
  static void OnWatcherDone(void* closure);
  static void ApplyRecord(QueueState& q, uint64_t generation, uint64_t record_seq,
                          std::string_view subject, std::string_view body) EXCLUDES(q.mu);
  // Publishes a record on this process's subject, waits for its acknowledgement, and keeps it
  // in q.own_records (holding something until `until_us` while `open` leases are unsettled).
  StatusOr<uint64_t> PublishRecord(QueueState& q, const std::string& body, int64_t until_us,
                                   size_t open) EXCLUDES(q.mu);
  // Returns once the watcher applied every record stored before the call (a marker record
  // went round): Unavailable when it did not within kApiTimeoutMs.
  Status CatchUp(QueueState& q) EXCLUDES(q.mu);
  // Starts the watcher again (and catches up) when the connected server changed since.
  Status CheckServer(QueueState& q) EXCLUDES(q.server_mu, q.mu);
  // One of this process's leases from record `record_seq` is settled (acked, nacked, ended).
  static void SettleRecord(QueueState& q, uint64_t record_seq) REQUIRES(q.mu);
  // Purges this process's records below the first that holds something, and the other
  // processes' whose leases all ended (at most every kPurgeEvery, unless `now`).
  void PurgeRecords(QueueState& q, bool now) EXCLUDES(q.mu);
  Status RefreshNames() EXCLUDES(mu_);
  // Publishes `m` to `stream` and waits for JetStream's acknowledgement: its stream sequence.
  StatusOr<uint64_t> PublishAndWait(const std::string& stream, natsMsg* m);

  // Sends one pull request for up to `batch` messages (no_wait when expires_ms is 0) and
  // appends what it brings to `out`.
  Status RequestMessages(QueueState& q, Inbox& inbox, int batch, int64_t expires_ms,
                         std::vector<MsgPtr>* out);
  // Pull's work, on one inbox: appends the pulled messages to `result`.
  Status PullInto(QueueState& q, Inbox& inbox, const PullOptions& options,
                  std::vector<QueueMessage>* result);
  // A free pull inbox of `q` (subscribed when there is none), and giving it back.
  StatusOr<std::unique_ptr<Inbox>> TakeInbox(QueueState& q) EXCLUDES(q.inbox_mu);
  static void ReturnInbox(QueueState& q, std::unique_ptr<Inbox> inbox) EXCLUDES(q.inbox_mu);
  // Turns fetched messages into the pull's result: dead-letters those over max_attempts, acks
  // (plain pull) or leases the rest. Returns how many were dead-lettered.
  StatusOr<size_t> Accept(QueueState& q, std::vector<MsgPtr> msgs, const PullOptions& options,
                          std::vector<QueueMessage>* result);
  QueueMessage ToMessage(const QueueState& q, natsMsg* m, const Delivery& d) const;

  Status ValidateIds(std::span<const std::string> ids) const;
  // What Ack and Nack settle: the leases this process holds, and leases recorded by another
  // process (one that restarted, say) whose deliveries this one does not have.
  struct Taken {
    std::vector<std::pair<size_t, Lease>> own;
    std::vector<std::pair<size_t, Record>> foreign;
    bool empty() const { return own.empty() && foreign.empty(); }
  };
  // All or nothing: the leases of all `ids`, taken out of the tables, or none when one is not
  // leased (NotFound in its status; the others stay Ok and leased) or named twice.
  Taken TakeLeases(QueueState& q, std::span<const std::string> ids, std::vector<Status>* statuses)
      EXCLUDES(q.mu);
  void PutBack(QueueState& q, std::span<const std::string> ids, Taken&& taken) EXCLUDES(q.mu);
  // Acknowledges every message, waiting for the server's confirmation of the last.
  Status AckAll(std::span<natsMsg* const> msgs);
  // The stream still holds message `seq` (so an ack of it was not applied).
  bool StillStored(const QueueState& q, uint64_t seq);
  // Publishes message `seq` (delivered as `qm`) to the dead letters and terminates it in the queue: on
  // its delivery's `ack_subject`, or, when that is null (a message read from the stream, not
  // delivered here), by deleting it from the stream.
  Status DeadLetter(QueueState& q, const QueueMessage& qm, uint64_t seq, std::string_view reason,
                    const char* ack_subject) EXCLUDES(q.mu);
  void GiveBack(QueueState& q, const char* ack_subject, uint64_t seq,
                std::chrono::milliseconds delay) EXCLUDES(q.mu);
  // Naks delivery `ack_subject` with a delay of `delay_us` (at least 1 µs), confirmed by the
  // server.
  Status Nak(const char* ack_subject, int64_t delay_us);

  StatusOr<std::vector<std::pair<uint64_t, MsgPtr>>> ReadDeadLetters(const QueueState& q,
                                                                     size_t limit);
  StatusOr<QueueStats> StatsOf(QueueState& q);


  void ReapLoop() EXCLUDES(mu_);
  // Gives back the leases that ran out and forgets the recorded ones that ended; `periodic`
  // (the reaper's round) also keeps long leases alive, and otherwise it returns at once when
  // no lease can have ended yet.
  void Reap(QueueState& q, bool periodic) EXCLUDES(q.mu);

  const QueueOptions options_;
  // This process's name among the writers of lease records: "p" and 16 random hex digits.
  const std::string owner_;
  NatsPtr<natsConnection> conn_;
  NatsPtr<jsCtx> js_;  // synchronous JetStream calls; nats.c's jsCtx is thread-safe
  // The inbox of the JetStream API requests sent without waiting (purges of lease records).
  std::string api_inbox_;
  NatsPtr<natsSubscription> api_sub_;
  std::atomic<bool> stopped_{false};

  Mutex create_mu_ ACQUIRED_BEFORE(mu_);
  Mutex mu_;
  CondVar cv_;  // pushes_in_flight_ fell, or the reaper should stop
  std::map<std::string, std::shared_ptr<QueueState>, std::less<>> queues_ GUARDED_BY(mu_);
  std::set<std::string, std::less<>> names_ GUARDED_BY(mu_);  // queues known to exist
  int pushes_in_flight_ GUARDED_BY(mu_) = 0;
  std::vector<std::shared_ptr<PendingPush>> failed_pushes_ GUARDED_BY(mu_);  // for FailPushes
  // Messages stored after their push was reported failed (an ack later than ExpirePushes'
  // deadline): FailPushes deletes them, so that a failed push is not delivered after all.
  std::vector<std::pair<std::string, uint64_t>> late_stored_ GUARDED_BY(pub_mu_);
  // Asynchronous publishing (pushes): one context, its acknowledgements in OnPubAck.
  NatsPtr<jsCtx> pub_js_;
  Mutex pub_mu_;
  std::unordered_map<const natsMsg*, std::pair<std::shared_ptr<PendingPush>, size_t>> pub_pending_
      GUARDED_BY(pub_mu_);
  std::unordered_map<const PendingPush*, std::shared_ptr<PendingPush>> pub_incomplete_
      GUARDED_BY(pub_mu_);
  bool reaper_stop_ GUARDED_BY(mu_) = false;
  std::thread reaper_;
};

Status NatsQueue::Start() {
  natsOptions* raw_opts = nullptr;
  natsStatus s = natsOptions_Create(&raw_opts);
  if (s != NATS_OK) return NatsError("options", s);
  NatsPtr<natsOptions> opts(raw_opts);
  s = natsOptions_SetURL(opts.get(), options_.url.c_str());
  if (s == NATS_OK) s = natsOptions_SetName(opts.get(), "vigil");
  if (s == NATS_OK) s = natsOptions_SetTimeout(opts.get(), kConnectTimeoutMs);
  if (s == NATS_OK) s = natsOptions_SetMaxReconnect(opts.get(), -1);
  if (s == NATS_OK) s = natsOptions_SetReconnectWait(opts.get(), 250);
  // Each publish and request goes out at once: nats.c otherwise leaves them to its flusher
  // thread, which waits about a millisecond to coalesce writes, and every push, pull and ack
  // here waits for its answer (measured: ~1 ms per call without, 0.1 ms with).
  if (s == NATS_OK) s = natsOptions_SetSendAsap(opts.get(), true);
  // Nothing is buffered while disconnected: a publish then fails at once, instead of being
  // sent after we told the caller it failed.
  if (s == NATS_OK) s = natsOptions_SetReconnectBufSize(opts.get(), 1);
  if (s == NATS_OK) s = natsOptions_SetDisconnectedCB(opts.get(), OnDisconnected, nullptr);
  if (s == NATS_OK) s = natsOptions_SetReconnectedCB(opts.get(), OnReconnected, nullptr);
  if (s != NATS_OK) return NatsError("options for " + options_.url, s);

  natsConnection* nc = nullptr;
  s = natsConnection_Connect(&nc, opts.get());
  if (s != NATS_OK) return NatsError("cannot connect to " + options_.url, s);
  conn_.reset(nc);
  jsOptions jo = ApiOptions();
  jsCtx* js = nullptr;
  s = natsConnection_JetStream(&js, conn_.get(), &jo);
  if (s != NATS_OK) return NatsError("JetStream context", s);
  js_.reset(js);
  jsOptions pub = ApiOptions();
  pub.PublishAsync.MaxPending = kMaxPendingPublishes;
  pub.PublishAsync.AckHandler = OnPubAck;
  pub.PublishAsync.AckHandlerClosure = this;
  js = nullptr;
  s = natsConnection_JetStream(&js, conn_.get(), &pub);
  if (s != NATS_OK) return NatsError("JetStream context", s);
  pub_js_.reset(js);
  natsInbox* inbox = nullptr;
  s = natsInbox_Create(&inbox);
  if (s != NATS_OK) return NatsError("inbox", s);
  api_inbox_ = inbox;
  natsInbox_Destroy(inbox);
  natsSubscription* api_sub = nullptr;
  s = natsConnection_Subscribe(&api_sub, conn_.get(), api_inbox_.c_str(), OnApiReply, nullptr);
  if (s != NATS_OK) return NatsError("subscribe to the API inbox", s);
  api_sub_.reset(api_sub);

  const int64_t max_payload = natsConnection_GetMaxPayload(conn_.get());
  if (max_payload < static_cast<int64_t>(options_.max_message_bytes + kHeaderReserve)) {
    Log(LogLevel::kWarn, "nats: the server's max_payload is below max_message_bytes",
        {{"max_payload", static_cast<long long>(max_payload)},
         {"max_message_bytes", static_cast<unsigned long long>(options_.max_message_bytes)}});
  }
  if (options_.durability == Durability::kPowerLoss) {
    Log(LogLevel::kWarn,
        "nats: JetStream acknowledges a push before it is fsynced (nats-server 2.9 syncs every "
        "2 minutes): a power loss can lose acknowledged pushes (docs/queues-nats.md)");
  }

  VIGIL_RETURN_IF_ERROR(RefreshNames());
  for (const std::string& name : options_.default_queues) {
    VIGIL_RETURN_IF_ERROR(ValidateQueueName(name));
    VIGIL_RETURN_IF_ERROR(GetQueue(name, /*create=*/true).status());
  }
  reaper_ = std::thread([this] { ReapLoop(); });
  return Status::Ok();
}

NatsQueue::~NatsQueue() {
  Stop();
  {
    MutexLock lock(&mu_);
    reaper_stop_ = true;
    cv_.SignalAll();
  }
  if (reaper_.joinable()) reaper_.join();
  std::vector<std::shared_ptr<QueueState>> queues;
  {
    MutexLock lock(&mu_);
    for (const auto& [name, q] : queues_) queues.push_back(q);
  }
  // Leases are left as they are, not given back: recorded, they hold across a restart. The
  // records that hold nothing go.
  for (const auto& q : queues) PurgeRecords(*q, /*now=*/true);
  if (conn_ != nullptr && !queues.empty()) natsConnection_FlushTimeout(conn_.get(), 1000);
  // Closing the connection ends the watchers too (their callbacks use the queue states).
  if (conn_ != nullptr) natsConnection_Close(conn_.get());
  for (const auto& q : queues) {
    MutexLock server_lock(&q->server_mu);
    StopWatcher(*q);
  }
  MutexLock lock(&mu_);
  for (auto& [name, q] : queues_) {
    MutexLock q_lock(&q->mu);
    q->leases.clear();
  }
  queues_.clear();
}

void NatsQueue::Stop() {
  MutexLock lock(&mu_);
  stopped_.store(true);
  while (pushes_in_flight_ > 0) cv_.Wait(&mu_);
}

Status NatsQueue::RefreshNames() {
  jsOptions jo = ApiOptions();
  jsStreamNamesList* raw = nullptr;
  jsErrCode je = static_cast<jsErrCode>(0);
  const natsStatus s = js_StreamNames(&raw, js_.get(), &jo, &je);
  if (s == NATS_NOT_FOUND) return Status::Ok();  // no stream at all
  if (s != NATS_OK) return NatsError("list streams", s, je);
  NatsPtr<jsStreamNamesList> list(raw);
  MutexLock lock(&mu_);
  for (int i = 0; i < list->Count; ++i) {
    const std::string_view n = list->List[i];
    if (n.substr(0, std::strlen(kStreamPrefix)) == kStreamPrefix) {
      names_.insert(std::string(n.substr(std::strlen(kStreamPrefix))));
    }
  }
  return Status::Ok();
}

Status NatsQueue::EnsureStreams(const std::string& name, bool create) {
  const std::string stream = kStreamPrefix + name;
  const std::string dlq_stream = kDlqStreamPrefix + name;
  const std::string subject = "vigil.q." + name;
  const std::string dlq_subjects = "vigil.dlq." + name + ".>";
  jsOptions jo = ApiOptions();
  jsErrCode je = static_cast<jsErrCode>(0);

  jsStreamInfo* si = nullptr;
  natsStatus s = js_GetStreamInfo(&si, js_.get(), stream.c_str(), &jo, &je);
  NatsPtr<jsStreamInfo> si_owner(si);
  const bool exists = s == NATS_OK;
  if (!exists && !IsNotFound(s, je)) return NatsError("stream info " + stream, s, je);
  if (!exists) {
    if (!create) return NotFound("queue '" + name + "' does not exist");
    MutexLock lock(&mu_);
    if (!names_.contains(name) && names_.size() >= options_.max_queues) {
      return ResourceExhausted("too many queues: " + std::to_string(names_.size()) +
                               " exist, max_queues is " + std::to_string(options_.max_queues));
    }
  }
  // `tune` sets what a stream needs beyond its name, subjects, retention and file storage.
  auto add_stream = [&](const std::string& sname, const std::string& subj, jsRetentionPolicy retention,
                        const std::function<void(jsStreamConfig&)>& tune = {}) -> Status {
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    const char* subjects[] = {subj.c_str()};
    cfg.Name = sname.c_str();
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Retention = retention;
    cfg.Storage = js_FileStorage;
    if (tune) tune(cfg);
    jsStreamInfo* out = nullptr;
    jsErrCode err = static_cast<jsErrCode>(0);
    const natsStatus st = js_AddStream(&out, js_.get(), &cfg, &jo, &err);
    jsStreamInfo_Destroy(out);
    // Another process may have created it meanwhile, with the same configuration (OK) or not.
    if (st != NATS_OK && err != JSStreamNameExistErr) {
      return NatsError("create stream " + sname, st, err);
    }
    return Status::Ok();
  };
  if (!exists) VIGIL_RETURN_IF_ERROR(add_stream(stream, subject, js_WorkQueuePolicy));

  // The dead letters, and the lease records (a key-value store in a stream: one subject per
  // message id, the last record only), each created when missing.
  auto ensure_stream = [&](const std::string& sname, const std::string& subj, jsRetentionPolicy retention,
                           const std::function<void(jsStreamConfig&)>& tune = {}) -> Status {
    jsStreamInfo* info = nullptr;
    const natsStatus st = js_GetStreamInfo(&info, js_.get(), sname.c_str(), &jo, &je);
    jsStreamInfo_Destroy(info);
    if (st == NATS_OK) return Status::Ok();
    if (!IsNotFound(st, je)) return NatsError("stream info " + sname, st, je);
    return add_stream(sname, subj, retention, tune);
  };
  VIGIL_RETURN_IF_ERROR(ensure_stream(dlq_stream, dlq_subjects, js_LimitsPolicy));
  // The lease records: one subject per process, records kept until purged (or their max age).
  const std::string lease_stream = kLeaseStreamPrefix + name;
  VIGIL_RETURN_IF_ERROR(ensure_stream(
      lease_stream, "vigil.lease." + name + ".*", js_LimitsPolicy, [this](jsStreamConfig& cfg) {
        cfg.MaxAge = std::chrono::duration_cast<std::chrono::nanoseconds>(
                         std::max<std::chrono::milliseconds>(options_.max_lease, kServerAckWait) +
                         kLeaseRecordSlack)
                         .count();
      }));
  {
    // A lease stream of an earlier Vigil kept one record per subject (one per message): it
    // now keeps them all. Its old records are not read (their leases are then delivered again).
    jsStreamInfo* info = nullptr;
    s = js_GetStreamInfo(&info, js_.get(), lease_stream.c_str(), &jo, &je);
    NatsPtr<jsStreamInfo> owner(info);
    if (s != NATS_OK) return NatsError("stream info " + lease_stream, s, je);
    if (info->Config != nullptr && info->Config->MaxMsgsPerSubject > 0) {
      info->Config->MaxMsgsPerSubject = -1;
      jsStreamInfo* out = nullptr;
      s = js_UpdateStream(&out, js_.get(), info->Config, &jo, &je);
      jsStreamInfo_Destroy(out);
      if (s != NATS_OK) return NatsError("update stream " + lease_stream, s, je);
    }
  }

  jsConsumerInfo* ci = nullptr;
  s = js_GetConsumerInfo(&ci, js_.get(), stream.c_str(), kConsumer, &jo, &je);
  NatsPtr<jsConsumerInfo> ci_owner(ci);
  if (s != NATS_OK) {
    if (!IsNotFound(s, je)) return NatsError("consumer info " + stream, s, je);
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = kConsumer;
    cc.AckPolicy = js_AckExplicit;
    cc.AckWait = std::chrono::duration_cast<std::chrono::nanoseconds>(kServerAckWait).count();
    cc.MaxDeliver = -1;     // Vigil counts the attempts (dead letters)
    cc.MaxAckPending = kMaxAckPending;
    cc.DeliverPolicy = js_DeliverAll;
    jsConsumerInfo* out = nullptr;
    const natsStatus st = js_AddConsumer(&out, js_.get(), stream.c_str(), &cc, &jo, &je);
    jsConsumerInfo_Destroy(out);
    if (st != NATS_OK) return NatsError("create consumer on " + stream, st, je);
  } else if (ci->Config != nullptr && ci->Config->MaxAckPending < kMaxAckPending) {
    // One an earlier Vigil created (with the server's default of 1000).
    ci->Config->MaxAckPending = kMaxAckPending;
    jsConsumerInfo* out = nullptr;
    const natsStatus st = js_UpdateConsumer(&out, js_.get(), stream.c_str(), ci->Config, &jo, &je);
    jsConsumerInfo_Destroy(out);
    if (st != NATS_OK) return NatsError("update consumer on " + stream, st, je);
  }
  return Status::Ok();
}

StatusOr<std::shared_ptr<NatsQueue::QueueState>> NatsQueue::GetQueue(std::string_view name,
                                                                     bool create) {
  {
    MutexLock lock(&mu_);
    const auto it = queues_.find(name);
    if (it != queues_.end()) return it->second;
  }
  MutexLock create_lock(&create_mu_);
  {
    MutexLock lock(&mu_);
    const auto it = queues_.find(name);
    if (it != queues_.end()) return it->second;
  }
  const std::string n(name);
  VIGIL_RETURN_IF_ERROR(EnsureStreams(n, create));

  auto q = std::make_shared<QueueState>(n, owner_, options_.clock_us);
  jsOptions jo = ApiOptions();
  jsErrCode je = static_cast<jsErrCode>(0);
  jsConsumerInfo* ci = nullptr;
  natsStatus s = js_GetConsumerInfo(&ci, js_.get(), q->stream.c_str(), kConsumer, &jo, &je);
  if (s != NATS_OK) return NatsError("consumer info " + q->stream, s, je);
  if (ci->Config != nullptr && ci->Config->AckWait > 0) {
    q->keep_alive_every = std::chrono::nanoseconds(ci->Config->AckWait / 3);
  }
  jsConsumerInfo_Destroy(ci);

  // Leases recorded before this process (it restarted, or another one runs): they hold here
  // too, and their messages come back when they end rather than after the server's ack wait
  // (a nak with that delay on the recorded delivery, if the server still knows it).
  {
    MutexLock server_lock(&q->server_mu);
    std::array<char, 128> id{};
    if (natsConnection_GetConnectedServerId(conn_.get(), id.data(), id.size()) == NATS_OK) {
      q->records_server_id = id.data();
    }
    VIGIL_RETURN_IF_ERROR(StartWatcher(*q, 1));
  }
  if (Status st = CatchUp(*q); !st.ok()) {
    MutexLock server_lock(&q->server_mu);
    StopWatcher(*q);
    return st;
  }
  {
    const int64_t now_us = NowUs();
    std::vector<std::pair<std::string, int64_t>> naks;
    {
      MutexLock q_lock(&q->mu);
      for (const auto& [rid, r] : q->recorded) {
        if (r.ack_subject.empty() || r.until_us <= now_us) continue;
        naks.emplace_back(r.ack_subject, r.until_us - now_us + kHoldSlackUs);
      }
    }
    for (const auto& [subject, delay_us] : naks) {
      const std::string nak = "-NAK {\"delay\":" + std::to_string(delay_us * 1000) + "}";
      natsConnection_PublishString(conn_.get(), subject.c_str(), nak.c_str());
    }
    if (!naks.empty()) natsConnection_FlushTimeout(conn_.get(), kApiTimeoutMs);
  }

  MutexLock lock(&mu_);
  names_.insert(n);
  queues_.emplace(n, q);
  return q;
}

void NatsQueue::Push(std::string_view queue, std::span<const PushItem> items, PushDone done) {
  Status st = CheckRunning();
  if (st.ok()) st = ValidateQueueName(queue);
  if (st.ok() && items.empty()) st = InvalidArgument("a push needs at least one message");
  if (st.ok() && items.size() > options_.max_batch) {
    st =
        InvalidArgument("a push of " + std::to_string(items.size()) +
                        " messages is over max_batch (" + std::to_string(options_.max_batch) + ")");
  }
  const int64_t max_payload = natsConnection_GetMaxPayload(conn_.get());
  for (size_t i = 0; st.ok() && i < items.size(); ++i) {
    const size_t size = items[i].content.size();
    if (size > options_.max_message_bytes) {
      st = InvalidArgument("message " + std::to_string(i) + ": content of " + std::to_string(size) +
                           " bytes is over max_message_bytes (" +
                           std::to_string(options_.max_message_bytes) + ")");
    } else if (static_cast<int64_t>(size + 3 * items[i].message_type.size() + kHeaderReserve) >
               max_payload) {
      st = InvalidArgument("message " + std::to_string(i) + ": content of " + std::to_string(size) +
                           " bytes is over the NATS server's max_payload (" +
                           std::to_string(max_payload) +
                           " bytes, with headers): raise max_payload in its configuration");
    }
  }
  if (st.ok()) {
    // Counted and checked together: Stop() sets stopped_ under mu_ and then waits for the
    // count, so a push either is refused here or is waited for.
    MutexLock lock(&mu_);
    if (stopped_.load()) {
      st = CheckRunning();
    } else {
      ++pushes_in_flight_;
    }
  }
  if (!st.ok()) {
    done(st);
    return;
  }
  auto q_or = GetQueue(queue, /*create=*/true);
  if (!q_or.ok()) {
    done(q_or.status());
    EndPush();
    return;
  }
  QueueState& q = **q_or;
  const size_t n = items.size();
  const std::string enqueued = std::to_string(NowUs());
  std::vector<MsgPtr> msgs;
  msgs.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    natsMsg* m = nullptr;
    natsStatus s = natsMsg_Create(&m, q.subject.c_str(), nullptr, items[i].content.data(),
                                  static_cast<int>(items[i].content.size()));
    MsgPtr owned(m);
    if (s == NATS_OK) s = natsMsgHeader_Set(m, kHdrEnqueued, enqueued.c_str());
    if (s == NATS_OK && !items[i].message_type.empty()) {
      s = natsMsgHeader_Set(m, kHdrType, EncodeHeader(items[i].message_type).c_str());
    }
    if (s != NATS_OK) {
      done(NatsError("message for " + q.stream, s).WithContext("push to queue '" + q.name + "'"));
      EndPush();
      return;
    }
    msgs.push_back(std::move(owned));
  }
  // Published asynchronously: whoever settles the last message (OnPubAck, this loop when a
  // publish fails, or the reaper at the deadline) finishes the push.
  auto p = std::make_shared<PendingPush>();
  p->q = *q_or;
  p->done = std::move(done);
  p->deadline = Clock::now() + std::chrono::milliseconds(kApiTimeoutMs);
  p->seqs.assign(n, 0);
  p->errors.assign(n, Status::Ok());
  {
    MutexLock lock(&pub_mu_);
    for (size_t i = 0; i < n; ++i) {
      p->msgs.push_back(msgs[i].get());
      pub_pending_[msgs[i].get()] = {p, i};
    }
    pub_incomplete_[p.get()] = p;
  }
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.ExpectStream = q.stream.c_str();
  po.MaxWait = kApiTimeoutMs;
  for (size_t i = 0; i < n; ++i) {
    natsMsg* m = msgs[i].release();
    const natsStatus s = js_PublishMsgAsync(pub_js_.get(), &m, &po);
    if (s != NATS_OK) {
      const Status error = NatsError("publish to " + q.stream, s);
      std::shared_ptr<PendingPush> complete;
      {
        MutexLock lock(&pub_mu_);
        for (size_t j = i; j < n; ++j) {
          if (auto c = SettlePush(*p, j, 0, error)) complete = std::move(c);
        }
      }
      // Only once it is out of pub_pending_: another push's message may get its address.
      natsMsg_Destroy(m);  // a no-op once the library took it
      if (complete) FinishPush(complete);
      return;  // msgs[j > i] are destroyed here, never published
    }
  }
}

void NatsQueue::OnPubAck(jsCtx* /*js*/, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae,
                         void* closure) {
  auto* self = static_cast<NatsQueue*>(closure);
  std::shared_ptr<PendingPush> complete;
  {
    MutexLock lock(&self->pub_mu_);
    const auto it = self->pub_pending_.find(msg);
    if (it != self->pub_pending_.end()) {
      const auto [p, i] = it->second;
      if (pa != nullptr) {
        complete = self->SettlePush(*p, i, pa->Sequence, Status::Ok());
      } else {
        const natsStatus err = pae != nullptr ? pae->Err : NATS_ERR;
        const jsErrCode code = pae != nullptr ? pae->ErrCode : static_cast<jsErrCode>(0);
        std::string what = "publish";
        if (pae != nullptr && pae->ErrText != nullptr) what += std::string(" (") + pae->ErrText + ")";
        complete = self->SettlePush(*p, i, 0, NatsError(what, err, code));
      }
    } else if (pa != nullptr && pa->Stream != nullptr) {
      self->late_stored_.emplace_back(pa->Stream, pa->Sequence);
    }
  }
  natsMsg_Destroy(msg);  // ours to destroy, says nats.c
  if (complete) self->FinishPush(complete);
}

std::shared_ptr<NatsQueue::PendingPush> NatsQueue::SettlePush(PendingPush& p, size_t i,
                                                              uint64_t seq, Status error) {
  if (i >= p.msgs.size() || p.msgs[i] == nullptr) return nullptr;  // settled already
  pub_pending_.erase(p.msgs[i]);
  p.msgs[i] = nullptr;
  p.seqs[i] = seq;
  p.errors[i] = std::move(error);
  if (++p.settled < p.msgs.size()) return nullptr;
  const auto it = pub_incomplete_.find(&p);
  if (it == pub_incomplete_.end()) return nullptr;
  std::shared_ptr<PendingPush> complete = std::move(it->second);
  pub_incomplete_.erase(it);
  return complete;
}

void NatsQueue::FinishPush(const std::shared_ptr<PendingPush>& p) {
  // Complete: nothing writes to *p any more.
  if (std::any_of(p->errors.begin(), p->errors.end(), [](const Status& e) { return !e.ok(); })) {
    MutexLock lock(&mu_);
    failed_pushes_.push_back(p);
    cv_.SignalAll();
    return;
  }
  QueueState& q = *p->q;
  std::vector<std::string> ids;
  ids.reserve(p->seqs.size());
  for (const uint64_t seq : p->seqs) ids.push_back(q.name + "-" + std::to_string(seq));
  {
    MutexLock lock(&q.mu);
    q.pushed += ids.size();
    q.push_rate.Add(NowUs() / 1000000, ids.size());
  }
  p->done(std::move(ids));
  EndPush();
}

void NatsQueue::ExpirePushes() {
  const auto now = Clock::now();
  std::vector<std::shared_ptr<PendingPush>> complete;
  {
    MutexLock lock(&pub_mu_);
    std::vector<PendingPush*> late;
    for (const auto& [raw, p] : pub_incomplete_) {
      if (now >= p->deadline) late.push_back(p.get());
    }
    for (PendingPush* p : late) {
      // What is still unanswered: a late answer finds nothing to settle.
      for (size_t i = 0; i < p->msgs.size(); ++i) {
        auto c = SettlePush(*p, i, 0,
                            Unavailable("nats: no acknowledgement from JetStream within " +
                                        std::to_string(kApiTimeoutMs) + " ms"));
        if (c) complete.push_back(std::move(c));
      }
    }
  }
  for (const auto& p : complete) FinishPush(p);
}

void NatsQueue::FailPushes() {
  std::vector<std::shared_ptr<PendingPush>> failed;
  {
    MutexLock lock(&mu_);
    failed.swap(failed_pushes_);
  }
  std::vector<std::pair<std::string, uint64_t>> late;
  {
    MutexLock lock(&pub_mu_);
    late.swap(late_stored_);
  }
  for (const auto& [stream, seq] : late) {
    jsOptions jo = ApiOptions();
    jsErrCode je = static_cast<jsErrCode>(0);
    const natsStatus s = js_DeleteMsg(js_.get(), stream.c_str(), seq, &jo, &je);
    if (s != NATS_OK && !DeletedNothing(s, je)) {
      Log(LogLevel::kError, "nats: a push reported failed left a message in its queue",
          {{"stream", stream}, {"seq", static_cast<unsigned long long>(seq)}});
    }
  }
  for (const auto& p : failed) {
    // All or nothing: take back the part of the batch that was stored.
    QueueState& q = *p->q;
    jsOptions jo = ApiOptions();
    for (const uint64_t seq : p->seqs) {
      if (seq == 0) continue;
      jsErrCode je = static_cast<jsErrCode>(0);
      if (js_DeleteMsg(js_.get(), q.stream.c_str(), seq, &jo, &je) != NATS_OK) {
        Log(LogLevel::kError, "nats: a failed push left a message in its queue",
            {{"queue", q.name}, {"seq", static_cast<unsigned long long>(seq)}});
      }
    }
    const auto bad =
        std::find_if(p->errors.begin(), p->errors.end(), [](const Status& e) { return !e.ok(); });
    p->done(bad->WithContext("push to queue '" + q.name + "'"));
    EndPush();
  }
}

void NatsQueue::EndPush() {
  MutexLock lock(&mu_);
  // Only Stop() waits for the count (stopped_ is set under mu_ before it looks): a signal per
  // push would wake the reaper, which scans every lease, once a push.
  if (--pushes_in_flight_ == 0 && stopped_.load()) cv_.SignalAll();
}

StatusOr<std::unique_ptr<NatsQueue::Inbox>> NatsQueue::TakeInbox(QueueState& q) {
  {
    MutexLock lock(&q.inbox_mu);
    if (!q.inboxes.empty()) {
      auto inbox = std::move(q.inboxes.back());
      q.inboxes.pop_back();
      return inbox;
    }
  }
  auto inbox = std::make_unique<Inbox>();
  natsInbox* name = nullptr;
  natsStatus s = natsInbox_Create(&name);
  if (s != NATS_OK) return NatsError("inbox", s);
  inbox->prefix = name;
  natsInbox_Destroy(name);
  natsSubscription* sub = nullptr;
  s = natsConnection_SubscribeSync(&sub, conn_.get(), (inbox->prefix + ".*").c_str());
  if (s != NATS_OK) return NatsError("subscribe to a pull inbox", s);
  inbox->sub.reset(sub);
  // A pull's messages wait in the library until it takes them: no limit short of max_batch.
  natsSubscription_SetPendingLimits(sub, -1, -1);
  return inbox;
}

void NatsQueue::ReturnInbox(QueueState& q, std::unique_ptr<Inbox> inbox) {
  // An open one is dropped (unsubscribed): what still comes for it is not acknowledged, and the
  // server delivers it again after its ack wait.
  if (inbox->open) return;
  MutexLock lock(&q.inbox_mu);
  q.inboxes.push_back(std::move(inbox));
}

Status NatsQueue::RequestMessages(QueueState& q, Inbox& inbox, int batch, int64_t expires_ms,
                                  std::vector<MsgPtr>* out) {
  const std::string reply = inbox.prefix + "." + std::to_string(++inbox.request_id);
  std::string body = "{\"batch\":" + std::to_string(batch);
  if (expires_ms > 0) {
    body += ",\"expires\":" + std::to_string(expires_ms * 1000000);
  } else {
    body += ",\"no_wait\":true";
  }
  body += "}";
  inbox.open = true;
  natsStatus s = natsConnection_PublishRequest(conn_.get(), q.next_subject.c_str(), reply.c_str(),
                                               body.data(), static_cast<int>(body.size()));
  if (s != NATS_OK) return NatsError("pull from " + q.stream, s);
  // A no_wait request is answered at once: silence is an unreachable JetStream. One that
  // expires usually ends with a 408, but nats-server 2.9 drops an expired request without one
  // when a message comes as it expires: silence a moment past its expiry means it is over. The
  // inbox stays open, so it is not reused; what might still come for it is redelivered.
  const auto deadline =
      Clock::now() + std::chrono::milliseconds(expires_ms > 0 ? expires_ms + kExpiryGraceMs
                                                              : kApiTimeoutMs);
  int got = 0;
  while (got < batch && !stopped_.load()) {
    const int64_t left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      if (got > 0 || expires_ms > 0) break;
      return Unavailable("nats: no answer from JetStream to a pull from " + q.stream);
    }
    natsMsg* raw = nullptr;
    s = natsSubscription_NextMsg(&raw, inbox.sub.get(), std::min(left, kWaitSliceMs));
    if (s == NATS_TIMEOUT) continue;
    if (s != NATS_OK) return NatsError("pull from " + q.stream, s);
    MsgPtr m(raw);
    const char* status = nullptr;
    if (natsMsgHeader_Get(m.get(), "Status", &status) == NATS_OK && status != nullptr) {
      // A status ends a request: this one, or an older one a pull gave up on (ignored).
      if (reply != natsMsg_GetSubject(m.get())) continue;
      const std::string_view code(status);
      if (code == "100") continue;  // heartbeat
      inbox.open = false;            // any other status ends the request
      if (code == "404" || code == "408") break;  // nothing (more) to deliver
      if (got > 0) break;
      return Unavailable("nats: JetStream refused a pull from " + q.stream + ": " +
                         std::string(code) + " " + Header(m.get(), "Description"));
    }
    // A message: for this request (an inbox is reused only after its requests ended).
    out->push_back(std::move(m));
    ++got;
  }
  if (got == batch) inbox.open = false;  // filled: the server sends nothing more for it
  return Status::Ok();
}

QueueMessage NatsQueue::ToMessage(const QueueState& q, natsMsg* m, const Delivery& d) const {
  QueueMessage qm;
  qm.id = Header(m, kHdrId);
  if (qm.id.empty()) qm.id = q.name + "-" + std::to_string(d.stream_seq);
  const char* data = natsMsg_GetData(m);
  if (data != nullptr) qm.content.assign(data, static_cast<size_t>(natsMsg_GetDataLength(m)));
  qm.message_type = DecodeHeader(Header(m, kHdrType));
  qm.attempt = static_cast<int>(d.delivered);
  if (!ParseNumber(Header(m, kHdrEnqueued), &qm.enqueued_us))
    qm.enqueued_us = d.timestamp_ns / 1000;
  return qm;
}

bool NatsQueue::StillStored(const QueueState& q, uint64_t seq) {
  jsOptions jo = ApiOptions();
  natsMsg* raw = nullptr;
  jsErrCode je = static_cast<jsErrCode>(0);
  const natsStatus s = js_GetMsg(&raw, js_.get(), q.stream.c_str(), seq, &jo, &je);
  natsMsg_Destroy(raw);
  // Unknown (the server is unreachable): counted as taken, so that nothing is lost; it may
  // then be delivered twice.
  return s == NATS_OK;
}

Status NatsQueue::AckAll(std::span<natsMsg* const> msgs) {
  if (msgs.empty()) return Status::Ok();
  for (size_t i = 0; i + 1 < msgs.size(); ++i) {
    const natsStatus s =
        natsConnection_PublishString(conn_.get(), natsMsg_GetReply(msgs[i]), "+ACK");
    if (s != NATS_OK) return NatsError("ack", s);
  }
  natsMsg* reply = nullptr;
  const natsStatus s = natsConnection_RequestString(
      &reply, conn_.get(), natsMsg_GetReply(msgs.back()), "+ACK", kApiTimeoutMs);
  natsMsg_Destroy(reply);
  if (s != NATS_OK) return NatsError("ack", s);
  return Status::Ok();
}

void NatsQueue::GiveBack(QueueState& q, const char* ack_subject, uint64_t seq,
                         std::chrono::milliseconds delay) {
  std::string nak = "-NAK";
  if (delay.count() > 0) {
    nak += " {\"delay\":" +
           std::to_string(std::chrono::duration_cast<std::chrono::nanoseconds>(delay).count()) +
           "}";
  }
  // Confirmed by the server (a request, as AckSync), so that a pull sent after it finds the
  // message given back: the server handles acks apart from pull requests.
  natsMsg* reply = nullptr;
  const natsStatus s =
      natsConnection_RequestString(&reply, conn_.get(), ack_subject, nak.c_str(), kApiTimeoutMs);
  natsMsg_Destroy(reply);
  if (s != NATS_OK) {
    // It comes back anyway, after the ack wait.
    Log(LogLevel::kWarn, "nats: a nak was not confirmed", {{"queue", q.name}});
  }
  MutexLock lock(&q.mu);
  q.given_back.insert(seq);
}

Status NatsQueue::Nak(const char* ack_subject, int64_t delay_us) {
  const std::string nak =
      "-NAK {\"delay\":" + std::to_string(std::max<int64_t>(delay_us, 1) * 1000) + "}";
  natsMsg* reply = nullptr;
  const natsStatus s =
      natsConnection_RequestString(&reply, conn_.get(), ack_subject, nak.c_str(), kApiTimeoutMs);
  natsMsg_Destroy(reply);
  if (s != NATS_OK) return NatsError("nak", s);
  return Status::Ok();
}

Status NatsQueue::DeadLetter(QueueState& q, const QueueMessage& qm, uint64_t seq,
                             std::string_view reason, const char* ack_subject) {
  natsMsg* raw = nullptr;
  natsStatus s = natsMsg_Create(&raw, q.DlqSubject(qm.id).c_str(), nullptr, qm.content.data(),
                                static_cast<int>(qm.content.size()));
  if (s != NATS_OK) return NatsError("dead letter", s);
  MsgPtr d(raw);
  const std::string enqueued = std::to_string(qm.enqueued_us);
  const std::string attempt = std::to_string(qm.attempt);
  s = natsMsgHeader_Set(d.get(), kHdrId, qm.id.c_str());
  if (s == NATS_OK) s = natsMsgHeader_Set(d.get(), kHdrEnqueued, enqueued.c_str());
  if (s == NATS_OK) s = natsMsgHeader_Set(d.get(), kHdrAttempt, attempt.c_str());
  if (s == NATS_OK) s = natsMsgHeader_Set(d.get(), kHdrReason, EncodeHeader(reason).c_str());
  if (s == NATS_OK && !qm.message_type.empty()) {
    s = natsMsgHeader_Set(d.get(), kHdrType, EncodeHeader(qm.message_type).c_str());
  }
  Status error = s == NATS_OK ? PublishAndWait(q.dlq_stream, d.get()).status()
                              : NatsError("dead letter", s);
  if (!error.ok()) {
    Log(LogLevel::kError, "nats: a dead letter could not be stored; given back instead",
        {{"queue", q.name}, {"id", qm.id}, {"error", error.message()}});
    if (ack_subject != nullptr) GiveBack(q, ack_subject, seq, std::chrono::milliseconds(0));
    return error;
  }
  if (ack_subject != nullptr) {
    natsMsg* reply = nullptr;
    s = natsConnection_RequestString(&reply, conn_.get(), ack_subject, "+TERM", kApiTimeoutMs);
    natsMsg_Destroy(reply);
  } else {
    jsOptions jo = ApiOptions();
    jsErrCode je = static_cast<jsErrCode>(0);
    s = js_DeleteMsg(js_.get(), q.stream.c_str(), seq, &jo, &je);
    if (s != NATS_OK && DeletedNothing(s, je)) s = NATS_OK;
  }
  if (s != NATS_OK) {
    Log(LogLevel::kWarn, "nats: a dead letter was not terminated in its queue (it may come back)",
        {{"queue", q.name}, {"id", qm.id}});
  }
  MutexLock lock(&q.mu);
  q.given_back.erase(seq);
  ++q.dead_lettered;
  return Status::Ok();
}

// What a watcher's callbacks hold: its queue (alive until the subscription completed) and
// its generation.
struct WatchClosure {
  std::shared_ptr<void> keep;
  void* q;
  uint64_t generation;
};

StatusOr<uint64_t> NatsQueue::PublishAndWait(const std::string& stream, natsMsg* m) {
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.ExpectStream = stream.c_str();
  po.MaxWait = kApiTimeoutMs;
  jsPubAck* pa = nullptr;
  jsErrCode je = static_cast<jsErrCode>(0);
  const natsStatus s = js_PublishMsg(&pa, js_.get(), m, &po, &je);
  NatsPtr<jsPubAck> ack(pa);
  if (s != NATS_OK) return NatsError("publish to " + stream, s, je);
  return pa->Sequence;
}

Status NatsQueue::StartWatcher(QueueState& q, uint64_t from_seq) {
  jsOptions jo = ApiOptions();
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = q.lease_stream.c_str();
  so.Ordered = true;  // every record once, in order, and the library recovers from gaps
  so.Config.DeliverPolicy = js_DeliverByStartSequence;
  so.Config.OptStartSeq = std::max<uint64_t>(from_seq, 1);
  auto closure = std::make_unique<WatchClosure>();
  closure->keep = q.shared_from_this();
  closure->q = &q;
  {
    MutexLock lock(&q.mu);
    closure->generation = ++q.watcher_generation;
  }
  natsSubscription* sub = nullptr;
  jsErrCode je = static_cast<jsErrCode>(0);
  natsStatus s = js_Subscribe(&sub, js_.get(), q.lease_subjects.c_str(), OnRecord, closure.get(),
                              &jo, &so, &je);
  if (s != NATS_OK) return NatsError("read the lease records of " + q.lease_stream, s, je);
  natsSubscription_SetPendingLimits(sub, -1, -1);
  // The closure lives until the subscription is done (its last callback returned).
  s = natsSubscription_SetOnCompleteCB(sub, OnWatcherDone, closure.get());
  if (s != NATS_OK) {
    // Closed already (the connection is going away): a callback may still be running with the
    // closure, so it is left to the process (a few bytes, once) rather than freed under it.
    Log(LogLevel::kWarn, "nats: the lease watcher closed as it started",
        {{"queue", q.name}, {"error", natsStatus_GetText(s)}});
  }
  closure.release();  // NOLINT(bugprone-unused-return-value): freed by OnWatcherDone
  q.watcher = sub;
  return Status::Ok();
}

void NatsQueue::StopWatcher(QueueState& q) {
  {
    MutexLock lock(&q.mu);
    ++q.watcher_generation;  // whatever it still delivers is ignored
  }
  if (q.watcher == nullptr) return;
  natsSubscription_Destroy(q.watcher);  // unsubscribes
  q.watcher = nullptr;
}

void NatsQueue::OnRecord(natsConnection* /*nc*/, natsSubscription* /*sub*/, natsMsg* msg,
                         void* closure) {
  MsgPtr owned(msg);
  const auto* c = static_cast<const WatchClosure*>(closure);
  const char* reply = natsMsg_GetReply(msg);
  const std::optional<Delivery> d = ParseAckSubject(reply == nullptr ? "" : reply);
  if (!d) return;
  const char* data = natsMsg_GetData(msg);
  const std::string_view body(data == nullptr ? "" : data,
                              data == nullptr ? 0 : static_cast<size_t>(natsMsg_GetDataLength(msg)));
  ApplyRecord(*static_cast<QueueState*>(c->q), c->generation, d->stream_seq,
              natsMsg_GetSubject(msg), body);
}

void NatsQueue::OnWatcherDone(void* closure) { delete static_cast<WatchClosure*>(closure); }

void NatsQueue::ApplyRecord(QueueState& q, uint64_t generation, uint64_t record_seq,
                            std::string_view subject, std::string_view body) {
  // "L <until_us>" then "<id> <seq> <attempt> <ack subject>" per lease; "R <until_us>" then
  // "<id>" per lease it ends; "M" (a marker for CatchUp).
  std::vector<std::string_view> lines;
  if (subject != q.own_subject) {
    for (size_t start = 0; start < body.size();) {
      size_t end = body.find('\n', start);
      if (end == std::string_view::npos) end = body.size();
      if (end > start) lines.push_back(body.substr(start, end - start));
      start = end + 1;
    }
  }
  const int64_t now_us = q.NowUs();
  int64_t until_us = 0;
  const bool lease = !lines.empty() && lines[0].starts_with("L ");
  const bool release = !lines.empty() && lines[0].starts_with("R ");
  if ((lease || release) && !ParseNumber(lines[0].substr(2), &until_us)) lines.clear();
  MutexLock lock(&q.mu);
  if (generation != q.watcher_generation) return;  // a stopped watcher's
  if (subject != q.own_subject) {
    QueueState::Foreign& f = q.foreign[std::string(subject)];
    f.last_seq = std::max(f.last_seq, record_seq);
    f.until_us = std::max(f.until_us, until_us);
  }
  for (size_t i = 1; (lease || release) && i < lines.size(); ++i) {
    std::array<std::string_view, 4> f;
    size_t n = 0;
    for (size_t start = 0; start <= lines[i].size() && n < f.size();) {
      size_t end = lines[i].find(' ', start);
      if (end == std::string_view::npos) end = lines[i].size();
      f[n++] = lines[i].substr(start, end - start);
      start = end + 1;
    }
    const std::string id(f[0]);
    const auto it = q.recorded.find(id);
    const bool older = it == q.recorded.end() || it->second.record_seq < record_seq;
    const auto own = q.leases.find(id);
    const bool held_here = own != q.leases.end() && own->second.expires_us > now_us;
    if (release || until_us <= now_us || held_here) {
      // A lease ended, or one held here (the server delivered it again elsewhere after it lost
      // its state): what this process holds comes first.
      if (it != q.recorded.end() && older) q.recorded.erase(it);
      continue;
    }
    if (own != q.leases.end()) {
      // Ours ran out and the server delivered it again to another process, which leased it:
      // that lease is the live one. Ours is dropped, not given back (a nak of the old
      // delivery must not undo the new one).
      SettleRecord(q, own->second.record_seq);
      q.leases.erase(own);
    }
    Record r;
    r.record_seq = record_seq;
    r.until_us = until_us;
    if (n < 4 || !older || !ParseNumber(f[1], &r.seq) || !ParseNumber(f[2], &r.attempt)) continue;
    r.ack_subject = std::string(f[3]);
    q.recorded[id] = std::move(r);
    q.next_end_us = std::min(q.next_end_us, until_us);
  }
  q.watched_seq = std::max(q.watched_seq, record_seq);
  q.cv.SignalAll();
}

StatusOr<uint64_t> NatsQueue::PublishRecord(QueueState& q, const std::string& body,
                                            int64_t until_us, size_t open) {
  natsMsg* raw = nullptr;
  natsStatus s = natsMsg_Create(&raw, q.own_subject.c_str(), nullptr, body.data(),
                                static_cast<int>(body.size()));
  MsgPtr m(raw);
  if (s != NATS_OK) return NatsError("lease record", s);
  if (open > 0) {
    MutexLock lock(&q.mu);
    ++q.holding_in_flight;
  }
  StatusOr<uint64_t> published = PublishAndWait(q.lease_stream, m.get());
  MutexLock lock(&q.mu);
  if (open > 0) --q.holding_in_flight;
  if (!published.ok()) return published.status();
  const uint64_t seq = *published;
  q.own_records[seq] = OwnRecord{until_us, open};
  q.last_own_seq = std::max(q.last_own_seq, seq);
  return seq;
}

Status NatsQueue::CatchUp(QueueState& q) {
  VIGIL_ASSIGN_OR_RETURN(const uint64_t marker, PublishRecord(q, "M\n", 0, 0));
  MutexLock lock(&q.mu);
  const auto deadline = Clock::now() + std::chrono::milliseconds(kApiTimeoutMs);
  while (q.watched_seq < marker) {
    if (Clock::now() >= deadline) {
      return Unavailable("nats: the lease records of queue '" + q.name +
                         "' could not be read within " + std::to_string(kApiTimeoutMs) + " ms");
    }
    q.cv.WaitFor(&q.mu, std::chrono::milliseconds(kWaitSliceMs));
  }
  return Status::Ok();
}

Status NatsQueue::CheckServer(QueueState& q) {
  std::array<char, 128> id{};
  // Not connected: the calls to the server fail on their own.
  if (natsConnection_GetConnectedServerId(conn_.get(), id.data(), id.size()) != NATS_OK) {
    return Status::Ok();
  }
  MutexLock server_lock(&q.server_mu);
  if (q.records_server_id == id.data()) return Status::Ok();
  StopWatcher(q);
  uint64_t from = 0;
  {
    MutexLock lock(&q.mu);
    from = q.watched_seq + 1;
  }
  Status st = StartWatcher(q, from);
  if (st.ok()) st = CatchUp(q);
  // Failed: tried again at the next pull, and nothing is handed out unchecked meanwhile.
  if (!st.ok()) return st;
  q.records_server_id = id.data();
  return Status::Ok();
}

void NatsQueue::SettleRecord(QueueState& q, uint64_t record_seq) {
  if (record_seq == 0) return;
  const auto it = q.own_records.find(record_seq);
  if (it != q.own_records.end() && it->second.open > 0) --it->second.open;
}

void NatsQueue::PurgeRecords(QueueState& q, bool now) {
  const int64_t now_us = NowUs();
  // Subject -> purge below this sequence.
  std::vector<std::pair<std::string, uint64_t>> purges;
  {
    MutexLock lock(&q.mu);
    if (!now && Clock::now() - q.last_purge < kPurgeEvery) return;
    q.last_purge = Clock::now();
    while (!q.own_records.empty() && !q.own_records.begin()->second.Holds(now_us)) {
      q.own_records.erase(q.own_records.begin());
    }
    const uint64_t floor =
        q.own_records.empty() ? q.last_own_seq + 1 : q.own_records.begin()->first;
    if (q.holding_in_flight == 0 && floor > q.purge_floor) {
      purges.emplace_back(q.own_subject, floor);
      q.purge_floor = floor;
    }
    for (auto it = q.foreign.begin(); it != q.foreign.end();) {
      if (it->second.until_us <= now_us) {
        purges.emplace_back(it->first, it->second.last_seq + 1);
        it = q.foreign.erase(it);
      } else {
        ++it;
      }
    }
  }
  // Not waited for: a purge that fails leaves records that hold nothing, which a later one
  // (or their max age) removes.
  const std::string api = "$JS.API.STREAM.PURGE." + q.lease_stream;
  for (const auto& [subject, below] : purges) {
    const std::string body =
        "{\"filter\":\"" + subject + "\",\"seq\":" + std::to_string(below) + "}";
    natsConnection_PublishRequest(conn_.get(), api.c_str(), api_inbox_.c_str(), body.data(),
                                  static_cast<int>(body.size()));
  }
}

StatusOr<size_t> NatsQueue::Accept(QueueState& q, std::vector<MsgPtr> msgs,
                                   const PullOptions& options, std::vector<QueueMessage>* result) {
  // A restarted nats-server may have lost its consumer's last moments and deliver messages
  // leased then as new: the watcher reads on from the new server first.
  VIGIL_RETURN_IF_ERROR(CheckServer(q));
  struct Taken {
    MsgPtr msg;
    QueueMessage qm;
    uint64_t seq;
  };
  std::vector<Taken> taken;
  size_t dead = 0;
  const int64_t now_us = NowUs();
  bool caught_up_here = false;  // the watcher caught up during this call
  for (MsgPtr& m : msgs) {
    const char* reply = natsMsg_GetReply(m.get());
    const std::optional<Delivery> d = ParseAckSubject(reply == nullptr ? "" : reply);
    if (!d) {
      Log(LogLevel::kWarn, "nats: a delivery without a JetStream ack subject was dropped",
          {{"queue", q.name}});
      continue;
    }
    QueueMessage qm = ToMessage(q, m.get(), *d);
    // Leased already (the server delivers it again after a restart that lost its state, or
    // after its ack wait when the lease is held elsewhere): not handed out while it holds.
    std::optional<Record> hold;
    bool ours = false;
    for (bool caught_up = caught_up_here;; caught_up = true) {
      ReleasableMutexLock lock(&q.mu);
      const auto own = q.leases.find(qm.id);
      if (own != q.leases.end() && own->second.seq == d->stream_seq &&
          own->second.expires_us > now_us) {
        // Ours: from now on, Ack, Nack and the reaper use this delivery.
        own->second.msg = std::move(m);
        own->second.touched = Clock::now();
        ours = true;
        break;
      }
      const auto rec = q.recorded.find(qm.id);
      if (rec != q.recorded.end()) {
        if (rec->second.seq == d->stream_seq && rec->second.until_us > now_us) {
          rec->second.ack_subject = reply;
          hold = rec->second;
        } else {
          q.recorded.erase(rec);
        }
      }
      if (!hold || caught_up) break;
      // Perhaps the holder gave it back a moment ago (nack): its release record may not be
      // here yet. Catch up once, then look again.
      lock.Release();
      hold.reset();
      caught_up_here = true;
      if (const Status st = CatchUp(q); !st.ok()) {
        // Held after all, as recorded: it comes back when that lease ends.
        MutexLock again(&q.mu);
        const auto r = q.recorded.find(qm.id);
        if (r != q.recorded.end()) hold = r->second;
        break;
      }
    }
    if (ours) continue;
    if (hold) {
      if (const Status st = Nak(reply, hold->until_us - now_us + kHoldSlackUs); !st.ok()) {
        Log(LogLevel::kWarn, "nats: a message held for its recorded lease was not nak'ed",
            {{"queue", q.name}, {"id", qm.id}, {"error", st.message()}});
      }
      continue;
    }
    if (d->delivered > options_.max_attempts) {
      const std::string reason = "delivered " + std::to_string(d->delivered) +
                                 " times without an ack (max_attempts " +
                                 std::to_string(options_.max_attempts) + ")";
      if (DeadLetter(q, qm, d->stream_seq, reason, reply).ok()) ++dead;
      continue;
    }
    // The same message twice (a late copy, then the server's redelivery): keep the newer.
    const auto same = std::find_if(taken.begin(), taken.end(),
                                   [&](const Taken& t) { return t.seq == d->stream_seq; });
    if (same != taken.end()) taken.erase(same);
    taken.push_back({std::move(m), std::move(qm), d->stream_seq});
  }
  if (taken.empty()) return dead;

  uint64_t record_seq = 0;
  const int64_t lease_us =
      std::chrono::duration_cast<std::chrono::microseconds>(options.lease).count();
  if (options.lease.count() == 0) {
    std::vector<natsMsg*> raw;
    raw.reserve(taken.size());
    for (const Taken& t : taken) raw.push_back(t.msg.get());
    if (const Status acked = AckAll(raw); !acked.ok()) {
      // Some acks may have been applied before the failure, and an applied ack deletes the
      // message from the work-queue stream: dropping those would lose them. So a message the
      // stream no longer has is handed out; one it still has was not taken, and the server
      // delivers it again after its ack wait.
      std::erase_if(taken, [&](const Taken& t) { return StillStored(q, t.seq); });
      if (taken.empty()) return acked;
      Log(LogLevel::kWarn, "nats: a plain pull's ack failed; handing out the messages it took",
          {{"queue", q.name}, {"messages", taken.size()}, {"error", acked.message()}});
    }
  } else {
    // The pull's leases are recorded on the server, in one record, before they are handed
    // out, so that they hold across a restart of Vigil or of nats-server (whose consumer state
    // may lag behind).
    const int64_t until_us = now_us + lease_us;
    std::string body = "L " + std::to_string(until_us) + "\n";
    std::string release = "R " + std::to_string(until_us) + "\n";
    size_t open = 0;
    for (const Taken& t : taken) {
      if (!q.IsOwnId(t.qm.id)) {
        // An id Vigil did not give (a Vigil-Id header from elsewhere): leased here only.
        Log(LogLevel::kWarn, "nats: a lease of a message with a foreign id is not recorded",
            {{"queue", q.name}, {"id", t.qm.id}});
        continue;
      }
      body += t.qm.id + ' ' + std::to_string(t.seq) + ' ' + std::to_string(t.qm.attempt) + ' ' +
              natsMsg_GetReply(t.msg.get()) + '\n';
      release += t.qm.id + '\n';
      ++open;
    }
    if (open > 0) {
      StatusOr<uint64_t> rec = PublishRecord(q, body, until_us, open);
      if (!rec.ok()) {
        // Not recorded: not handed out either. The record may be stored all the same (a
        // timeout after the server took it), and would hold the messages elsewhere for the
        // whole lease: a release record goes first, best effort, while they are still
        // delivered here (so that it cannot undo a lease another process takes after them).
        if (const Status released = PublishRecord(q, release, until_us, 1).status();
            !released.ok()) {
          Log(LogLevel::kWarn, "nats: no release record after a failed lease record",
              {{"queue", q.name}, {"error", released.message()}});
        }
        for (const Taken& t : taken) {
          GiveBack(q, natsMsg_GetReply(t.msg.get()), t.seq, std::chrono::milliseconds(0));
        }
        return rec.status().WithContext("record the leases of a pull from queue '" + q.name +
                                        "'");
      }
      record_seq = *rec;
    }
  }
  MutexLock lock(&q.mu);
  for (Taken& t : taken) {
    q.given_back.erase(t.seq);
    if (options.lease.count() > 0) {
      t.qm.lease_expires_us = now_us + lease_us;
      q.recorded.erase(t.qm.id);
      Lease& lease = q.leases[t.qm.id];
      lease.msg = std::move(t.msg);
      lease.seq = t.seq;
      lease.attempt = t.qm.attempt;
      lease.expires_us = t.qm.lease_expires_us;
      lease.touched = Clock::now();
      lease.record_seq = q.IsOwnId(t.qm.id) ? record_seq : 0;
      q.next_end_us = std::min(q.next_end_us, lease.expires_us);
    }
    result->push_back(std::move(t.qm));
  }
  q.delivered += taken.size();
  q.deliver_rate.Add(now_us / 1000000, taken.size());
  return dead;
}

StatusOr<std::vector<QueueMessage>> NatsQueue::Pull(std::string_view queue,
                                                    const PullOptions& options) {
  VIGIL_RETURN_IF_ERROR(CheckRunning());
  VIGIL_RETURN_IF_ERROR(ValidateQueueName(queue));
  if (options.max < 1 || options.max > options_.max_batch) {
    return InvalidArgument("max must be from 1 to " + std::to_string(options_.max_batch) +
                           ", not " + std::to_string(options.max));
  }
  if (options.lease.count() < 0 || options.lease > options_.max_lease) {
    return InvalidArgument("lease must be from 0 to " + std::to_string(options_.max_lease.count()) +
                           " ms, not " + std::to_string(options.lease.count()));
  }
  if (options.wait.count() < 0 || options.wait > options_.max_wait) {
    return InvalidArgument("wait must be from 0 to " + std::to_string(options_.max_wait.count()) +
                           " ms, not " + std::to_string(options.wait.count()));
  }
  VIGIL_ASSIGN_OR_RETURN(std::shared_ptr<QueueState> q, GetQueue(queue, /*create=*/false));
  // Leases run out on the clock, not on the reaper's tick: give back the expired ones first,
  // so that they come before the messages pushed after them.
  Reap(*q, /*periodic=*/false);

  VIGIL_ASSIGN_OR_RETURN(std::unique_ptr<Inbox> inbox, TakeInbox(*q));
  std::vector<QueueMessage> result;
  const Status st = PullInto(*q, *inbox, options, &result);
  ReturnInbox(*q, std::move(inbox));
  if (!st.ok()) return st;
  return result;
}

Status NatsQueue::PullInto(QueueState& q, Inbox& inbox, const PullOptions& options,
                           std::vector<QueueMessage>* result) {
  const auto deadline = Clock::now() + options.wait;
  while (result->size() < options.max && !stopped_.load()) {
    const int want = static_cast<int>(options.max - result->size());
    std::vector<MsgPtr> msgs;
    Status st = RequestMessages(q, inbox, want, 0, &msgs);
    bool waited = false;
    if (st.ok() && msgs.empty()) {
      const int64_t left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (!result->empty() || left <= 0) break;
      // Long poll: one message, as soon as one comes; the rest of the batch without waiting.
      st = RequestMessages(q, inbox, 1, left, &msgs);
      waited = true;
    }
    if (!st.ok()) {
      if (result->empty()) return st;
      break;  // what was taken is returned: for a plain pull it is acknowledged already
    }
    if (msgs.empty()) break;
    const size_t fetched = msgs.size();
    StatusOr<size_t> dead = Accept(q, std::move(msgs), options, result);
    if (!dead.ok()) {
      if (result->empty()) return dead.status();
      break;
    }
    // The server had no more ready, unless some went to the dead letters.
    if (!waited && *dead == 0 && fetched < static_cast<size_t>(want)) break;
  }
  return Status::Ok();
}

Status NatsQueue::ValidateIds(std::span<const std::string> ids) const {
  if (ids.empty()) return InvalidArgument("ids must list at least one message id");
  if (ids.size() > options_.max_batch) {
    return InvalidArgument("at most " + std::to_string(options_.max_batch) +
                           " ids at a time, not " + std::to_string(ids.size()));
  }
  return Status::Ok();
}

NatsQueue::Taken NatsQueue::TakeLeases(QueueState& q, std::span<const std::string> ids,
                                       std::vector<Status>* statuses) {
  const int64_t now_us = NowUs();
  // An id this process neither holds nor knows as recorded elsewhere may have been leased by
  // another process a moment ago: the watcher catches up first (once a call).
  bool unknown = false;
  {
    MutexLock lock(&q.mu);
    for (const std::string& id : ids) {
      if (!q.leases.contains(id) && !q.recorded.contains(id) && q.IsOwnId(id)) unknown = true;
    }
  }
  if (unknown) {
    if (const Status st = CatchUp(q); !st.ok()) {
      Log(LogLevel::kWarn, "nats: the lease records could not be read before an ack or a nack",
          {{"queue", q.name}, {"error", st.message()}});
    }
  }

  Taken taken;
  MutexLock lock(&q.mu);
  std::unordered_set<std::string_view> seen;
  bool all = true;
  for (size_t i = 0; i < ids.size(); ++i) {
    const auto rec = q.recorded.find(ids[i]);
    const bool leased = q.leases.contains(ids[i]) ||
                        (rec != q.recorded.end() && rec->second.until_us > now_us);
    if (!leased || !seen.insert(ids[i]).second) {
      (*statuses)[i] = NotFound("message '" + ids[i] +
                                "' is not leased: unknown, already settled, named twice, or its "
                                "lease ran out");
      all = false;
    }
  }
  if (!all) return taken;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (auto own = q.leases.extract(ids[i]); !own.empty()) {
      taken.own.emplace_back(i, std::move(own.mapped()));
    } else {
      taken.foreign.emplace_back(i, std::move(q.recorded.extract(ids[i]).mapped()));
    }
  }
  return taken;
}

void NatsQueue::PutBack(QueueState& q, std::span<const std::string> ids, Taken&& taken) {
  MutexLock lock(&q.mu);
  // A lease given out meanwhile (a redelivery another pull took) is the live one: kept.
  for (auto& [i, lease] : taken.own) q.leases.try_emplace(ids[i], std::move(lease));
  for (auto& [i, r] : taken.foreign) q.recorded.try_emplace(ids[i], std::move(r));
}

StatusOr<std::vector<Status>> NatsQueue::Ack(std::string_view queue,
                                             std::span<const std::string> ids) {
  VIGIL_RETURN_IF_ERROR(CheckRunning());
  VIGIL_RETURN_IF_ERROR(ValidateQueueName(queue));
  VIGIL_RETURN_IF_ERROR(ValidateIds(ids));
  VIGIL_ASSIGN_OR_RETURN(std::shared_ptr<QueueState> q, GetQueue(queue, /*create=*/false));
  Reap(*q, /*periodic=*/false);  // a lease that ran out on the clock is NotFound now
  std::vector<Status> statuses(ids.size());
  Taken taken = TakeLeases(*q, ids, &statuses);
  if (taken.empty()) return statuses;
  Status st;
  // Leased by another process (one that restarted, say): this one has no delivery of them to
  // acknowledge, so they are deleted from the stream, which settles them for good (the +ACK
  // of the recorded delivery only tidies the server's count of pending acks).
  jsOptions jo = ApiOptions();
  for (const auto& [i, r] : taken.foreign) {
    jsErrCode je = static_cast<jsErrCode>(0);
    const natsStatus s = js_DeleteMsg(js_.get(), q->stream.c_str(), r.seq, &jo, &je);
    // Not found: gone already, which is what the ack asks.
    if (s != NATS_OK && !DeletedNothing(s, je)) {
      st = NatsError("delete " + ids[i] + " from " + q->stream, s, je);
      break;
    }
    if (!r.ack_subject.empty()) {
      natsConnection_PublishString(conn_.get(), r.ack_subject.c_str(), "+ACK");
    }
  }
  if (st.ok()) {
    std::vector<natsMsg*> raw;
    raw.reserve(taken.own.size());
    for (const auto& [i, lease] : taken.own) raw.push_back(lease.msg.get());
    st = AckAll(raw);
  }
  if (!st.ok()) {
    // Perhaps not acknowledged: the leases hold, so the caller may try again.
    for (const auto& [i, lease] : taken.own) statuses[i] = st;
    for (const auto& [i, r] : taken.foreign) statuses[i] = st;
    PutBack(*q, ids, std::move(taken));
    return statuses;
  }
  // Their records name messages that are gone: this process's are purged once they hold
  // nothing else, the others' age out.
  const size_t n = taken.own.size() + taken.foreign.size();
  MutexLock lock(&q->mu);
  for (const auto& [i, lease] : taken.own) SettleRecord(*q, lease.record_seq);
  q->acked += n;
  q->ack_rate.Add(NowUs() / 1000000, n);
  return statuses;
}

StatusOr<std::vector<Status>> NatsQueue::Nack(std::string_view queue,
                                              std::span<const std::string> ids,
                                              const NackOptions& options) {
  VIGIL_RETURN_IF_ERROR(CheckRunning());
  VIGIL_RETURN_IF_ERROR(ValidateQueueName(queue));
  VIGIL_RETURN_IF_ERROR(ValidateIds(ids));
  if (options.delay.count() < 0) {
    return InvalidArgument("a nack's delay cannot be negative (" +
                           std::to_string(options.delay.count()) + " ms)");
  }
  VIGIL_ASSIGN_OR_RETURN(std::shared_ptr<QueueState> q, GetQueue(queue, /*create=*/false));
  Reap(*q, /*periodic=*/false);  // a lease that ran out on the clock is NotFound now
  std::vector<Status> statuses(ids.size());
  Taken taken = TakeLeases(*q, ids, &statuses);
  if (taken.empty()) return statuses;
  // A release record goes first, confirmed: a message given back must not be held for the
  // lease it had when it comes back. It holds (open 1, never settled) until those leases
  // would have ended, so that it is not purged before the records it overrides.
  std::string release;
  int64_t until_us = 0;
  for (const auto& [i, lease] : taken.own) {
    release += ids[i] + '\n';
    until_us = std::max(until_us, lease.expires_us);
  }
  for (const auto& [i, r] : taken.foreign) {
    release += ids[i] + '\n';
    until_us = std::max(until_us, r.until_us);
  }
  const Status st =
      PublishRecord(*q, "R " + std::to_string(until_us) + "\n" + release, until_us, 1).status();
  if (!st.ok()) {
    for (const auto& [i, lease] : taken.own) statuses[i] = st;
    for (const auto& [i, r] : taken.foreign) statuses[i] = st;
    PutBack(*q, ids, std::move(taken));
    return statuses;
  }
  auto reason_for = [&](int attempt) -> std::string {
    if (options.dead_letter) {
      return options.reason.empty() ? "dead-lettered by a nack" : options.reason;
    }
    return "nacked on attempt " + std::to_string(attempt) + " of max_attempts " +
           std::to_string(options_.max_attempts) +
           (options.reason.empty() ? "" : ": " + options.reason);
  };
  for (auto& [i, lease] : taken.own) {
    if (options.dead_letter || lease.attempt >= options_.max_attempts) {
      Delivery d;
      d.stream_seq = lease.seq;
      d.delivered = lease.attempt;
      const QueueMessage qm = ToMessage(*q, lease.msg.get(), d);
      statuses[i] = DeadLetter(*q, qm, lease.seq, reason_for(lease.attempt),
                               natsMsg_GetReply(lease.msg.get()));
    } else {
      GiveBack(*q, natsMsg_GetReply(lease.msg.get()), lease.seq, options.delay);
    }
  }
  // Leased by another process: given back on the delivery it recorded (if the server lost
  // that one, the message is waiting already or comes back after the ack wait); dead-lettered
  // from the stream's copy.
  jsOptions jo = ApiOptions();
  for (const auto& [i, r] : taken.foreign) {
    if (options.dead_letter || r.attempt >= options_.max_attempts) {
      natsMsg* raw = nullptr;
      jsErrCode je = static_cast<jsErrCode>(0);
      const natsStatus s = js_GetMsg(&raw, js_.get(), q->stream.c_str(), r.seq, &jo, &je);
      if (s != NATS_OK) {
        statuses[i] = NatsError("read " + ids[i] + " from " + q->stream, s, je);
        continue;
      }
      MsgPtr m(raw);
      Delivery d;
      d.stream_seq = r.seq;
      d.delivered = r.attempt;
      const QueueMessage qm = ToMessage(*q, raw, d);
      statuses[i] = DeadLetter(*q, qm, r.seq, reason_for(r.attempt), nullptr);
    } else if (!r.ack_subject.empty()) {
      GiveBack(*q, r.ack_subject.c_str(), r.seq, options.delay);
    }
  }
  MutexLock lock(&q->mu);
  for (const auto& [i, lease] : taken.own) SettleRecord(*q, lease.record_seq);
  q->nacked += taken.own.size() + taken.foreign.size();
  return statuses;
}

void NatsQueue::ReapLoop() {
  for (;;) {
    std::vector<std::shared_ptr<QueueState>> queues;
    {
      MutexLock lock(&mu_);
      if (reaper_stop_) return;
      if (failed_pushes_.empty()) cv_.WaitFor(&mu_, kReapEvery);
      if (reaper_stop_) return;
      for (const auto& [name, q] : queues_) queues.push_back(q);
    }
    ExpirePushes();
    FailPushes();
    for (const auto& q : queues) {
      Reap(*q, /*periodic=*/true);
      PurgeRecords(*q, /*now=*/false);
    }
  }
}

void NatsQueue::Reap(QueueState& q, bool periodic) {
  const int64_t now_us = NowUs();
  const auto now = Clock::now();
  std::vector<Lease> expired;
  std::vector<std::string> keep_alive;  // ack subjects
  {
    MutexLock lock(&q.mu);
    if (!periodic && now_us < q.next_end_us) return;
    int64_t next_end_us = INT64_MAX;
    for (auto it = q.recorded.begin(); it != q.recorded.end();) {
      if (now_us >= it->second.until_us) {
        it = q.recorded.erase(it);
      } else {
        next_end_us = std::min(next_end_us, it->second.until_us);
        ++it;
      }
    }
    for (auto it = q.leases.begin(); it != q.leases.end();) {
      if (now_us >= it->second.expires_us) {
        SettleRecord(q, it->second.record_seq);
        expired.push_back(std::move(it->second));
        it = q.leases.erase(it);
        continue;
      }
      next_end_us = std::min(next_end_us, it->second.expires_us);
      if (periodic && now - it->second.touched >= q.keep_alive_every) {
        it->second.touched = now;
        keep_alive.emplace_back(natsMsg_GetReply(it->second.msg.get()));
      }
      ++it;
    }
    q.next_end_us = next_end_us;
    q.expired += expired.size();
  }
  for (const std::string& subject : keep_alive) {
    natsConnection_PublishString(conn_.get(), subject.c_str(), "+WPI");
  }
  for (Lease& lease : expired) {
    if (lease.attempt >= options_.max_attempts) {
      Delivery d;
      d.stream_seq = lease.seq;
      d.delivered = lease.attempt;
      const QueueMessage qm = ToMessage(q, lease.msg.get(), d);
      (void)DeadLetter(q, qm, lease.seq,
                       "lease ran out on attempt " + std::to_string(lease.attempt) +
                           " of max_attempts " + std::to_string(options_.max_attempts),
                       natsMsg_GetReply(lease.msg.get()));
    } else {
      GiveBack(q, natsMsg_GetReply(lease.msg.get()), lease.seq, std::chrono::milliseconds(0));
    }
  }
  if (!keep_alive.empty()) natsConnection_FlushTimeout(conn_.get(), kApiTimeoutMs);
}

StatusOr<std::vector<std::pair<uint64_t, MsgPtr>>> NatsQueue::ReadDeadLetters(const QueueState& q,
                                                                              size_t limit) {
  jsOptions jo = ApiOptions();
  jsErrCode je = static_cast<jsErrCode>(0);
  jsStreamInfo* raw = nullptr;
  natsStatus s = js_GetStreamInfo(&raw, js_.get(), q.dlq_stream.c_str(), &jo, &je);
  if (s != NATS_OK) return NatsError("stream info " + q.dlq_stream, s, je);
  NatsPtr<jsStreamInfo> si(raw);
  std::vector<std::pair<uint64_t, MsgPtr>> out;
  if (si->State.Msgs == 0) return out;
  // Sequences of requeued dead letters are holes (deleted); the scan skips them.
  for (uint64_t seq = si->State.FirstSeq; seq <= si->State.LastSeq && out.size() < limit; ++seq) {
    natsMsg* m = nullptr;
    s = js_GetMsg(&m, js_.get(), q.dlq_stream.c_str(), seq, &jo, &je);
    if (s == NATS_OK) {
      out.emplace_back(seq, MsgPtr(m));
    } else if (!IsNotFound(s, je)) {
      return NatsError("read dead letter from " + q.dlq_stream, s, je);
    }
  }
  return out;
}

QueueMessage DeadLetterMessage(natsMsg* m) {
  QueueMessage qm;
  qm.id = Header(m, kHdrId);
  const char* data = natsMsg_GetData(m);
  if (data != nullptr) qm.content.assign(data, static_cast<size_t>(natsMsg_GetDataLength(m)));
  qm.message_type = DecodeHeader(Header(m, kHdrType));
  if (!ParseNumber(Header(m, kHdrAttempt), &qm.attempt)) qm.attempt = 0;
  if (!ParseNumber(Header(m, kHdrEnqueued), &qm.enqueued_us)) qm.enqueued_us = 0;
  qm.last_error = DecodeHeader(Header(m, kHdrReason));
  return qm;
}

StatusOr<std::vector<QueueMessage>> NatsQueue::DeadLetters(std::string_view queue, size_t limit) {
  VIGIL_RETURN_IF_ERROR(CheckRunning());
  VIGIL_RETURN_IF_ERROR(ValidateQueueName(queue));
  VIGIL_ASSIGN_OR_RETURN(std::shared_ptr<QueueState> q, GetQueue(queue, /*create=*/false));
  VIGIL_ASSIGN_OR_RETURN(auto letters, ReadDeadLetters(*q, limit));
  std::vector<QueueMessage> out;
  out.reserve(letters.size());
  for (const auto& [seq, m] : letters) out.push_back(DeadLetterMessage(m.get()));
  return out;
}

StatusOr<size_t> NatsQueue::Requeue(std::string_view queue, std::span<const std::string> ids) {
  VIGIL_RETURN_IF_ERROR(CheckRunning());
  VIGIL_RETURN_IF_ERROR(ValidateQueueName(queue));
  VIGIL_ASSIGN_OR_RETURN(std::shared_ptr<QueueState> q, GetQueue(queue, /*create=*/false));
  jsOptions jo = ApiOptions();
  std::vector<std::pair<uint64_t, MsgPtr>> letters;
  if (ids.empty()) {
    VIGIL_ASSIGN_OR_RETURN(letters, ReadDeadLetters(*q, SIZE_MAX));
  } else {
    std::set<std::string> seen;
    for (const std::string& id : ids) {
      if (!seen.insert(id).second) continue;
      natsMsg* m = nullptr;
      jsErrCode je = static_cast<jsErrCode>(0);
      const natsStatus s =
          js_GetLastMsg(&m, js_.get(), q->dlq_stream.c_str(), q->DlqSubject(id).c_str(), &jo, &je);
      if (s == NATS_OK) {
        MsgPtr owned(m);
        if (Header(m, kHdrId) == id) letters.emplace_back(natsMsg_GetSequence(m), std::move(owned));
      } else if (!IsNotFound(s, je)) {
        return NatsError("read dead letter from " + q->dlq_stream, s, je);
      }
    }
  }
  size_t requeued = 0;
  for (const auto& [seq, m] : letters) {
    const QueueMessage dl = DeadLetterMessage(m.get());
    natsMsg* raw = nullptr;
    natsStatus s = natsMsg_Create(&raw, q->subject.c_str(), nullptr, dl.content.data(),
                                  static_cast<int>(dl.content.size()));
    if (s != NATS_OK) return NatsError("requeue", s);
    MsgPtr back(raw);
    const std::string enqueued = std::to_string(dl.enqueued_us);
    s = natsMsgHeader_Set(back.get(), kHdrId, dl.id.c_str());
    if (s == NATS_OK) s = natsMsgHeader_Set(back.get(), kHdrEnqueued, enqueued.c_str());
    if (s == NATS_OK && !dl.message_type.empty()) {
      s = natsMsgHeader_Set(back.get(), kHdrType, EncodeHeader(dl.message_type).c_str());
    }
    if (s != NATS_OK) return NatsError("requeue", s);
    VIGIL_RETURN_IF_ERROR(PublishAndWait(q->stream, back.get()).status());
    jsErrCode je = static_cast<jsErrCode>(0);
    // Deleted only once it is back in the queue: a crash in between leaves a duplicate, never
    // a loss.
    s = js_DeleteMsg(js_.get(), q->dlq_stream.c_str(), seq, &jo, &je);
    if (s != NATS_OK && !IsNotFound(s, je)) {
      return NatsError("delete dead letter from " + q->dlq_stream, s, je);
    }
    ++requeued;
  }
  return requeued;
}

StatusOr<QueueStats> NatsQueue::StatsOf(QueueState& q) {
  jsOptions jo = ApiOptions();
  jsErrCode je = static_cast<jsErrCode>(0);
  jsStreamInfo* raw_si = nullptr;
  natsStatus s = js_GetStreamInfo(&raw_si, js_.get(), q.stream.c_str(), &jo, &je);
  if (s != NATS_OK) return NatsError("stream info " + q.stream, s, je);
  NatsPtr<jsStreamInfo> si(raw_si);
  jsConsumerInfo* raw_ci = nullptr;
  s = js_GetConsumerInfo(&raw_ci, js_.get(), q.stream.c_str(), kConsumer, &jo, &je);
  if (s != NATS_OK) return NatsError("consumer info " + q.stream, s, je);
  NatsPtr<jsConsumerInfo> ci(raw_ci);
  jsStreamInfo* raw_dsi = nullptr;
  s = js_GetStreamInfo(&raw_dsi, js_.get(), q.dlq_stream.c_str(), &jo, &je);
  if (s != NATS_OK) return NatsError("stream info " + q.dlq_stream, s, je);
  NatsPtr<jsStreamInfo> dsi(raw_dsi);

  QueueStats st;
  st.name = q.name;
  const int64_t now_us = NowUs();
  const uint64_t ack_pending = static_cast<uint64_t>(std::max<int64_t>(0, ci->NumAckPending));
  MutexLock lock(&q.mu);
  const uint64_t given_back = std::min<uint64_t>(q.given_back.size(), ack_pending);
  st.in_flight = ack_pending - given_back;
  st.depth = ci->NumPending + given_back;
  st.dead_letters = dsi->State.Msgs;
  if (st.depth > 0 && si->State.Msgs > 0 && si->State.FirstTime > 0) {
    const int64_t first_us = si->State.FirstTime / 1000;
    st.oldest_age_seconds = std::max(0.0, static_cast<double>(now_us - first_us) / 1e6);
  }
  st.pushed = q.pushed;
  st.delivered = q.delivered;
  st.acked = q.acked;
  st.nacked = q.nacked;
  st.dead_lettered = q.dead_lettered;
  st.expired = q.expired;
  const int64_t now_s = now_us / 1000000;
  st.push_rate = q.push_rate.PerSecond(now_s);
  st.deliver_rate = q.deliver_rate.PerSecond(now_s);
  st.ack_rate = q.ack_rate.PerSecond(now_s);
  return st;
}

StatusOr<QueueStats> NatsQueue::Stats(std::string_view queue) {
  VIGIL_RETURN_IF_ERROR(CheckRunning());
  VIGIL_RETURN_IF_ERROR(ValidateQueueName(queue));
  VIGIL_ASSIGN_OR_RETURN(std::shared_ptr<QueueState> q, GetQueue(queue, /*create=*/false));
  return StatsOf(*q);
}

std::vector<QueueStats> NatsQueue::List() {
  std::vector<QueueStats> out;
  if (!CheckRunning().ok()) return out;
  if (const Status st = RefreshNames(); !st.ok()) {
    Log(LogLevel::kWarn, "nats: cannot list the queues on the server", {{"error", st.message()}});
  }
  std::vector<std::string> names;
  {
    MutexLock lock(&mu_);
    names.assign(names_.begin(), names_.end());
  }
  for (const std::string& name : names) {
    auto q = GetQueue(name, /*create=*/false);
    if (!q.ok()) continue;
    auto st = StatsOf(**q);
    if (st.ok()) out.push_back(std::move(*st));
  }
  return out;
}

}  // namespace

StatusOr<std::unique_ptr<Queue>> OpenNatsQueue(const QueueOptions& options) {
  if (options.url.rfind("nats://", 0) != 0) {
    return InvalidArgument("a NATS queue URL starts with nats://, not '" + options.url + "'");
  }
  if (options.max_attempts < 1) {
    return InvalidArgument("max_attempts must be at least 1, not " +
                           std::to_string(options.max_attempts));
  }
  auto queue = std::make_unique<NatsQueue>(options);
  VIGIL_RETURN_IF_ERROR(queue->Start());
  return std::unique_ptr<Queue>(std::move(queue));
}

}  // namespace vigil

#else  // !VIGIL_HAS_NATS

namespace vigil {

StatusOr<std::unique_ptr<Queue>> OpenNatsQueue(const QueueOptions& options) {
  return InvalidArgument("queue URL '" + options.url +
                         "': this build of Vigil has no NATS support (libnats-dev was not found, "
                         "or VIGIL_WITH_NATS=OFF)");
}

}  // namespace vigil

#endif  // VIGIL_HAS_NATS
