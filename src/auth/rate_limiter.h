// How often, and how many at once: per-caller rate limits (a token bucket), per-caller
// concurrency limits, and a limit on failed authentications per source address, so that
// credentials cannot be guessed at speed (OWASP API4, API2).
//
// Limits are set per role and per key (a key's own limit wins over its role's). A caller with
// several roles (a token) takes the most generous of its roles' limits. Without a limit for a
// caller's key or role, its requests are not counted at all.
#ifndef VIGIL_AUTH_RATE_LIMITER_H_
#define VIGIL_AUTH_RATE_LIMITER_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "auth/key_store.h"
#include "auth/role.h"
#include "vigil/status.h"

namespace vigil::auth {

struct Rate {
  double per_second = 0;  // 0: no limit
  double burst = 0;       // the bucket's size: requests allowed at once after a quiet spell
};

// "100" (100/s, burst 100) or "100/250" (100/s, burst 250); InvalidArgument otherwise.
StatusOr<Rate> ParseRate(std::string_view text);

struct RateLimitOptions {
  std::unordered_map<std::string, Rate> rate;        // by role name or key id
  std::unordered_map<std::string, int> concurrency;  // by role name or key id
  // Failed authentications per source address; once spent, every request from that address is
  // refused (429) until the bucket refills, valid credentials or not.
  Rate failures{0.5, 30};
};

// Parses "scorer=1000/2000" or "key_abc=50" into `out` (rate), or "scorer=64" (concurrency).
Status AddRateLimit(std::string_view spec, RateLimitOptions* out);
Status AddConcurrencyLimit(std::string_view spec, RateLimitOptions* out);

// What a limited request is told. `limited` is false when no limit applies to the caller.
struct RateDecision {
  bool allowed = true;
  bool limited = false;
  double limit = 0;           // requests per second
  int64_t remaining = 0;      // whole requests left in the bucket
  int64_t reset_seconds = 0;  // until the bucket is full again
  int64_t retry_after = 0;    // seconds, when refused
  std::string why;            // when refused
};

class RateLimiter {
 public:
  explicit RateLimiter(RateLimitOptions options);
  ~RateLimiter();
  RateLimiter(const RateLimiter&) = delete;
  RateLimiter& operator=(const RateLimiter&) = delete;

  // Counts one request of `who` at `now_ns` (a steady clock) against its rate limit.
  RateDecision Admit(const Principal& who, int64_t now_ns) const;

  // Takes one of `who`'s concurrent slots; false (and nothing taken) when all are in use. Every
  // true must be followed by one Release.
  bool Enter(const Principal& who, int* limit) const;
  void Release(const Principal& who) const;

  // Whether `address` may try to authenticate now (its failure bucket is not empty), and
  // `*retry_after` seconds otherwise.
  bool MayTry(std::string_view address, int64_t now_ns, int64_t* retry_after) const;
  // Counts a failed authentication from `address`.
  void Failed(std::string_view address, int64_t now_ns) const;

 private:
  struct Bucket {
    double tokens = 0;
    int64_t last_ns = 0;
  };
  struct Shard {
    std::mutex mu;
    std::unordered_map<std::string, Bucket> buckets;
    std::unordered_map<std::string, int> in_flight;
  };
  static constexpr size_t kShards = 16;
  Shard& ShardOf(std::string_view key) const;
  // The rate of `who`, or one with per_second 0.
  Rate RateOf(const Principal& who) const;
  int ConcurrencyOf(const Principal& who) const;
  // Refills `b` to `now_ns` at `rate`; a new bucket starts full.
  static void Refill(Bucket& b, const Rate& rate, int64_t now_ns, bool fresh);

  const RateLimitOptions options_;
  mutable std::array<Shard, kShards> shards_;
  mutable std::array<Shard, kShards> failure_shards_;
  // Addresses with a failure bucket: while none has, MayTry takes no lock.
  mutable std::atomic<size_t> failure_buckets_{0};
};

}  // namespace vigil::auth

#endif  // VIGIL_AUTH_RATE_LIMITER_H_
